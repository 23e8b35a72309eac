// The nfo web UI: login, then a shell with the orchestrator's views. No build step:
// Preact and htm come from /ui/vendor through the import map in index.html.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { currentSession, lastActivity, logout, whenUnauthorized } from "./api.js";
import { html } from "./html.js";
import { LoginView } from "./views/login.js";
import { InstancesView } from "./views/instances.js";
import { CatalogView } from "./views/catalog.js";
import { VimsView } from "./views/vims.js";
import { BrowseView } from "./views/browse.js";
import { ChangesView, HistoryView, rpc } from "./views/changes.js";

const VIEWS = [
  { id: "instances", title: "NF instances", view: InstancesView },
  { id: "catalog", title: "NF catalog", view: CatalogView },
  { id: "vims", title: "VIMs", view: VimsView },
  { id: "browse", title: "Configuration", view: BrowseView },
  { id: "changes", title: "Changes", view: ChangesView },
  { id: "history", title: "History", view: HistoryView },
];

// How many changes wait in the user's candidate (shown beside "Changes").
function usePending() {
  const [count, setCount] = useState(null);
  const refresh = async () => {
    try { setCount(((await rpc("diff")).change || []).length); } catch (e) { setCount(null); }
  };
  useEffect(() => { refresh(); }, []);
  return [count, refresh];
}

function routeOf(hash) {
  const [id, ...rest] = (hash.replace(/^#\/?/, "") || "instances").split("/");
  const found = VIEWS.find((v) => v.id === id) || VIEWS[0];
  return { ...found, rest: rest.map(decodeURIComponent) };
}

function useRoute() {
  const [route, setRoute] = useState(routeOf(location.hash));
  useEffect(() => {
    const onHash = () => setRoute(routeOf(location.hash));
    addEventListener("hashchange", onHash);
    onHash();  // a change before the listener was attached
    return () => removeEventListener("hashchange", onHash);
  }, []);
  return route;
}

function Shell({ session, onLogout }) {
  const route = useRoute();
  const [pending, refreshPending] = usePending();
  const heading = useRef(null);
  useEffect(() => {
    document.title = `${route.title} · nfo`;
    if (heading.current) heading.current.focus();
  }, [route.id, route.rest.join("/")]);
  const View = route.view;
  return html`
    <a class="skip" href="#main">Skip to content</a>
    <header class="top">
      <span class="brand">nfo</span>
      <nav aria-label="Views">
        <ul>
          ${VIEWS.map((v) => html`
            <li><a href=${`#/${v.id}`} aria-current=${v.id === route.id ? "page" : undefined}>
              ${v.title}${v.id === "changes" && pending ? html` <span class="badge">${pending}
                <span class="sr-only"> pending</span></span>` : ""}</a></li>`)}
        </ul>
      </nav>
      <span class="who">Signed in as <strong>${session.user}</strong></span>
      <button type="button" onClick=${onLogout}>Log out</button>
    </header>
    <main id="main">
      <h1 tabindex="-1" ref=${heading}>${route.title}</h1>
      <${View} session=${session} rest=${route.rest} onChanged=${refreshPending} />
    </main>`;
}

// A session that ends while the page is open (timeout, server restart) asks for the
// password again over the page, which stays as it was: its event stream resumes from
// the last event it saw once the user is back.
function Relogin({ user, onLogin }) {
  const ref = useRef(null);
  useEffect(() => { if (ref.current && !ref.current.open) ref.current.showModal(); }, []);
  return html`
    <dialog ref=${ref} aria-label="Log in again" onCancel=${(e) => e.preventDefault()}>
      <${LoginView} notice=${`The session of ${user} has ended. Log in again.`}
        user=${user} onLogin=${onLogin} />
    </dialog>`;
}

// The server ends a session idle for its idle-timeout; an open page that has asked
// nothing since then learns it without waiting for the user's next click: once the
// timeout has passed it asks GET /ui/session (which cannot revive an ended session).
function useIdleCheck(session, onEnded) {
  useEffect(() => {
    if (!session || !session["idle-timeout"]) return undefined;
    const idle = session["idle-timeout"] * 1000;
    let timer = null;
    const check = async () => {
      const due = lastActivity() + idle + 500;
      if (Date.now() < due) { timer = setTimeout(check, due - Date.now()); return; }
      try {
        if (await currentSession() === null) { onEnded(); return; }
      } catch (e) { /* the server is away: the next request tells */ }
      timer = setTimeout(check, idle);
    };
    timer = setTimeout(check, idle + 500);
    return () => clearTimeout(timer);
  }, [session]);
}

function App() {
  const [session, setSession] = useState(undefined);
  const [expired, setExpired] = useState(false);
  const [notice, setNotice] = useState(null);
  useEffect(() => {
    whenUnauthorized(() => setExpired(true));
    currentSession().then(setSession, () => setSession(null));
  }, []);
  useIdleCheck(expired ? null : session, () => setExpired(true));
  if (session === undefined) return html`<p class="loading" role="status">Loading…</p>`;
  if (session === null) {
    return html`<main id="main"><${LoginView} notice=${notice}
      onLogin=${(s) => { setNotice(null); setSession(s); }} /></main>`;
  }
  const onLogout = async () => {
    try { await logout(); } finally { setSession(null); setNotice("You have logged out."); }
  };
  const onRelogin = (s) => {
    if (s.user !== session.user) { setSession(s); }
    setExpired(false);
  };
  return html`
    <div inert=${expired ? true : undefined}>
      <${Shell} session=${session} onLogout=${onLogout} />
    </div>
    ${expired && html`<${Relogin} user=${session.user} onLogin=${onRelogin} />`}`;
}

render(html`<${App} />`, document.getElementById("app"));
