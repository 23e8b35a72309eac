"""Access control (RFC 8341 NACM): the one place that decides who may read, write,
run and receive what, for every front end.

The rules are the ``ietf-netconf-acm:nacm`` configuration in running, compiled once
per change (:class:`Nacm`).  A session asks :meth:`Nacm.access` for the
:class:`Access` of its :class:`Identity` and keeps nothing: every request sees the
rules as they are now, so a change applies to sessions already open.

Verdicts follow RFC 8341 section 3.4: the rule-lists of the user's groups in order,
the first rule that matches the node (or an ancestor of it: a path matches its
descendants), then ``nacm:default-deny-all`` / ``default-deny-write``, then the
defaults.  Where the RFC leaves room nfo behaves like sysrepo (docs/access-control.md
lists each choice), with three deliberate differences: the ``*`` group matches
every user, reads are filtered *before* a filter or path selects anything (so a
predicate cannot probe hidden values), and ``nfo-security:credential`` nodes stay
hidden from any rule that does not name them by path.

Two evaluators share these semantics: :meth:`Access.allowed` decides one data path
(writes, notifications, actions), :meth:`Access.prune` filters a whole tree for a
read with one XPath evaluation per rule, deciding only where a rule or a mark
changes the verdict.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from nfo.errors import AccessDenied, NfoError
from nfo.schema import AccessMarks, Kind, Node, Schema, Step, Tree, parse_path
from nfo.schema.changes import Change, ChangeCreated, ChangeDeleted, ChangeSet, Run, touch
from nfo.schema.paths import StepCache, schema_path_of, schema_paths

__all__ = [
    "OPERATIONS",
    "Access",
    "Counters",
    "Identity",
    "Nacm",
    "NacmConfig",
    "Rule",
]

log = logging.getLogger(__name__)

NACM_MODULE = "ietf-netconf-acm"
NACM_PATH = "/ietf-netconf-acm:nacm"
OPERATIONS = ("create", "read", "update", "delete", "exec")
_WRITES = frozenset({"create", "update", "delete"})
# Operations that need no exec permission: reads (their data is filtered),
# close-session and discard-changes (RFC 8341 sections 3.2.3 and 3.2.9; as sysrepo).
UNCHECKED_OPERATIONS = frozenset({
    "/ietf-netconf:get", "/ietf-netconf:get-config", "/ietf-netconf-nmda:get-data",
    "/ietf-netconf:close-session", "/ietf-netconf:discard-changes",
})


@dataclass(frozen=True)
class Identity:
    """Who asks: a user authenticated by a front end, or the server itself."""

    user: str
    groups: frozenset[str] = frozenset()
    """Groups the authentication supplied (RFC 8341 external groups)."""
    internal: bool = False
    """The server's own writers and the local recovery command line: never checked,
    and no network login can be one (front ends only make non-internal identities)."""

    @classmethod
    def server(cls, name: str) -> Identity:
        return cls(name, internal=True)


# -- paths ---------------------------------------------------------------------------


def _prefix_of(rule: tuple[Step, ...], steps: tuple[Step, ...]) -> bool:
    """Whether ``rule`` names ``steps`` or an ancestor of it (its predicates, when
    given, must match; a step without them matches every entry)."""
    if len(rule) > len(steps):
        return False
    for r, s in zip(rule, steps, strict=False):
        if r.name != s.name or r.module != s.module:
            return False
        if r.preds and not set(r.preds) <= set(s.preds):
            return False
    return True


# -- configuration -------------------------------------------------------------------

RuleKind = Literal["any", "rpc", "notification", "path"]


@dataclass(frozen=True)
class Rule:
    rank: int
    """Position among all rules (rule-lists in order, rules in order): lower wins."""
    where: str
    """``rule-list/rule`` for messages."""
    module: str | None
    """None for ``*``."""
    kind: RuleKind
    name: str | None
    """rpc-name or notification-name (None for ``*``)."""
    path: str
    """The node-instance-identifier of a ``path`` rule (module names as prefixes)."""
    steps: tuple[Step, ...]
    ops: frozenset[str]
    permit: bool


@dataclass(frozen=True)
class NacmConfig:
    """The ``/nacm`` configuration, compiled."""

    enabled: bool = True
    read_default: bool = True
    write_default: bool = False
    exec_default: bool = True
    external_groups: bool = True
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    """Group -> its user-names."""
    rule_lists: tuple[tuple[frozenset[str], tuple[Rule, ...]], ...] = ()
    """(groups, rules) of each rule-list, in order."""

    @classmethod
    def parse(cls, doc: dict[str, Any]) -> NacmConfig:
        """From RFC 7951 JSON of ``ietf-netconf-acm:nacm`` (the container's content)."""
        groups: dict[str, frozenset[str]] = {}
        g = doc.get("groups")
        for entry in (g.get("group", []) if isinstance(g, dict) else []):
            groups[entry["name"]] = frozenset(entry.get("user-name", []))
        lists = []
        rank = 0
        for rl in doc.get("rule-list", []):
            rules = []
            for r in rl.get("rule", []):
                rules.append(_rule(rank, rl["name"], r))
                rank += 1
            lists.append((frozenset(rl.get("group", [])), tuple(rules)))
        return cls(
            enabled=doc.get("enable-nacm", True) is not False,
            read_default=doc.get("read-default", "permit") == "permit",
            write_default=doc.get("write-default", "deny") == "permit",
            exec_default=doc.get("exec-default", "permit") == "permit",
            external_groups=doc.get("enable-external-groups", True) is not False,
            groups=groups, rule_lists=tuple(lists))

    def groups_of(self, who: Identity) -> frozenset[str]:
        mine = {g for g, users in self.groups.items() if who.user in users}
        if self.external_groups:
            mine |= who.groups
        return frozenset(mine)

    def rules_for(self, who: Identity) -> tuple[Rule, ...]:
        """The rules of the rule-lists that apply to ``who``, in order (``*`` applies to
        every user)."""
        mine = self.groups_of(who)
        return tuple(r for groups, rules in self.rule_lists
                     if "*" in groups or groups & mine for r in rules)


def _rule(rank: int, rule_list: str, r: dict[str, Any]) -> Rule:
    ops_text = str(r.get("access-operations", "*"))
    ops = frozenset(OPERATIONS) if ops_text == "*" else frozenset(ops_text.split())
    module = str(r.get("module-name", "*"))
    kind: RuleKind = "any"
    name: str | None = None
    path = ""
    steps: tuple[Step, ...] = ()
    if "rpc-name" in r:
        kind, name = "rpc", str(r["rpc-name"])
    elif "notification-name" in r:
        kind, name = "notification", str(r["notification-name"])
    elif "path" in r:
        kind, path = "path", str(r["path"])
        steps = parse_path(path)
    return Rule(rank, f"{rule_list}/{r['name']}", None if module == "*" else module, kind,
                None if name == "*" else name, path, steps, ops, r.get("action") == "permit")


_NOT_ENFORCED = NacmConfig(enabled=False)


# -- counters --------------------------------------------------------------------------


@dataclass
class Counters:
    """RFC 8341's denied-* counters, since the server started."""

    operations: int = 0
    data_writes: int = 0
    notifications: int = 0

    def oper_json(self) -> str:
        return json.dumps({"ietf-netconf-acm:nacm": {
            "denied-operations": self.operations,
            "denied-data-writes": self.data_writes,
            "denied-notifications": self.notifications}})


# -- the engine --------------------------------------------------------------------------


class Nacm:
    """The compiled rules of one datastore and its counters."""

    def __init__(self, schema: Schema, running: Callable[[], Tree]) -> None:
        """``running`` gives running's live tree (read, never kept); :meth:`changed`
        hears of every commit to it."""
        self.schema = schema
        self.enforced = schema.implemented(NACM_MODULE)
        """Whether rules apply (False without ietf-netconf-acm in the module set); either
        way a client never reads a credential."""
        self.counters = Counters()
        self._running = running
        self._stale = True
        self._config = NacmConfig()
        self._access: dict[Identity, Access] = {}
        self._structural: dict[str, bool] = {}
        self._unrestricted = Access(self, Identity.server(""), NacmConfig(enabled=False), ())

    def changed(self, changes: Iterable[Change | Run]) -> None:
        """Told of every commit to running: one that touches the rules recompiles them."""
        if touch(changes, NACM_PATH):
            self._stale = True

    @property
    def config(self) -> NacmConfig:
        """The rules as they are in running now."""
        if self._stale:
            self._stale = False
            with self._running().extract(NACM_PATH) as part:
                text = part.print()
            doc = json.loads(text) if text.strip() else {}
            self._config = NacmConfig.parse(doc.get("ietf-netconf-acm:nacm", {}))
            self._access.clear()
        return self._config

    def structural(self, sp: str) -> bool:
        """Whether the node at schema path ``sp`` is a non-presence container
        (structure, not data)."""
        found = self._structural.get(sp)
        if found is None:
            node = self.schema.find(sp)
            found = self._structural[sp] = (node is not None and node.kind is Kind.CONTAINER
                                            and not node.presence)
        return found

    def access(self, who: Identity) -> Access:
        """What ``who`` may do under the rules in running now."""
        if who.internal:
            return self._unrestricted
        config = self.config if self.enforced else _NOT_ENFORCED
        found = self._access.get(who)
        if found is None:
            if len(self._access) > 1024:
                self._access.clear()
            rules = config.rules_for(who) if config.enabled else ()
            found = self._access[who] = Access(self, who, config, rules)
        return found


class Access:
    """One identity's rights under one version of the rules."""

    def __init__(self, nacm: Nacm, who: Identity, config: NacmConfig,
                 rules: tuple[Rule, ...]) -> None:
        self.identity = who
        self.config = config
        self.unrestricted = who.internal or not config.enabled
        """Every check passes (the server itself, or enable-nacm false); credentials
        are still hidden from a non-internal reader."""
        self._nacm = nacm
        self._marks: AccessMarks = nacm.schema.access_marks()
        self._by_op: dict[str, tuple[Rule, ...]] = {
            op: tuple(r for r in rules if op in r.ops) for op in OPERATIONS}
        # The first data rule for an operation that matches everything decides
        # every node no credential guards: a constant verdict, no per-node work.
        self._everything: dict[str, Rule | None] = {}
        for op, rs in self._by_op.items():
            first = next((r for r in rs if r.kind in ("any", "path")), None)
            self._everything[op] = (first if first is not None and first.kind == "any"
                                    and first.module is None else None)
        # Without key predicates in an operation's rules, its verdict on a node depends
        # only on the node's schema path.
        self._by_schema: dict[str, dict[str, tuple[bool, Rule | None]]] = {
            op: {} for op, rs in self._by_op.items()
            if not any(r.kind == "path" and any(st.preds for st in r.steps) for r in rs)}

    # -- one path -----------------------------------------------------------------------
    def allowed(self, path: str | tuple[Step, ...], op: str) -> bool:
        """Whether ``op`` (create, read, update, delete) is allowed on the data node at
        ``path`` (it need not exist)."""
        if self.unrestricted and (op != "read" or self.identity.internal):
            return True
        return self._decide(parse_path(path) if isinstance(path, str) else path, op)[0]

    def _decide(self, steps: tuple[Step, ...], op: str) -> tuple[bool, Rule | None]:
        memo = self._by_schema.get(op)
        if memo is None:
            return self._decide_path(steps, op)
        *_, key = schema_paths(steps)
        found = memo.get(key)
        if found is None:
            found = memo[key] = self._decide_path(steps, op)
        return found

    def _decide_path(self, steps: tuple[Step, ...], op: str) -> tuple[bool, Rule | None]:
        marks = self._marks
        guard = False
        cut = 0
        for depth, sp in enumerate(schema_paths(steps), 1):
            if sp in marks.deny_all or (op in _WRITES and sp in marks.deny_write):
                guard = True
            if op == "read" and sp in marks.credentials:
                guard = True
                cut = depth
        if self.unrestricted:
            return (not cut, None)
        everything = self._everything[op]
        if everything is not None and not cut:
            return everything.permit, everything
        module = steps[-1].module
        for r in self._by_op[op]:
            if r.module is not None and r.module != module:
                continue
            if r.kind == "any":
                if not cut:
                    return r.permit, r
            elif r.kind == "path" and len(r.steps) >= cut and _prefix_of(r.steps, steps):
                return r.permit, r
        if guard:
            return False, None
        return (self.config.read_default if op == "read" else
                self.config.write_default), None

    # -- writes -------------------------------------------------------------------------
    def check_write(self, changes: Sequence[Change] | ChangeSet,
                    edited: Callable[[str], bool]) -> None:
        """Refuse (:class:`AccessDenied`, counted) a transaction unless ``who`` may make
        every change: create, update (a new value or position) or delete each node.

        Non-presence containers are structure, not data, and are not checked.
        ``edited(path)`` tells whether the edit itself wrote a node: changing a
        ``credential-target`` needs the edit to write its credentials too.  The
        changes of a run (all creations) are built only when some check could refuse
        one of them."""
        if self.identity.internal:
            return
        targets = self._marks.credential_targets
        cache = StepCache()
        items = changes.items() if isinstance(changes, ChangeSet) else changes
        for c in items:
            if isinstance(c, Run):
                if self._run_checked(c, targets):
                    for x in c.build():
                        self._check_change(x, targets, edited, cache)
            else:
                self._check_change(c, targets, edited, cache)

    def _run_checked(self, run: Run, targets: dict[str, tuple[str, ...]]) -> bool:
        """Whether any creation in ``run`` needs a check (else all pass)."""
        everything = self._everything["create"]
        if not (self.unrestricted or (everything is not None and everything.permit)):
            return True
        prefix = f"/{run.module}:"
        return any(sp.startswith(prefix) for sp in targets)

    def _write_verdict(self, path: str, op: str,
                       steps: Callable[[str], tuple[Step, ...]]) -> tuple[bool, Rule | None]:
        """Whether ``op`` (create, update, delete) of the node at ``path`` passes, and
        the rule that decided (non-presence containers are structure: never refused
        a create or delete)."""
        if self.unrestricted:
            return True, None
        everything = self._everything[op]
        if everything is not None and everything.permit:
            return True, everything
        sp = schema_path_of(path)
        if op != "update" and self._nacm.structural(sp):
            return True, None
        memo = self._by_schema.get(op)
        verdict = memo.get(sp) if memo is not None else None
        if verdict is None:
            verdict = self._decide_path(steps(path), op)
            if memo is not None:
                memo[sp] = verdict
        return verdict

    def may_write(self, path: str, op: str) -> bool:
        """Whether a write would be allowed to ``op`` (create, update, delete) the
        node at data ``path``, as :meth:`check_write` decides each change (nothing is
        counted)."""
        return self._write_verdict(path, op, parse_path)[0]

    def _check_change(self, c: Change, targets: dict[str, tuple[str, ...]],
                      edited: Callable[[str], bool], cache: StepCache) -> None:
        if targets and not isinstance(c, ChangeDeleted):
            self._check_target(c.path, targets, edited)
        if self.unrestricted:
            return
        op = ("create" if isinstance(c, ChangeCreated) else
              "delete" if isinstance(c, ChangeDeleted) else "update")
        ok, rule = self._write_verdict(c.path, op, cache.steps)
        if not ok:
            self._nacm.counters.data_writes += 1
            why = f"rule {rule.where}" if rule is not None else "no rule permits it"
            raise AccessDenied(f"{self.identity.user!r} may not {op} this node ({why})",
                               path=c.path)

    def check_existence_error(self, error: NfoError) -> None:
        """An edit failed because its node exists (``data-exists``) or does not
        (``data-missing``): unless ``who`` may create (delete) that node, answer
        ``access-denied`` instead, as a write it may not make would be, so that the
        error does not tell whether the node exists."""
        if self.unrestricted or error.path is None:
            return
        op = "create" if error.tag == "data-exists" else "delete"
        try:
            steps = parse_path(error.path)
        except ValueError:
            return
        if not self._decide(steps, op)[0]:
            self._nacm.counters.data_writes += 1
            raise AccessDenied(f"{self.identity.user!r} may not {op} this node",
                               path=error.path) from None

    def _check_target(self, path: str, targets: dict[str, tuple[str, ...]],
                      edited: Callable[[str], bool]) -> None:
        creds = targets.get(schema_path_of(path))
        if not creds:
            return
        parent = path[:path.rfind("/")]
        for cred in creds:
            leaf = cred[cred.rfind("/") + 1:]
            if edited(f"{parent}/{leaf}") or self.allowed(f"{parent}/{leaf}", "read"):
                return
        self._nacm.counters.data_writes += 1
        raise AccessDenied("changing where credentials are sent needs the credentials "
                           "again in the same edit", path=path,
                           app_tag="nfo-credentials-required")

    # -- operations ---------------------------------------------------------------------
    def may_exec(self, schema_path: str, data_path: str | None = None) -> bool:
        """Whether :meth:`check_exec` would let ``who`` run the RPC or action (nothing
        is counted)."""
        return self._exec_verdict(schema_path, data_path)[0]

    def _exec_verdict(self, schema_path: str, data_path: str | None
                      ) -> tuple[bool, Rule | None]:
        if self.unrestricted or schema_path in UNCHECKED_OPERATIONS:
            return True, None
        ok, rule = self._exec(schema_path, data_path)
        if ok and data_path is not None:
            parent = data_path[:data_path.rfind("/")]
            ok = self.allowed(parent, "read")
            rule = None
        return ok, rule

    def check_exec(self, schema_path: str, data_path: str | None = None) -> None:
        """Refuse (:class:`AccessDenied`, counted) running the RPC or action at
        ``schema_path`` (an action on the node at ``data_path``)."""
        ok, rule = self._exec_verdict(schema_path, data_path)
        if not ok:
            self._nacm.counters.operations += 1
            why = f"rule {rule.where}" if rule is not None else "no rule permits it"
            name = schema_path[schema_path.rfind("/") + 1:]
            raise AccessDenied(f"{self.identity.user!r} may not run {name} ({why})",
                               path=data_path or schema_path, error_type="protocol")

    def _exec(self, schema_path: str, data_path: str | None) -> tuple[bool, Rule | None]:
        steps = parse_path(data_path or schema_path)
        module = steps[-1].module
        top = data_path is None
        name = steps[-1].name
        for r in self._by_op["exec"]:
            if r.module is not None and r.module != module:
                continue
            if (r.kind == "any"
                    or (r.kind == "rpc" and top and r.name in (None, name))
                    or (r.kind == "path" and _prefix_of(r.steps, steps))):
                return r.permit, r
        if schema_path in self._marks.deny_all:
            return False, None
        return self.config.exec_default, None

    # -- notifications ------------------------------------------------------------------
    def notification_allowed(self, schema_path: str, about: Sequence[str] = ()) -> bool:
        """Whether ``who`` may receive a notification (``schema_path``: its node); one
        that refers to data (``about``: the data paths its leafrefs point at) needs read
        access to them too.  A refusal is counted."""
        if self.unrestricted:
            return True
        ok = self._notification(schema_path) and all(self.allowed(p, "read") for p in about)
        if not ok:
            self._nacm.counters.notifications += 1
        return ok

    def _notification(self, schema_path: str) -> bool:
        steps = parse_path(schema_path)
        module = steps[-1].module
        top = len(steps) == 1
        for r in self._by_op["read"]:
            if r.module is not None and r.module != module:
                continue
            if (r.kind == "any"
                    or (r.kind == "notification" and top and r.name in (None, steps[0].name))
                    or (r.kind == "path" and _prefix_of(r.steps, steps))):
                return r.permit
        if schema_path in self._marks.deny_all:
            return False
        return self.config.read_default

    # -- reads ------------------------------------------------------------------------------
    def prune(self, tree: Tree) -> bool:
        """Remove from ``tree`` what ``who`` may not read: denied nodes go, with their
        descendants, except the ancestors (and list keys) of permitted nodes; the
        credentials go unless a rule names them.  Returns whether anything went."""
        if self.identity.internal or tree.is_empty():
            return False
        return _Pruner(self, tree).run()

    @property
    def reads_all(self) -> bool:
        """Whether every node but the credentials is readable (the server itself,
        ``enable-nacm`` false, or a first read rule that permits everything): a read
        then removes nothing but credentials."""
        if self.unrestricted:
            return True
        everything = self._everything["read"]
        return everything is not None and everything.permit

    def read_rules(self) -> tuple[Rule, ...]:
        return self._by_op["read"]

    @property
    def marks(self) -> AccessMarks:
        return self._marks


# Marks on a node, beside rules: a default-deny-all node, a credential (cuts off
# the rules of its ancestors), the root of a module's nodes inside another's.
_GUARD = -1
_CUT = -2
_BOUNDARY = -3


class _Pruner:
    """One read's filtering: rules become marks on the nodes their paths select; the
    verdict of a node is that of its nearest marked ancestor-or-self (a region), and
    only regions are decided and cut."""

    def __init__(self, access: Access, tree: Tree) -> None:
        self.access = access
        self.tree = tree
        self.marks: dict[Node, list[int]] = {}
        self.rules: list[Rule] = []
        self.global_rank: int | None = None
        self.removed = False

    def _remove(self, node: Node) -> None:
        self.tree.remove(node)
        self.removed = True

    def _mark(self, node: Node, code: int) -> None:
        self.marks.setdefault(node, []).append(code)

    def run(self) -> bool:
        a = self.access
        tops = self.tree.nodes()
        present = {n.module for n in tops}
        marks = a.marks

        def mark_all(paths: Iterable[str], code: int, *, nested_only: bool = False) -> None:
            for path in paths:
                if (path[1:].split(":", 1)[0] in present
                        and (not nested_only or path.count("/") > 1)):
                    for n in self.tree.match(path):
                        self._mark(n, code)

        rules = a.read_rules()
        if not a.unrestricted and rules and rules[0].permit and all(
                r.kind == "any" and r.module is None for r in rules):
            # one rule decides every node: nothing but the credentials to find
            self.global_rank = 0
            self.rules.append(rules[0])
        elif not a.unrestricted:
            for r in rules:
                if r.kind == "any" and r.module is None:
                    if self.global_rank is None:
                        self.global_rank = len(self.rules)
                        self.rules.append(r)
                elif r.kind in ("any", "path"):
                    self.rules.append(r)
                    mark_all([r.path] if r.kind == "path"
                             else marks.module_roots.get(r.module or "", ()),
                             len(self.rules) - 1)
            mark_all(marks.deny_all_data, _GUARD)
            for roots in marks.module_roots.values():
                mark_all(roots, _BOUNDARY, nested_only=True)
        mark_all(marks.credentials, _CUT)
        if not self.marks and (a.unrestricted or self._root_verdict_all(tops)):
            return False
        for top in tops:
            self.marks.setdefault(top, [])
        self._decide_regions()
        for top in tops:
            self._visit(top)
        return self.removed

    def _root_verdict_all(self, tops: list[Node]) -> bool:
        """With no marks, whether every top-level node is permitted (nothing to do)."""
        if self.global_rank is not None:
            return self.rules[self.global_rank].permit
        return self.access.config.read_default

    def _decide_regions(self) -> None:
        """The verdict of every marked node, the region each belongs to, and which nodes
        lie above a permitted region."""
        self.verdict: dict[Node, bool] = {}
        self.above_permitted: set[Node] = set()
        self.children: dict[Node | None, list[Node]] = {}
        default = self.access.config.read_default
        unrestricted = self.access.unrestricted
        for node, codes in self.marks.items():
            module = node.module
            best: int | None = None
            guard = False
            cut = False
            parent_region: Node | None = None
            first = True
            for x in node.ancestors():
                here = self.marks.get(x) if not first else codes
                if here is not None and not first and parent_region is None:
                    parent_region = x
                first = False
                if here is None or cut:
                    continue
                for code in here:
                    if code == _GUARD:
                        guard = True
                    elif code == _CUT:
                        guard = True
                        cut = True
                    elif code >= 0:
                        r = self.rules[code]
                        if (r.module is None or r.module == module) and (
                                best is None or code < best):
                            best = code
            if unrestricted:
                ok = not cut
            elif not cut and self.global_rank is not None and (
                    best is None or self.global_rank < best):
                ok = self.rules[self.global_rank].permit
            elif best is not None:
                ok = self.rules[best].permit
            else:
                ok = not guard and default
            self.verdict[node] = ok
            self.children.setdefault(parent_region, []).append(node)
            if ok:
                p = node.parent
                while p is not None and p not in self.above_permitted:
                    self.above_permitted.add(p)
                    p = p.parent

    def _visit(self, node: Node) -> None:
        if self.verdict[node]:
            for child in self.children.get(node, ()):
                self._visit(child)
            return
        if node.is_key:
            return
        if node not in self.above_permitted:
            self._remove(node)
            return
        self._carve(node)

    def _carve(self, node: Node) -> None:
        for c in node.children():
            if c.is_key:
                continue
            if c in self.verdict:
                self._visit(c)
            elif c in self.above_permitted:
                self._carve(c)
            else:
                self._remove(c)
