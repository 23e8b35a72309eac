// Browse and edit any module, generated from the live schema: a tree with search, a
// path bar and deep links (#/browse/<RESTCONF path>), forms for containers and list
// entries, paged and sorted lists, RPC and action forms.  Edits go to the user's
// candidate (private to the login session); the Changes view reviews and commits them.
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError, del, get, patch, post, put } from "../api.js";
import { html } from "../html.js";
import {
  dataChildren, dataPath, jsonValue, loadSchema, memberName, parsePath, realBase, renderable,
  restconfPath, searchIndex, stepsTo,
} from "../schema.js";
import { Field } from "../widgets.js";
import { ErrorNote } from "./common.js";

const CANDIDATE = "/restconf/ds/ietf-datastores:candidate";
const DATA = "/restconf/data";
const PAGE = 25;

export const hrefOf = (steps) => `#/browse/${restconfPath(steps)}`;

// Access control, asked per field: a value that exists needs "update", a new one "create".
const configLeaves = (node) => dataChildren(node).filter(
  (c) => (c.kind === "leaf" || c.kind === "leaf-list") && c.config !== false);
const leafPath = (steps, c) => `${restconfPath(steps)}/${
  c.module !== steps[steps.length - 1].node.module ? `${c.module}:` : ""}${c.name}`;
const accessPaths = (steps) => [restconfPath(steps),
  ...configLeaves(steps[steps.length - 1].node).map((c) => leafPath(steps, c))];
const mayWrite = (verdict, exists) => !verdict || (exists ? verdict.update : verdict.create);
function mayEdit(access, steps, obj) {
  return configLeaves(steps[steps.length - 1].node).some((c) => mayWrite(
    access[leafPath(steps, c)], obj && obj[memberName(c)] !== undefined));
}
// A field is absent when its `when` is false, and when the user may not read it (a
// credential stays as a write-only field for a user who may write it).
function hidden(verdict, c, editing) {
  if (!verdict) return false;
  if (verdict.when === false) return true;
  return verdict.read === false && !(c.credential && editing && (verdict.update || verdict.create));
}
const idOf = (text) => `f-${text.replace(/[^A-Za-z0-9_-]/g, "_")}`;

// The object for the last step of a RESTCONF GET reply.
function pickNode(doc, steps) {
  if (!doc) return undefined;
  const last = steps[steps.length - 1];
  const value = doc[`${last.node.module}:${last.node.name}`];
  if (last.node.kind === "list" && last.keys) return Array.isArray(value) ? value[0] : undefined;
  return value;
}

async function fetchOr404(url) {
  try { return await get(url); } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

// What the user may do with each path, and whether each field's `when` holds on the
// data shown (the user's candidate while editing); asked again after every save.
function useAccess(paths, datastore, version) {
  const [verdicts, setVerdicts] = useState({});
  const key = paths.join("\n");
  useEffect(() => {
    if (!paths.length) return undefined;
    let live = true;
    post(`/restconf/ui/access?datastore=${datastore}`, { paths },
         { accept: "application/json", contentType: "application/json" })
      .then((doc) => {
        if (!live) return;
        const out = {};
        for (const a of doc.access || []) out[a.path] = a;
        setVerdicts(out);
      }, () => {});
    return () => { live = false; };
  }, [key, datastore, version]);
  return verdicts;
}

function PathBar({ steps }) {
  return html`<nav aria-label="Path" class="pathbar"><ol>
    <li><a href="#/browse">Modules</a></li>
    ${steps.map((s, i) => html`<li><a href=${hrefOf(steps.slice(0, i + 1))}
        aria-current=${i === steps.length - 1 ? "page" : undefined}>
      ${i === 0 ? `${s.node.module}:` : ""}${s.node.name}${
        s.keys ? `=${s.keys.join(",")}` : ""}</a></li>`)}
  </ol></nav>`;
}

function Search({ schema }) {
  const [q, setQ] = useState("");
  const index = useMemo(() => searchIndex(schema), [schema]);
  const hits = q.length < 2 ? [] : index.filter((e) => e.text.includes(q.toLowerCase()))
    .slice(0, 30);
  return html`<div class="search" role="search">
    <label for="schema-search">Search nodes</label>
    <input id="schema-search" type="search" value=${q} autocomplete="off"
      aria-describedby="schema-search-count" onInput=${(e) => setQ(e.currentTarget.value)} />
    <span id="schema-search-count" class="sr-only" aria-live="polite">
      ${q.length < 2 ? "" : `${hits.length} results`}</span>
    ${hits.length > 0 && html`<ul class="hits">${hits.map((h) => html`<li>
      <a href=${hrefOf(h.node.kind === "leaf" || h.node.kind === "leaf-list"
        ? stepsTo(h.node).slice(0, -1) : stepsTo(h.node))}>${h.node.path}</a>
      ${h.node.description ? html` <span class="hint">${h.node.description.slice(0, 100)}</span>` : ""}
    </li>`)}</ul>`}
  </div>`;
}

function Modules({ schema }) {
  return html`<${Search} schema=${schema} />
    <ul class="modules">${schema.modules.map((m) => html`<li>
      <h2>${m.name}${m.revision ? html` <span class="muted">${m.revision}</span>` : ""}</h2>
      <ul>${m.nodes.map((n) => html`<li>
        <a href=${hrefOf(stepsTo(n))}>${n.name}</a> <span class="muted">${n.kind}${
          n.config === false ? ", state" : ""}</span></li>`)}</ul>
    </li>`)}</ul>`;
}

// The leaves (and leaf-lists) of an object, with their values; containers, lists and
// operations below as links or nested forms.
function EntryForm({ steps, obj, editing, onSaved, access }) {
  const node = steps[steps.length - 1].node;
  const [draft, setDraft] = useState({});
  const [error, setError] = useState(null);
  const [saved, setSaved] = useState("");
  const base = dataPath(steps);
  const children = dataChildren(node);
  const leaves = children.filter((c) => c.kind === "leaf" || c.kind === "leaf-list");
  const valueOf = (c) => (c.name in draft ? draft[c.name]
    : obj ? obj[memberName(c)] : undefined);
  const errorFor = (c) => (error && error.path && (error.path === `${base}/${memberName(c)}`
    || error.path.startsWith(`${base}/${memberName(c)}[`)) ? error.message : null);
  const save = async (ev) => {
    ev.preventDefault();
    setError(null);
    const url = `${CANDIDATE}/${restconfPath(steps)}`;
    const merge = {};
    const removals = [];
    for (const c of leaves) {
      if (!(c.name in draft)) continue;
      const v = draft[c.name];
      if (v === undefined || v === "" || (Array.isArray(v) && !v.length)) removals.push(c);
      else merge[memberName(c)] = c.kind === "leaf-list"
        ? v.filter((x) => x !== "").map((x) => jsonValue(c.type, x)) : jsonValue(c.type, v);
    }
    for (const c of children) {  // a presence container chosen as a case
      if (draft[`@presence:${c.name}`]) merge[memberName(c)] = {};
    }
    try {
      if (Object.keys(merge).length) {
        const member = `${node.module}:${node.name}`;
        const body = node.kind === "list"
          ? { [member]: [{ ...Object.fromEntries(node.keys.map((k, i) => [k, steps[steps.length - 1].keys[i]])), ...merge }] }
          : { [member]: merge };
        await patch(url, body);
      }
      for (const c of removals) {
        if (obj && obj[memberName(c)] !== undefined) {
          await del(`${url}/${c.module !== node.module ? `${c.module}:` : ""}${c.name}`);
        }
      }
      setDraft({});
      setSaved("Saved to your candidate: review it under Changes.");
      onSaved();
    } catch (e) { setError(e); }
  };
  const containers = children.filter((c) => c.kind === "container" || c.kind === "list");
  const ops = children.filter((c) => c.kind === "action");
  const opPath = (op) => `${restconfPath(steps)}/${op.module !== node.module ? `${op.module}:` : ""}${op.name}`;
  const keyNames = new Set(node.kind === "list" ? node.keys : []);
  const choices = (node.children || []).filter((c) => c.kind === "choice");
  const writable = editing && mayEdit(access, steps, obj);
  const field = (c) => (hidden(access[leafPath(steps, c)], c, editing) ? null : html`
    <${Field} node=${c} id=${idOf(`${base}/${c.name}`)} value=${valueOf(c)}
      readOnly=${!writable || keyNames.has(c.name) || c.config === false
        || !mayWrite(access[leafPath(steps, c)], obj && obj[memberName(c)] !== undefined)}
      error=${errorFor(c)}
      valuesPath=${leafPath(steps, c)}
      valuesFrom=${editing ? "candidate" : undefined} context=${obj}
      onChange=${(v) => setDraft({ ...draft, [c.name]: v })} />`);
  const direct = (node.children || []).filter((c) => (c.kind === "leaf" || c.kind === "leaf-list")
    && (editing ? c.config !== false : true));
  return html`
    <form class="form entry" onSubmit=${save} aria-label=${`${node.name} fields`}>
      ${direct.map(field)}
      ${choices.map((ch) => html`<${Choice} choice=${ch} obj=${obj} draft=${draft}
        setDraft=${setDraft} writable=${writable} field=${field} editing=${editing} />`)}
      ${error && !leaves.some((c) => errorFor(c)) && html`<div class="wide"><${ErrorNote} error=${error} /></div>`}
      ${editing && html`<div class="buttons">
        <button type="submit" disabled=${!writable || !Object.keys(draft).length}>Save to candidate</button>
        <button type="button" disabled=${!Object.keys(draft).length}
          onClick=${() => { setDraft({}); setError(null); }}>Undo edits</button>
      </div>`}
      <p class="wide notice" role="status">${saved}</p>
    </form>
    ${containers.length > 0 && html`<h2>Inside ${node.name}</h2><ul class="children">
      ${containers.map((c) => html`<li><a href=${hrefOf([...steps, { node: c, keys: null }])}>
        ${c.name}</a> <span class="muted">${c.kind}${c.kind === "list" && obj
          && Array.isArray(obj[memberName(c)]) ? `, ${obj[memberName(c)].length} entries` : ""}${
          c.presence ? ", presence" : ""}${c.config === false ? ", state" : ""}</span>
        ${c.description ? html`<br /><span class="hint">${c.description.split("\n")[0]}</span>` : ""}
      </li>`)}</ul>`}
    ${ops.length > 0 && html`<h2>Actions</h2>${ops.map((op) => html`
      <${Operation} op=${op} url=${`${DATA}/${opPath(op)}`} path=${opPath(op)} />`)}`}`;
}

// A choice as a radio group: the case that holds data is checked and its fields shown.
// Choosing another case shows its fields; saving one of them makes the server remove
// the other case's nodes, as YANG says.  A case that is a single empty leaf or presence
// container is set by choosing it.
function Choice({ choice, obj, draft, setDraft, writable, field, editing }) {
  const cases = choice.children || [];
  const holds = (cs) => dataChildren(cs).some((c) => (c.name in draft ? draft[c.name] !== ""
    && draft[c.name] !== undefined : obj && obj[memberName(c)] !== undefined)
    || draft[`@presence:${c.name}`]);
  const [chosen, setChosen] = useState(null);
  const active = cases.find((cs) => cs.name === chosen) || cases.find(holds);
  const choose = (cs) => {
    setChosen(cs.name);
    const only = dataChildren(cs);
    const next = { ...draft };
    for (const other of cases) {
      for (const c of dataChildren(other)) delete next[`@presence:${c.name}`];
    }
    if (only.length === 1 && only[0].kind === "leaf" && (only[0].type || {}).base === "empty") {
      next[only[0].name] = "true";
    } else if (only.length === 1 && only[0].kind === "container" && only[0].presence
               && !(obj && obj[memberName(only[0])] !== undefined)) {
      next[`@presence:${only[0].name}`] = true;
    }
    setDraft(next);
  };
  const shown = active ? dataChildren(active).filter((c) => (c.kind === "leaf"
    || c.kind === "leaf-list") && (editing ? c.config !== false : true)) : [];
  return html`<fieldset class="wide choice">
    <legend>${choice.name}: one of</legend>
    ${cases.map((cs) => html`<label class="inline">
      <input type="radio" name=${`choice-${choice.name}`} disabled=${!writable}
        checked=${active === cs} onChange=${() => choose(cs)} /> ${cs.name}</label>`)}
    ${choice.description && html`<span class="hint">${choice.description}</span>`}
    ${shown.length > 0 && html`<div class="form">${shown.map(field)}</div>`}
  </fieldset>`;
}

// An RPC's or action's input as a form, run with its output shown below it.
// path: the operation's RESTCONF path (its fields' leafref values are asked by it).
function Operation({ op, url, path }) {
  const input = (op.children || []).find((c) => c.kind === "input");
  const fields = input ? dataChildren(input).filter((c) => c.kind === "leaf"
    || c.kind === "leaf-list") : [];
  const [values, setValues] = useState({});
  const [output, setOutput] = useState(null);
  const [error, setError] = useState(null);
  const run = async (ev) => {
    ev.preventDefault();
    setError(null);
    setOutput(null);
    const body = {};
    for (const f of fields) {
      const v = values[f.name];
      if (f.kind === "leaf-list" && Array.isArray(v) && v.some((x) => x !== "")) {
        body[f.name] = v.filter((x) => x !== "").map((x) => jsonValue(f.type, x));
      } else if (f.kind === "leaf" && v) body[f.name] = jsonValue(f.type, v);
    }
    try {
      const doc = await post(url, { [`${op.module}:input`]: body });
      setOutput(doc ? doc[`${op.module}:output`] || doc : {});
    } catch (e) { setError(e); }
  };
  return html`<form class="form operation" onSubmit=${run} aria-label=${`${op.name} operation`}>
    <h3 class="wide">${op.name}</h3>
    ${op.description && html`<p class="wide hint">${op.description}</p>`}
    ${fields.map((f) => html`<${Field} node=${f} id=${idOf(`${url}-${f.name}`)} value=${values[f.name]}
      valuesPath=${`${path}/${f.name}`}
      onChange=${(v) => setValues({ ...values, [f.name]: v })} />`)}
    <${ErrorNote} error=${error} />
    <div class="buttons"><button type="submit">Run ${op.name}</button></div>
    ${output && html`<section class="wide output" aria-labelledby=${idOf(`${url}-output`)}>
      <h4 id=${idOf(`${url}-output`)}>Output of ${op.name}</h4>
      ${Object.keys(output).length === 0 ? html`<p>Done; no output.</p>` : html`<dl>
        ${Object.entries(output).map(([k, v]) => html`<dt>${k}</dt><dd>${
          v !== null && typeof v === "object" ? html`<pre>${JSON.stringify(v, null, 2)}</pre>`
            : String(v)}</dd>`)}</dl>`}
    </section>`}
  </form>`;
}

function ListView({ steps, editing, onChanged, verdict }) {
  const node = steps[steps.length - 1].node;
  const others = dataChildren(node).filter((c) => c.kind === "leaf" && !c.credential
    && !node.keys.includes(c.name));
  const [offset, setOffset] = useState(0);
  const [sort, setSort] = useState(null);
  const [backwards, setBackwards] = useState(false);
  const [page, setPage] = useState(undefined);
  const [remaining, setRemaining] = useState(0);
  const [error, setError] = useState(null);
  const [adding, setAdding] = useState(false);
  const path = restconfPath(steps);
  const asked = useRef(0);  // only the latest request's answer is drawn
  const load = async () => {
    const mine = ++asked.current;
    const q = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (sort) q.set("sort-by", sort);
    if (backwards) q.set("direction", "backwards");
    try {
      const doc = await fetchOr404(`${editing ? CANDIDATE : DATA}/${path}?${q}`);
      if (mine !== asked.current) return;
      const entries = doc ? doc[`${node.module}:${node.name}`] || [] : [];
      const meta = entries.length && entries[0]["@"] ? entries[0]["@"] : {};
      setRemaining(Number(meta["ietf-list-pagination:remaining"] || 0));
      setPage(entries);
      setError(null);
    } catch (e) {
      if (mine !== asked.current) return;
      if (e instanceof ApiError && e.status === 416) { setOffset(0); return; }
      setError(e);
    }
  };
  useEffect(() => { load(); }, [path, offset, sort, backwards, editing]);
  const total = page ? offset + page.length + remaining : 0;
  const sortBy = (c) => {
    if (sort === c) setBackwards(!backwards); else { setSort(c); setBackwards(false); }
    setOffset(0);
  };
  const entrySteps = (e) => [...steps.slice(0, -1), { node, keys: node.keys.map((k) => String(e[k])) }];
  // a column the user may not read (asked of the page's first entry) is not drawn
  const first = page && page.length ? entrySteps(page[0]) : null;
  const access = useAccess(first ? others.map((c) => leafPath(first, c)) : [],
                           editing ? "candidate" : "running", 0);
  const columns = [...node.keys, ...others.filter((c) => !first
    || !hidden(access[leafPath(first, c)], c, false)).map((c) => c.name).slice(0, 4)];
  return html`
    <${ErrorNote} error=${error} />
    ${editing && (!verdict || verdict.create) && html`<div class="toolbar">
      <button type="button" onClick=${() => setAdding(true)}>Add ${node.name}</button></div>`}
    ${adding && html`<${NewEntry} steps=${steps} onDone=${() => { setAdding(false); load(); onChanged(); }} />`}
    ${page === undefined ? html`<p>Loading…</p>` : html`
    <table class="grid">
      <caption>${page.length ? `${offset + 1} to ${offset + page.length} of ${total}` : "No entries"}</caption>
      <thead><tr>${columns.map((c) => html`<th scope="col"
          aria-sort=${sort === c ? (backwards ? "descending" : "ascending") : "none"}>
        <button type="button" class="sort" onClick=${() => sortBy(c)}>${c}${
          sort === c ? (backwards ? " ▼" : " ▲") : ""}</button></th>`)}
        ${editing && html`<th scope="col">Actions</th>`}</tr></thead>
      <tbody>${page.map((e) => html`<tr>
        ${columns.map((c, i) => (i === 0 ? html`<th scope="row"><a href=${hrefOf(entrySteps(e))}>
          ${String(e[c] ?? "")}</a></th>` : html`<td>${e[c] === undefined ? "" : String(e[c])}</td>`))}
        ${editing && html`<td>${(!verdict || verdict.delete) && html`<button type="button" class="danger"
          aria-label=${`Delete ${node.name} ${node.keys.map((k) => e[k]).join(",")}`}
          onClick=${async () => {
            try { await del(`${CANDIDATE}/${restconfPath(entrySteps(e))}`); load(); onChanged(); }
            catch (err) { setError(err); }
          }}>Delete</button>`}</td>`}
      </tr>`)}</tbody>
    </table>
    <div class="toolbar" role="group" aria-label="Pages">
      <button type="button" disabled=${offset === 0}
        onClick=${() => setOffset(Math.max(0, offset - PAGE))}>Previous page</button>
      <button type="button" disabled=${remaining === 0}
        onClick=${() => setOffset(offset + PAGE)}>Next page</button>
    </div>`}`;
}

function NewEntry({ steps, onDone }) {
  const node = steps[steps.length - 1].node;
  const fields = dataChildren(node).filter((c) => c.kind === "leaf" && c.config !== false
    && (node.keys.includes(c.name) || c.mandatory));
  const [values, setValues] = useState({});
  const [error, setError] = useState(null);
  const parent = steps.slice(0, -1);
  const create = async (ev) => {
    ev.preventDefault();
    const entry = {};
    for (const f of fields) if (values[f.name] !== undefined) entry[memberName(f)] = jsonValue(f.type, values[f.name]);
    const url = parent.length ? `${CANDIDATE}/${restconfPath(parent)}` : CANDIDATE;
    try {
      await post(url, { [`${node.module}:${node.name}`]: [entry] });
      onDone();
    } catch (e) { setError(e); }
  };
  const newPath = `${dataPath(parent)}/${parent.length && parent[parent.length - 1].node.module === node.module ? "" : `${node.module}:`}${node.name}`;
  return html`<form class="form entry" onSubmit=${create} aria-label=${`New ${node.name}`}>
    ${fields.map((f) => html`<${Field} node=${f} id=${idOf(`new-${f.name}`)} value=${values[f.name]}
      error=${error && error.path && error.path.startsWith(newPath) && error.path.endsWith(`/${f.name}`) ? error.message : null}
      valuesPath=${`${restconfPath(steps)}=${node.keys.map(() => "").join(",")}/${f.name}`}
      onChange=${(v) => setValues({ ...values, [f.name]: v })} />`)}
    ${error && html`<div class="wide"><${ErrorNote} error=${error} /></div>`}
    <div class="buttons"><button type="submit">Create ${node.name}</button>
      <button type="button" onClick=${onDone}>Cancel</button></div>
  </form>`;
}

// A presence container means something by existing: created or deleted as a whole.
function Presence({ steps, exists, onChanged }) {
  const node = steps[steps.length - 1].node;
  const url = `${CANDIDATE}/${restconfPath(steps)}`;
  const [error, setError] = useState(null);
  const act = async (fn) => {
    setError(null);
    try { await fn(); onChanged(); } catch (e) { setError(e); }
  };
  return html`<div class="toolbar">
    ${exists
      ? html`<button type="button" class="danger"
          onClick=${() => act(() => del(url))}>Delete ${node.name}</button>`
      : html`<button type="button"
          onClick=${() => act(() => put(url, { [`${node.module}:${node.name}`]: {} }))}>
          Create ${node.name}</button>`}
    <span class="hint">${typeof node.presence === "string" ? node.presence : "presence container"}</span>
    <${ErrorNote} error=${error} />
  </div>`;
}

// A notification is not data: what it carries, and where it arrives.
function Notification({ node }) {
  const fields = dataChildren(node);
  return html`<p>A notification: it arrives on the event streams
      (<code>/restconf/streams/NETCONF/json</code>, NETCONF's create-subscription)${
      fields.length ? ", carrying:" : "."}</p>
    ${fields.length > 0 && html`<table class="grid">
      <caption>What ${node.name} carries</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Kind</th><th scope="col">Type</th>
        <th scope="col">Description</th></tr></thead>
      <tbody>${fields.map((f) => html`<tr><th scope="row">${f.name}</th><td>${f.kind}</td>
        <td>${f.type ? realBase(f.type) : ""}</td><td>${f.description || ""}</td></tr>`)}</tbody>
    </table>`}`;
}

function JsonEditor({ steps }) {
  const url = `${CANDIDATE}/${restconfPath(steps)}`;
  const [text, setText] = useState("");
  const [error, setError] = useState(null);
  const [note, setNote] = useState("");
  useEffect(() => {
    fetchOr404(url).then((doc) => setText(JSON.stringify(doc || {}, null, 2)), setError);
  }, [url]);
  const save = async (ev) => {
    ev.preventDefault();
    try { await put(url, text); setNote("Saved to your candidate."); setError(null); }
    catch (e) { setError(e); }
  };
  return html`<form onSubmit=${save} aria-label="JSON editor">
    <p class="hint">This part of the schema has nodes the form renderer does not draw
      (anydata or anyxml): edit its RFC 7951 JSON.</p>
    <label for="json-editor">JSON of ${steps[steps.length - 1].node.name}</label>
    <textarea id="json-editor" rows="20" class="code" value=${text}
      onInput=${(e) => setText(e.currentTarget.value)} />
    <${ErrorNote} error=${error} />
    <div class="buttons"><button type="submit">Save to candidate</button></div>
    <p role="status" class="notice">${note}</p>
  </form>`;
}

// The schema as a tree of containers, lists and operations (leaves are in the forms):
// a disclosure button beside each link (keyboard: Tab to it, Enter or Space); children
// are drawn only when open.
function Toggle({ open, setOpen, name }) {
  return html`<button type="button" class="toggle" aria-expanded=${open ? "true" : "false"}
    aria-label=${`${open ? "Collapse" : "Expand"} ${name}`}
    onClick=${() => setOpen(!open)}>${open ? "▾" : "▸"}</button>`;
}

function TreeNode({ node, current }) {
  const kids = dataChildren(node).filter((c) => ["container", "list", "rpc", "action",
                                                  "notification"].includes(c.kind));
  const here = current && current.node === node;
  const inside = Boolean(current && current.ancestors.has(node) && !here);
  const [open, setOpen] = useState(inside);
  useEffect(() => { if (inside) setOpen(true); }, [inside, current && current.node]);
  const inList = stepsTo(node).slice(0, -1).some((st) => st.node.kind === "list");
  const kind = html` <span class="muted">${node.kind === "container" ? "" : node.kind}</span>`;
  const label = inList
    ? html`<span title="in each entry of the list above">${node.name}</span>${kind}`
    : html`<a href=${hrefOf(stepsTo(node))} aria-current=${here ? "page" : undefined}>
      ${node.name}</a>${kind}`;
  return html`<li>
    ${kids.length ? html`<${Toggle} open=${open} setOpen=${setOpen} name=${node.name} />`
      : html`<span class="toggle-space"></span>`}
    ${label}
    ${open && kids.length > 0 && html`<ul>${kids.map((k) => html`
      <${TreeNode} node=${k} current=${current} />`)}</ul>`}
  </li>`;
}

function TreeModule({ module, current }) {
  const inside = Boolean(current && current.node.module === module.name);
  const [open, setOpen] = useState(inside);
  useEffect(() => { if (inside) setOpen(true); }, [inside, current && current.node]);
  return html`<li>
    <${Toggle} open=${open} setOpen=${setOpen} name=${module.name} />
    <span class="module-name">${module.name}</span>
    ${open && html`<ul>${module.nodes.filter((n) => n.kind !== "leaf" && n.kind !== "leaf-list")
      .map((n) => html`<${TreeNode} node=${n} current=${current} />`)}</ul>`}
  </li>`;
}

function SchemaTree({ schema, steps }) {
  const last = steps && steps.length ? steps[steps.length - 1].node : null;
  const ancestors = new Set();
  for (let n = last; n; n = n.parent) ancestors.add(n);
  const current = last ? { node: last, ancestors } : null;
  return html`<nav class="tree" aria-label="Schema tree"><ul>
    ${schema.modules.map((m) => html`<${TreeModule} module=${m} current=${current} />`)}
  </ul></nav>`;
}

export function BrowseView({ rest, onChanged = () => {} }) {
  const [schema, setSchema] = useState(null);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(false);
  const [loaded, setLoaded] = useState({ key: null, obj: undefined });
  const [tick, setTick] = useState(0);
  useEffect(() => { loadSchema().then(setSchema, setError); }, []);
  const text = rest.join("/");
  const steps = useMemo(() => (schema ? parsePath(schema, text) : null), [schema, text]);
  const last = steps && steps.length ? steps[steps.length - 1] : null;
  const isList = last && last.node.kind === "list" && !last.keys;
  const isOp = last && (last.node.kind === "rpc" || last.node.kind === "action");
  const isNotif = Boolean(last && last.node.kind === "notification");
  const access = useAccess(last && isList && last.node.config !== false ? [restconfPath(steps)]
    : last && !isOp && !isList && !isNotif ? accessPaths(steps) : [],
                           editing ? "candidate" : "running", tick);
  // The object shown belongs to one path in one mode: a stale one is never drawn (nor
  // edited) while the other loads; a reload after a save keeps the old one until it lands.
  const view = `${editing ? "candidate" : "running"} ${text}`;
  const obj = loaded.key === view ? loaded.obj : undefined;
  useEffect(() => {
    if (!last || isList || isOp || isNotif || last.node.kind === "leaf"
        || last.node.kind === "leaf-list") return undefined;
    let live = true;
    const base = editing ? CANDIDATE : DATA;
    fetchOr404(`${base}/${restconfPath(steps)}`).then((doc) => {
      if (live) setLoaded({ key: view, obj: pickNode(doc, steps) || null });
    }, setError);
    return () => { live = false; };
  }, [view, tick, schema]);
  if (error) return html`<${ErrorNote} error=${error} />`;
  if (!schema) return html`<p>Loading the schema…</p>`;
  const tree = html`<${SchemaTree} schema=${schema} steps=${steps} />`;
  if (!text) return html`<div class="browse">${tree}<div><${Modules} schema=${schema} /></div></div>`;
  if (!steps) {
    return html`<div class="browse">${tree}<div>
      <p role="alert" class="error">No schema node at ${text}.</p></div></div>`;
  }
  const changed = () => { setTick(tick + 1); onChanged(); };
  const noConfig = isList ? last.node.config === false : !isOp && configLeaves(last.node).length === 0
    && !(last.node.kind === "container" && last.node.presence && last.node.config !== false);
  // a list: its verdict (create, delete) for every entry; else per field
  const listVerdict = isList ? access[restconfPath(steps)] : undefined;
  const readOnly = isList ? Boolean(listVerdict && !listVerdict.create && !listVerdict.delete)
    : !noConfig && Object.keys(access).length > 0 && !mayEdit(access, steps, obj);
  return html`<div class="browse">${tree}<div>
    <${PathBar} steps=${steps} />
    ${last.node.description && html`<p class="hint">${last.node.description}</p>`}
    ${isNotif ? html`<${Notification} node=${last.node} />` : !isOp && html`<div class="toolbar" role="group" aria-label="Mode">
      <button type="button" aria-pressed=${!editing} onClick=${() => setEditing(false)}>
        View running and state</button>
      <button type="button" aria-pressed=${editing} disabled=${readOnly || noConfig}
        onClick=${() => setEditing(true)}>Edit in candidate</button>
      ${readOnly && html`<span class="hint">Read-only for you (access control).</span>`}
    </div>`}
    ${isNotif ? null : isOp && last.node.kind === "action" && steps.some((st) => st.node.kind === "list" && !st.keys)
      ? html`<p class="hint">The action ${last.node.name} runs on one entry: open the entry
          (the path bar above), then run it from there.</p>`
      : isOp ? html`<${Operation} op=${last.node} path=${restconfPath(steps)}
        url=${last.node.kind === "action" ? `${DATA}/${restconfPath(steps)}`
          : `/restconf/operations/${last.node.module}:${last.node.name}`} />`
      : !renderable(last.node) ? html`<${JsonEditor} steps=${steps} />`
      : isList ? html`<${ListView} steps=${steps} editing=${editing} onChanged=${changed}
          verdict=${listVerdict} />`
      : obj === undefined ? html`<p>Loading…</p>`
      : html`${obj === null && html`<p class="hint">Nothing is set here${editing ? " in your candidate" : ""}.</p>`}
        ${last.node.kind === "container" && last.node.presence && editing && html`
          <${Presence} steps=${steps} exists=${obj !== null} onChanged=${changed} />`}
        <${EntryForm} key=${view} steps=${steps} obj=${obj} editing=${editing} access=${access}
          onSaved=${changed} />`}
  </div></div>`;
}
