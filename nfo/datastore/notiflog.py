"""The notification replay log, indexed by event stream, each stream with its own retention.

Every notification is logged once, under the module of its top node.  An event stream
is a set of modules (``NETCONF``: every module), so a stream's replay reads its own
records through the storage's module index, never the records of other streams, and a
stream defined later (streams are defined at startup) still finds the older records of
its modules.  Each stream keeps its newest ``keep`` notifications, so a busy stream
(every commit logs a ``netconf-config-change`` on ``NETCONF``) never pushes another
stream's history out; a record is deleted only once no stream that carries it keeps it.

What each stream holds (how many records, the oldest one's sequence number and event
time) is kept here in memory: counted when the stream is defined, then updated on every
append and prune, so the stream listings never read the storage.  Pruning is amortised:
a stream is trimmed back to ``keep`` every 1% of ``keep`` (at most 1000) of its own
appends, the first time only after this process has logged that many, so a
short-lived process (``nfo user`` on a stopped server) never prunes with settings
other than the server's.  Appends and their pruning run in the caller's storage
transaction; when that transaction is undone, :meth:`NotificationLog.reload` counts again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from nfo.datastore.storage.base import NotificationMark, NotificationRecord, Storage

__all__ = ["DEFAULT_KEEP", "NotificationLog"]

DEFAULT_KEEP = 100_000
"""Notifications a stream keeps for replay unless configured otherwise."""

_MAX_SLACK = 1000


@dataclass
class _Window:
    """What one stream holds of the log."""

    modules: frozenset[str] | None
    keep: int
    slack: int = field(init=False)
    count: int = 0
    """Records of the stream from ``first`` on."""
    first: NotificationMark | None = None
    """The oldest record the stream replays; None while it has none."""
    until_prune: int = field(init=False)

    def __post_init__(self) -> None:
        self.slack = max(1, min(_MAX_SLACK, self.keep // 100))
        self.until_prune = self.slack

    def carries(self, module: str) -> bool:
        return self.modules is None or module in self.modules


class NotificationLog:
    """The replay log of one storage, by stream."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._windows: dict[str, _Window] = {}
        self._modules: set[str] = set()
        """Every module with records (or that had some)."""
        self._carriers: dict[str, list[_Window]] = {}

    def define(self, stream: str, modules: frozenset[str] | None, keep: int) -> None:
        """Index ``stream``: the notifications of ``modules`` (None: every module), the
        newest ``keep`` of them kept for replay."""
        if keep < 1:
            raise ValueError("a stream keeps at least one notification")
        w = _Window(modules, keep)
        spans = self._storage.notification_spans(modules)
        self._modules.update(s.module for s in spans)
        total = sum(s.count for s in spans)
        if total > keep:
            w.first = self._storage.notification_after(modules, 0, skip=total - keep)
            w.count = keep
        elif spans:
            w.first = min((s.first for s in spans), key=lambda m: m.seq)
            w.count = total
        self._windows[stream] = w
        self._carriers.clear()

    def reload(self) -> None:
        """Count every stream again from what the storage holds."""
        streams = [(name, w.modules, w.keep) for name, w in self._windows.items()]
        self._windows.clear()
        self._modules.clear()
        self._carriers.clear()
        for name, modules, keep in streams:
            self.define(name, modules, keep)

    def first_event(self, stream: str) -> float | None:
        """Event time of the oldest notification ``stream`` replays (None: none)."""
        first = self._windows[stream].first
        return None if first is None else first.timestamp

    def read(self, stream: str, start: float | None = None, stop: float | None = None, *,
             after: int | None = None) -> Iterator[NotificationRecord]:
        """What ``stream`` replays in [start, stop] (and after sequence number ``after``),
        oldest first, as logged when the iteration began."""
        w = self._windows[stream]
        if w.first is None:
            return iter(())
        first = w.first.seq - 1
        return self._storage.notifications(w.modules, start, stop,
                                           after_seq=first if after is None
                                           else max(first, after))

    def append(self, module: str, timestamp: float, content: str) -> int:
        """Log one notification of ``module``; returns its sequence number."""
        carriers = self._carriers.get(module)
        if carriers is None:
            carriers = [w for w in self._windows.values() if w.carries(module)]
            self._carriers[module] = carriers
        due = [w for w in carriers if w.until_prune <= 1]
        if not due:
            return self._logged(module, timestamp, content, carriers)
        with self._storage.batch():
            seq = self._logged(module, timestamp, content, carriers)
            self._prune(due)
        return seq

    def _logged(self, module: str, timestamp: float, content: str,
                carriers: list[_Window]) -> int:
        seq = self._storage.append_notification(module, timestamp, content)
        self._modules.add(module)
        for w in carriers:
            w.count += 1
            w.until_prune -= 1
            if w.first is None:
                w.first = NotificationMark(seq, timestamp)
        return seq

    def _prune(self, due: Iterable[_Window]) -> None:
        """Trim ``due`` back to what they keep; delete what no stream keeps any more."""
        touched: set[str] = set()
        for w in due:
            w.until_prune = w.slack
            touched.update(self._modules if w.modules is None else w.modules)
            excess = w.count - w.keep
            if excess > 0 and w.first is not None:
                mark = self._storage.notification_after(w.modules, w.first.seq - 1, excess)
                if mark is not None:
                    w.first, w.count = mark, w.keep
        cuts = {}
        for m in touched:
            floors = [w.first.seq for w in self._windows.values()
                      if w.first is not None and w.carries(m)]
            if floors:
                cuts[m] = min(floors)
        if cuts:
            self._storage.drop_notifications(cuts)
