// NF instances: their live operational state (over the NETCONF event stream), create
// from a catalog entry with a form built from the descriptor's parameters, restart,
// redeploy, enable/disable and delete.
import { useEffect, useMemo, useState } from "preact/hooks";
import { data, del, entry, get, patch, post } from "../api.js";
import { html } from "../html.js";
import { subscribe } from "../stream.js";
import { Dialog, ErrorNote, fieldOf, timeText, useResource } from "./common.js";

const INSTANCES = data("nfo-instances:nf-instances");
const pickInstances = (doc) => (doc["nfo-instances:nf-instances"] || {})["nf-instance"] || [];
const pickCatalog = (doc) => (doc["nfo-catalog:catalog"] || {})["nf-descriptor"] || [];
const pickVims = (doc) => (doc["nfo-vim:vims"] || {}).vim || [];
const instanceUrl = (name) => `${INSTANCES}/${entry("nf-instance", name)}`;

function Status({ value }) {
  const status = value || "unknown";
  return html`<span class=${`status status-${status}`}>${status}</span>`;
}

function CreateDialog({ open, onClose, onCreated }) {
  const [catalog] = useResource(data("nfo-catalog:catalog"), pickCatalog, []);
  const [vims] = useResource(data("nfo-vim:vims"), pickVims, []);
  const [descriptorId, setDescriptorId] = useState("");
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const descriptor = useMemo(
    () => (catalog || []).find((d) => d.id === descriptorId), [catalog, descriptorId]);
  useEffect(() => { if (open) { setError(null); } }, [open]);
  const errorField = error && fieldOf(error.path);
  const submit = async (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const item = { name: form.elements.name.value, descriptor: descriptorId };
    if (form.elements.vim.value) item.vim = form.elements.vim.value;
    const params = [];
    for (const p of (descriptor && descriptor.parameter) || []) {
      const value = form.elements[`param:${p.name}`].value;
      if (value !== "") params.push({ name: p.name, value });
    }
    if (params.length) item.parameter = params;
    setBusy(true);
    try {
      await post(INSTANCES, { "nfo-instances:nf-instance": [item] });
      onCreated(item.name);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  const invalid = (field) => (errorField === field ? "true" : undefined);
  const note = (field) => (errorField === field
    ? html`<span id=${`err-${field}`} class="field-error">${error.message}</span>` : null);
  return html`
    <${Dialog} title="Create an NF instance" open=${open} onClose=${onClose}>
      <form class="form" onSubmit=${submit}>
        <label for="new-name">Name</label>
        <input id="new-name" name="name" required aria-invalid=${invalid("name")}
               aria-describedby=${errorField === "name" ? "err-name" : undefined} />
        ${note("name")}
        <label for="new-descriptor">Descriptor</label>
        <select id="new-descriptor" name="descriptor" required value=${descriptorId}
                onChange=${(e) => setDescriptorId(e.currentTarget.value)}
                aria-invalid=${invalid("descriptor")}>
          <option value="">Choose a catalog entry</option>
          ${(catalog || []).map((d) => html`
            <option value=${d.id}>${d.name ? `${d.name} (${d.id})` : d.id}</option>`)}
        </select>
        ${note("descriptor")}
        ${descriptor && descriptor.description
          && html`<p class="hint">${descriptor.description}</p>`}
        <label for="new-vim">VIM</label>
        <select id="new-vim" name="vim" aria-invalid=${invalid("vim")}
                aria-describedby=${errorField === "vim" ? "err-vim" : undefined}>
          <option value="">Let placement choose</option>
          ${(vims || []).map((v) => html`<option value=${v.name}>${v.name} (${v.type})</option>`)}
        </select>
        ${note("vim")}
        ${((descriptor && descriptor.parameter) || []).map((p) => html`
          <label for=${`new-param-${p.name}`}>
            ${p.name}${p.mandatory ? " (required)" : ""}</label>
          <input id=${`new-param-${p.name}`} name=${`param:${p.name}`}
                 placeholder=${p.default !== undefined ? String(p.default) : ""}
                 required=${Boolean(p.mandatory) && p.default === undefined}
                 aria-invalid=${invalid(`param:${p.name}`)}
                 aria-describedby=${`hint-param-${p.name}`} />
          <span id=${`hint-param-${p.name}`} class="hint">
            ${p.type ? `${p.type}. ` : ""}${p.description || ""}</span>
          ${note(`param:${p.name}`)}`)}
        ${error && !errorField ? html`<${ErrorNote} error=${error} />` : null}
        ${error && errorField && !["name", "descriptor", "vim"].includes(errorField)
          && !errorField.startsWith("param:") ? html`<${ErrorNote} error=${error} />` : null}
        <div class="buttons">
          <button type="submit" disabled=${busy}>Create</button>
          <button type="button" onClick=${onClose}>Cancel</button>
        </div>
      </form>
    <//>`;
}

function RedeployDialog({ name, onClose, onDone }) {
  const [vims] = useResource(data("nfo-vim:vims"), pickVims, []);
  const [error, setError] = useState(null);
  const submit = async (ev) => {
    ev.preventDefault();
    const vim = ev.currentTarget.elements.vim.value;
    try {
      await post(`${instanceUrl(name)}/redeploy`,
        { "nfo-instances:input": vim ? { vim } : {} });
      onDone(`${name}: redeploy requested`);
    } catch (e) { setError(e); }
  };
  return html`
    <${Dialog} title=${`Redeploy ${name}`} open=${name !== null} onClose=${onClose}>
      <form class="form" onSubmit=${submit}>
        <label for="redeploy-vim">VIM</label>
        <select id="redeploy-vim" name="vim">
          <option value="">The same placement rules</option>
          ${(vims || []).map((v) => html`<option value=${v.name}>${v.name}</option>`)}
        </select>
        <${ErrorNote} error=${error} />
        <div class="buttons">
          <button type="submit">Redeploy</button>
          <button type="button" onClick=${onClose}>Cancel</button>
        </div>
      </form>
    <//>`;
}

export function InstancesView() {
  const [instances, loadError, reload] = useResource(INSTANCES, pickInstances, []);
  const [live, setLive] = useState("connecting");
  const [creating, setCreating] = useState(false);
  const [redeploying, setRedeploying] = useState(null);
  const [message, setMessage] = useState("");
  const [actionError, setActionError] = useState(null);
  useEffect(() => {
    let timer = null;
    const soon = () => { clearTimeout(timer); timer = setTimeout(reload, 150); };
    const stop = subscribe("NETCONF", (n) => {
      if (n["nfo-instances:nf-instance-state-change"]
          || n["ietf-netconf-notifications:netconf-config-change"]) soon();
    }, (status) => {
      setLive(status);
      if (status === "live") soon();  // catch up after a (re)connect
    });
    return () => { clearTimeout(timer); stop(); };
  }, [reload]);
  const act = async (what, fn) => {
    setActionError(null);
    try { await fn(); setMessage(what); reload(); } catch (e) { setActionError(e); }
  };
  const rows = instances || [];
  return html`
    <p class="live" role="status">Live updates: <span class=${`live-${live}`}>${live}</span></p>
    <div class="toolbar">
      <button type="button" onClick=${() => setCreating(true)}>Create instance</button>
    </div>
    <p class="sr-only" role="status" aria-live="polite">${message}</p>
    <${ErrorNote} error=${loadError || actionError} />
    ${instances === undefined ? html`<p>Loading…</p>` : html`
      <table class="grid">
        <caption>${rows.length} NF instance${rows.length === 1 ? "" : "s"}</caption>
        <thead><tr>
          <th scope="col">Name</th><th scope="col">Descriptor</th><th scope="col">Status</th>
          <th scope="col">VIM</th><th scope="col">Reason</th><th scope="col">Placement</th>
          <th scope="col">Attempts</th><th scope="col">Next retry</th>
          <th scope="col">Admin</th><th scope="col">Actions</th>
        </tr></thead>
        <tbody>
          ${rows.map((i) => {
            const s = i.state || {};
            const disabled = i["admin-state"] === "disabled";
            return html`<tr key=${i.name} data-instance=${i.name}>
              <th scope="row">${i.name}</th>
              <td>${i.descriptor}</td>
              <td><${Status} value=${s["oper-status"]} /></td>
              <td>${s.vim || i.vim || ""}</td>
              <td class="reason">${s.reason || ""}</td>
              <td class="placement">${s["placement-reason"] || ""}</td>
              <td class="attempts">${s.attempts ?? ""}</td>
              <td class="next-retry">${timeText(s["next-retry"])}</td>
              <td>${i["admin-state"] || "enabled"}</td>
              <td class="actions">
                <button type="button" aria-label=${`Restart ${i.name}`}
                  onClick=${() => act(`${i.name}: restart requested`, () => post(
                    `${instanceUrl(i.name)}/restart`, { "nfo-instances:input": {} }))}>
                  Restart</button>
                <button type="button" aria-label=${`Redeploy ${i.name}`}
                  onClick=${() => setRedeploying(i.name)}>Redeploy</button>
                <button type="button" aria-label=${`${disabled ? "Enable" : "Disable"} ${i.name}`}
                  onClick=${() => act(`${i.name}: ${disabled ? "enabled" : "disabled"}`,
                    () => patch(instanceUrl(i.name), { "nfo-instances:nf-instance": [{
                      name: i.name, "admin-state": disabled ? "enabled" : "disabled" }] }))}>
                  ${disabled ? "Enable" : "Disable"}</button>
                <button type="button" class="danger" aria-label=${`Delete ${i.name}`}
                  onClick=${() => confirm(`Delete the instance ${i.name}?`)
                    && act(`${i.name}: deleted`, () => del(instanceUrl(i.name)))}>
                  Delete</button>
              </td>
            </tr>`;
          })}
        </tbody>
      </table>`}
    <${CreateDialog} open=${creating} onClose=${() => setCreating(false)}
      onCreated=${(name) => { setCreating(false); setMessage(`${name}: created`); reload(); }} />
    <${RedeployDialog} name=${redeploying} onClose=${() => setRedeploying(null)}
      onDone=${(m) => { setRedeploying(null); setMessage(m); reload(); }} />`;
}
