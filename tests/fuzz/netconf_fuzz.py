"""The NETCONF fuzzer: messages from a grammar, mutated and framed at random, over
several interleaving SSH sessions to a real ``nfo serve``.

Why: NETCONF's framing (RFC 6242 end-of-message and chunked), its hello and
every operation meet untrusted bytes first; a grammar produces messages deep
enough to reach each operation's handler, mutations and random framing test
what surrounds it.  Raw asyncssh channels are used so that the fuzzer decides
every byte and every write boundary.

Each round one session is the *writer*: it sends operations whose effect the
model predicts (edit-config/edit-data on running and the candidate with every
default-operation, test-option and error-option, commit with confirmed/persist
and its confirming commit or cancel-commit, discard-changes, copy-config,
lock/unlock, validate).  The other sessions meanwhile send everything else:
reads (get, get-config, get-data, with filters and with-defaults), get-schema,
create-subscription, kill-session, YANG RPCs and actions, close-session,
messages from the grammar with random byte mutations (flips, truncation,
duplicated or dropped elements, wrong namespaces, huge attributes; edits only
towards startup), new sessions with random or broken hellos, and broken
chunked framing.  Invariants:

- every well-framed message is answered by exactly one well-formed
  ``rpc-reply`` carrying its message-id, in order (notifications aside); a
  broken frame or hello ends that session only;
- no reply is the ``operation-failed`` of an internal exception;
- after every round running and the candidate equal the model
  (:mod:`tests.fuzz.restconf_model`, read back over RESTCONF);
- the server stays up, and its log holds no traceback or ERROR (checked by
  the caller after the run).

:func:`run` is the long run (``tools/fuzz_netconf.py``); the CI subset is
``tests/netconf/test_fuzz_grammar.py``.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree import ElementTree

import asyncssh
import httpx

from nfo.wire.framing import Decoder, FramingError, encode_chunked, encode_eom
from tests.fuzz.restconf_fuzz import ADDRS, BAD_KEYS, COLOURS, INTS, KEYS, STRINGS, _xml
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
    xml_safe,
)
from tests.fuzz.server import PASSWORD, ServerProcess

__all__ = ["NetconfFuzz", "Stats", "run"]

NC = "urn:ietf:params:xml:ns:netconf:base:1.0"
NMDA = "urn:ietf:params:xml:ns:yang:ietf-netconf-nmda"
DS = "urn:ietf:params:xml:ns:yang:ietf-datastores"
WD = "urn:ietf:params:xml:ns:yang:ietf-netconf-with-defaults"
MON = "urn:ietf:params:xml:ns:yang:ietf-netconf-monitoring"
NOTIF = "urn:ietf:params:xml:ns:netconf:notification:1.0"
YANG = "urn:ietf:params:xml:ns:yang:1"
INST = "urn:nfo:instances"
BASE10 = "urn:ietf:params:netconf:base:1.0"
BASE11 = "urn:ietf:params:netconf:base:1.1"
EXCUSED = ("lock-denied", "in-use")
"""Errors the writer may get because another session holds a lock."""
REPLY_TIMEOUT = 60.0


class Broken(AssertionError):
    """An invariant failed."""


@dataclass
class Stats:
    cases: int = 0
    rounds: int = 0
    sessions: int = 0
    applied: int = 0
    refused: int = 0
    closed_on_purpose: int = 0
    started: float = field(default_factory=time.monotonic)


# -- the grammar ---------------------------------------------------------------------------

def _pick(rng: random.Random, pools: tuple[list[Json], list[Json]], bad: float = 0.1) -> Json:
    valid, invalid = pools
    return rng.choice(invalid if rng.random() < bad else valid)


def _key(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(["a", "b", "c"])
    return rng.choice(KEYS if rng.random() < 0.9 else BAD_KEYS)


def value_for(rng: random.Random, node: Node, model: Model, depth: int = 0) -> Json:
    n = node.name
    if node.kind == "leaf":
        if n in INTS:
            return _pick(rng, INTS[n])
        if n == "colour":
            return _pick(rng, COLOURS)
        if n == "addr":
            return _pick(rng, ADDRS)
        if n == "ref":
            return rng.choice([*(t["id"] for t in model.top.get("thing", [])), "a", "zz"])
        if n == "label":
            return rng.choice(["l1", "l2", "l3"])
        if n in ("name", "id", "a") and depth > 0:
            return _key(rng)
        return rng.choice(STRINGS + KEYS)
    if node.kind == "leaf-list":
        pool = INTS["sorted"][0] if n == "sorted" else None
        vals = [rng.choice(pool) if pool else _key(rng) for _ in range(rng.randint(1, 3))]
        return list(dict.fromkeys(vals))
    if node.kind == "list":
        return [entry_for(rng, node, model) for _ in range(rng.randint(1, 2))]
    return {c.name: value_for(rng, c, model, depth + 1) for c in node.children
            if rng.random() < 0.2}


def entry_for(rng: random.Random, node: Node, model: Model,
              key: tuple[Json, ...] | None = None) -> dict[str, Json]:
    e: dict[str, Json] = {}
    for i, k in enumerate(node.keys):
        sn = node.child(k)
        assert sn is not None
        e[k] = key[i] if key is not None else value_for(rng, sn, model, 1)
    for c in node.children:
        if c.name not in node.keys and rng.random() < (0.9 if c.name == "needed" else 0.4):
            e[c.name] = value_for(rng, c, model, 1)
    return e


def _n(parent: Node, name: str) -> Node:
    c = parent.child(name)
    assert c is not None
    return c


def target_for(rng: random.Random, model: Model) -> Target:
    top = Step(TOP)
    what = rng.choice(["top", "leaf", "tags", "item", "item-leaf", "pair", "thing",
                       "thing-leaf", "extra", "extra-leaf", "sorted"])
    if what == "top":
        return Target((top,))
    if what == "leaf":
        return Target((top, Step(_n(TOP, rng.choice(["name", "count", "colour", "addr",
                                                     "radius", "side"])))))
    if what in ("tags", "sorted"):
        node = _n(TOP, what)
        have = model.top.get(what, [])
        v = rng.choice(have) if have and rng.random() < 0.5 else (
            rng.choice(INTS["sorted"][0]) if what == "sorted" else _key(rng))
        return Target((top, Step(node, (v,))))
    if what.startswith("extra"):
        extra = _n(TOP, "extra")
        if what == "extra":
            return Target((top, Step(extra)))
        return Target((top, Step(extra), Step(_n(extra, rng.choice(["level", "only-when"])))))
    node = _n(TOP, what.split("-")[0])
    existing = [key_of(node, e) for e in model.top.get(node.name, [])]
    if existing and rng.random() < 0.5:
        key = rng.choice(existing)
    elif node.name == "pair":
        key = (rng.choice(["a", "b"]), rng.choice([0, 1, -128]))
    else:
        key = (_key(rng),)
    step = Step(node, key)
    if what.endswith("-leaf"):
        leaf = rng.choice([c for c in node.children if c.name not in node.keys])
        return Target((top, step, Step(leaf)))
    return Target((top, step))


def _esc(s: str) -> str:
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(
        "\r", "&#13;")


def config_xml(t: Target, op: str | None, value: Json) -> str:
    """The content of <config> that applies ``op`` (None: the default operation) with
    ``value`` (the target's data, None for delete/remove) at ``t``."""
    attr = f' nc:operation="{op}"' if op else ""
    node = t.node
    s = t.steps[-1]
    if node.kind == "leaf-list":
        assert s.key is not None
        inner = f"<{node.name}{attr}>{_esc(str(s.key[0]))}</{node.name}>"
    elif node.kind == "list":
        entry = value if isinstance(value, dict) else dict(zip(node.keys, s.key or (),
                                                               strict=True))
        body = _xml(node, [entry], False)
        inner = body.replace(f"<{node.name}>", f"<{node.name}{attr}>", 1)
    elif value is None:
        inner = f"<{node.name}{attr}/>"
    else:
        body = _xml(node, value, False)
        inner = body.replace(f"<{node.name}", f"<{node.name}{attr}", 1)
    for step in reversed(t.steps[:-1]):
        n = step.node
        keys = ""
        if n.kind == "list":
            keys = "".join(f"<{k}>{_esc(str(v))}</{k}>"
                           for k, v in zip(n.keys, step.key or (), strict=True))
        xmlns = f' xmlns="{NS}" xmlns:nc="{NC}"' if step is t.steps[0] else ""
        inner = f"<{n.name}{xmlns}>{keys}{inner}</{n.name}>"
    if len(t.steps) == 1:
        inner = inner.replace(f"<{TOP.name}", f'<{TOP.name} xmlns="{NS}" xmlns:nc="{NC}"', 1)
    return inner


def rpc(mid: int, body: str, extra_attrs: str = "") -> bytes:
    return f'<rpc message-id="{mid}" xmlns="{NC}"{extra_attrs}>{body}</rpc>'.encode(
        "utf-8", "surrogatepass")


FILTERS = [
    "", f'<filter type="subtree"><top xmlns="{NS}"/></filter>',
    f'<filter type="subtree"><top xmlns="{NS}"><item><name>a</name></item></top></filter>',
    f'<filter type="subtree"><top xmlns="{NS}"><item><name/><size/></item></top></filter>',
    f'<filter type="xpath" xmlns:t="{NS}" select="/t:top/t:item[t:name=\'a\']"/>',
    f'<filter type="xpath" xmlns:t="{NS}" select="/t:top/*"/>',
    '<filter type="xpath" select="/nope:x"/>', '<filter type="bogus"/>',
    '<filter type="subtree"><top xmlns="urn:nowhere"/></filter>',
    f'<filter type="subtree"><netconf-state xmlns="{MON}"><sessions/></netconf-state></filter>',
    '<filter type="xpath" select="count(//*) > 1"/>', '<filter type="subtree"></filter>',
]
WITH_DEFAULTS = ["", "report-all", "trim", "explicit", "report-all-tagged", "bogus"]


def read_op(rng: random.Random) -> str:
    """A read, or another operation that changes nothing the model holds."""
    kind = rng.choice(["get", "get-config", "get-data", "get-schema", "validate",
                       "lock-startup", "kill", "rpc", "action", "subscribe", "unknown",
                       "copy-startup", "edit-startup", "delete-startup"])
    flt = rng.choice(FILTERS)
    wd = rng.choice(WITH_DEFAULTS)
    wdx = f'<with-defaults xmlns="{WD}">{wd}</with-defaults>' if wd else ""
    if kind == "get":
        return f"<get>{flt}{wdx}</get>"
    if kind == "get-config":
        src = rng.choice(["running", "candidate", "startup", "nope"])
        return f"<get-config><source><{src}/></source>{flt}{wdx}</get-config>"
    if kind == "get-data":
        ds = rng.choice(["running", "candidate", "startup", "operational", "intended", "nope"])
        parts = [f'<datastore xmlns:ds="{DS}">ds:{ds}</datastore>']
        if rng.random() < 0.3:
            parts.append(f'<xpath-filter xmlns:t="{NS}">/t:top</xpath-filter>')
        elif rng.random() < 0.3:
            parts.append(f'<subtree-filter><top xmlns="{NS}"/></subtree-filter>')
        if rng.random() < 0.3:
            parts.append(f"<config-filter>{rng.choice(['true', 'false', 'x'])}</config-filter>")
        if rng.random() < 0.3:
            parts.append(f"<max-depth>{rng.choice(['1', '2', 'unbounded', '0', 'x'])}"
                         "</max-depth>")
        if rng.random() < 0.2:
            parts.append("<with-origin/>")
        if rng.random() < 0.2:
            parts.append('<origin-filter xmlns:or="urn:ietf:params:xml:ns:yang:ietf-origin">'
                         f"or:{rng.choice(['intended', 'learned', 'nope'])}</origin-filter>")
        return f'<get-data xmlns="{NMDA}">{"".join(parts)}{wdx}</get-data>'
    if kind == "get-schema":
        ident = rng.choice(["nfo-test", "ietf-netconf", "nope", ""])
        ver = rng.choice(["", "<version>2026-11-25</version>", "<version>1999-01-01</version>"])
        fmt = rng.choice(["", "<format>yang</format>", "<format>yin</format>"])
        return f'<get-schema xmlns="{MON}"><identifier>{ident}</identifier>{ver}{fmt}</get-schema>'
    if kind == "validate":
        src = rng.choice(["<running/>", "<candidate/>", "<startup/>",
                          f'<config><top xmlns="{NS}"><name>v</name></top></config>',
                          f'<config><top xmlns="{NS}"><count>x</count></top></config>'])
        return f"<validate><source>{src}</source></validate>"
    if kind == "lock-startup":
        op = rng.choice(["lock", "unlock"])
        return f"<{op}><target><startup/></target></{op}>"
    if kind == "kill":
        sid = rng.choice(["99999", "0", "x", "", "-1", "4294967296"])
        return f"<kill-session><session-id>{sid}</session-id></kill-session>"
    if kind == "rpc":
        return rng.choice([f'<ping xmlns="{NS}"><msg>hi</msg></ping>', f'<ping xmlns="{NS}"/>',
                           f'<ping xmlns="{NS}"><msg>hi</msg><bogus/></ping>'])
    if kind == "action":
        return (f'<action xmlns="{YANG}"><nf-instances xmlns="{INST}"><nf-instance>'
                f"<name>nope</name><{rng.choice(['restart', 'redeploy', 'bogus'])}/>"
                "</nf-instance></nf-instances></action>")
    if kind == "subscribe":
        parts = []
        if rng.random() < 0.5:
            parts.append(f"<stream>{rng.choice(['NETCONF', 'nope', 'nfo-test'])}</stream>")
        if rng.random() < 0.3:
            parts.append("<startTime>2000-01-01T00:00:00Z</startTime>")
        if rng.random() < 0.2:
            parts.append("<stopTime>1999-01-01T00:00:00Z</stopTime>")
        if rng.random() < 0.3:
            parts.append(f'<filter type="subtree"><bell xmlns="{NS}"/></filter>')
        return f'<create-subscription xmlns="{NOTIF}">{"".join(parts)}</create-subscription>'
    if kind == "copy-startup":
        src = rng.choice(["<running/>", "<candidate/>", "<startup/>",
                          f'<config><top xmlns="{NS}"><name>s</name></top></config>',
                          "<url>file:///etc/passwd</url>"])
        return f"<copy-config><target><startup/></target><source>{src}</source></copy-config>"
    if kind == "edit-startup":
        return (f"<edit-config><target><startup/></target><config>"
                f'<top xmlns="{NS}"><name>{_esc(rng.choice(STRINGS))}</name></top>'
                "</config></edit-config>")
    if kind == "delete-startup":
        return "<delete-config><target><startup/></target></delete-config>"
    return rng.choice(["<frobnicate/>", "<get-config/>", "<edit-config/>", "<lock/>",
                       "<commit><confirm-timeout>x</confirm-timeout></commit>".replace(
                           "commit", "commitx"),
                       '<get xmlns="urn:wrong"/>', "", "<get/><get/>"])


def mutate(rng: random.Random, msg: bytes) -> bytes:
    """A random mutation of a message (for the sessions whose messages change nothing)."""
    how = rng.choice(["flip", "flips", "truncate", "duplicate", "drop", "namespace", "huge",
                      "utf8", "nul", "entity", "deep", "attrs"])
    b = bytearray(msg)
    if how == "flip" and b:
        b[rng.randrange(len(b))] = rng.randrange(256)
    elif how == "flips":
        for _ in range(rng.randint(2, 8)):
            if b:
                b[rng.randrange(len(b))] = rng.choice(b"<>/=\"' &;:#x0\xff\x00")
    elif how == "truncate" and len(b) > 1:
        del b[rng.randrange(1, len(b)):]
    elif how in ("duplicate", "drop"):
        i = msg.find(b"><", rng.randrange(max(1, len(msg))))
        j = msg.find(b"><", i + 1) if i >= 0 else -1
        if i >= 0 and j > i:
            piece = msg[i + 1:j + 1]
            return msg[:j + 1] + piece + msg[j + 1:] if how == "duplicate" else (
                msg[:i + 1] + msg[j + 1:])
    elif how == "namespace":
        return msg.replace(NC.encode(), rng.choice([b"urn:wrong", b"", NMDA.encode()]), 1)
    elif how == "huge":
        return msg.replace(b"<rpc ", b'<rpc a="' + b"x" * rng.choice([1000, 300_000]) + b'" ', 1)
    elif how == "utf8":
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.choice([b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
    elif how == "nul":
        b[rng.randrange(len(b) + 1):0] = b"\x00"
    elif how == "entity":
        return b'<!DOCTYPE rpc [<!ENTITY e "x">]>' + msg.replace(b"</rpc>", b"&e;</rpc>")
    elif how == "deep":
        n = rng.choice([300, 3000])
        return msg.replace(b"</rpc>", b"<a>" * n + b"</a>" * n + b"</rpc>")
    elif how == "attrs":
        attrs = b" ".join(b'a%d="1"' % i for i in range(rng.choice([70, 1000])))
        return msg.replace(b"<rpc ", b"<rpc " + attrs + b" ", 1)
    return bytes(b)


# -- sessions -------------------------------------------------------------------------------

class Session:
    """One NETCONF session over a raw asyncssh channel."""

    def __init__(self, fuzz: NetconfFuzz, name: str) -> None:
        self.fuzz = fuzz
        self.name = name
        self.conn: asyncssh.SSHClientConnection | None = None
        self.w: asyncssh.SSHWriter[bytes] | None = None
        self.r: asyncssh.SSHReader[bytes] | None = None
        self.dec = Decoder()
        self.chunked = False
        self.session_id = ""
        self.mid = 0

    async def open(self, hello: bytes | None = None) -> bool:
        """Connect and exchange hellos; False when the server (rightly) closed the
        session because of a broken ``hello``."""
        await self.close()
        rng = self.fuzz.rng
        self.conn = await asyncssh.connect(
            "127.0.0.1", self.fuzz.server.netconf_port, username="admin", password=PASSWORD,
            known_hosts=None, client_keys=None, agent_path=None)
        self.w, self.r, _ = await self.conn.open_session(subsystem="netconf", encoding=None)
        self.dec = Decoder()
        server_hello = await self.next_message()
        root = _parse(server_hello, "server hello")
        sid = root.find(f"{{{NC}}}session-id")
        self.session_id = sid.text or "" if sid is not None else ""
        self.fuzz.stats.sessions += 1
        if hello is not None:
            self.fuzz.stats.cases += 1
            self.w.write(encode_eom(hello))
            await self.expect_closed("a broken hello")
            return False
        base11 = rng.random() < 0.7
        caps = [BASE10] if rng.random() < 0.8 or not base11 else []
        if base11:
            caps.append(BASE11)
        caps += rng.sample(["urn:ietf:params:netconf:capability:candidate:1.0",
                            "urn:example:nothing", "x" * 300, "", "urn:ietf:params:netconf:"
                            "capability:notification:1.0"], rng.randint(0, 3))
        rng.shuffle(caps)
        text = "".join(f"<capability>{_esc(c)}</capability>" for c in caps)
        self.fuzz.stats.cases += 1
        await self.send_raw(encode_eom(f'<hello xmlns="{NC}"><capabilities>{text}'
                                       "</capabilities></hello>".encode()))
        self.chunked = self.dec.chunked = base11
        return True

    async def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            await self.conn.wait_closed()
        self.conn = self.w = self.r = None

    async def send_raw(self, data: bytes, *, may_close: bool = False) -> None:
        """Write ``data`` in random pieces (the server sees split reads); with
        ``may_close`` the data breaks the framing, so the server may close the channel
        before the last piece is written."""
        assert self.w is not None
        rng = self.fuzz.rng
        if rng.random() < 0.5 or len(data) < 2:
            self.w.write(data)
            return
        cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 6))))
        prev = 0
        for c in [*cuts, len(data)]:
            try:
                self.w.write(data[prev:c])
            except BrokenPipeError:
                if not may_close:
                    raise
                return
            prev = c
            await asyncio.sleep(0)

    def frame(self, msg: bytes) -> bytes:
        if not self.chunked:
            return encode_eom(msg)
        if not msg:
            msg = b" "
        return encode_chunked(msg, self.fuzz.rng.choice([1, 7, 64, 4096, 65536]))

    async def next_message(self) -> bytes:
        assert self.r is not None
        while (m := self.dec.next()) is None:
            data = await asyncio.wait_for(self.r.read(65536), REPLY_TIMEOUT)
            if not data:
                raise EOFError
            self.dec.feed(data)
        return m

    async def reply(self) -> ElementTree.Element:
        """The next rpc-reply (notifications are skipped)."""
        while True:
            try:
                m = await self.next_message()
            except TimeoutError:
                raise Broken(f"{self.name}: no reply within {REPLY_TIMEOUT} s (a hang)") from None
            except EOFError:
                raise Broken(f"{self.name}: the server closed the session instead of "
                             "replying") from None
            root = _parse(m, f"{self.name}: reply")
            if root.tag == f"{{{NOTIF}}}notification":
                continue
            if root.tag != f"{{{NC}}}rpc-reply":
                raise Broken(f"{self.name}: not an rpc-reply: {m[:300]!r}")
            for err in root.iter(f"{{{NC}}}error-message"):
                if "internal error" in (err.text or ""):
                    raise Broken(f"{self.name}: an internal error: {m[:1000]!r}")
            return root

    async def expect_closed(self, why: str) -> None:
        """The server must end the session (and may say nothing more)."""
        assert self.r is not None
        try:
            while True:
                data = await asyncio.wait_for(self.r.read(65536), REPLY_TIMEOUT)
                if not data:
                    break
                self.dec.feed(data)
                while (m := self.dec.next()) is not None:
                    root = _parse(m, "before closing")
                    if root.tag not in (f"{{{NOTIF}}}notification", f"{{{NC}}}rpc-reply"):
                        raise Broken(f"{self.name}: after {why}: {m[:200]!r}")
        except TimeoutError:
            raise Broken(f"{self.name}: the session stayed open after {why}") from None
        except Exception as e:  # a decoder error on what came before: not ours to judge
            if isinstance(e, Broken):
                raise
        self.fuzz.stats.closed_on_purpose += 1
        await self.close()

    async def call(self, body: str) -> ElementTree.Element:
        """Send one rpc and return its reply (with the message-id checked)."""
        self.mid += 1
        mid = self.mid
        self.fuzz.stats.cases += 1
        msg = rpc(mid, body)
        await self.send_raw(self.frame(msg))
        root = await self.reply()
        try:
            ElementTree.fromstring(msg)
        except ElementTree.ParseError:  # (a value XML cannot carry): no message-id to echo
            return root
        if root.get("message-id") != str(mid):
            raise Broken(f"{self.name}: reply to message {mid} carries message-id "
                         f"{root.get('message-id')!r}: {ElementTree.tostring(root)[:600]!r}")
        return root


def _parse(m: bytes, what: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(m)
    except ElementTree.ParseError as e:
        raise Broken(f"{what}: not well-formed XML ({e}): {m[:500]!r}") from None


def ok(root: ElementTree.Element) -> bool:
    return root.find(f"{{{NC}}}ok") is not None and root.find(f"{{{NC}}}rpc-error") is None


def tags(root: ElementTree.Element) -> list[str]:
    return [e.text or "" for e in root.iter(f"{{{NC}}}error-tag")]


# -- the fuzzer -----------------------------------------------------------------------------

@dataclass
class Pending:
    """A confirmed commit awaiting its confirming commit or cancel-commit."""

    saved: dict[str, Json]
    persist: str | None


class NetconfFuzz:
    def __init__(self, server: ServerProcess, seed: int, sessions: int = 3,
                 log: Callable[[str], None] = print) -> None:
        self.server = server
        self.rng = random.Random(seed)
        self.stats = Stats()
        self.log = log
        self.model = Model(patch=True)
        self.cand: Model | None = None
        self.pending: Pending | None = None
        self.sessions = [Session(self, f"s{i}") for i in range(sessions)]
        self.trace: list[str] = []
        self.http = httpx.AsyncClient(base_url=server.base, auth=("admin", PASSWORD),
                                      timeout=60, headers={"Accept": "application/yang-data+json"})

    # -- the model's view
    async def read_back(self) -> None:
        for ds, model in (("running", self.model), ("candidate", self.cand or self.model)):
            r = await self.http.get(f"/restconf/ds/ietf-datastores:{ds}/{MOD}:top")
            if r.status_code not in (200, 404):
                raise Broken(f"reading {ds}: {r.status_code} {r.text[:300]}")
            got = canonical(json.loads(r.text)[f"{MOD}:top"]) if r.status_code == 200 else None
            if got != model.snapshot():
                raise Broken(f"{ds} differs from the model:\n server {got}\n model  "
                             f"{model.snapshot()}\n the writer's last operations:\n  "
                             + "\n  ".join(self.trace))

    async def reset(self) -> None:
        r = await self.http.delete(f"/restconf/data/{MOD}:top")
        if r.status_code not in (204, 404):
            raise Broken(f"reset: {r.status_code} {r.text}")
        self.model = Model(patch=True)

    # -- the writer's operations
    def expect(self, root: ElementTree.Element, outcome: dict[str, Json] | None, what: str,
               apply: Callable[[dict[str, Json]], None]) -> None:
        self.trace = [*self.trace[-7:], f"{what[:600]} -> {'ok' if ok(root) else tags(root)}"]
        if outcome is None:
            if ok(root):
                raise Broken(f"the model refuses, the server accepted: {what}\n model: "
                             f"{self.model.snapshot()} candidate: "
                             f"{self.cand.snapshot() if self.cand else '(running)'}")
            self.stats.refused += 1
            return
        if not ok(root):
            if set(tags(root)) & set(EXCUSED):
                self.stats.refused += 1
                return
            raise Broken(f"the model accepts, the server refused: {what}\n "
                         f"{ElementTree.tostring(root)[:800]!r}\n model: {self.model.snapshot()}")
        apply(outcome)
        self.stats.applied += 1

    async def write_op(self, s: Session) -> None:
        rng = self.rng
        kind = rng.choice(["edit"] * 6 + ["edit-data", "commit", "confirmed", "discard",
                                          "lock", "copy", "validate"])
        if kind in ("edit", "edit-data"):
            await self.edit(s, kind == "edit-data")
        elif kind == "commit":
            root = await s.call("<commit/>")
            if self.pending is not None:
                self.expect(root, {} if self.pending.persist is None else None,
                            "<commit/> confirming", lambda _: self._confirmed())
                return
            self.expect(root, self.commit_outcome(), "<commit/>", self._committed)
        elif kind == "confirmed":
            await self.confirmed(s)
        elif kind == "discard":
            root = await s.call("<discard-changes/>")
            self.expect(root, {}, "<discard-changes/>", lambda _: self._discarded())
        elif kind == "lock":
            ds = rng.choice(["running", "candidate"])
            for op in ("lock", "unlock"):
                root = await s.call(f"<{op}><target><{ds}/></target></{op}>")
                if op == "lock" and not ok(root) and ds == "running":
                    raise Broken(f"lock {ds} refused: {ElementTree.tostring(root)[:500]!r}")
        elif kind == "copy":
            root = await s.call("<copy-config><target><candidate/></target><source><running/>"
                                "</source></copy-config>")
            self.expect(root, {}, "copy-config running -> candidate",
                        lambda _: self._copied())
        else:
            src = rng.choice(["running", "candidate"])
            root = await s.call(f"<validate><source><{src}/></source></validate>")
            # the candidate may hold invalid data (test-option set); running never does
            valid = src == "running" or self.commit_outcome() is not None
            if ok(root) != valid:
                raise Broken(f"validate {src}: the model says {'valid' if valid else 'invalid'}"
                             f": {ElementTree.tostring(root)[:500]!r}\n candidate: "
                             f"{self.cand.snapshot() if self.cand else '(running)'}")

    def _committed(self, new: dict[str, Json]) -> None:
        self.model.install(json.loads(json.dumps(new)))
        self.cand = None

    def _discarded(self) -> None:
        self.cand = None

    def _copied(self) -> None:
        """copy-config running -> candidate: an edited candidate becomes a copy of running
        (it no longer follows running); one never edited still is running (the copy
        changes nothing)."""
        if self.cand is not None:
            self.cand = Model(json.loads(json.dumps(self.model.top)))

    async def candidate_now(self) -> Model:
        """The candidate as the server holds it: edits to it are validated only when
        committed, so the model takes its content from the server and predicts the
        commit."""
        r = await self.http.get(f"/restconf/ds/ietf-datastores:candidate/{MOD}:top")
        if r.status_code not in (200, 404):
            raise Broken(f"reading the candidate: {r.status_code} {r.text[:300]}")
        return Model(json.loads(r.text)[f"{MOD}:top"] if r.status_code == 200 else {})

    def _confirmed(self) -> None:
        self.pending = None

    async def confirmed(self, s: Session) -> None:
        if self.pending is not None:
            return
        persist = "p1" if self.rng.random() < 0.5 else None
        body = "<commit><confirmed/><confirm-timeout>300</confirm-timeout>" + (
            f"<persist>{persist}</persist>" if persist else "") + "</commit>"
        root = await s.call(body)
        saved = json.loads(json.dumps(self.model.top))
        new = self.commit_outcome()

        def start(tree: dict[str, Json]) -> None:
            self._committed(tree)
            self.pending = Pending(saved, persist)
        self.expect(root, new, body, start)
        if self.pending is None:
            return
        if self.rng.random() < 0.5:
            pid = f"<persist-id>{persist}</persist-id>" if persist else ""
            root = await s.call(f"<cancel-commit>{pid}</cancel-commit>")

            def cancel(_: dict[str, Json]) -> None:
                assert self.pending is not None
                self.model.install(self.pending.saved)
                self.pending = None
                self.cand = None
            self.expect(root, {}, "cancel-commit", cancel)
        else:
            await self.finish_pending(s)

    def commit_outcome(self) -> dict[str, Json] | None:
        if self.cand is None:
            return self.model.top
        try:
            return self.model.validate(json.loads(json.dumps(self.cand.top)))
        except Invalid:
            return None

    async def finish_pending(self, s: Session) -> None:
        if self.pending is None:
            return
        pid = f"<persist-id>{self.pending.persist}</persist-id>" if self.pending.persist else ""
        root = await s.call(f"<commit>{pid}</commit>")
        self.expect(root, {}, "confirming commit", lambda _: self._confirmed())

    async def edit(self, s: Session, nmda: bool) -> None:
        rng = self.rng
        ds = "running" if rng.random() < 0.6 else "candidate"
        base = self.model if ds == "running" else (self.cand or self.model)
        # (default-operation replace would replace the whole datastore, accounts included)
        default = rng.choice(["", "merge", "merge", "none", "bogus"])
        test = rng.choice(["", "", "test-then-set", "set", "test-only", "bogus"]) if not nmda \
            else ""
        error = rng.choice(["", "", "rollback-on-error", "stop-on-error",
                            "continue-on-error"]) if not nmda else ""
        if default == "replace":
            t = Target((Step(TOP),))
            op = None
            value: Json = value_for(rng, TOP, base)
        else:
            t = target_for(rng, base)
            op = rng.choice(["merge", "replace", "create", "delete", "remove", None,
                             "bogus"] if default != "none" else
                            ["merge", "replace", "create", "delete", "remove"])
            value = None
            if op in ("merge", "replace", "create", None, "bogus"):
                value = entry_for(rng, t.node, base, t.steps[-1].key) \
                    if t.node.kind == "list" else (
                        None if t.node.kind == "leaf-list" else value_for(rng, t.node, base,
                                                                          len(t.steps) - 1))
            elif t.node.kind == "leaf":
                cur = base._find(base.top, t)
                value = cur if cur is not None else value_for(rng, t.node, base, 1)
        config = config_xml(t, op, value)
        params = ""
        if nmda:
            params = f'<datastore xmlns:ds="{DS}">ds:{ds}</datastore>'
        else:
            params = f"<target><{ds}/></target>"
        if default:
            params += f"<default-operation>{default}</default-operation>"
        if test:
            params += f"<test-option>{test}</test-option>"
        if error:
            params += f"<error-option>{error}</error-option>"
        op_el = f'<edit-data xmlns="{NMDA}">' if nmda else "<edit-config>"
        end = "</edit-data>" if nmda else "</edit-config>"
        body = f"{op_el}{params}<config>{config}</config>{end}"
        root = await s.call(body)
        if ds == "candidate":
            self.trace = [*self.trace[-7:], f"candidate: {body[:600]} -> "
                          f"{'ok' if ok(root) else tags(root)}"]
            if ok(root) and test != "test-only":
                cand = await self.candidate_now()
                # a candidate still following running keeps following it when the edit
                # changed nothing; once edited it stays a copy until commit or discard
                if self.cand is not None or cand.snapshot() != self.model.snapshot():
                    self.cand = cand
            return
        outcome = self.predict_edit(base, t, op, value, default, test, error)

        def apply(tree: dict[str, Json]) -> None:
            if test != "test-only":
                self.model.install(tree)
        self.expect(root, outcome, f"{ds}: {body}", apply)

    def predict_edit(self, base: Model, t: Target, op: str | None, value: Json, default: str,
                     test: str, error: str) -> dict[str, Json] | None:
        if default == "bogus" or test == "bogus" or op == "bogus" or \
                error == "continue-on-error":
            return None
        try:
            nc = op or default or "merge"
            _check_body_keys(t, nc, default)
            if nc == "none":
                return json.loads(json.dumps(base.top))
            v = _canonical_value(t, value, nc)
            if t.node.kind == "leaf" and len(t.steps) > 2 and \
                    t.node.name in t.steps[-2].node.keys:
                return None
            tree, _ = base.edit(t, nc, v, merge_parents=default != "none")
            return tree
        except Invalid:
            return None

    # -- everything else, meanwhile
    async def other_ops(self, s: Session) -> None:
        rng = self.rng
        for _ in range(rng.randint(1, 4)):
            if s.conn is None:
                opened = await s.open(self.bad_hello() if rng.random() < 0.05 else None)
                if not opened:
                    continue
            r = rng.random()
            if r < 0.03 and s.chunked:
                self.stats.cases += 1
                await s.send_raw(rng.choice([b"\n#abc\n<rpc/>", b"\n#0\n", b"\n##\n",
                                             b"\n#99999999999\n", b"junk\n#5\nhello\n##\n",
                                             b"\n#3\nabcd\n##\n"]), may_close=True)
                await s.expect_closed("a broken chunk header")
                continue
            if r < 0.06:
                root = await s.call("<close-session/>")
                if not ok(root):
                    raise Broken(f"close-session refused: {ElementTree.tostring(root)!r}")
                await s.expect_closed("close-session")
                continue
            body = read_op(rng)
            if r < 0.5 or body.startswith("<kill-session"):
                await self.pipelined(s, [body, read_op(rng)] if rng.random() < 0.3 else [body])
                continue
            s.mid += 1
            msg = mutate(rng, rpc(s.mid, body))
            if not msg:
                msg = b" "
            self.stats.cases += 1
            if not s.chunked and b"]]>]]>" in msg:
                msg = msg.replace(b"]]>]]>", b"]]>]>")
            await s.send_raw(s.frame(msg))
            if len(msg) > 16 * 1024 * 1024:
                await s.expect_closed("an oversize message")
                continue
            await s.reply()

    async def pipelined(self, s: Session, bodies: list[str]) -> None:
        mids = []
        data = b""
        for b in bodies:
            s.mid += 1
            mids.append(s.mid)
            data += s.frame(rpc(s.mid, b))
            self.stats.cases += 1
        await s.send_raw(data)
        for mid in mids:
            root = await s.reply()
            if root.get("message-id") != str(mid):
                raise Broken(f"{s.name}: reply {root.get('message-id')!r} for message {mid}")

    def bad_hello(self) -> bytes:
        return self.rng.choice([
            b"not xml", f'<hello xmlns="{NC}"/>'.encode(),
            f'<hello xmlns="{NC}"><capabilities><capability>urn:x</capability></capabilities>'
            "</hello>".encode(),
            f'<hello xmlns="{NC}"><capabilities><capability>{BASE10}</capability>'
            "</capabilities><session-id>4</session-id></hello>".encode(),
            f'<rpc message-id="1" xmlns="{NC}"><get/></rpc>'.encode(),
            b'<!DOCTYPE hello [<!ENTITY e "x">]><hello/>', b"\xff\xfe<\x00h\x00",
        ])

    # -- rounds
    async def round(self) -> None:
        rng = self.rng
        for s in self.sessions:
            if s.conn is None:
                await s.open()
        writer = rng.choice(self.sessions)
        others = [s for s in self.sessions if s is not writer]

        async def write() -> None:
            for _ in range(rng.randint(1, 3)):
                await self.write_op(writer)
            await self.finish_pending(writer)
        await asyncio.gather(write(), *(self.other_ops(s) for s in others))
        self.stats.rounds += 1
        if not self.server.alive():
            raise Broken("the server died")
        await self.read_back()

    async def recover(self) -> None:
        """After a failure: fresh sessions, no pending commit, candidate and data reset."""
        for s in self.sessions:
            try:
                await s.close()
            except (asyncssh.Error, OSError):
                s.conn = s.w = s.r = None
        s = self.sessions[0]
        await s.open()
        if self.pending is not None:
            pid = f"<persist-id>{self.pending.persist}</persist-id>" if self.pending.persist \
                else ""
            await s.call(f"<cancel-commit>{pid}</cancel-commit>")
            self.pending = None
        await s.call("<discard-changes/>")
        self.cand = None
        await self.reset()

    async def close(self) -> None:
        for s in self.sessions:
            await s.close()
        await self.http.aclose()


def _check_body_keys(t: Target, op: str, default: str) -> None:
    """Keys in a NETCONF body (not a URI): characters XML cannot carry are refused by the
    parser; a key holding both quote characters only where the edit would create its
    entry (nfo refuses to create what no path could address)."""
    for i, s in enumerate(t.steps):
        for k in s.key or ():
            if not isinstance(k, str):
                continue
            if not xml_safe(k):
                raise Invalid("a key XML cannot carry")
            if "'" in k and '"' in k and not (
                    op in ("remove", "delete", "none")
                    and (i == len(t.steps) - 1 or default == "none")):
                raise Invalid("a key holding both quotes")


def _canonical_value(t: Target, value: Json, op: str) -> Json:
    """The model's value of what the config element carries for ``t``."""
    node = t.node
    if op in ("delete", "remove"):
        if node.kind == "leaf":
            # nfo parses the element's text even here: a value its type refuses is
            # invalid-value, not a delete
            value_error(node, "" if value is None else value, True)
        return None
    if node.kind == "leaf-list":
        assert t.steps[-1].key is not None
        return value_error(node, [t.steps[-1].key[0]], True)[0]
    if node.kind == "list":
        return value_error(node, [value], True)[0]
    return value_error(node, value, True)


async def run_async(cases: int, seed: int, server: ServerProcess,
                    log: Callable[[str], None] = print) -> tuple[Stats, list[str]]:
    fuzz = NetconfFuzz(server, seed, log=log)
    failures: list[str] = []
    try:
        await fuzz.reset()
        last = 0
        while fuzz.stats.cases < cases:
            try:
                await fuzz.round()
            except (Broken, asyncssh.Error, OSError, FramingError) as e:
                where = "".join(traceback.format_exception(e)[-9:])
                failures.append(f"round {fuzz.stats.rounds}: {type(e).__name__}: {e}\n{where}")
                log(f"FAILURE in round {fuzz.stats.rounds}: {e}\n{where}")
                if not server.alive() or len(failures) > 20:
                    break
                await fuzz.recover()
            if fuzz.stats.cases - last >= 2000:
                last = fuzz.stats.cases
                el = time.monotonic() - fuzz.stats.started
                log(f"{fuzz.stats.cases} cases, {fuzz.stats.cases / el:.1f}/s, "
                    f"{fuzz.stats.rounds} rounds, {len(failures)} failures, "
                    f"RSS {server.rss_kib()} KiB")
    finally:
        await fuzz.close()
    return fuzz.stats, failures


def run(cases: int, seed: int, server: ServerProcess, log: Callable[[str], None] = print
        ) -> tuple[Stats, list[str]]:
    return asyncio.run(run_async(cases, seed, server, log))

