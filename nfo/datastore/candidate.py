"""The candidate datastore, kept lazily: the shared one, and a session's private one.

Until it is first edited the candidate is running itself and costs nothing.  Its first
edit makes it a copy of running (the work tree of that edit) and starts a log of the
edits, so a commit can replay them on running when running has not moved since (the
changes are then exactly the edits), and otherwise replaces running with the candidate.
Not durable: a restart starts with candidate = running.

A :class:`PrivateCandidate` belongs to one session (the web UI's login session): it is
running as it is *now* plus that session's own edits.  It keeps the edit log and a tree
built from it, rebuilt when running has moved; its commit always replays the edits on
running as it is then (a rebase), so a commit another session made meanwhile survives.
"""

from __future__ import annotations

from collections.abc import Sequence

from nfo.datastore.formats import EditSource, edit_text
from nfo.errors import NfoError
from nfo.schema import Fmt, Schema, Tree
from nfo.schema.edit import apply_edit

__all__ = ["Candidate", "PrivateCandidate"]


class Candidate:
    private = False
    """Whether this is a session's own candidate (see :class:`PrivateCandidate`)."""

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


class PrivateCandidate(Candidate):
    """One session's candidate: running as it is now plus that session's edits.

    Only the edits are its own state; the tree is built from them on demand (and kept
    while running stays at the revision it was built on).  A commit rebases: the edits
    are replayed on running as it is then (:meth:`commit_edits` always returns them)."""

    private = True

    def __init__(self, session_id: int) -> None:
        super().__init__()
        self.session_id = session_id
        self._stale = False

    @property
    def dirty(self) -> bool:
        return bool(self._edits)

    @property
    def edit_count(self) -> int:
        return len(self._edits)

    def view(self, schema: Schema, running: Tree, running_revision: int) -> Tree:
        """The candidate's data: running itself while it has no edits, else its tree,
        rebuilt first when running has moved.  If its edits no longer apply to the new
        running, the tree they last applied to stays (a commit reports the conflict)."""
        if not self._edits:
            return running
        if self._tree is None or self._base_revision != running_revision:
            try:
                fresh = self.rebuild(schema, running)
            except NfoError:
                if self._tree is None:
                    return running
                self._stale = True
                return self._tree
            if self._tree is not None:
                self._tree.free()
            self._tree = fresh
            self._base_revision = running_revision
            self._stale = False
        return self._tree

    @property
    def stale(self) -> bool:
        """Whether its edits failed to apply to running when last rebuilt."""
        return self._stale

    def rebuild(self, schema: Schema, running: Tree) -> Tree:
        """A new tree: ``running`` copied with the edits applied (not validated: a
        candidate may hold invalid data until it is committed)."""
        work = running.dup()
        try:
            for (text, fmt), dop in self._edits:
                with Tree.parse(schema, text, fmt) as edit:
                    apply_edit(schema, work, edit, dop)
        except BaseException:
            work.free()
            raise
        return work

    def swap(self, work: Tree, edits: Sequence[tuple[Tree, str]], running_revision: int,
             sources: Sequence[EditSource | None] | None = None) -> None:
        built_on = self._base_revision
        super().swap(work, edits, running_revision, sources)
        # edited on a tree its edits no longer rebuild: try again at the next read
        self._base_revision = built_on if self._stale else running_revision

    def commit_edits(self, schema: Schema, running_revision: int
                     ) -> tuple[list[Tree], list[tuple[Tree, str]], list[EditSource | None]]:
        trees: list[Tree] = []
        try:
            for (text, fmt), _ in self._edits:
                trees.append(Tree.parse(schema, text, fmt))
        except BaseException:
            for t in trees:
                t.free()
            raise
        edits = [(t, dop) for t, (_, dop) in zip(trees, self._edits, strict=True)]
        return trees, edits, [src for src, _ in self._edits]
