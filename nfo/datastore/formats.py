"""How an edit is kept as text: what the commit log and the candidate's edit log store.

An edit made from a client's text is kept as that text with its format
(``"format"``: ``"xml"`` or ``"json"``), parsed back exactly as the write parsed it
(:attr:`nfo.schema.Parse.CONFIG`: operation attributes included); any other edit
(a tree a caller built) is printed as replayable JSON.  A record without
``"format"`` is JSON: every record written before texts were kept."""

from __future__ import annotations

from collections.abc import Mapping

from nfo.schema import Fmt, Tree

__all__ = ["EditSource", "edit_item", "edit_text", "item_source", "source_of"]

EditSource = tuple[str, Fmt]
"""The text an edit was parsed from, and its format."""


def edit_text(edit: Tree) -> str:
    """An edit as replayable JSON; empty containers stay, they may carry an operation."""
    return edit.print(Fmt.JSON, keep_empty=True)


def source_of(text: str | bytes, fmt: Fmt | str) -> EditSource | None:
    """What a commit record keeps of an edit parsed from ``text`` (None: print it)."""
    if isinstance(text, bytes):
        try:
            text = text.decode()
        except UnicodeDecodeError:
            return None
    return text, Fmt(fmt)


def edit_item(edit: Tree, default_operation: str,
              source: EditSource | None) -> dict[str, str]:
    """One edit of a commit record."""
    if source is None:
        return {"default-operation": default_operation, "edit": edit_text(edit)}
    return {"default-operation": default_operation, "edit": source[0],
            "format": source[1].value}


def item_source(item: Mapping[str, str]) -> EditSource:
    """The text and format of one stored edit (JSON when the record names none)."""
    return str(item["edit"]), Fmt(item.get("format", Fmt.JSON.value))

