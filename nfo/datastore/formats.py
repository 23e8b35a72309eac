"""How an edit is kept as text: replayable JSON, what the commit log and the
candidate's edit log store (parsed back with :attr:`nfo.schema.Parse.CONFIG`)."""

from __future__ import annotations

from nfo.schema import Fmt, Tree

__all__ = ["edit_text"]


def edit_text(edit: Tree) -> str:
    """An edit as replayable JSON; empty containers stay, they may carry an operation."""
    return edit.print(Fmt.JSON, keep_empty=True)
