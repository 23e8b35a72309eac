"""Applying a planned YANG Patch all-or-nothing, and the ``yang-patch-status`` reply.

Which edit failed?  The datastore refuses a transaction as a whole.  When
that happens, :func:`apply_yang_patch` re-runs the edits with ``test-only``
(nothing is stored, change subscribers are not called): first none of them
(an error that comes back without any edit is global: a lock, a closed
session), then one prefix after the other, and names the first edit whose
prefix reproduces the same error (same tag, path and message).  That is at
most n + 1 extra trial transactions, paid only on failure.  An error no trial
reproduces (a change subscriber's veto, or a concurrent writer changing the
data meanwhile) is reported in the global ``errors``.  Errors found while
planning an edit are reported for that edit straight away; nothing is
applied either way.  HTTP statuses come from the one error table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from nfo.datastore import Precondition, Session
from nfo.errors import NfoError, PreconditionFailed, Veto
from nfo.protocol.errors import error_items, errors_xml, http_status, restconf_errors, xml_text
from nfo.restconf.codec import media_type
from nfo.restconf.paths import ResourcePath, parse_resource
from nfo.restconf.yangpatch.parse import YANG_PATCH_NS, Refused, parse_patch
from nfo.restconf.yangpatch.plan import Planned, Planner
from nfo.schema import Fmt, Schema, Tree

__all__ = ["PatchResult", "apply_yang_patch"]


@dataclass(frozen=True)
class PatchResult:
    """What the route sends back: HTTP status, body and its media type."""

    status: int
    body: str
    content_type: str


def _signature(e: NfoError) -> tuple[str, str | None, str]:
    return (e.tag, e.path, e.message)


async def _locate(session: Session, datastore: str, planned: list[Planned],
                  error: NfoError) -> str | None:
    """The edit-id of the first edit whose prefix reproduces ``error`` with test-only;
    None: the error is global."""
    if isinstance(error, Veto):
        return None
    want = _signature(error)
    trees: list[Tree] = []
    for i in range(len(planned) + 1):
        if i > 0:
            t = planned[i - 1].tree
            if t is None:
                continue
            trees.append(t)
        try:
            await session.edit_many(datastore, trees, default_operation="none",
                                    test_option="test-only", report=False)
        except NfoError as e:
            if _signature(e) == want:
                return planned[i - 1].edit.edit_id if i > 0 else None
    return None


async def apply_yang_patch(
    session: Session,
    datastore: str,
    target: ResourcePath | str,
    body: bytes,
    fmt: Fmt | str,
    reply_fmt: Fmt | str | None = None,
    *,
    precondition: Precondition | None = None,
) -> PatchResult:
    """Apply a YANG Patch document to ``datastore``, all or nothing.

    ``target``: the patch's target resource (a RESTCONF resource path, "" or "/"
    for the datastore); ``fmt``: the body's encoding (JSON for
    application/yang-patch+json, XML); ``reply_fmt``: the encoding of the reply
    (from Accept; default ``fmt``); ``precondition``: checked under the datastore's
    write lock (RESTCONF If-Match and friends).  The route checks that the target
    resource exists (404) before calling: the edits' parent nodes are built with
    operation ``none``, which would create them.  Returns the reply; raises only the
    :class:`~nfo.errors.PreconditionFailed` that refused the patch, and non-NfoError
    failures.
    """
    in_fmt, out = Fmt(fmt), Fmt(reply_fmt or fmt)
    schema = session.datastore.schema
    try:
        patch = parse_patch(body, in_fmt)
    except Refused as r:
        if r.patch_id is None:
            return PatchResult(http_status(r.error),
                               restconf_errors(r.error, out is Fmt.JSON, schema.namespace_of),
                               media_type(out))
        return _report(schema, r.patch_id, out, r.error, r.edit_id)
    planned: list[Planned] = []
    try:
        try:
            base = parse_resource(schema, target) if isinstance(target, str) else target
            planner = Planner(schema, session.datastore.tree(datastore), base, patch)
        except NfoError as err:
            return _report(schema, patch.patch_id, out, err)
        planned = planner.done
        for e in patch.edits:
            try:
                planner.plan(e)
            except NfoError as err:
                return _report(schema, patch.patch_id, out, err, e.edit_id)
        trees = [p.tree for p in planned if p.tree is not None]
        label = f"yang-patch {patch.patch_id}" + (f": {patch.comment}" if patch.comment else "")
        try:
            await session.edit_many(datastore, trees, default_operation="none", label=label,
                                    precondition=precondition, report=False)
        except PreconditionFailed:
            raise  # a refused conditional request is not a patch error (412 errors body)
        except NfoError as err:
            failed = await _locate(session, datastore, planned, err)
            return _report(schema, patch.patch_id, out, err, failed)
        return PatchResult(200, _status_doc(schema, out, patch.patch_id), media_type(out))
    finally:
        for p in planned:
            if p.tree is not None:
                p.tree.free()


def _report(schema: Schema, patch_id: str, fmt: Fmt, error: NfoError,
            edit_id: str | None = None) -> PatchResult:
    return PatchResult(http_status(error),
                       _status_doc(schema, fmt, patch_id, error=error, edit_id=edit_id),
                       media_type(fmt))


def _status_doc(schema: Schema, fmt: Fmt, patch_id: str, *, error: NfoError | None = None,
                edit_id: str | None = None) -> str:
    """The ietf-yang-patch:yang-patch-status document (RFC 8072 section 2.3)."""
    if fmt is Fmt.JSON:
        st: dict[str, Any] = {"patch-id": patch_id}
        if error is None:
            st["ok"] = [None]
        elif edit_id is None:
            st["errors"] = {"error": error_items(error.errors)}
        else:
            st["edit-status"] = {"edit": [{"edit-id": edit_id,
                                           "errors": {"error": error_items(error.errors)}}]}
        return json.dumps({"ietf-yang-patch:yang-patch-status": st}, ensure_ascii=False)
    parts = [f'<yang-patch-status xmlns="{YANG_PATCH_NS}">',
             f"<patch-id>{xml_text(patch_id)}</patch-id>"]
    if error is None:
        parts.append("<ok/>")
    elif edit_id is None:
        parts.append(errors_xml(error.errors, schema.namespace_of, xmlns=None))
    else:
        parts.append(f"<edit-status><edit><edit-id>{xml_text(edit_id)}</edit-id>"
                     f"{errors_xml(error.errors, schema.namespace_of, xmlns=None)}"
                     "</edit></edit-status>")
    parts.append("</yang-patch-status>")
    return "".join(parts)
