// Small pieces the views share: loading a resource, a status line, field errors.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { ApiError, get } from "../api.js";
import { html } from "../html.js";

// GET a RESTCONF resource; a 404 (nothing configured yet) is `empty`.
export function useResource(url, pick, empty) {
  const [state, setState] = useState({ value: undefined, error: null });
  const reload = useCallback(async () => {
    try {
      const doc = await get(url);
      setState({ value: pick(doc), error: null });
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) setState({ value: empty, error: null });
      else setState((s) => ({ value: s.value, error: e }));
    }
  }, [url]);
  useEffect(() => { reload(); }, [reload]);
  return [state.value, state.error, reload];
}

export function ErrorNote({ error }) {
  if (!error) return null;
  return html`<p role="alert" class="error">${error.message}${
    error.path ? html` <span class="path">(${error.path})</span>` : null}</p>`;
}

// The form field an error-path names: "param:NAME" for a parameter entry's value,
// else the last node's name without its module prefix.
export function fieldOf(path) {
  if (!path) return null;
  const param = /parameter\[name='([^']*)'\]/.exec(path);
  if (param) return `param:${param[1]}`;
  const last = path.split("/").pop() || "";
  return last.replace(/\[.*$/, "").replace(/^[^:]*:/, "");
}

let dialogs = 0;

// A modal dialog named by its heading (each with its own id: several are on the page).
export function Dialog({ title, open, onClose, children }) {
  const ref = useRef(null);
  const [titleId] = useState(() => `dialog-title-${++dialogs}`);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  return html`
    <dialog ref=${ref} aria-labelledby=${titleId} onClose=${onClose}>
      <h2 id=${titleId}>${title}</h2>
      ${open ? children : null}
    </dialog>`;
}

export function timeText(value) {
  if (!value) return "";
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toLocaleString();
}
