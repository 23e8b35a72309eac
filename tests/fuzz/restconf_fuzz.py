"""The RESTCONF fuzzer: a Hypothesis state machine against a real server.

Why: property tests of single requests (tests/restconf/test_fuzz.py) cannot see
an edit that was half applied, or one acknowledged and then lost; a sequence
of requests checked against a model after every step can.  Each step sends
one request over a real socket (httpx, HTTP/1.1, Basic authentication) to an
``nfo serve`` child process: a write (PUT, POST, PATCH, DELETE, on
``nfo-test:top`` and every node below it, JSON or XML, with ``insert``/
``point``, conditional headers, Accept and Content-Type variations), a YANG
Patch, a read with query parameters, a mutated body (truncated, a byte
changed, invalid UTF-8, unknown members, duplicate members, deep nesting) or
junk aimed at the other resources.  Invariants, checked after every step:

- no 5xx, and every 4xx carries an ``ietf-restconf:errors`` body (a YANG
  Patch's its ``yang-patch-status``) in the negotiated encoding;
- the outcome is the model's (:mod:`tests.fuzz.restconf_model`): a write the
  model accepts is answered 2xx with the model's status, one it refuses 4xx;
- running's ``nfo-test:top`` equals the model (read back after every step);
- the server process is alive.

:func:`run` is the long run (``tools/fuzz_restconf.py``); the CI subset is
``tests/restconf/test_fuzz_stateful.py``.
"""

from __future__ import annotations

import json
import random
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tests.fuzz.restconf_model import (
    MOD,
    NS,
    TOP,
    Invalid,
    Json,
    Model,
    Node,
    Step,
    Target,
    canonical,
    key_of,
    value_error,
)
from tests.fuzz.server import PASSWORD, ServerProcess

__all__ = ["Failure", "Fuzzer", "Stats", "machine", "run"]

JSON_T = "application/yang-data+json"
XML_T = "application/yang-data+xml"
PATCH_JSON = "application/yang-patch+json"
PATCH_XML = "application/yang-patch+xml"
RESTCONF_NS = "urn:ietf:params:xml:ns:yang:ietf-restconf"
PATCH_NS = "urn:ietf:params:xml:ns:yang:ietf-yang-patch"
DATA = "/restconf/data"

# -- value pools ------------------------------------------------------------------------------

KEYS = ["a", "b", "c", "x y", "\u00fc\u20ac", "a/b", "k,1", "'q'", "", "%41", "=", "t\tab",
        'a"b', "\U0001f680", "l\nm", "a&<b>"]
"""List keys and leaf-list values: reserved URI characters, quotes, XML specials,
astral-plane characters, the empty string."""
BAD_KEYS = ["a'b\"c", "\x01", "\x00"]
"""Keys that cannot be used (both quote characters; not XML; NUL)."""
STRINGS = ["v", "x" * 32, "\u00e9" * 32, " pad ", "a\r\nb", "<&>", "]]>]]>", "\u2028", "\ud7ff"]
BAD_STRINGS = ["x" * 33, "", "\x00z", "nul\x00", "\x1b"]
INTS: dict[str, tuple[list[Json], list[Json]]] = {
    "count": ([0, 7, 8, 1000], [1001, -1, "7", 7.0, True, None]),
    "radius": ([0, 3, 255], [256, "3"]),
    "side": ([0, 4, 255], [-1]),
    "size": ([0, 5, 999], [1000, 2 ** 32, "5"]),
    "b": ([-128, 0, 1, 127], [128, "1"]),
    "level": ([1, 3, 4, 9], [256]),
    "sorted": ([-5, 0, 3, 2 ** 31 - 1], [2 ** 31, "3"]),
}
COLOURS: tuple[list[Json], list[Json]] = (["red", "blue", f"{MOD}:red", f"{MOD}:blue"],
                                          ["colour", "green", "other:red", 1])
ADDRS: tuple[list[Json], list[Json]] = (["10.0.0.1", "1.2.3.4", 5, 255],
                                        [256, "5", "300.1.1.1", "01.2.3.4", "1.2.3"])


@st.composite
def mostly(draw: st.DrawFn, pools: tuple[list[Json], list[Json]], bad: int = 1) -> Json:
    """A valid value, or ``bad`` times in ten an invalid one."""
    valid, invalid = pools
    if draw(st.integers(0, 9)) < bad:
        return draw(st.sampled_from(invalid))
    return draw(st.sampled_from(valid))


def _st_string() -> st.SearchStrategy[Json]:
    return st.one_of(mostly((STRINGS + KEYS, BAD_STRINGS)), st.text(max_size=12))


def _st_key() -> st.SearchStrategy[Json]:
    return st.one_of(st.sampled_from(["a", "b", "c"]), mostly((KEYS, BAD_KEYS)))


@st.composite
def values(draw: st.DrawFn, node: Node, model: Model, depth: int = 0) -> Json:
    """A value for ``node`` (JSON form): mostly valid, sometimes of a wrong type or
    out of range (the model decides)."""
    n = node.name
    if node.kind == "leaf":
        if n in INTS:
            return draw(mostly(INTS[n]))
        if n == "colour":
            return draw(mostly(COLOURS))
        if n == "addr":
            return draw(mostly(ADDRS))
        if n == "ref":
            ids = [t["id"] for t in model.top.get("thing", [])]
            return draw(st.sampled_from([*ids, "a", "zz"]))
        if n == "label":
            return draw(st.sampled_from(["l1", "l2", "l3"]))
        if n in ("name", "id", "a") and depth > 0:
            return draw(_st_key())
        return draw(_st_string())
    if node.kind == "leaf-list":
        one = mostly(INTS["sorted"]) if n == "sorted" else _st_key()
        return draw(st.lists(one, min_size=1, max_size=3))
    if node.kind == "list":
        return draw(st.lists(entries(node, model), min_size=1, max_size=3))
    out: dict[str, Json] = {}
    for c in node.children:
        if draw(st.integers(0, 4)) == 0:
            out[c.name] = draw(values(c, model, depth + 1))
    return out


@st.composite
def entries(draw: st.DrawFn, node: Node, model: Model,
            key: tuple[Json, ...] | None = None) -> Json:
    """A list entry of ``node`` (keys from ``key`` when given)."""
    e: dict[str, Json] = {}
    for i, k in enumerate(node.keys):
        sn = node.child(k)
        assert sn is not None
        e[k] = key[i] if key is not None else draw(values(sn, model, 1))
    for c in node.children:
        if c.name in node.keys:
            continue
        likely = c.name == "needed"
        if draw(st.integers(0, 9)) < (9 if likely else 4):
            e[c.name] = draw(values(c, model, 1))
    return e


# -- targets ----------------------------------------------------------------------------------

def _n(parent: Node, name: str) -> Node:
    c = parent.child(name)
    assert c is not None
    return c


ITEM, PAIR, THING, EXTRA = (_n(TOP, "item"), _n(TOP, "pair"), _n(TOP, "thing"),
                            _n(TOP, "extra"))
TAGS, SORTED = _n(TOP, "tags"), _n(TOP, "sorted")
TOP_STEP = Step(TOP)


@st.composite
def keys_for(draw: st.DrawFn, node: Node, model: Model) -> tuple[Json, ...]:
    existing = [key_of(node, e) for e in model.top.get(node.name, [])]
    if existing and draw(st.booleans()):
        return draw(st.sampled_from(existing))
    if node is PAIR:
        return (draw(st.sampled_from(KEYS[:4])), draw(st.sampled_from([0, 1, -128, 127])))
    return (draw(_st_key()),)


@st.composite
def targets(draw: st.DrawFn, model: Model) -> Target:
    what = draw(st.sampled_from(["top", "leaf", "tags", "sorted", "item", "item-leaf", "pair",
                                 "pair-leaf", "thing", "thing-leaf", "extra", "extra-leaf"]))
    if what == "top":
        return Target((TOP_STEP,))
    if what == "leaf":
        name = draw(st.sampled_from(["name", "count", "colour", "addr", "radius", "side"]))
        return Target((TOP_STEP, Step(_n(TOP, name))))
    if what in ("tags", "sorted"):
        node = TAGS if what == "tags" else SORTED
        have = model.top.get(node.name, [])
        pool = st.sampled_from(INTS["sorted"][0]) if what == "sorted" else _st_key()
        v = draw(st.sampled_from(have)) if have and draw(st.booleans()) else draw(pool)
        return Target((TOP_STEP, Step(node, (v,))))
    if what == "extra":
        return Target((TOP_STEP, Step(EXTRA)))
    if what == "extra-leaf":
        return Target((TOP_STEP, Step(EXTRA), Step(_n(EXTRA, draw(st.sampled_from(
            ["level", "only-when"]))))))
    node = {"item": ITEM, "pair": PAIR, "thing": THING}[what.split("-")[0]]
    step = Step(node, draw(keys_for(node, model)))
    if what.endswith("-leaf"):
        leaf = draw(st.sampled_from([c for c in node.children if c.name not in node.keys]))
        return Target((TOP_STEP, step, Step(leaf)))
    return Target((TOP_STEP, step))


def _key_text(v: Json) -> str:
    return quote(str(v), safe="")


def uri(t: Target | None) -> str:
    """The RESTCONF resource path (after /restconf/data/)."""
    if t is None:
        return ""
    parts = []
    for i, s in enumerate(t.steps):
        name = f"{MOD}:{s.node.name}" if i == 0 else s.node.name
        if s.key is not None:
            name += "=" + ",".join(_key_text(k) for k in s.key)
        parts.append(name)
    return "/".join(parts)


# -- bodies -----------------------------------------------------------------------------------

def member(node: Node, value: Json) -> dict[str, Json]:
    return {f"{MOD}:{node.name}": value}


def _xml_scalar(node: Node, v: Json) -> str:
    t = "" if v is None else ("true" if v is True else "false" if v is False else str(v))
    if node.name == "colour" and t.startswith(f"{MOD}:"):
        t = "t:" + t[len(MOD) + 1:]
    return t.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "\r", "&#13;")


def _xml(node: Node, value: Json, root: bool) -> str:
    ns = f' xmlns="{NS}"' if root else ""
    if node.name == "colour":
        ns += f' xmlns:t="{NS}"'
    if node.kind in ("list", "leaf-list"):
        items = value if isinstance(value, list) else [value]
        if node.kind == "leaf-list":
            return "".join(f"<{node.name}{ns}>{_xml_scalar(node, v)}</{node.name}>"
                           for v in items)
        return "".join(_xml(node, e, root) if not isinstance(e, dict) else
                       f"<{node.name}{ns}>{_xml_children(node, e)}</{node.name}>"
                       for e in items)
    if node.kind == "leaf":
        return f"<{node.name}{ns}>{_xml_scalar(node, value)}</{node.name}>"
    if not isinstance(value, dict):
        return f"<{node.name}{ns}>{_xml_scalar(node, value)}</{node.name}>"
    return f"<{node.name}{ns}>{_xml_children(node, value)}</{node.name}>"


def _xml_children(node: Node, obj: dict[str, Json]) -> str:
    out = []
    names = list(node.keys) + [k for k in obj if k not in node.keys]
    for k in names:
        if k not in obj:
            continue
        c = node.child(k.removeprefix(f"{MOD}:"))
        if c is None:
            out.append(f"<{k}>{_xml_scalar(TOP, obj[k])}</{k}>")
        else:
            out.append(_xml(c, obj[k], False))
    return "".join(out)


def encode(body: dict[str, Json], xml: bool, schema_of: Callable[[str], Node | None]) -> bytes:
    """A body object ({"nfo-test:name": value}) as JSON, or as XML elements."""
    if not xml:
        return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
    out = []
    for k, v in body.items():
        node = schema_of(k)
        if node is None:
            out.append(f'<{k.rpartition(":")[2] or "x"} xmlns="{NS}"/>')
        else:
            out.append(_xml(node, v, True))
    return "".join(out).encode("utf-8", "surrogatepass")


# -- the machine ------------------------------------------------------------------------------

@dataclass
class Stats:
    cases: int = 0
    writes_ok: int = 0
    writes_refused: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)


@dataclass
class Failure:
    seed: int
    message: str


class Fuzzer(RuleBasedStateMachine):
    """One example: a fresh (empty) nfo-test:top, then a sequence of requests."""

    client: ClassVar[httpx.Client]
    server: ClassVar[ServerProcess]
    stats: ClassVar[Stats]

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()
        self.reason = ""
        r = self.client.delete(f"{DATA}/{MOD}:top")
        assert r.status_code in (204, 404), (r.status_code, r.text)
        self.etag = self._read_back()

    # -- plumbing
    def send(self, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> httpx.Response:
        self.stats.cases += 1
        try:
            r = self.client.request(method, path, content=body, headers=headers or {})
        except httpx.HTTPError as e:
            raise AssertionError(f"{method} {path}: no answer ({e!r}); server alive: "
                                 f"{self.server.alive()}") from e
        self.stats.statuses[r.status_code] = self.stats.statuses.get(r.status_code, 0) + 1
        what = f"{method} {path} {headers} {body!r:.600} -> {r.status_code} {r.text[:600]}"
        assert r.status_code < 500, what
        if r.status_code >= 400 and method != "HEAD" and r.status_code not in (401,):
            _check_errors_body(r, what)
        return r

    def _read_back(self) -> str:
        r = self.client.get(f"{DATA}/{MOD}:top?content=config",
                            headers={"Accept": JSON_T})
        assert r.status_code in (200, 404), (r.status_code, r.text)
        got = None
        if r.status_code == 200:
            got = canonical(json.loads(r.text)[f"{MOD}:top"])
        want = self.model.snapshot()
        assert got == want, f"running differs from the model:\n server {got}\n model  {want}"
        if r.status_code == 404:  # the datastore's validators, from a resource that exists
            r = self.client.get(f"{DATA}/ietf-netconf-acm:nacm?depth=1&content=config")
        return r.headers.get("etag", "")

    def expect(self, r: httpx.Response, outcome: tuple[dict[str, Json], int] | None,
               what: str) -> None:
        if outcome is None:
            assert r.status_code >= 400, (f"the model refuses ({self.reason}), the server "
                                          f"accepted: {what} -> {r.status_code} "
                                          f"{r.text[:300]}\n model: {self.model.snapshot()}")
            self.stats.writes_refused += 1
            return
        tree, status = outcome
        assert r.status_code == status, (f"the model accepts ({status}), the server said "
                                         f"{r.status_code}: {what} {r.text[:400]}\n model: "
                                         f"{self.model.snapshot()}")
        self.model.install(tree)
        self.stats.writes_ok += 1

    @invariant()
    def running_is_the_model(self) -> None:
        assert self.server.alive(), "the server died"
        self.etag = self._read_back()

    # -- conditional headers
    def conditions(self, data: st.DataObject) -> tuple[dict[str, str], Callable[[bool], bool]]:
        """Conditional headers and, given whether the target exists, whether they pass."""
        kind = data.draw(st.sampled_from(["none"] * 20 + ["match", "match*", "stale",
                                                         "none*", "none-current", "past",
                                                         "future", "baddate", "weak"]))
        cur = self.etag
        if kind == "match":
            return {"If-Match": cur}, lambda e: True
        if kind == "match*":
            return {"If-Match": "*"}, lambda e: e
        if kind == "stale":
            return {"If-Match": '"999999"'}, lambda e: False
        if kind == "weak":
            return {"If-Match": f"W/{cur}"}, lambda e: False
        if kind == "none*":
            return {"If-None-Match": "*"}, lambda e: not e
        if kind == "none-current":
            return {"If-None-Match": cur}, lambda e: False
        if kind == "past":
            return {"If-Unmodified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, lambda e: False
        if kind == "future":
            return {"If-Unmodified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"}, lambda e: True
        if kind == "baddate":
            return {"If-Unmodified-Since": "yesterday"}, lambda e: True
        return {}, lambda e: True

    def formats(self, data: st.DataObject) -> tuple[bool, dict[str, str], bool]:
        """(XML body?, headers, whether negotiation succeeds)."""
        xml = data.draw(st.booleans())
        ct = data.draw(st.sampled_from(
            [XML_T if xml else JSON_T] * 20 + [("application/xml" if xml else "application/json"),
                                               (XML_T if xml else JSON_T) + "; charset=utf-8",
                                               None, "text/plain"]))
        accept = data.draw(st.sampled_from([None] * 6 + [JSON_T, XML_T, "*/*", "text/html",
                                                         "application/*;q=0.5, text/html"]))
        headers = {}
        ok = ct is not None and ct != "text/plain"
        if ct is not None:
            headers["Content-Type"] = ct
        if accept is not None:
            headers["Accept"] = accept
            ok = ok and accept != "text/html"
        return xml, headers, ok

    # -- writes on a data resource
    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(["PUT", "PUT", "PATCH", "POST", "POST", "DELETE"]),
                           label="method")
        t = data.draw(targets(self.model), label="target")
        xml, headers, negotiated = self.formats(data)
        cond, passes = self.conditions(data)
        headers.update(cond)
        query, insert, point = self.positions(data, t, method)
        body_obj: dict[str, Json] | None = None
        child: Target | None = None
        if method in ("PUT", "PATCH"):
            body_obj = member(t.node, self.body_value(data, t, t.node))
        elif method == "POST":
            parent = t if t.node.kind in ("container", "list") else t.parent
            t = parent
            cnode = data.draw(st.sampled_from([c for c in t.node.children]), label="child")
            key = None
            if cnode.kind == "list":
                key = data.draw(keys_for(cnode, self.model))
            elif cnode.kind == "leaf-list":
                key = (data.draw(_st_key() if cnode is TAGS else mostly(INTS["sorted"])),)
            child = Target((*t.steps, Step(cnode, key)))
            body_obj = member(cnode, self.body_value(data, child, cnode))
            if data.draw(st.integers(0, 19)) == 0:
                body_obj[f"{MOD}:name"] = "second"  # two children: refused
        if method == "DELETE":
            xml = False
            headers.pop("Content-Type", None)
            negotiated = headers.get("Accept") != "text/html"
        body = None if body_obj is None else encode(body_obj, xml, _schema_of(t, method))
        if method != "DELETE" and len(body_obj or {}) == 1 and data.draw(st.integers(0, 9)) == 0:
            body, mutated = self.mutate(data, body or b"", xml)
            if mutated is not None:
                body_obj = mutated
            elif body_obj is not None:
                body_obj = None  # beyond the model: must be refused
                body = body or b""
        r = self.send(method, f"{DATA}/{uri(t)}{query}", body, headers)
        what = f"{method} {uri(t)}{query} {headers} {body!r:.400}"
        if not negotiated or (body_obj is None and method != "DELETE"):
            self.expect(r, None, what)
            return
        self.expect(r, self.predict(method, t, child, body_obj, xml, insert, point, passes),
                    what)

    def body_value(self, data: st.DataObject, t: Target, node: Node) -> Json:
        s = t.steps[-1]
        if node.kind == "list":
            e = data.draw(entries(node, self.model, s.key))
            if data.draw(st.integers(0, 15)) == 0:
                e = data.draw(entries(node, self.model))  # keys differ from the URI's
            return [e]
        if node.kind == "leaf-list":
            assert s.key is not None
            v = s.key[0] if data.draw(st.integers(0, 15)) else "other"
            return [v]
        return data.draw(values(node, self.model, 1 if len(t.steps) > 1 else 0))

    def positions(self, data: st.DataObject, t: Target, method: str
                  ) -> tuple[str, str | None, tuple[Json, ...] | None]:
        """insert/point query parameters (also where they do not apply)."""
        if method == "DELETE" or data.draw(st.integers(0, 5)):
            return "", None, None
        where = data.draw(st.sampled_from(["first", "last", "before", "after", "middle"]))
        q = f"?insert={where}"
        point: tuple[Json, ...] | None = None
        if where in ("before", "after") or data.draw(st.integers(0, 9)) == 0:
            node = data.draw(st.sampled_from([ITEM, TAGS]))
            if node is ITEM:
                point = data.draw(keys_for(ITEM, self.model))
            else:
                have = self.model.top.get("tags", [])
                point = (data.draw(st.sampled_from(have)) if have else data.draw(_st_key()),)
            pt = Target((TOP_STEP, Step(node, point)))
            q += "&point=" + quote(f"/{uri(pt)}", safe="/:=,")
            point = (node.name, *point)
        return q, where, point

    def mutate(self, data: st.DataObject, body: bytes, xml: bool
               ) -> tuple[bytes, dict[str, Json] | None]:
        """A broken body; with the object the model reads in it when it still parses."""
        how = data.draw(st.sampled_from(["truncate", "flip", "utf8", "unknown", "deep",
                                         "duplicate", "empty", "huge", "bom"]))
        if how == "truncate" and len(body) > 1:
            return body[:data.draw(st.integers(1, len(body) - 1))], None
        if how == "flip" and body:
            i = data.draw(st.integers(0, len(body) - 1))
            b = bytearray(body)
            b[i] = data.draw(st.integers(0, 255))
            out = bytes(b)
            if xml or out == body:
                return (out, None) if out != body else (b"\xff" + out, None)
            try:
                obj = json.loads(out.decode("utf-8"), object_pairs_hook=_strict_pairs)
            except (ValueError, UnicodeDecodeError):
                return out, None
            return out, obj if isinstance(obj, dict) else None
        if how == "utf8":
            i = data.draw(st.integers(0, len(body)))
            return body[:i] + b"\xc3\x28" + body[i:], None
        if how == "unknown":
            extra = b'<bogus xmlns="urn:nfo:test">1</bogus>' if xml else b'"nfo-test:bogus":1,'
            i = body.find(b">") + 1 if xml else body.find(b"{") + 1
            return (body[:i] + extra + body[i:]) if i > 0 else extra, None
        if how == "deep":
            n = data.draw(st.sampled_from([300, 5000]))
            if xml:
                return (f'<top xmlns="{NS}">'.encode() + b"<a>" * n + b"</a>" * n
                        + b"</top>"), None
            return b'{"nfo-test:top":' + b'{"a":' * n + b"1" + b"}" * n + b"}", None
        if how == "duplicate" and not xml:
            i = body.find(b"{") + 1
            first = body[i:].split(b",")[0].rstrip(b"}")
            return body[:i] + first + b"," + body[i:], None
        if how == "huge":
            big = "h" * data.draw(st.sampled_from([70_000, 1 << 20]))
            if xml:
                return f'<name xmlns="{NS}">{big}</name>'.encode(), None
            return json.dumps({f"{MOD}:name": big}).encode(), None
        if how == "bom":
            return b"\xff\xfe" + body.decode("utf-8", "replace").encode("utf-16-le"), None
        return b"", None

    def predict(self, method: str, t: Target, child: Target | None,
                body: dict[str, Json] | None, xml: bool, insert: str | None,
                point: tuple[Json, ...] | None, passes: Callable[[bool], bool]
                ) -> tuple[dict[str, Json], int] | None:
        """The model's outcome: (new data, status), or None for a refusal."""
        m = self.model
        try:
            t.check()
            if method == "DELETE":
                if not m.present(t) or t.node.name in _keys_of(t) or not passes(True):
                    return None
                tree, _ = m.edit(t, "delete")
                return tree, 204
            assert body is not None
            if method == "POST":
                assert child is not None
                if t.node.kind not in ("container", "list") or not m.exists(t):
                    return None
                value = _single(body, child, xml, own_key=True)
                if child.node.name in _keys_of(child):
                    return None
                if child.node.kind in ("list", "leaf-list"):
                    key = key_of(child.node, value) if child.node.kind == "list" else (value,)
                    child = Target((*t.steps, Step(child.node, key)))
                child.check()  # the key the body gives, not the one drawn for it
                ins, pt = _position_of(child, insert, point)
                if not passes(True):
                    return None
                tree, _ = m.edit(child, "create", value, insert=ins, point=pt)
                return tree, 201
            if t.node.name in _keys_of(t):
                return None
            value = _single(body, t, xml)
            if method == "PATCH":
                if insert is not None or point is not None or not m.exists(t):
                    return None
                if not passes(m.exists(t)):
                    return None
                tree, _ = m.edit(t, "merge", value)
                return tree, 204
            ins, pt = _position_of(t, insert, point)
            existed = m.present(t)
            if not passes(existed):
                return None
            tree, _ = m.edit(t, "replace", value, insert=ins, point=pt)
            return tree, 204 if existed else 201
        except Invalid as e:
            self.reason = str(e)
            return None

    # -- writes on the datastore resource
    @rule(data=st.data())
    def write_datastore(self, data: st.DataObject) -> None:
        xml = data.draw(st.booleans())
        method = data.draw(st.sampled_from(["POST", "PATCH"]))
        top = data.draw(values(TOP, self.model))
        ct = XML_T if xml else JSON_T
        if method == "POST":
            body = encode(member(TOP, top), xml, lambda k: TOP)
        elif xml:
            body = (f'<data xmlns="{RESTCONF_NS}">'.encode()
                    + encode(member(TOP, top), True, lambda k: TOP) + b"</data>")
        else:
            body = json.dumps({"ietf-restconf:data": member(TOP, top)},
                              ensure_ascii=False).encode("utf-8", "surrogatepass")
        r = self.send(method, DATA, body, {"Content-Type": ct})
        outcome: tuple[dict[str, Json], int] | None = None
        try:
            value = value_error(TOP, top, xml)
            t = Target((TOP_STEP,))
            if method == "POST":
                outcome = self.model.edit(t, "create", value)[0], 201
            elif value:
                outcome = self.model.edit(t, "merge", value)[0], 204
            else:
                outcome = self.model.edit(t, "merge", value)[0], 204
        except Invalid as e:
            self.reason = str(e)
            outcome = None
        self.expect(r, outcome, f"{method} /restconf/data {body!r:.300}")

    # -- YANG Patch
    @rule(data=st.data())
    def yang_patch(self, data: st.DataObject) -> None:
        xml = data.draw(st.booleans())
        at_root = data.draw(st.booleans())
        edits: list[dict[str, Json]] = []
        nodes: list[Node] = []
        plan: list[tuple[str, Target, Json, str | None, tuple[Json, ...] | None]] = []
        broken = False
        for i in range(data.draw(st.integers(1, 4))):
            op = data.draw(st.sampled_from(["create", "delete", "insert", "merge", "move",
                                            "replace", "remove"]))
            t = data.draw(targets(self.model))
            if len(t.steps) == 1 and not at_root:
                t = Target((TOP_STEP, Step(_n(TOP, "name"))))
            rel = "/" + uri(t) if at_root else "/" + uri(t).partition("/")[2]
            e: dict[str, Json] = {"edit-id": f"e{i}", "operation": op, "target": rel}
            nodes.append(t.node)
            value = None
            if op in ("create", "insert", "merge", "replace"):
                value = member(t.node, self.body_value(data, t, t.node))
                e["value"] = value
            where = point = None
            if op in ("insert", "move"):
                where = data.draw(st.sampled_from(["first", "last", "before", "after", None]))
                if where is not None:
                    e["where"] = where
                if where in ("before", "after"):
                    node = t.node if t.node in (ITEM, TAGS) else ITEM
                    if node is ITEM:
                        pk = data.draw(keys_for(ITEM, self.model))
                    else:
                        have = self.model.top.get("tags", [])
                        pk = (data.draw(st.sampled_from(have)) if have else data.draw(_st_key()),)
                    pt = Target((TOP_STEP, Step(node, pk)))
                    e["point"] = "/" + uri(pt) if at_root else "/" + uri(pt).partition("/")[2]
                    point = (node.name, *pk)
            if data.draw(st.integers(0, 30)) == 0:
                e["bogus"] = "x"
                broken = True
            edits.append(e)
            plan.append((op, t, value, where, point))
        patch = {"ietf-yang-patch:yang-patch": {"patch-id": "p", "edit": edits}}
        body = self.patch_body(patch, nodes, xml)
        path = DATA if at_root else f"{DATA}/{MOD}:top"
        r = self.send("PATCH", path, body, {"Content-Type": PATCH_XML if xml else PATCH_JSON})
        outcome = None if broken else self.predict_patch(plan, xml)
        self.expect(r, outcome, f"YANG Patch {body!r:.1500}")

    def patch_body(self, patch: dict[str, Json], nodes: list[Node], xml: bool) -> bytes:
        if not xml:
            return json.dumps(patch, ensure_ascii=False).encode("utf-8", "surrogatepass")
        yp = patch["ietf-yang-patch:yang-patch"]
        out = [f'<yang-patch xmlns="{PATCH_NS}"><patch-id>p</patch-id>']
        for e, node in zip(yp["edit"], nodes, strict=True):
            out.append("<edit>")
            for k, v in e.items():
                if k == "value":
                    out.append("<value>" + encode(v, True, lambda _, n=node: n).decode(
                        "utf-8", "surrogatepass") + "</value>")
                else:
                    out.append(f"<{k}>{_esc(str(v))}</{k}>")
            out.append("</edit>")
        out.append("</yang-patch>")
        return "".join(out).encode("utf-8", "surrogatepass")

    def predict_patch(self, plan: list[tuple[str, Target, Json, str | None,
                                             tuple[Json, ...] | None]],
                      xml: bool) -> tuple[dict[str, Json], int] | None:
        m = self.model
        work = Model(json.loads(json.dumps(m.top)), patch=True)
        try:
            for op, t, value, where, point in plan:
                t.check()
                if t.node.name in _keys_of(t):
                    return None
                if op in ("insert", "move"):
                    if where in ("before", "after") and t.node not in (ITEM, TAGS):
                        return None
                    ins, pt = _position_of(t, where or "last", point)
                    if ins is None:
                        return None
                else:
                    ins, pt = None, None
                if op == "move":
                    if not work.present(t) or t.node.kind not in ("list", "leaf-list"):
                        return None
                    work._apply(work.top, t, "merge", _existing(work, t), ins, pt,
                                create_parents=False)
                    continue
                v = _single(value, t, xml) if value is not None else None
                nc = {"insert": "create"}.get(op, op)
                work._apply(work.top, t, nc, v, ins, pt)
            return m.validate(work.top), 200
        except Invalid as e:
            self.reason = str(e)
            return None

    # -- reads
    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        t = data.draw(targets(self.model))
        params = data.draw(st.lists(st.sampled_from([
            "depth=1", "depth=2", "depth=unbounded", "depth=0", "depth=x", "content=config",
            "content=nonconfig", "content=all", "content=bogus", "with-defaults=report-all",
            "with-defaults=trim", "with-defaults=explicit", "with-defaults=report-all-tagged",
            "with-defaults=x", "fields=name", "fields=item(name;size)", "fields=((",
            "fields=extra/level", "fields=nope", "insert=first", "unknown=1"]),
            max_size=3, unique_by=lambda p: p.split("=")[0]))
        method = data.draw(st.sampled_from(["GET", "GET", "HEAD"]))
        accept = data.draw(st.sampled_from([JSON_T, XML_T, "*/*"]))
        cond: dict[str, str] = {}
        if data.draw(st.integers(0, 5)) == 0:
            cond = {"If-None-Match": self.etag}
        q = ("?" + "&".join(params)) if params else ""
        r = self.send(method, f"{DATA}/{uri(t)}{q}", None, {"Accept": accept, **cond})
        if r.status_code in (200,) and method == "GET":
            if accept == XML_T:
                ElementTree.fromstring(r.content)
            else:
                doc = json.loads(r.text)
                if not params and len(t.steps) > 1 and t.node.kind == "list":
                    want = self.model._find(self.model.top, t)
                    got = doc[f"{MOD}:{t.node.name}"]
                    assert isinstance(got, list) and len(got) == 1
                    if canonical({"e": [want]}) != canonical({"e": got}):
                        raise AssertionError(f"GET {uri(t)}: {got} but the model has {want}")
        if not params and not cond and len(t.steps) > 1 and t.node.default is None \
                and t.node is not EXTRA:
            assert (r.status_code == 200) == self.model.present(t), \
                f"GET {uri(t)} said {r.status_code}, the model: present={self.model.present(t)}"

    # -- junk aimed at every other resource
    @rule(data=st.data())
    def junk(self, data: st.DataObject) -> None:
        method = data.draw(st.sampled_from(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE",
                                            "OPTIONS", "TRACE"]))
        path = data.draw(st.sampled_from(JUNK_PATHS))
        body = data.draw(st.one_of(st.sampled_from(JUNK_BODIES), st.binary(max_size=64)))
        ct = data.draw(st.sampled_from([JSON_T, XML_T, PATCH_JSON, PATCH_XML, "text/plain",
                                        "application/json; charset=latin-1", ""]))
        headers = {"Content-Type": ct} if ct else {}
        if data.draw(st.integers(0, 4)) == 0:
            headers["Accept"] = data.draw(st.sampled_from(["text/html", "application/*",
                                                          "*/*;q=0", XML_T + ";q=0.1"]))
        self.send(method, path, body if method not in ("GET", "HEAD", "DELETE") else None,
                  headers)


JUNK_PATHS = [
    "/restconf", "/restconf/", "/restconf/yang-library-version", "/.well-known/host-meta",
    "/restconf/operations", "/restconf/operations/nfo-test:ping",
    "/restconf/operations/nfo-test:nope", "/restconf/operations/ietf-netconf:lock",
    "/restconf/operations/a/b", "/restconf/modules/nfo-test",
    "/restconf/modules/nfo-test/2026-11-25", "/restconf/modules/nope",
    "/restconf/ds/ietf-datastores:operational/nfo-test:top",
    "/restconf/ds/ietf-datastores:intended/nfo-test:top",
    "/restconf/ds/ietf-datastores:nope", "/restconf/ds/%zz",
    f"{DATA}/nfo-test:top/%zz", f"{DATA}/nfo-test:nope", f"{DATA}/nope:top",
    f"{DATA}/nfo-test:top//name", f"{DATA}/nfo-test:top/item", f"{DATA}/nfo-test:top/item=a,b",
    f"{DATA}/nfo-test:top/pair=a", f"{DATA}/nfo-test:top/state",
    f"{DATA}/nfo-test:top/state/up", f"{DATA}/nfo-test:top/item=a/name",
    f"{DATA}/nfo-test:top/name=x", f"{DATA}/nfo-test:ping", f"{DATA}/nfo-test:bell",
    f"{DATA}/nfo-test:top/item=%FF", f"{DATA}/nfo-test:top/item=a'b%22c",
    f"{DATA}/ietf-restconf-monitoring:restconf-state", f"{DATA}/nfo-test:top?depth=1&depth=2",
    f"{DATA}/nfo-test:top?%zz=1", f"{DATA}/nfo-test:top?fields=" + "(" * 200,
    f"{DATA}/nfo-test:top/" + "/".join(["item=a"] * 50), "/restconf/data" + "/x" * 300,
    "/restconf/streams/NETCONF/nope", "/nowhere",
]
JUNK_BODIES: list[bytes] = [
    b"", b"null", b"[]", b"{}", b'{"nfo-test:top":', b"<top", b'{"nfo-test:input":{}}',
    b'{"nfo-test:input":{"msg":"hi"}}', b'<input xmlns="urn:nfo:test"><msg>hi</msg></input>',
    b'{"nfo-test:top":{"name":"x"}}', b'<!DOCTYPE x [<!ENTITY e "a">]><top xmlns="urn:nfo:test"/>',
    b'{"ietf-yang-patch:yang-patch":{"patch-id":"p","edit":[{"edit-id":"1"}]}}',
    b'{"ietf-yang-patch:yang-patch":{"patch-id":"p","edit":[{"edit-id":"1","operation":"merge",'
    b'"target":"/name","value":{}}]}}',
    b'{"ietf-restconf:data":[]}', b'\xef\xbb\xbf{"nfo-test:top":{}}', b"\x00" * 16,
]


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _top_child(name: str) -> Node | None:
    return TOP.child(name.removeprefix(f"{MOD}:")) or (
        EXTRA.child(name.removeprefix(f"{MOD}:")) or ITEM.child(name.removeprefix(f"{MOD}:")))


def _schema_of(t: Target, method: str) -> Callable[[str], Node | None]:
    node = t.node

    def find(name: str) -> Node | None:
        n = name.removeprefix(f"{MOD}:")
        if method == "POST":
            return node.child(n)
        if n == node.name:
            return node
        return _top_child(name)
    return find


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate member")
        out[k] = v
    return out


def _keys_of(t: Target) -> tuple[str, ...]:
    """The key names of the list holding ``t``'s leaf (a key cannot be written alone)."""
    if len(t.steps) >= 2 and t.node.kind == "leaf":
        return t.steps[-2].node.keys
    return ()


def _single(body: Json, t: Target, xml: bool, own_key: bool = False) -> Json:
    """The target's value in a body of one member named after it; Invalid otherwise
    (``own_key``: a POST, whose body names the new entry itself)."""
    if not isinstance(body, dict) or len(body) != 1:
        raise Invalid("the body must hold exactly one node")
    (name, value), = body.items()
    if name != f"{MOD}:{t.node.name}":
        raise Invalid("the body names another node")
    node = t.node
    s = t.steps[-1]
    if node.kind in ("list", "leaf-list"):
        v = value_error(node, value, xml)
        if len(v) != 1:
            raise Invalid("exactly one instance")
        got = key_of(node, v[0]) if node.kind == "list" else (v[0],)
        if got != s.key and not own_key:
            raise Invalid("keys differ from the URI's")
        if s.key is not None:
            for k in s.key:
                if isinstance(k, str) and "'" in k and '"' in k:
                    raise Invalid("both quotes")
        return v[0]
    return value_error(node, value, xml)


def _position_of(t: Target, insert: str | None, point: tuple[Json, ...] | None
                 ) -> tuple[str | None, tuple[Json, ...] | None]:
    if insert is None:
        if point is not None:
            raise Invalid("point without insert")
        return None, None
    if insert not in ("first", "last", "before", "after"):
        raise Invalid("insert value")
    if not t.node.user_ordered:
        raise Invalid("insert on a system-ordered node")
    if insert in ("before", "after"):
        if point is None or point[0] != t.node.name:
            raise Invalid("point of another list")
        Target((TOP_STEP, Step(t.node, point[1:]))).check()
        return insert, point[1:]
    if point is not None:
        raise Invalid("point with first/last")
    return insert, None


def _existing(m: Model, t: Target) -> Json:
    found = m._find(m.top, t)
    return found


def _check_errors_body(r: httpx.Response, what: str) -> None:
    ctype = r.headers.get("content-type", "")
    text = r.text
    if "xml" in ctype:
        root = ElementTree.fromstring(r.content)
        assert root.tag in (f"{{{RESTCONF_NS}}}errors", f"{{{PATCH_NS}}}yang-patch-status"), what
    else:
        doc = json.loads(text)
        assert "ietf-restconf:errors" in doc or "ietf-yang-patch:yang-patch-status" in doc, what


# -- running it -----------------------------------------------------------------------------

def machine(server: ServerProcess, client: httpx.Client, stats: Stats) -> type[Fuzzer]:
    """The state machine class bound to one server."""
    return type("RestconfFuzzer", (Fuzzer,), {"server": server, "client": client,
                                              "stats": stats})


def client_for(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.base, auth=("admin", PASSWORD), timeout=60,
                        headers={"Accept": JSON_T})


def fuzz_settings(examples: int, steps: int, shrink: bool = True) -> settings:
    phases = [Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=examples, stateful_step_count=steps, deadline=None,
                    database=None, phases=phases, derandomize=False, report_multiple_bugs=False,
                    suppress_health_check=list(HealthCheck))


def batches(seed: int) -> Iterator[int]:
    rng = random.Random(seed)
    while True:
        yield rng.randrange(1 << 32)


def run(cases: int, seed: int, server: ServerProcess, *, steps: int = 50,
        examples_per_batch: int = 20, log: Callable[[str], None] = print,
        shrink: bool = True) -> tuple[Stats, list[Failure]]:
    """Run at least ``cases`` requests in batches of examples (each batch its own
    derived seed, so one failure does not end the run); returns the figures and the
    failures (each shrunk by Hypothesis to a short reproduction)."""
    stats = Stats()
    failures: list[Failure] = []
    with client_for(server) as client:
        cls = machine(server, client, stats)
        for batch_seed in batches(seed):
            if stats.cases >= cases:
                break
            cls._hypothesis_internal_use_seed = batch_seed  # type: ignore[attr-defined]
            try:
                run_state_machine_as_test(cls, settings=fuzz_settings(
                    examples_per_batch, steps, shrink))
            except Exception as e:  # a failure: recorded, the run goes on
                notes = "\n".join(getattr(e, "__notes__", []))
                notes += "\n" + "".join(traceback.format_exception(e)[-6:])
                failures.append(Failure(batch_seed, f"{type(e).__name__}: {e}\n{notes}"))
                log(f"FAILURE (batch seed {batch_seed}): {str(e)[:2000]}\n{notes[-4000:]}")
                if not server.alive():
                    break
            elapsed = time.monotonic() - stats.started
            log(f"{stats.cases} cases, {stats.cases / elapsed:.1f}/s, {len(failures)} "
                f"failures, server RSS {server.rss_kib()} KiB")
    return stats, failures
