"""The candidate datastore, kept lazily.

Until it is first edited the candidate is running itself and costs nothing.  Its first
edit makes it a copy of running (the work tree of that edit) and starts a log of the
edits, so a commit can replay them on running when running has not moved since (the
changes are then exactly the edits), and otherwise replaces running with the candidate.
Not durable: a restart starts with candidate = running.
"""

from __future__ import annotations

from collections.abc import Sequence

from nfo.datastore.formats import edit_text
from nfo.schema import Fmt, Schema, Tree

__all__ = ["Candidate"]


class Candidate:
    def __init__(self) -> None:
        self._tree: Tree | None = None
        self._base_revision = 0
        self._edits: list[tuple[str, str]] = []

    @property
    def tree(self) -> Tree | None:
        """The candidate's own tree once edited; None while it is running itself."""
        return self._tree

    @property
    def dirty(self) -> bool:
        return self._tree is not None

    def swap(self, work: Tree, edits: Sequence[tuple[Tree, str]], running_revision: int) -> None:
        """Make ``work`` (the result of ``edits``; now owned here) the candidate."""
        if self._tree is None:
            self._base_revision = running_revision
        else:
            self._tree.free()
        self._tree = work
        self._edits += [(edit_text(e), dop) for e, dop in edits]

    def reset(self) -> None:
        """Discard the changes: the candidate is running again."""
        if self._tree is not None:
            self._tree.free()
        self._tree = None
        self._edits = []

    def commit_edits(self, schema: Schema,
                     running_revision: int) -> tuple[list[Tree], list[tuple[Tree, str]]]:
        """What committing the (edited) candidate applies to running: its edits when
        running is still at the revision they were made on, else a replace of everything.
        Returns the trees to free and the edits."""
        assert self._tree is not None
        if self._base_revision == running_revision:
            trees = [Tree.parse(schema, text, Fmt.JSON)
                     for text, _ in self._edits]
            return trees, [(t, dop) for t, (_, dop) in zip(trees, self._edits, strict=True)]
        whole = self._tree.dup()
        return [whole], [(whole, "replace")]
