// The page's one door to the server: RESTCONF over fetch with the session cookie.
// Writes carry the CSRF token the login returned (kept in memory only); every error
// body (ietf-restconf:errors) becomes an ApiError naming its error-path, so a form can
// show it on the field it concerns.

export const JSON_TYPE = "application/yang-data+json";
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

let csrf = null;
let onUnauthorized = () => {};
let lastRequest = Date.now();

// When the page last asked the server anything (the session's idle time starts there).
export const lastActivity = () => lastRequest;

export function setCsrf(token) { csrf = token; }
export function whenUnauthorized(fn) { onUnauthorized = fn; }
export function unauthorized() { onUnauthorized(); }

export class ApiError extends Error {
  constructor(status, errors) {
    const first = errors[0] || {};
    super(first["error-message"] || first["error-tag"] || `HTTP ${status}`);
    this.status = status;
    this.errors = errors;
    this.path = first["error-path"] || null;
    this.tag = first["error-tag"] || null;
    this.appTag = first["error-app-tag"] || null;
  }
}

async function errorsOf(response) {
  try {
    const doc = await response.json();
    const errs = doc["ietf-restconf:errors"];
    if (errs && Array.isArray(errs.error)) return errs.error;
  } catch (e) { /* not a RESTCONF error body */ }
  return [{ "error-message": `${response.status} ${response.statusText}` }];
}

// cache: "no-store" unless asked (the schema digest revalidates its ETag: "no-cache").
export async function request(method, url, { body, headers = {}, accept = JSON_TYPE,
                                           contentType = JSON_TYPE, cache = "no-store" } = {}) {
  const h = { Accept: accept, ...headers };
  if (body !== undefined) h["Content-Type"] = contentType;
  if (!SAFE.has(method) && csrf) h["X-CSRF-Token"] = csrf;
  lastRequest = Date.now();
  const response = await fetch(url, {
    method, headers: h, credentials: "same-origin", cache,
    body: body === undefined ? undefined
      : typeof body === "string" ? body : JSON.stringify(body),
  });
  if (response.status === 401 && !url.startsWith("/ui/")) onUnauthorized();
  if (!response.ok) throw new ApiError(response.status, await errorsOf(response));
  if (response.status === 204 || method === "HEAD") return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (url, opts) => request("GET", url, opts);
export const post = (url, body, opts) => request("POST", url, { ...opts, body });
export const put = (url, body, opts) => request("PUT", url, { ...opts, body });
export const patch = (url, body, opts) => request("PATCH", url, { ...opts, body });
export const del = (url, opts) => request("DELETE", url, opts);

// One list entry's RESTCONF path segment: name=key1,key2 with each key percent-encoded.
export function entry(name, ...keys) {
  return `${name}=${keys.map((k) => encodeURIComponent(String(k))).join(",")}`;
}

export const data = (path) => `/restconf/data/${path}`;

export async function login(user, password) {
  const doc = await request("POST", "/ui/login", {
    body: { user, password }, contentType: "application/json", accept: "application/json",
  });
  setCsrf(doc["csrf-token"]);
  return doc;
}

export async function currentSession() {
  try {
    const doc = await request("GET", "/ui/session", { accept: "application/json" });
    setCsrf(doc["csrf-token"]);
    return doc;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return null;
    throw e;
  }
}

export async function logout() {
  try { await request("POST", "/ui/logout", { accept: "application/json" }); }
  finally { setCsrf(null); }
}
