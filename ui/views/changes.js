// The user's pending changes (their private candidate) as a diff: validate, dry run,
// commit with a comment (optionally confirmed), confirm, discard.  And the history of
// running's commits with each commit's diff and a rollback.
import { useEffect, useState } from "preact/hooks";
import { post } from "../api.js";
import { html } from "../html.js";
import { ErrorNote, timeText } from "./common.js";

const OPS = "/restconf/operations/nfo-transactions";

export async function rpc(name, input = {}) {
  const doc = await post(`${OPS}:${name}`, { "nfo-transactions:input": input });
  return (doc && doc["nfo-transactions:output"]) || {};
}

export function Diff({ changes, label }) {
  if (!changes) return null;
  if (!changes.length) return html`<p>No changes.</p>`;
  return html`<table class="grid diff">
    <caption>${label}: ${changes.length} change${changes.length === 1 ? "" : "s"}</caption>
    <thead><tr><th scope="col">Operation</th><th scope="col">Path</th>
      <th scope="col">Before</th><th scope="col">After</th></tr></thead>
    <tbody>${changes.map((c) => html`<tr class=${`op-${c.operation}`}>
      <td>${c.operation}</td><td class="path">${c.path}</td>
      <td>${c["previous-value"] ?? ""}</td>
      <td>${c.value ?? (c.data ? html`<pre>${c.data}</pre>` : "")}</td></tr>`)}</tbody>
  </table>`;
}

export function ChangesView({ onChanged = () => {} }) {
  const [changes, setChanges] = useState(undefined);
  const [dry, setDry] = useState(null);
  const [error, setError] = useState(null);
  const [message, setMessage] = useState("");
  const [confirmed, setConfirmed] = useState(false);
  const [pending, setPending] = useState(false);
  const load = async () => {
    try { setChanges((await rpc("diff")).change || []); setError(null); }
    catch (e) { setError(e); }
  };
  useEffect(() => { load(); }, []);
  const act = async (what, fn) => {
    setError(null);
    setMessage("");
    try {
      const said = await fn();  // a message of its own, else `what`
      setMessage(typeof said === "string" ? said : what);
    } catch (e) { setError(e); }
    await load();
    onChanged();
  };
  const commit = (ev) => {
    ev.preventDefault();
    const form = ev.currentTarget;
    const input = {};
    if (form.comment.value) input.comment = form.comment.value;
    if (confirmed) {
      input.confirmed = [null];
      input["confirm-timeout"] = Number(form.timeout.value);
    }
    act(confirmed ? "Committed: confirm it before the timeout, or it is rolled back."
      : "Committed.", async () => {
      const out = await rpc("commit-changes", input);
      setPending(confirmed);
      setDry(null);
      form.comment.value = "";
      return out.revision && !confirmed ? `Committed as revision ${out.revision}.` : undefined;
    });
  };
  return html`
    <p role="status" class="notice">${message}</p>
    <${ErrorNote} error=${error} />
    ${pending && html`<div class="card" role="region" aria-label="Confirmed commit">
      <p>A confirmed commit is waiting for confirmation.</p>
      <button type="button" onClick=${() => act("Confirmed.", async () => {
        await rpc("commit-changes"); setPending(false); })}>Confirm commit</button>
      <button type="button" onClick=${() => act("Cancelled: running is back as it was.",
        async () => { await rpc("cancel-confirmed-commit"); setPending(false); })}>Cancel commit</button>
    </div>`}
    ${changes === undefined ? html`<p>Loading…</p>`
      : html`<${Diff} changes=${changes} label="Pending changes in your candidate" />`}
    <div class="toolbar">
      <button type="button" onClick=${() => act("The candidate is valid.", () => rpc("validate-changes"))}>
        Validate</button>
      <button type="button" onClick=${() => act("Dry run done: nothing was committed.",
        async () => setDry((await rpc("commit-changes", { "dry-run": [null] })).change || []))}>
        Dry run</button>
      <button type="button" class="danger" disabled=${!changes || !changes.length}
        onClick=${() => act("Discarded.", () => rpc("discard"))}>Discard</button>
    </div>
    ${dry && html`<${Diff} changes=${dry} label="What a commit would apply now" />`}
    <form class="form" onSubmit=${commit} aria-label="Commit">
      <label for="commit-comment">Comment</label>
      <input id="commit-comment" name="comment" maxlength="1024" />
      <label for="commit-confirmed">Confirmed commit</label>
      <input id="commit-confirmed" type="checkbox" checked=${confirmed}
        onChange=${(e) => setConfirmed(e.currentTarget.checked)} />
      ${confirmed && html`<label for="commit-timeout">Confirm within (seconds)</label>
        <input id="commit-timeout" name="timeout" type="number" min="1" value="600" />`}
      <div class="buttons"><button type="submit" disabled=${!changes || !changes.length}>
        Commit</button></div>
    </form>`;
}

export function HistoryView({ onChanged = () => {} }) {
  const [commits, setCommits] = useState(undefined);
  const [open, setOpen] = useState({});
  const [error, setError] = useState(null);
  const [message, setMessage] = useState("");
  const load = async () => {
    try { setCommits((await rpc("history", { limit: 50 })).commit || []); }
    catch (e) { setError(e); }
  };
  useEffect(() => { load(); }, []);
  const show = async (revision) => {
    if (open[revision]) { setOpen({ ...open, [revision]: undefined }); return; }
    try {
      const out = await rpc("diff", { revision });
      setOpen({ ...open, [revision]: out.change || [] });
    } catch (e) { setError(e); }
  };
  const rollback = async (revision) => {
    if (!confirm(`Make running what it was right after revision ${revision}?`)) return;
    setError(null);
    try {
      const out = await rpc("rollback", { revision, comment: `rollback to ${revision} (web UI)` });
      setMessage(out.revision ? `Rolled back to ${revision} as revision ${out.revision}.`
        : `Running already is revision ${revision}'s state.`);
      await load();
      onChanged();
    } catch (e) { setError(e); }
  };
  return html`
    <p role="status" class="notice">${message}</p>
    <${ErrorNote} error=${error} />
    ${commits === undefined ? html`<p>Loading…</p>` : html`<table class="grid">
      <caption>The last ${commits.length} commits of running</caption>
      <thead><tr><th scope="col">Revision</th><th scope="col">Time</th><th scope="col">User</th>
        <th scope="col">Comment</th><th scope="col">Changes</th><th scope="col">Actions</th></tr></thead>
      <tbody>${commits.map((c) => html`<tr>
        <th scope="row">${c.revision}</th><td>${timeText(c.timestamp)}</td><td>${c.user}</td>
        <td>${c.comment || ""}</td><td>${c.changes ?? ""}</td>
        <td class="actions">
          <button type="button" aria-expanded=${open[c.revision] ? "true" : "false"}
            aria-label=${`Diff of revision ${c.revision}`}
            onClick=${() => show(c.revision)}>Diff</button>
          <button type="button" aria-label=${`Roll back to revision ${c.revision}`}
            onClick=${() => rollback(c.revision)}>Roll back to here</button>
        </td></tr>
        ${open[c.revision] && html`<tr><td colspan="6">
          <${Diff} changes=${open[c.revision]} label=${`Revision ${c.revision}`} /></td></tr>`}`)}
      </tbody></table>`}`;
}
