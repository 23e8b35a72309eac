"""An instance's observed state, held compactly: a million running instances each keep one.

The workload manager reads and writes an instance's recorded state as a mapping of
state leaf names (``oper-status``, ``vim-resource-id``, ...) and its own private
fields (``_needs``, ...).  A dict of that costs about 270 bytes and its two timestamps
as strings another 150; :class:`Observed` keeps the fields every instance has in
slots, the two timestamps as integer microseconds (when their text is the canonical
form, which they are when nfo wrote them) packed in one integer, and the rest in a dict
made only when one is set.  A time may also be set as Unix seconds (a float); it reads
as its text.
Values that repeat from instance to instance (status, VIM, driver, placement reason,
spec digest) are interned.  A field set to None is absent: no reader tells the two
apart.
"""

from __future__ import annotations

import functools
import re
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from datetime import UTC, datetime, timedelta
from typing import Any

from nfo.schema.values import format_time

__all__ = ["Observed"]

_SLOTS = {"oper-status": "_status", "vim": "_vim", "driver": "_driver",
          "vim-resource-id": "_rid", "placement-reason": "_placement",
          "spec-digest": "_digest", "attempts": "_attempts", "_needs": "_needs",
          "created": "_created", "last-change": "_changed"}
"""The fields a running instance has, and their slots."""
_TIMES = frozenset({"_created", "_changed"})
_PLAIN = {k: v for k, v in _SLOTS.items() if v not in _TIMES}
"""The fields whose slot holds their value as it reads."""
_SHARED = frozenset({"_status", "_vim", "_driver", "_placement", "_digest"})
"""Slots whose values repeat from instance to instance: one interned copy of each."""
_LOW = (1 << 64) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_CANONICAL = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", re.ASCII)
"""What :func:`nfo.schema.values.format_time` writes: a valid time of this shape is
the one text of its instant, so it comes back from its microseconds."""


def _compact_time(text: Any) -> Any:
    """``text`` as integer microseconds since the epoch when that gives the same text
    back (Unix seconds as a float: their microseconds); otherwise ``text`` itself."""
    if type(text) is float:
        return round(text * 1_000_000) if text >= 0 else format_time(text)
    if type(text) is not str or not _CANONICAL.fullmatch(text):
        return text
    try:
        us = (datetime.fromisoformat(text) - _EPOCH) // _MICROSECOND
    except ValueError:
        return text
    return us if us >= 0 else text


def _time_text(value: Any) -> Any:
    return _text_of(value) if type(value) is int else value


@functools.lru_cache(maxsize=4096)
def _text_of(value: int) -> str:
    """An instance's times are read again soon after they are set (each record it
    writes holds them): the recent ones are remembered."""
    seconds, us = divmod(value, 1_000_000)
    y, mo, d, h, mi, s = time.gmtime(seconds)[:6]
    return f"{y:04d}-{mo:02d}-{d:02d}T{h:02d}:{mi:02d}:{s:02d}.{us:06d}Z"


def _pack(created: Any, changed: Any) -> Any:
    """Both times in one value: None for neither; both in microseconds (or absent) as
    one integer, each plus one in its 64 bits (0: absent); else the pair itself."""
    if created is None and changed is None:
        return None
    if created is None:
        if type(changed) is int:
            return changed + 1
    elif type(created) is int:
        if changed is None:
            return (created + 1) << 64
        if type(changed) is int:
            return ((created + 1) << 64) | (changed + 1)
    return (created, changed)


def _unpack(times: Any) -> tuple[Any, Any]:
    if times is None:
        return None, None
    if type(times) is int:
        created, changed = times >> 64, times & _LOW
        return (created - 1 if created else None), (changed - 1 if changed else None)
    return times[0], times[1]


class Observed(MutableMapping[str, Any]):
    """One instance's observed state (see the module)."""

    __slots__ = ("_attempts", "_digest", "_driver", "_more", "_needs", "_placement",
                 "_rid", "_status", "_times", "_vim")

    _more: dict[str, Any] | None
    _times: Any

    @property
    def _created(self) -> Any:
        """The slot's value, for the generic reads (``merge`` sets both times)."""
        return _unpack(self._times)[0]

    @property
    def _changed(self) -> Any:
        return _unpack(self._times)[1]

    def __init__(self, fields: Mapping[str, Any] | Iterable[tuple[str, Any]] = ()) -> None:
        if type(fields) is Observed:
            for name in self.__slots__:
                setattr(self, name, getattr(fields, name))
            if self._more is not None:
                self._more = dict(self._more)
            return
        self._status = self._vim = self._driver = self._rid = self._placement = None
        self._digest = self._attempts = self._needs = self._times = None
        self._more = None
        self.merge(fields if isinstance(fields, Mapping) else dict(fields))

    def merge(self, fields: Mapping[str, Any]) -> None:
        """Set every field of ``fields`` (None removes it): ``update`` without the
        generic mapping's call per field."""
        times: list[Any] | None = None
        for key, value in fields.items():
            slot = _SLOTS.get(key)
            if slot is not None:
                if slot in _SHARED:
                    value = sys.intern(value) if type(value) is str else value
                elif slot in _TIMES:
                    if times is None:
                        times = list(_unpack(self._times))
                    i = 1 if slot == "_changed" else 0
                    now = times[i]
                    if type(now) is not int or type(value) is not str \
                            or _text_of(now) != value:  # not the time it holds, given back
                        times[i] = _compact_time(value)
                    continue
                setattr(self, slot, value)
            elif value is not None:
                if self._more is None:
                    self._more = {key: value}
                else:
                    self._more[key] = value
            elif self._more is not None:
                self._more.pop(key, None)
                if not self._more:
                    self._more = None
        if times is not None:
            self._times = _pack(times[0], times[1])

    def pairs(self) -> list[tuple[str, Any]]:
        """Every field and its value: ``items()`` without the generic mapping's call
        per field."""
        out = []
        for key, slot in _PLAIN.items():
            value = getattr(self, slot)
            if value is not None:
                out.append((key, value))
        if self._times is not None:
            created, changed = _unpack(self._times)
            if created is not None:
                out.append(("created", _time_text(created)))
            if changed is not None:
                out.append(("last-change", _time_text(changed)))
        if self._more is not None:
            out.extend(self._more.items())
        return out

    def __getitem__(self, key: str) -> Any:
        slot = _SLOTS.get(key)
        if slot is not None:
            value = getattr(self, slot)
            if value is None:
                raise KeyError(key)
            return _time_text(value) if slot in _TIMES else value
        if self._more is None:
            raise KeyError(key)
        return self._more[key]

    def get(self, key: str, default: Any = None) -> Any:
        slot = _SLOTS.get(key)
        if slot is None:
            return default if self._more is None else self._more.get(key, default)
        value = getattr(self, slot)
        if value is None:
            return default
        return _time_text(value) if slot in _TIMES else value

    def __setitem__(self, key: str, value: Any) -> None:
        self.merge({key: value})

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self[key] = None

    def __contains__(self, key: object) -> bool:
        slot = _SLOTS.get(key) if isinstance(key, str) else None
        if slot is not None:
            return getattr(self, slot) is not None
        return self._more is not None and key in self._more

    def __iter__(self) -> Iterator[str]:
        return iter([key for key, _ in self.pairs()])

    def __bool__(self) -> bool:
        return any(getattr(self, s) is not None for s in self.__slots__)

    def __len__(self) -> int:
        return (sum(getattr(self, s) is not None for s in _SLOTS.values())
                + (0 if self._more is None else len(self._more)))

    def __repr__(self) -> str:
        return f"Observed({dict(self.items())!r})"
