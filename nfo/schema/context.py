"""The libyang context: which YANG modules nfo serves, built once per run.

The module set is data-driven, like sysrepo's: nfo's own modules from yang/,
the IETF protocol modules the front ends need, modules an operator installed
into the state directory, and modules from ``--yang-dir`` for one run.
Everything loaded here is served generically by the datastore.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import libyang

from nfo.errors import InvalidValue, OperationFailed
from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib
from nfo.schema.data import split_top
from nfo.schema.deps import when_read_tops
from nfo.schema.hashes import _loaded_so_version
from nfo.schema.paths import Step, parse_path, render_path
from nfo.schema.snode import Kind, SNode

_LITERAL = re.compile(r"'[^']*'|\"[^\"]*\"")
"""An XPath string literal."""

__all__ = [
    "PROTOCOL_MODULES",
    "AccessMarks",
    "ModuleInfo",
    "Schema",
    "ietf_dir",
    "module_name_in",
    "module_name_of",
    "nfo_yang_dir",
]

# Protocol modules loaded always, with the features nfo implements.
PROTOCOL_MODULES: dict[str, tuple[str, ...]] = {
    "ietf-netconf": (
        "writable-running", "candidate", "confirmed-commit", "rollback-on-error",
        "validate", "startup", "xpath",
    ),
    "ietf-netconf-with-defaults": (),
    "ietf-origin": (),
    "ietf-netconf-nmda": ("origin", "with-defaults"),
    "ietf-netconf-monitoring": (),
    "ietf-netconf-notifications": (),
    "ietf-restconf": (),
    "ietf-restconf-monitoring": (),
    "ietf-yang-patch": (),
    "nc-notifications": (),
    "ietf-netconf-acm": (),
    "ietf-list-pagination": ("sort",),
    "ietf-list-pagination-nc": (),
}

@dataclass(frozen=True)
class AccessMarks:
    """Schema paths (``/mod:a/b``; data nodes, RPCs, actions, notifications) that
    access control treats specially, found once per module set."""

    deny_all: frozenset[str]
    """``nacm:default-deny-all`` (and RFC 8341's kill-session and delete-config)."""
    deny_all_data: frozenset[str]
    """The data nodes among :attr:`deny_all`."""
    deny_write: frozenset[str]
    """``nacm:default-deny-write``."""
    credentials: frozenset[str]
    """``nfo-security:credential``: secrets, read only through a rule that names them."""
    credential_targets: dict[str, tuple[str, ...]]
    """``nfo-security:credential-target`` leaf -> the credentials among its siblings."""
    module_roots: dict[str, tuple[str, ...]]
    """Module -> where its nodes begin: its top-level nodes and what it augments in."""


_MODULE_RE = re.compile(rb"^\s*(module|submodule)\s+([A-Za-z_][\w.-]*)", re.MULTILINE)


def nfo_yang_dir() -> Path:
    return Path(str(resources.files("nfo.yang")))


def ietf_dir() -> Path:
    """The IETF modules that pyang's wheel installs under the environment's share/."""
    candidates = [Path(sys.prefix) / "share/yang/modules/ietf"]
    for p in (sys.base_prefix, "/usr", "/usr/local"):
        candidates.append(Path(p) / "share/yang/modules/ietf")
    for c in candidates:
        if (c / "ietf-netconf.yang").is_file():
            return c
    raise OperationFailed("IETF YANG modules not found (is pyang installed in this environment?)")


def module_name_in(text: bytes) -> tuple[str, bool] | None:
    """(name, is_submodule) read from YANG source's first statement; None if it has none."""
    m = _MODULE_RE.search(text[:65536])
    return None if m is None else (m.group(2).decode(), m.group(1) == b"submodule")


def module_name_of(path: Path) -> tuple[str, bool]:
    """(name, is_submodule) read from a YANG file's first statement."""
    found = module_name_in(path.read_bytes()[:65536])
    if found is None:
        raise InvalidValue(f"{path}: not a YANG module (no module statement)")
    return found


@dataclass(frozen=True)
class ModuleInfo:
    name: str
    revision: str | None
    namespace: str
    prefix: str
    implemented: bool
    source: str
    """"nfo", "ietf", "installed" or "yang-dir"."""


class Schema:
    """A compiled module set and the libyang context holding it."""

    def __init__(
        self,
        installed_dir: Path | None = None,
        extra_dirs: Sequence[Path] = (),
        *,
        with_nfo_modules: bool = True,
    ) -> None:
        ly.setup_logging()
        self.installed_dir = installed_dir
        dirs: list[Path] = []
        if installed_dir is not None:
            dirs.append(installed_dir)
        dirs += list(extra_dirs)
        nfo_dir = nfo_yang_dir()
        dirs += [nfo_dir, nfo_dir / "ietf", ietf_dir()]
        self.search_dirs = dirs
        self.ctx = libyang.Context(":".join(str(d) for d in dirs if d.is_dir()))
        self.cdata: Any = self.ctx.cdata
        self._source: dict[str, str] = {}
        self._marks: AccessMarks | None = None
        self._autodeleting: frozenset[str] | None = None
        self._triggers: frozenset[str] | None = None
        self._triggers_known = False
        self._instance_paths: dict[str, bool] = {}
        self._one_paths: dict[str, bool] = {}
        self._keyed_cuts: dict[str, int | None] = {}
        self._modules: list[ModuleInfo] | None = None
        self._by_name: dict[str, ModuleInfo] = {}
        self._by_ns: dict[str, str] = {}
        self._fingerprint: str | None = None
        self.caches: dict[str, Any] = {}
        """Per-schema caches of the layer's own modules (keyed by C pointers of this
        context's schema nodes, so they die with it)."""

        for name, feats in PROTOCOL_MODULES.items():
            self._load(name, feats, "ietf")
        for mod in ("ietf-yang-library", "ietf-datastores", "yang", "notifications"):
            self._source.setdefault(mod, "ietf")
        if with_nfo_modules:
            for name in _module_files(nfo_dir):
                self._load(name, ("*",), "nfo")
        if installed_dir is not None and installed_dir.is_dir():
            for name in _module_files(installed_dir):
                self._load(name, ("*",), "installed")
        for d in extra_dirs:
            for name in _module_files(d):
                self._load(name, ("*",), "yang-dir")

    def _load(self, name: str, features: Iterable[str], source: str) -> None:
        feats = [ffi.new("char[]", f.encode()) for f in features]
        arr = ffi.new("char *[]", [*feats, ffi.NULL])
        mod = lib.ly_ctx_load_module(self.cdata, name.encode(), ffi.NULL, arr)
        if mod == ffi.NULL:
            ly.raise_last(self.cdata, f"loading YANG module {name}")
        self._source.setdefault(name, source)

    def modules(self) -> list[ModuleInfo]:
        if self._modules is None:
            self._modules = self._list_modules()
            self._by_name = {m.name: m for m in self._modules}
            self._by_ns = {m.namespace: m.name for m in self._modules}
        return self._modules

    def module(self, name: str) -> ModuleInfo | None:
        """A module of the set by name (implemented or only imported)."""
        self.modules()
        return self._by_name.get(name)

    def implemented(self, name: str) -> bool:
        m = self.module(name)
        return m is not None and m.implemented

    def namespace_of(self, module: str) -> str | None:
        m = self.module(module)
        return None if m is None else m.namespace

    def module_of(self, namespace: str) -> str | None:
        """The module name of an XML namespace."""
        self.modules()
        return self._by_ns.get(namespace)

    def find(self, path: str) -> SNode | None:
        """The schema node at a schema path (``/mod:a/b``; data nodes, RPCs, actions
        and notifications), or None."""
        try:
            raw = path.encode()
        except UnicodeEncodeError:
            return None
        p = lib.lys_find_path(self.cdata, ffi.NULL, raw, 0)
        lib.ly_err_clean(self.cdata, ffi.NULL)
        return None if p == ffi.NULL else SNode(p)

    def check_xpath(self, expr: str) -> None:
        """Refuse (InvalidValue) an XPath expression libyang cannot evaluate against the
        schema (module names as prefixes)."""
        if not expr.strip() or "\0" in expr:
            raise InvalidValue("invalid XPath: empty expression", info={"xpath": expr})
        out = ffi.new("struct ly_set **")
        rc = lib.lys_find_xpath(self.cdata, ffi.NULL, expr.encode(), 0, out)
        if rc != lib.LY_SUCCESS:
            errs = ly.errors_of(self.cdata)
            lib.ly_err_clean(self.cdata, ffi.NULL)
            msg = errs[0][1] if errs else "cannot be evaluated"
            raise InvalidValue(f"invalid XPath {expr!r}: {msg}", info={"xpath": expr})
        lib.ly_set_free(out[0], ffi.NULL)

    def is_instance_path(self, expr: str) -> bool:
        """Whether an XPath is a union of absolute paths whose predicates only compare
        list keys (or a leaf-list entry) with literals: what it selects depends on
        nothing but the existence of the entries it names."""
        # the answer does not depend on the literals: paths differing only in key
        # values share one entry
        shape = _LITERAL.sub("''", expr)
        found = self._instance_paths.get(shape)
        if found is None:
            found = all(self._is_instance_path(part) for part in split_top(shape, "|")[0])
            if len(self._instance_paths) > 4096:
                self._instance_paths.clear()
            self._instance_paths[shape] = found
        return found

    def names_one(self, expr: str) -> bool:
        """Whether an XPath is one data path naming at most one node: every list step
        with exactly its keys, every leaf-list step with its value (what a direct
        lookup finds, without evaluating XPath)."""
        shape = _LITERAL.sub("''", expr)
        found = self._one_paths.get(shape)
        if found is None:
            found = self._names_one(shape)
            if len(self._one_paths) > 4096:
                self._one_paths.clear()
            self._one_paths[shape] = found
        return found

    def keyed_path(self, path: str) -> tuple[str, bool] | None:
        """``path`` (a data path) spelt as libyang spells a node's path, cut before the
        predicates of its first step that does not name one entry (some of a list's keys,
        a position); with whether it is whole (not cut).  Every node ``path`` selects lies
        at or below the result.  None when ``path`` is no data path of this schema."""
        try:
            steps = parse_path(path)
        except ValueError:
            return None
        shape = _LITERAL.sub("''", path)
        if shape in self._keyed_cuts:
            cut = self._keyed_cuts[shape]
        else:
            cut = self._keyed_cut(steps)
            if len(self._keyed_cuts) > 4096:
                self._keyed_cuts.clear()
            self._keyed_cuts[shape] = cut
        if cut is None:
            return None
        if cut == len(steps):
            return render_path(steps), True
        return render_path([*steps[:cut], Step(steps[cut].module, steps[cut].name)]), False

    def _step_nodes(self, steps: Sequence[Step]) -> Iterator[tuple[Step, SNode | None]]:
        """Each step of a data path with its schema node (None from the first step that
        is not in the schema on)."""
        node = self.find(f"/{steps[0].module}:{steps[0].name}")
        for i, step in enumerate(steps):
            if i:
                node = node.child(step.name, step.module) if node is not None else None
            yield step, node

    def _keyed_cut(self, steps: Sequence[Step]) -> int | None:
        for i, (step, node) in enumerate(self._step_nodes(steps)):
            if node is None:
                return None
            if not step.preds:
                if node.kind is Kind.LIST and i + 1 < len(steps):  # every entry's
                    return i
                continue
            names = sorted(k for k, _ in step.preds)
            if node.kind is Kind.LIST:
                if node.keyless or names != sorted(node.keys):
                    return i
            elif node.kind is not Kind.LEAFLIST or names != ["."]:
                return i
        return len(steps)

    def _names_one(self, shape: str) -> bool:
        parts, closed = split_top(shape, "|")
        if not closed or len(parts) != 1 or not self._is_instance_path(shape):
            return False
        steps = parse_path(shape.strip())
        for step, node in self._step_nodes(steps):
            if node is None:
                return False
            names = [k for k, _ in step.preds]
            if node.kind is Kind.LIST:
                if node.keyless or sorted(names) != sorted(node.keys) \
                        or len(set(names)) != len(names):
                    return False
            elif node.kind is Kind.LEAFLIST:
                if names != ["."]:
                    return False
            elif names:
                return False
        return True

    def _is_instance_path(self, part: str) -> bool:
        try:
            steps = parse_path(part.strip())
        except ValueError:
            return False
        for step, node in self._step_nodes(steps):
            if node is None or not node.is_data:
                return False
            names = {k for k, _ in step.preds}
            if names and not (names <= set(node.keys) if node.kind is Kind.LIST
                              else node.kind is Kind.LEAFLIST and names == {"."}):
                return False
        return True

    def top_nodes(self, module: str) -> list[SNode]:
        """The top-level data nodes, RPCs and notifications of an implemented module."""
        mod = lib.ly_ctx_get_module_latest(self.cdata, module.encode())
        if mod == ffi.NULL or not mod.implemented or mod.compiled == ffi.NULL:
            return []
        out = []
        c = lib.lys_getnext(ffi.NULL, ffi.NULL, mod.compiled, 0)
        while c != ffi.NULL:
            out.append(SNode(c))
            c = lib.lys_getnext(c, ffi.NULL, mod.compiled, 0)
        return out

    def schema_tops(self, module: str) -> list[SNode]:
        """The top-level statements of an implemented module as the schema nests them
        (choices included, not looked through): data nodes, then RPCs, then
        notifications."""
        mod = lib.ly_ctx_get_module_latest(self.cdata, module.encode())
        if mod == ffi.NULL or not mod.implemented or mod.compiled == ffi.NULL:
            return []
        out = []
        c = lib.lys_getnext(ffi.NULL, ffi.NULL, mod.compiled, lib.LYS_GETNEXT_WITHCHOICE)
        while c != ffi.NULL:
            out.append(SNode(c))
            c = lib.lys_getnext(c, ffi.NULL, mod.compiled, lib.LYS_GETNEXT_WITHCHOICE)
        return out

    def features(self, module: str) -> list[str]:
        """The enabled features of a module of the set."""
        try:
            mod = self.ctx.get_module(module)
        except libyang.LibyangError:
            return []
        return [f.name() for f in mod.features() if f.state()]

    def content_id(self) -> str:
        """The YANG library content-id (RFC 8525) of this module set: a digest of each
        module's name, revision and implementation."""
        h = hashlib.sha256(
            "\n".join(f"{m.name}@{m.revision}:{m.implemented}"
                      for m in sorted(self.modules(), key=lambda m: m.name)).encode())
        return f"nfo-{h.hexdigest()[:16]}"

    def top(self, module: str, name: str) -> SNode | None:
        """A top-level node (data node, RPC or notification) of an implemented module."""
        if not self.implemented(module):
            return None
        return self.find(f"/{module}:{name}")

    def rpcs(self, *, exclude: Iterable[str] = ()) -> list[SNode]:
        """Every RPC of the implemented modules, except those of ``exclude``d modules."""
        skip = set(exclude)
        return [n for m in self.modules() if m.implemented and m.name not in skip
                for n in self.top_nodes(m.name) if n.kind is Kind.RPC]

    def _list_modules(self) -> list[ModuleInfo]:
        out = []
        for m in self.ctx:
            if m.name() in ("ietf-yang-schema-mount", "ietf-yang-structure-ext"):
                continue
            c = m.cdata
            out.append(ModuleInfo(
                name=m.name(),
                revision=ffi.string(c.revision).decode() if c.revision != ffi.NULL else None,
                namespace=ffi.string(c.ns).decode(),
                prefix=m.prefix(),
                implemented=bool(c.implemented),
                source=self._source.get(m.name(), "import"),
            ))
        return out

    def access_marks(self) -> AccessMarks:
        """The schema paths access control treats specially (see :class:`AccessMarks`)."""
        if self._marks is None:
            self._marks = _access_marks(self)
        return self._marks

    def autodeleting_tops(self) -> frozenset[str]:
        """Top-level data nodes (``/module:name``) under which validation may remove a
        node on its own: one with a ``when``, one in a choice's case, a default
        leaf-list entry.  Elsewhere its diff holds only the defaults it added."""
        if self._autodeleting is None:
            self._autodeleting = frozenset(
                top.path for m in self.modules() if m.implemented
                for top in self.top_nodes(m.name) if top.is_data and _may_autodelete(top))
        return self._autodeleting

    def autodelete_triggers(self) -> frozenset[str] | None:
        """Top-level data nodes a change under which may make validation remove a node
        on its own: the :meth:`autodeleting_tops` and every top a ``when`` reads; None
        when that cannot be told (then any change may).  An edit that touches none of
        them needs no validation diff."""
        if not self._triggers_known:
            reads = when_read_tops(self.cdata, [m.cdata for m in self.ctx if m.implemented()])
            self._triggers = None if reads is None else reads | self.autodeleting_tops()
            self._triggers_known = True
        return self._triggers

    def module_source(self, name: str, revision: str | None = None) -> str:
        """The YANG text of a loaded module (for get-schema and RESTCONF schema links)."""
        try:
            mod = self.ctx.get_module(name)
        except libyang.LibyangError as e:
            raise InvalidValue(f"unknown module {name!r}") from e
        rev = mod.cdata.revision
        if revision and (rev == ffi.NULL or ffi.string(rev).decode() != revision):
            raise InvalidValue(f"module {name!r} has no revision {revision}")
        return str(mod.print("yang", libyang.IOType.MEMORY))

    def fingerprint(self) -> str:
        """A digest of everything that decides whether data is valid here: each module's
        name, revision, implementation, enabled features and source file, and the libyang
        build.  Data validated under the same fingerprint is valid again."""
        if self._fingerprint is None:
            h = hashlib.sha256(repr(_loaded_so_version()).encode())
            for m in sorted(self.ctx, key=lambda m: m.name()):
                c = m.cdata
                feats = sorted(f.name() for f in m.features() if f.state())
                rev = ffi.string(c.revision).decode() if c.revision != ffi.NULL else None
                h.update(f"{m.name()}@{rev}:{bool(c.implemented)}:{feats};".encode())
                if c.filepath != ffi.NULL:
                    with suppress(OSError):
                        h.update(Path(ffi.string(c.filepath).decode()).read_bytes())
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def yang_library(self, content_id: str) -> str:
        """RFC 8525 yang-library data, JSON encoded, with the given content-id."""
        data = self.ctx.get_yanglib_data(content_id_format=content_id)  # type: ignore[no-untyped-call]
        try:
            return str(data.print_mem("json", with_siblings=True))
        finally:
            data.free()


def _may_autodelete(node: SNode) -> bool:
    if node.when or node.in_case or (node.kind is Kind.LEAFLIST and node.defaults):
        return True
    return node.kind in (Kind.CONTAINER, Kind.LIST) and any(
        _may_autodelete(c) for c in node.children() if c.is_data)


_NACM = "ietf-netconf-acm"
_SEC = "nfo-security"
# RFC 8341 section 3.2.6: these two operations are denied by default; RFC 6241's
# module predates NACM and carries no extension for it.
_BUILTIN_DENY_ALL = ("/ietf-netconf:kill-session", "/ietf-netconf:delete-config")


def _access_marks(schema: Schema) -> AccessMarks:
    deny_all: set[str] = set()
    data: set[str] = set()
    deny_write: set[str] = set()
    creds: set[str] = set()
    targets: list[SNode] = []
    roots: dict[str, list[str]] = {}

    def walk(node: SNode, parent_module: str | None, above: frozenset[str]) -> None:
        # libyang copies the NACM extensions onto every descendant: keep the topmost.
        path = node.path
        if node.module != parent_module and node.is_data:
            roots.setdefault(node.module, []).append(path)
        here = set()
        for mod, name, _ in node.extensions:
            if mod == _NACM and name in ("default-deny-all", "default-deny-write"):
                here.add(name)
                if name in above:
                    continue
                (deny_all if name == "default-deny-all" else deny_write).add(path)
                if name == "default-deny-all" and node.is_data:
                    data.add(path)
            elif mod == _SEC and name == "credential":
                creds.add(path)
            elif mod == _SEC and name == "credential-target":
                targets.append(node)
        if node.kind in (Kind.CONTAINER, Kind.LIST):
            for child in node.children():
                walk(child, node.module, frozenset(here))

    for m in schema.modules():
        if m.implemented:
            for top in schema.top_nodes(m.name):
                walk(top, None, frozenset())
    deny_all.update(p for p in _BUILTIN_DENY_ALL if schema.find(p) is not None)
    sent: dict[str, tuple[str, ...]] = {}
    for t in targets:
        parent = t.parent
        siblings = parent.children() if parent is not None else iter(())
        sent[t.path] = tuple(c.path for c in siblings if c.path in creds)
    return AccessMarks(frozenset(deny_all), frozenset(data), frozenset(deny_write),
                       frozenset(creds), sent, {m: tuple(p) for m, p in roots.items()})


def _module_files(d: Path) -> list[str]:
    names: list[str] = []
    if not d.is_dir():
        return names
    for p in sorted(d.iterdir()):
        if p.suffix == ".yang" and p.is_file():
            name, sub = module_name_of(p)
            if not sub:
                names.append(name)
    return names
