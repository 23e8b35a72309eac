// The live schema, from the server's digest (GET /restconf/ui/schema, revalidated by
// its ETag): finding nodes along data paths, search, and the two path forms the page
// needs (RESTCONF resource paths for URLs, libyang data paths to match error-paths).
import { get } from "./api.js";

let loaded = null;

export function loadSchema() {
  if (!loaded) {
    const asked = get("/restconf/ui/schema", { accept: "application/json", cache: "no-cache" });
    loaded = asked.then((doc) => {
      const modules = doc.modules.filter((m) => m.implemented && (m.nodes || []).length);
      for (const m of modules) for (const n of m.nodes) link(n, null, m.name);
      return { contentId: doc["content-id"], modules };
    }, (e) => { loaded = null; throw e; });
  }
  return loaded;
}

function link(node, parent, module) {
  node.parent = parent;
  node.module = node.module || module;
  for (const c of node.children || []) link(c, node, node.module);
}

// The children of a node as they appear in data: choices and cases are not data
// nodes, so their children are the node's; input/output of operations stay.
export function dataChildren(node) {
  const out = [];
  for (const c of node.children || []) {
    if (c.kind === "choice" || c.kind === "case") out.push(...dataChildren(c));
    else out.push(c);
  }
  return out;
}

// The JSON member name of a child in its parent's object (RFC 7951).
export function memberName(node) {
  const parentModule = node.parent ? moduleOf(node.parent) : null;
  return node.module !== parentModule ? `${node.module}:${node.name}` : node.name;
}

function moduleOf(node) {
  let n = node;
  while (n && (n.kind === "choice" || n.kind === "case")) n = n.parent;
  return n ? n.module : null;
}

// A data path: [{node, keys}] where keys are the list entry's key values (strings).
export function restconfPath(steps) {
  return steps.map((s, i) => {
    const prev = i ? steps[i - 1].node : null;
    const name = !prev || prev.module !== s.node.module ? `${s.node.module}:${s.node.name}`
      : s.node.name;
    return s.keys ? `${name}=${s.keys.map((k) => encodeURIComponent(k)).join(",")}` : name;
  }).join("/");
}

function quoted(value) {
  return value.includes("'") ? `"${value}"` : `'${value}'`;
}

export function dataPath(steps) {
  return steps.map((s, i) => {
    const prev = i ? steps[i - 1].node : null;
    const name = !prev || prev.module !== s.node.module ? `${s.node.module}:${s.node.name}`
      : s.node.name;
    const preds = s.keys ? s.node.keys.map((k, j) => `[${k}=${quoted(s.keys[j])}]`).join("")
      : "";
    return `/${name}${preds}`;
  }).join("");
}

// Parse "mod:a/b=k1,k2/c" into steps against the schema; null if it names nothing.
export function parsePath(schema, text) {
  const steps = [];
  let parent = null;
  for (const raw of text.split("/").filter(Boolean)) {
    const eq = raw.indexOf("=");
    const name = eq < 0 ? raw : raw.slice(0, eq);
    const keys = eq < 0 ? null : raw.slice(eq + 1).split(",").map(decodeURIComponent);
    const [mod, local] = name.includes(":") ? name.split(":", 2) : [null, name];
    const pool = parent ? dataChildren(parent)
      : schema.modules.filter((m) => m.name === mod).flatMap((m) => m.nodes);
    const node = pool.find((n) => n.name === local && (!mod || n.module === mod));
    if (!node) return null;
    steps.push({ node, keys: node.kind === "list" && keys ? keys : null });
    parent = node;
  }
  return steps;
}

// Every node with a path, for search: [{node, text}].
export function searchIndex(schema) {
  const out = [];
  const walk = (n) => {
    if (n.path) out.push({ node: n, text: `${n.name} ${n.description || ""}`.toLowerCase() });
    for (const c of n.children || []) walk(c);
  };
  for (const m of schema.modules) for (const n of m.nodes) walk(n);
  return out;
}

// The schema node path as steps without keys, for a search hit.
export function stepsTo(node) {
  const chain = [];
  for (let n = node; n; n = n.parent) {
    if (n.kind !== "choice" && n.kind !== "case" && n.kind !== "input" && n.kind !== "output") {
      chain.unshift({ node: n, keys: null });
    }
  }
  return chain;
}

const NUMBER = new Set(["int8", "int16", "int32", "uint8", "uint16", "uint32"]);
const AS_STRING = new Set(["int64", "uint64", "decimal64"]);

// A form's text as the RFC 7951 JSON value of a leaf of type t.
export function jsonValue(t, text) {
  const base = realBase(t);
  if (base === "union") {
    // RFC 7951 encodes a union's value as its matching member does: a number for a
    // small integer member, a boolean for a boolean one, else a string
    const members = (t.members || []).map(realBase);
    if (/^[+-]?\d+$/.test(text.trim()) && members.some((m) => NUMBER.has(m))) {
      return Number(text);
    }
    if ((text === "true" || text === "false") && members.includes("boolean")) {
      return text === "true";
    }
    return text;
  }
  if (NUMBER.has(base) && /^[+-]?\d+$/.test(text.trim())) return Number(text);
  if (base === "boolean") return text === "true" ? true : text === "false" ? false : text;
  if (base === "empty") return [null];
  if (AS_STRING.has(base)) return text.trim();
  return text;
}

export function realBase(t) {
  return t ? (t.base === "leafref" ? t["real-base"] || "string" : t.base) : "string";
}

export function textOf(value) {
  if (value === undefined || value === null) return "";
  if (Array.isArray(value) && value.length === 1 && value[0] === null) return "true";
  return String(value);
}

// Whether the page can draw a module's forms; else it offers a JSON editor for it.
export function renderable(node) {
  if (node.kind === "anydata" || node.kind === "anyxml") return false;
  return (node.children || []).every(renderable);
}
