"""The candidate datastore, kept lazily.

Until it is first edited the candidate is running itself and costs nothing.  Its first
edit makes it a copy of running (the work tree of that edit) and starts a log of the
edits, so a commit can replay them on running when running has not moved since (the
changes are then exactly the edits), and otherwise replaces running with the candidate.
Not durable: a restart starts with candidate = running.
"""

from __future__ import annotations

from collections.abc import Sequence

from nfo.datastore.formats import EditSource, edit_text
from nfo.schema import Fmt, Schema, Tree

__all__ = ["Candidate"]


class Candidate:
    def __init__(self) -> None:
        self._tree: Tree | None = None
        self._base_revision = 0
        self._edits: list[tuple[EditSource, str]] = []  # (text and format, default-operation)

    @property
    def tree(self) -> Tree | None:
        """The candidate's own tree once edited; None while it is running itself."""
        return self._tree

    @property
    def dirty(self) -> bool:
        return self._tree is not None

    def swap(self, work: Tree, edits: Sequence[tuple[Tree, str]], running_revision: int,
             sources: Sequence[EditSource | None] | None = None) -> None:
        """Make ``work`` (the result of ``edits``, parsed from ``sources`` where known;
        now owned here) the candidate."""
        if self._tree is None:
            self._base_revision = running_revision
        else:
            self._tree.free()
        self._tree = work
        texts = sources or [None] * len(edits)
        self._edits += [(src or (edit_text(e), Fmt.JSON), dop)
                        for (e, dop), src in zip(edits, texts, strict=True)]

    def reset(self) -> None:
        """Discard the changes: the candidate is running again."""
        if self._tree is not None:
            self._tree.free()
        self._tree = None
        self._edits = []

    def commit_edits(self, schema: Schema, running_revision: int
                     ) -> tuple[list[Tree], list[tuple[Tree, str]], list[EditSource | None]]:
        """What committing the (edited) candidate applies to running: its edits when
        running is still at the revision they were made on, else a replace of everything.
        Returns the trees to free, the edits and the text each edit was parsed from."""
        assert self._tree is not None
        if self._base_revision == running_revision:
            trees: list[Tree] = []
            for (text, fmt), _ in self._edits:
                trees.append(Tree.parse(schema, text, fmt))
            edits = [(t, dop) for t, (_, dop) in zip(trees, self._edits, strict=True)]
            return trees, edits, [src for src, _ in self._edits]
        whole = self._tree.dup()
        return [whole], [(whole, "replace")], [None]
