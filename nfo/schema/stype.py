"""The type of a leaf or leaf-list as a typed object: what a value must look like.

A :class:`SType` wraps one compiled libyang type (``struct lysc_type``) and, when
libyang kept it, the type as written (``struct lysp_type``: the typedef name).
Restrictions come from the compiled type, so typedef chains are already folded
in: ranges and lengths as intervals, patterns, enums, bits, identityref bases
and the identities derived from them, leafref paths, union members.  Like
:class:`~nfo.schema.SNode` it is a cheap handle valid as long as its schema.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nfo.schema import _ly as ly
from nfo.schema._ly import ffi, lib

__all__ = ["Bit", "Enum", "Identity", "Pattern", "SType"]

_BASE_NAMES: dict[int, str] = {
    lib.LY_TYPE_BINARY: "binary",
    lib.LY_TYPE_UINT8: "uint8",
    lib.LY_TYPE_UINT16: "uint16",
    lib.LY_TYPE_UINT32: "uint32",
    lib.LY_TYPE_UINT64: "uint64",
    lib.LY_TYPE_STRING: "string",
    lib.LY_TYPE_BITS: "bits",
    lib.LY_TYPE_BOOL: "boolean",
    lib.LY_TYPE_DEC64: "decimal64",
    lib.LY_TYPE_EMPTY: "empty",
    lib.LY_TYPE_ENUM: "enumeration",
    lib.LY_TYPE_IDENT: "identityref",
    lib.LY_TYPE_INST: "instance-identifier",
    lib.LY_TYPE_LEAFREF: "leafref",
    lib.LY_TYPE_UNION: "union",
    lib.LY_TYPE_INT8: "int8",
    lib.LY_TYPE_INT16: "int16",
    lib.LY_TYPE_INT32: "int32",
    lib.LY_TYPE_INT64: "int64",
}
_BUILTIN = frozenset(_BASE_NAMES.values())
_SIGNED = frozenset({lib.LY_TYPE_INT8, lib.LY_TYPE_INT16, lib.LY_TYPE_INT32,
                     lib.LY_TYPE_INT64, lib.LY_TYPE_DEC64})
_WIDE = frozenset({lib.LY_TYPE_INT64, lib.LY_TYPE_UINT64, lib.LY_TYPE_DEC64})
"""Bounds a JSON number cannot carry exactly: given as strings."""
_NUMBERS = frozenset({lib.LY_TYPE_UINT8, lib.LY_TYPE_UINT16, lib.LY_TYPE_UINT32,
                      lib.LY_TYPE_UINT64, *_SIGNED})


def _str(p: Any) -> str | None:
    return None if p == ffi.NULL else str(ffi.string(p).decode())


def _xstr(p: Any) -> str | None:
    """A string of a structure the bindings do not declare (see ``_ly.xffi``)."""
    return None if p == ly.xffi.NULL else str(ly.xffi.string(p).decode())


def _x(ctype: str, p: Any) -> Any:
    return ly.xffi.cast(f"struct {ctype} *", ly.addr(p))


@dataclass(frozen=True)
class Pattern:
    expr: str
    """The regular expression as written (XML Schema syntax)."""
    invert: bool
    error_message: str | None
    error_app_tag: str | None


@dataclass(frozen=True)
class Enum:
    name: str
    value: int
    description: str | None


@dataclass(frozen=True)
class Bit:
    name: str
    position: int
    description: str | None


@dataclass(frozen=True)
class Identity:
    module: str
    name: str
    description: str | None

    @property
    def qualified(self) -> str:
        """``module:name``, the identity as a JSON value names it."""
        return f"{self.module}:{self.name}"


class SType:
    """A handle on one compiled type (and the parsed type it came from, if known)."""

    __slots__ = ("_parsed", "_t")

    def __init__(self, t: Any, parsed: Any = ffi.NULL) -> None:
        self._t = t
        self._parsed = parsed

    def __repr__(self) -> str:
        return f"SType({self.base})"

    @property
    def base(self) -> str:
        """The YANG built-in type (``string``, ``int32``, ``leafref``, ...)."""
        return _BASE_NAMES.get(int(self._t.basetype), "unknown")

    def _as(self, ctype: str) -> Any:
        return ffi.cast(f"struct {ctype} *", self._t)

    # -- the type as written --------------------------------------------------------
    @property
    def typedefs(self) -> tuple[str, ...]:
        """The derived types the type was written as, outermost first, each
        ``module:name``: only top-level typedefs are followed (a typedef inside a
        grouping or container ends the chain).  Empty when the written type is not the
        compiled one (a deviation replaced it)."""
        out: list[str] = []
        p = self._parsed
        while p != ffi.NULL and p.name != ffi.NULL and len(out) < 32:
            written = str(ffi.string(p.name).decode())
            prefix, colon, name = written.rpartition(":")
            if not colon and name in _BUILTIN:
                return tuple(out) if name == self.base else ()
            pmod = p.pmod
            mod = _module_of_prefix(pmod, prefix) if colon else _pmod_module(pmod)
            if mod == ffi.NULL:
                break
            out.append(f"{_str(mod.name)}:{name}")
            p = _typedef(mod, name)
        return tuple(out)

    # -- restrictions ---------------------------------------------------------------
    def _intervals(self, range_p: Any) -> tuple[tuple[int | str, int | str], ...] | None:
        if range_p == ffi.NULL:
            return None
        r = _x("lysc_range", range_p)
        base = int(self._t.basetype)
        signed = base in _SIGNED
        digits = int(self._as("lysc_type_dec").fraction_digits) if base == lib.LY_TYPE_DEC64 \
            else 0
        out: list[tuple[int | str, int | str]] = []
        for i in range(ly.count(r.parts)):
            part = r.parts[i]
            lo = int(part.min_64) if signed else int(part.min_u64)
            hi = int(part.max_64) if signed else int(part.max_u64)
            if digits:
                out.append((_decimal(lo, digits), _decimal(hi, digits)))
            elif base in _WIDE:
                out.append((str(lo), str(hi)))
            else:
                out.append((lo, hi))
        return tuple(out)

    @property
    def ranges(self) -> tuple[tuple[int | str, int | str], ...] | None:
        """A number's allowed intervals (int64, uint64 and decimal64 bounds as
        strings); None when not restricted beyond the built-in type."""
        base = int(self._t.basetype)
        if base not in _NUMBERS:
            return None
        t = self._as("lysc_type_dec" if base == lib.LY_TYPE_DEC64 else "lysc_type_num")
        return self._intervals(t.range)

    @property
    def lengths(self) -> tuple[tuple[int | str, int | str], ...] | None:
        """A string's or binary's allowed length intervals; None when not restricted."""
        base = int(self._t.basetype)
        if base == lib.LY_TYPE_STRING:
            return self._intervals(self._as("lysc_type_str").length)
        if base == lib.LY_TYPE_BINARY:
            return self._intervals(self._as("lysc_type_bin").length)
        return None

    @property
    def patterns(self) -> tuple[Pattern, ...]:
        if int(self._t.basetype) != lib.LY_TYPE_STRING:
            return ()
        pats = self._as("lysc_type_str").patterns
        out = []
        for i in range(ly.count(pats)):
            p = _x("lysc_pattern", pats[i])
            out.append(Pattern(str(_xstr(p.expr)), bool(p.inverted), _xstr(p.emsg),
                               _xstr(p.eapptag)))
        return tuple(out)

    @property
    def fraction_digits(self) -> int | None:
        if int(self._t.basetype) != lib.LY_TYPE_DEC64:
            return None
        return int(self._as("lysc_type_dec").fraction_digits)

    def _items(self, base: int, ctype: str, member: str) -> list[tuple[str, int, str | None]]:
        """(name, value or position, description) of an enumeration's or bits' items."""
        if int(self._t.basetype) != base:
            return []
        items = getattr(self._as(ctype), member)
        return [(str(_str(items[i].name)),
                 int(items[i].value if member == "enums" else items[i].position),
                 _str(items[i].dsc)) for i in range(ly.count(items))]

    @property
    def enums(self) -> tuple[Enum, ...]:
        return tuple(Enum(*item) for item in self._items(lib.LY_TYPE_ENUM, "lysc_type_enum",
                                                         "enums"))

    @property
    def bits(self) -> tuple[Bit, ...]:
        return tuple(Bit(*item) for item in self._items(lib.LY_TYPE_BITS, "lysc_type_bits",
                                                        "bits"))

    # -- identityref ----------------------------------------------------------------
    @property
    def bases(self) -> tuple[Identity, ...]:
        """An identityref's base identities."""
        if int(self._t.basetype) != lib.LY_TYPE_IDENT:
            return ()
        bases = self._as("lysc_type_identityref").bases
        return tuple(_identity(bases[i]) for i in range(ly.count(bases)))

    def identities(self) -> list[Identity]:
        """The values an identityref may take: every identity derived (directly or not)
        from all its bases, in an implemented module, sorted by qualified name."""
        if int(self._t.basetype) != lib.LY_TYPE_IDENT:
            return []
        bases = self._as("lysc_type_identityref").bases
        found: dict[int, Any] = {}
        for i in range(ly.count(bases)):
            _derived(_x("lysc_ident", bases[i]), found)
        out = [_identity(p) for p in found.values() if _module(p).implemented]
        return sorted(out, key=lambda x: x.qualified)

    # -- leafref and instance-identifier ---------------------------------------------
    @property
    def leafref_path(self) -> str | None:
        """A leafref's path as written (the prefixes of its module)."""
        if int(self._t.basetype) != lib.LY_TYPE_LEAFREF:
            return None
        return _str(lib.lyxp_get_expr(self._as("lysc_type_leafref").path))

    @property
    def require_instance(self) -> bool | None:
        """A leafref's or instance-identifier's require-instance; None for others."""
        base = int(self._t.basetype)
        if base == lib.LY_TYPE_LEAFREF:
            return bool(self._as("lysc_type_leafref").require_instance)
        if base == lib.LY_TYPE_INST:
            return bool(self._as("lysc_type_instanceid").require_instance)
        return None

    @property
    def real(self) -> SType:
        """A leafref's target type (the first type that is not a leafref); itself for
        other types."""
        if int(self._t.basetype) != lib.LY_TYPE_LEAFREF:
            return self
        return SType(self._as("lysc_type_leafref").realtype)

    # -- union ----------------------------------------------------------------------
    @property
    def members(self) -> tuple[SType, ...]:
        """A union's member types, in order."""
        if int(self._t.basetype) != lib.LY_TYPE_UNION:
            return ()
        types = self._as("lysc_type_union").types
        parsed = self._parsed.types if self._parsed != ffi.NULL else ffi.NULL
        n = ly.count(types)
        same = parsed != ffi.NULL and ly.count(parsed) == n
        return tuple(SType(types[i], ffi.addressof(parsed[i]) if same else ffi.NULL)
                     for i in range(n))


def _decimal(v: int, digits: int) -> str:
    sign = "-" if v < 0 else ""
    whole, frac = divmod(abs(v), 10 ** digits)
    return f"{sign}{whole}.{frac:0{digits}d}"


def _module(ident: Any) -> Any:
    return ffi.cast("struct lys_module *", ly.addr(ident.module))


def _identity(p: Any) -> Identity:
    p = _x("lysc_ident", p)
    return Identity(str(_str(_module(p).name)), str(_xstr(p.name)), _xstr(p.dsc))


def _derived(base: Any, found: dict[int, Any]) -> None:
    derived = base.derived
    for i in range(ly.count(derived)):
        d = derived[i]
        key = ly.addr(d)
        if key not in found:
            found[key] = d
            _derived(d, found)


def _pmod_module(pmod: Any) -> Any:
    """The module of a parsed (sub)module (a submodule belongs to its main module)."""
    return pmod.mod if pmod != ffi.NULL else ffi.NULL


def _module_of_prefix(pmod: Any, prefix: str) -> Any:
    if pmod == ffi.NULL:
        return ffi.NULL
    mod = pmod.mod
    if _str(mod.prefix) == prefix:
        return mod
    imports = pmod.imports
    for i in range(ly.count(imports)):
        if _str(imports[i].prefix) == prefix:
            return imports[i].module
    return ffi.NULL


def _typedef(mod: Any, name: str) -> Any:
    """The parsed type a top-level typedef of ``mod`` (or of its submodules) derives
    from, or NULL."""
    parsed = mod.parsed
    if parsed == ffi.NULL:
        return ffi.NULL
    wanted = name.encode()
    tables = [parsed.typedefs]
    includes = _x("lysp_include", parsed.includes)
    for i in range(ly.count(includes)):
        inc = includes[i]
        if inc.submodule != ly.xffi.NULL:
            # a parsed submodule begins as a parsed module does, up to its typedefs
            sub = ffi.cast("struct lysp_module *", ly.addr(inc.submodule))
            tables.append(sub.typedefs)
    for tpdfs in tables:
        for i in range(ly.count(tpdfs)):
            if ffi.string(tpdfs[i].name) == wanted:
                return ffi.addressof(tpdfs[i], "type")
    return ffi.NULL
