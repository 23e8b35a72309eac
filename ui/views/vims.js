// The VIMs nfo may place instances on.
import { data } from "../api.js";
import { html } from "../html.js";
import { ErrorNote, useResource } from "./common.js";

const pick = (doc) => (doc["nfo-vim:vims"] || {}).vim || [];

export function VimsView() {
  const [vims, error] = useResource(data("nfo-vim:vims"), pick, []);
  if (vims === undefined) return html`<${ErrorNote} error=${error} /><p>Loading…</p>`;
  return html`
    <${ErrorNote} error=${error} />
    <table class="grid">
      <caption>${vims.length} VIM${vims.length === 1 ? "" : "s"}</caption>
      <thead><tr><th scope="col">Name</th><th scope="col">Type</th>
        <th scope="col">Description</th></tr></thead>
      <tbody>${vims.map((v) => html`<tr key=${v.name}>
        <th scope="row">${v.name}</th><td>${v.type}</td>
        <td>${v.description || ""}</td></tr>`)}</tbody>
    </table>`;
}
