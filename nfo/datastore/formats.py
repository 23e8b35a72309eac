"""How data crosses the datastore's boundary as text: the libyang parse options for
client edits and for stored configuration, and an edit as replayable JSON (what the
commit log and the candidate's edit log keep)."""

from __future__ import annotations

from nfo.schema.data import Fmt, Tree, print_nodes
from nfo.schema.ly import lib

__all__ = ["PARSE_CONFIG", "PARSE_EDIT", "edit_text"]

PARSE_EDIT = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE
PARSE_CONFIG = lib.LYD_PARSE_ONLY | lib.LYD_PARSE_STRICT | lib.LYD_PARSE_NO_STATE


def edit_text(edit: Tree) -> str:
    """An edit as replayable JSON; empty containers stay, they may carry an operation."""
    return print_nodes(edit.first(), Fmt.JSON, flags=lib.LYD_PRINT_KEEPEMPTYCONT)
