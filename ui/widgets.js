// One form field per YANG leaf or leaf-list, chosen by its type: enumerations and
// identities as drop-downs with their descriptions, booleans and empty as choices,
// bits as check boxes, numbers with their ranges (64-bit and decimal64 kept as text),
// leafrefs with a type-ahead of the values they may take now, leaf-lists as rows.
import { useEffect, useRef, useState } from "preact/hooks";
import { get } from "./api.js";
import { html } from "./html.js";
import { realBase, textOf } from "./schema.js";

const SMALL_INT = { int8: [-128, 127], int16: [-32768, 32767], int32: [-2147483648, 2147483647],
                    uint8: [0, 255], uint16: [0, 65535], uint32: [0, 4294967295] };

function hintOf(node) {
  const t = node.type || {};
  const parts = [];
  const base = realBase(t);
  parts.push(t.typedefs && t.typedefs.length ? `${t.typedefs[0]} (${base})` : base);
  if (t.range) parts.push(`range ${t.range.map((r) => r.join("..")).join(" | ")}`);
  if (t.length) parts.push(`length ${t.length.map((r) => r.join("..")).join(" | ")}`);
  if (t["fraction-digits"]) parts.push(`${t["fraction-digits"]} decimals`);
  if (node.units) parts.push(node.units);
  if (node.default !== undefined) parts.push(`default ${node.default}`);
  if (node.when) parts.push(`only when ${node.when.join(" and ")}`);
  return parts.join(" · ");
}

function useValues(valuesPath, prefix, enabled, from, context) {
  const [values, setValues] = useState([]);
  useEffect(() => {
    if (!enabled || !valuesPath) return undefined;
    let live = true;
    const t = setTimeout(async () => {
      try {
        const q = new URLSearchParams({ path: valuesPath, limit: "50" });
        if (prefix) q.set("prefix", prefix);
        if (from) q.set("datastore", from);
        const doc = await get(`/restconf/ui/values?${q}`, { accept: "application/json" });
        if (live) setValues(doc.values || []);
      } catch (e) { if (live) setValues([]); }
    }, 120);
    return () => { live = false; clearTimeout(t); };
  }, [valuesPath, prefix, enabled, from, context]);
  return values;
}

function Scalar({ node, id, text, onText, readOnly, invalid, describedBy, valuesPath,
                  labelledBy, valuesFrom, context }) {
  const t = node.type || {};
  const base = realBase(t);
  const common = { id, disabled: readOnly, "aria-invalid": invalid ? "true" : undefined,
                   "aria-labelledby": labelledBy,
                   "aria-describedby": describedBy, "aria-required": node.mandatory
                     ? "true" : undefined };
  const isRef = t.base === "leafref";
  const initial = useRef(text);  // the stored value lists every choice; typing narrows
  const values = useValues(valuesPath, isRef && text !== initial.current ? text : "",
                           isRef && !readOnly, valuesFrom, context);
  if (base === "enumeration" || base === "identityref" || base === "boolean") {
    const options = base === "enumeration" ? (t.enums || []).map((e) => ({
      value: e.name, description: e.description }))
      : base === "identityref" ? (t.identities || [])
        : [{ value: "true" }, { value: "false" }];
    return html`<select ...${common} value=${text}
        onChange=${(e) => onText(e.currentTarget.value)}>
      <option value="">${node.default !== undefined ? `(default: ${node.default})` : "(not set)"}</option>
      ${options.map((o) => html`<option value=${o.value} title=${o.description || undefined}>
        ${o.value}${o.description ? ` — ${o.description.split(".")[0]}` : ""}</option>`)}
    </select>`;
  }
  if (base === "empty") {
    return html`<input type="checkbox" ...${common} checked=${text === "true"}
      onChange=${(e) => onText(e.currentTarget.checked ? "true" : "")} />`;
  }
  if (base === "bits") {
    const set = new Set(text.split(/\s+/).filter(Boolean));
    return html`<span class="bits" role="group" aria-labelledby=${`${id}-label`}>
      ${(t.bits || []).map((b) => html`<label class="inline">
        <input type="checkbox" disabled=${readOnly} checked=${set.has(b.name)}
          onChange=${(e) => {
            if (e.currentTarget.checked) set.add(b.name); else set.delete(b.name);
            onText([...set].join(" "));
          }} /> ${b.name}</label>`)}
    </span>`;
  }
  if (base === "binary" || (base === "string" && (t.length || []).some((r) => r[1] === "max"
      || Number(r[1]) > 255))) {
    return html`<textarea ...${common} rows="3" value=${text}
      onInput=${(e) => onText(e.currentTarget.value)} />`;
  }
  if (node.credential) {  // write-only: the server never returns it, the page never shows it
    return html`<input ...${common} type="password" autocomplete="new-password" value=${text}
      onInput=${(e) => onText(e.currentTarget.value)} />`;
  }
  const range = base in SMALL_INT && !isRef ? (t.range && t.range.length === 1 ? t.range[0]
    : SMALL_INT[base]) : null;
  const listId = isRef ? `${id}-values` : undefined;
  return html`
    <input ...${common} type=${range ? "number" : "text"}
      inputmode=${["int64", "uint64", "decimal64"].includes(base) ? "decimal" : undefined}
      min=${range ? range[0] : undefined} max=${range ? range[1] : undefined}
      list=${listId} autocomplete="off" value=${text}
      onInput=${(e) => onText(e.currentTarget.value)} />
    ${isRef && html`<datalist id=${listId}>
      ${values.map((v) => html`<option value=${v.value}>${v.description || ""}</option>`)}
    </datalist>`}`;
}

// A labelled field.  value: the JSON value (undefined when absent); onChange(text or
// undefined) with the form's text; leaf-lists edit an array of texts.
// context: whatever the values depend on (the entry as last read): a new one asks again.
export function Field({ node, id, value, onChange, readOnly, error, valuesPath, valuesFrom,
                        context }) {
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [hintId, error ? errorId : null].filter(Boolean).join(" ");
  const label = html`<label id=${`${id}-label`} for=${id}>
    ${node.name}${node.mandatory ? html`<span aria-hidden="true"> *</span>` : ""}
    ${node.mandatory ? html`<span class="sr-only"> (required)</span>` : ""}</label>`;
  const hint = html`<span id=${hintId} class="hint">${hintOf(node)}${
    node.description ? html`<br />${node.description}` : ""}</span>`;
  const err = error && html`<span id=${errorId} class="field-error" role="alert">${error}</span>`;
  if (node.kind === "leaf-list") {
    const items = Array.isArray(value) ? value.map(textOf) : [];
    const set = (next) => onChange(next);
    return html`<span class="label" id=${`${id}-label`}>${node.name}</span>
      <div class="leaf-list" role="group" aria-labelledby=${`${id}-label`}>
        ${items.map((text, i) => html`<div class="row">
          <${Scalar} node=${node} id=${i === 0 ? id : `${id}-${i}`} text=${text}
            readOnly=${readOnly} invalid=${Boolean(error)} describedBy=${describedBy}
            valuesPath=${valuesPath} labelledBy=${`${id}-label`} valuesFrom=${valuesFrom}
            context=${context}
            onText=${(v) => set(items.map((x, j) => (j === i ? v : x)))} />
          ${!readOnly && html`<button type="button" aria-label=${`Remove ${node.name} ${text}`}
            onClick=${() => set(items.filter((_, j) => j !== i))}>Remove</button>`}
        </div>`)}
        ${!readOnly && html`<button type="button"
          onClick=${() => set([...items, ""])}>Add ${node.name}</button>`}
      </div>${hint}${err}`;
  }
  return html`${label}
    <span class="control">
      <${Scalar} node=${node} id=${id} text=${textOf(value)} readOnly=${readOnly}
        invalid=${Boolean(error)} describedBy=${describedBy} valuesPath=${valuesPath}
        valuesFrom=${valuesFrom} context=${context} onText=${(v) => onChange(v)} />
    </span>${hint}${err}`;
}
