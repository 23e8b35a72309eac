"""The commit log of running as people read it: commits with their size, a page at a time.

The log keeps each commit's edits, not its changes; how many nodes a commit changed is
found by replaying it on the state before it (:func:`replay_counting`), which the
history pages do for the commits they list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from nfo.datastore.formats import item_source
from nfo.datastore.storage.base import CommitRecord
from nfo.schema import Fmt, Kind, Schema, Tree
from nfo.schema.changes import ChangeCreated, ChangeDeleted, ChangeSet
from nfo.schema.data import path_steps
from nfo.schema.edit import apply_edit, validate

__all__ = ["CommitSummary", "replay_counting"]


@dataclass(frozen=True)
class CommitSummary:
    """One commit of running, for a history page."""

    revision: int
    timestamp: float
    user: str
    label: str
    """Its comment, or what made it (``commit``, ``rollback to 4``, ...)."""
    changes: int | None
    """How many changes the diff of the commit lists; None when the state before it is
    no longer retained."""


def replay_counting(schema: Schema, tree: Tree, rec: CommitRecord) -> int:
    """Apply a stored commit to ``tree`` (the state before it) as its transaction did,
    validation included; returns how many changes a diff of the two states lists."""
    changes = ChangeSet()
    if rec.kind == "replace":
        with Tree.parse(schema, rec.payload, Fmt.JSON) as whole:
            apply_edit(schema, tree, whole, "replace", into=changes)
    else:
        for item in json.loads(rec.payload):
            with Tree.parse(schema, *item_source(item)) as edit:
                apply_edit(schema, tree, edit, item["default-operation"], into=changes)
    validate(schema, tree, changes)
    return _as_diffed(schema, changes)


def _as_diffed(schema: Schema, changes: ChangeSet) -> int:
    """Count node changes as :func:`nfo.schema.diff.diff_trees` lists them: a created or
    deleted list entry or presence container is one change with its subtree, a
    non-presence container none of its own."""
    count = 0
    whole: str | None = None
    for c in changes:
        if whole is not None and c.path.startswith(whole + "/"):
            continue
        whole = None
        if ((isinstance(c, ChangeCreated) and c.value is None)
                or (isinstance(c, ChangeDeleted) and c.prev_value is None)):
            node = schema.find("/" + "/".join(
                step.split("[", 1)[0] for step in path_steps(c.path, strict=False)))
            if node is not None and node.kind is Kind.CONTAINER and not node.presence:
                continue
            whole = c.path
        count += 1
    return count
