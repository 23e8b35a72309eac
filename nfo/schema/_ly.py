"""The one gate into libyang's C library.

The ``libyang`` Python bindings wrap only part of the C API and report errors
as one concatenated string.  nfo needs libyang's structured error list (message,
data path and app-tag apart) and a few calls the bindings do not declare
(sibling insertion, term change, unlinking), so every C call goes through
this module: :func:`check` turns a failed call into an :class:`NfoError`, and
:data:`xlib` reaches the extra functions of the same shared library.
"""

from __future__ import annotations

import re
from typing import Any

import cffi
from _libyang import ffi, lib

from nfo.errors import (
    DataExists,
    DataMissing,
    InvalidValue,
    MalformedMessage,
    NfoError,
    OperationFailed,
    UnknownElement,
)

__all__ = ["NULL", "addr", "check", "count", "errors_of", "ffi", "lib", "module_ctx",
           "raise_last", "where_of", "xlib", "xnode"]

NULL = ffi.NULL

_xffi = cffi.FFI()
_xffi.cdef(
    """
    int lyd_insert_sibling(void *sibling, void *node, void **first);
    int lyd_insert_before(void *sibling, void *node);
    int lyd_insert_after(void *sibling, void *node);
    void lyd_unlink_tree(void *node);
    int lyd_change_term(void *term, const char *val_str);
    int lyd_new_implicit_tree(void *tree, uint32_t implicit_options, void **diff);
    const void *lysc_node_child(const void *node);
    void *lysc_node_musts(const void *node);
    void *lysc_node_when(const void *node);
    int lys_find_xpath_atoms(const void *ctx, const void *ctx_node, const char *xpath,
                             uint32_t options, void **set);
    int lys_find_expr_atoms(const void *ctx_node, const void *cur_mod, const void *expr,
                            const void *prefixes, uint32_t options, void **set);
    int lyd_find_xpath4(const void *ctx_node, const void *tree, const char *xpath,
                        int format, void *prefix_data, const void *vars, void **set);
    int lyd_eval_xpath3(const void *ctx_node, const void *cur_mod, const char *xpath,
                        int format, void *prefix_data, const void *vars, unsigned char *result);
    int lyd_new_opaq(void *parent, const void *ctx, const char *name, const char *value,
                     const char *prefix, const char *module_name, void **node);
    int lyd_find_sibling_first(const void *siblings, const void *target, void **match);
    int lyd_find_sibling_val(const void *siblings, const void *schema, const char *key_or_value,
                             size_t val_len, void **match);
    int lyd_dup_single(const void *node, void *parent, uint32_t options, void **dup);
    int lyd_new_meta(const void *ctx, void *parent, const void *module, const char *name,
                     const char *val_str, unsigned char clear_dflt, void **meta);
    void lyd_free_meta_single(void *meta);
    int lyd_compare_single(const void *node1, const void *node2, uint32_t options);
    unsigned char lyd_is_default(const void *node);
    typedef int (*ly_module_imp_clb)(const char *mod_name, const char *mod_rev,
                                     const char *submod_name, const char *submod_rev,
                                     void *user_data, int *format, const char **module_data,
                                     void **free_module_data);
    void ly_ctx_set_module_imp_clb(void *ctx, ly_module_imp_clb clb, void *user_data);
    void free(void *ptr);

    struct lysc_range_part {
        union { int64_t min_64; uint64_t min_u64; };
        union { int64_t max_64; uint64_t max_u64; };
    };
    struct lysc_range {
        struct lysc_range_part *parts;
        const char *dsc; const char *ref; const char *emsg; const char *eapptag;
        void *exts;
    };
    struct lysc_pattern {
        const char *expr; void *code;
        const char *dsc; const char *ref; const char *emsg; const char *eapptag;
        void *exts;
        uint32_t inverted : 1; uint32_t refcount : 31;
    };
    struct lysc_ident {
        const char *name; const char *dsc; const char *ref;
        void *module;
        struct lysc_ident **derived;
        void *exts;
        uint16_t flags;
    };
    struct lysc_prefix {
        char *prefix;
        void *mod;
    };
    struct lysp_include {
        void *submodule;
        const char *name; const char *dsc; const char *ref; void *exts;
        char rev[11];
        uint8_t injected;
    };
    """
)
xlib: Any = _xffi.dlopen("libyang.so.2")
xffi = _xffi


def addr(p: Any) -> int:
    """The address behind a pointer of either FFI, for handing across them."""
    if isinstance(p, int):
        return p
    if isinstance(p, _xffi.CData):
        return int(_xffi.cast("uintptr_t", p))
    return int(ffi.cast("uintptr_t", p))


def count(arr: Any) -> int:
    """The length of a libyang sized array (0 for NULL)."""
    a = addr(arr)
    return 0 if a == 0 else int(ffi.cast("uint64_t *", a)[-1])


def module_ctx(mod: Any) -> Any:
    """The context of a ``struct lys_module *`` (its first member, which the bindings
    do not declare)."""
    return ffi.cast("struct ly_ctx **", mod)[0]


def xnode(p: Any) -> Any:
    """A pointer from the bindings' FFI as a ``void *`` of :data:`xlib`."""
    return _xffi.cast("void *", addr(p))


def fromx(p: Any, ctype: str = "struct lyd_node *") -> Any:
    """A ``void *`` from :data:`xlib` back as a typed pointer of the bindings."""
    return ffi.cast(ctype, int(_xffi.cast("uintptr_t", p)))


# libyang validation error codes (enum LY_VECODE) we map to a distinct tag.
_LYVE_SYNTAX = 1
_LYVE_SYNTAX_YANG = 2
_LYVE_SYNTAX_YIN = 3
_LYVE_REFERENCE = 4
_LYVE_XPATH = 5
_LYVE_SEMANTICS = 6
_LYVE_SYNTAX_XML = 7
_LYVE_SYNTAX_JSON = 8
_LYVE_DATA = 9


def _text(p: Any) -> str | None:
    return ffi.string(p).decode("utf-8", "replace") if p != ffi.NULL else None


_LOCATION = re.compile(r'(?:Data|Schema) location "(.*?)"(?:, line number \d+)?\.?$')
_LINE = re.compile(r"^Line number (\d+)\.?$")


def _clean_path(raw: str | None) -> str | None:
    """libyang 2.1 stores 'Data location "/a/b".' as the path; keep the path."""
    if not raw:
        return None
    m = _LOCATION.search(raw)
    if m:
        return m.group(1)
    return None if _LINE.match(raw) else raw


def where_of(raw: str | None) -> str | None:
    """The place a libyang error names, for a person: its path, or ``line N`` of the
    text parsed."""
    m = _LINE.match(raw or "")
    return f"line {m.group(1)}" if m else _clean_path(raw)


def errors_of(ctx: Any, *, clean: bool = True) -> list[tuple[int, str, str | None, str | None]]:
    """(vecode, message, path, app-tag) of every error libyang has recorded; ``clean``:
    the path as a data or schema path (None for a line number), else as recorded."""
    out = []
    err = lib.ly_err_first(ctx)
    while err != ffi.NULL:
        if err.level == lib.LY_LLERR:
            path = _text(err.path)
            out.append((int(err.vecode), _text(err.msg) or "",
                        _clean_path(path) if clean else path, _text(err.apptag)))
        err = err.next
    return out


_APPTAG_CLASS: dict[str, type[NfoError]] = {
    "instance-required": DataMissing,
    "missing-choice": DataMissing,
    "data-not-unique": OperationFailed,
    "too-many-elements": OperationFailed,
    "too-few-elements": OperationFailed,
    "must-violation": OperationFailed,
}


def _classify(vecode: int, message: str, apptag: str | None) -> type[NfoError]:
    """Pick the RFC 6241 error-tag the way RFC 7950 section 15 asks for."""
    if apptag:
        return _APPTAG_CLASS.get(apptag, OperationFailed)
    low = message.lower()
    if vecode in (_LYVE_SYNTAX_XML, _LYVE_SYNTAX_JSON, _LYVE_SYNTAX):
        return MalformedMessage
    if vecode == _LYVE_REFERENCE and ("not found" in low or "no module" in low):
        return UnknownElement
    if low.startswith("mandatory node"):
        return DataMissing
    if low.startswith("duplicate instance"):
        return DataExists
    if "unexpected data state node" in low:
        return InvalidValue
    if vecode in (_LYVE_DATA, _LYVE_REFERENCE, _LYVE_XPATH, _LYVE_SEMANTICS):
        return InvalidValue
    return OperationFailed


def raise_last(ctx: Any, what: str) -> None:
    """Raise the errors libyang recorded in ``ctx`` (or a generic one) and clear them."""
    errs = errors_of(ctx)
    lib.ly_err_clean(ctx, ffi.NULL)
    if not errs:
        raise OperationFailed(f"{what} failed")
    vecode, message, path, apptag = errs[-1] if len(errs) > 1 and not errs[0][1] else errs[0]
    cls = _classify(vecode, message, apptag)
    raise cls(message, path=path, app_tag=apptag, error_type="application")


def check(rc: int, ctx: Any, what: str) -> None:
    """Turn a libyang return code into an :class:`NfoError` (LY_SUCCESS passes)."""
    if rc != lib.LY_SUCCESS:
        raise_last(ctx, what)


def setup_logging() -> None:
    """Keep libyang quiet on stderr but record errors with data paths."""
    lib.ly_log_options(lib.LY_LOSTORE)
    lib.ly_set_log_clb(ffi.NULL, True)
