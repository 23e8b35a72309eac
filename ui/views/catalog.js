// The NF catalog: each descriptor, what it runs on and the parameters it declares.
import { data } from "../api.js";
import { html } from "../html.js";
import { ErrorNote, useResource } from "./common.js";

const pick = (doc) => (doc["nfo-catalog:catalog"] || {})["nf-descriptor"] || [];

export function CatalogView() {
  const [items, error] = useResource(data("nfo-catalog:catalog"), pick, []);
  if (items === undefined) return html`<${ErrorNote} error=${error} /><p>Loading…</p>`;
  return html`
    <${ErrorNote} error=${error} />
    ${items.length === 0 && html`<p>The catalog is empty.</p>`}
    ${items.map((d) => html`
      <section class="card" aria-labelledby=${`d-${d.id}`}>
        <h2 id=${`d-${d.id}`}>${d.name || d.id} <span class="muted">${d.id}${
          d.version ? ` · ${d.version}` : ""}</span></h2>
        ${d.description && html`<p>${d.description}</p>`}
        <p>Runs on: ${(d["vim-types"] || []).join(", ") || "any VIM type"}</p>
        ${(d.parameter || []).length > 0 && html`
          <table class="grid">
            <caption>Parameters of ${d.id}</caption>
            <thead><tr><th scope="col">Name</th><th scope="col">Type</th>
              <th scope="col">Default</th><th scope="col">Mandatory</th>
              <th scope="col">Description</th></tr></thead>
            <tbody>${d.parameter.map((p) => html`<tr>
              <th scope="row">${p.name}</th><td>${p.type || ""}</td>
              <td>${p.default ?? ""}</td><td>${p.mandatory ? "yes" : "no"}</td>
              <td>${p.description || ""}</td></tr>`)}</tbody>
          </table>`}
      </section>`)}`;
}
