"""The embedded storage backend: one SQLite file per nfo instance.

nfo has to survive a crash or a power cut without losing a commit it has
acknowledged, yet it should not need a database server to do so.  SQLite in WAL
mode with ``synchronous=FULL`` gives exactly that from the standard library:
each public write method here is one ``BEGIN IMMEDIATE`` ... ``COMMIT``
transaction whose WAL frames are fsynced before the method returns, so a crash
or power cut at any instant leaves the state of the last completed call
(``synchronous=NORMAL`` would acknowledge before that fsync; see
docs/durability.md).  The module maps the
:class:`~nfo.datastore.storage.base.Storage` interface onto five tables
(commits, snapshots, oper, notifications, meta), prunes old snapshots and commits
as it goes (the notification log is pruned by its owner, which knows the streams'
retention), copies the write-ahead log into the database from a thread of its own
(:class:`_Checkpointer`, so that no commit on the event loop pays for it), and turns
every SQLite failure into an
:class:`~nfo.errors.NfoError`: a full disk into :class:`~nfo.errors.StorageFull`,
damage into :class:`~nfo.errors.StorageCorrupt`, the rest into
:class:`~nfo.errors.OperationFailed`.

Damage is looked for when the file is opened (a new file is created whole under
another name and renamed into place, so an empty or header-less ``nfo.db`` is
damage, never a fresh start; ``PRAGMA integrity_check`` for the pages; a CRC-32
of every row, computed when written, for the data inside them) and again on
every row read: nfo refuses to serve what it cannot trust.  Operational records,
which a start reads whole right after the open, are checked once: at the open when it
checked every row, else as they are read.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Generator,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, contextmanager, suppress
from types import TracebackType
from typing import Any

from nfo.errors import NfoError, OperationFailed, StorageCorrupt, StorageFull
from nfo.threads import DaemonPool

from .base import (
    CommitKind,
    CommitRecord,
    NotificationMark,
    NotificationRecord,
    NotificationSpan,
    OperRecord,
    Snapshot,
    StoredState,
)
from .files import fsync_dir

__all__ = ["SCHEMA_VERSION", "SqliteStorage"]

SCHEMA_VERSION = 4
"""Stored in ``PRAGMA user_version``; a database from a newer nfo is refused, an older
one is upgraded on open.  1: the tables; 2: a ``crc`` column in each; 3: notifications
by module (the ``stream`` column, always ``NETCONF``, becomes ``module``, taken from
the logged envelope's ``module``), indexed by (module, seq) and (module, timestamp);
4: snapshots in parts (``snapshot_parts``, and the ``parts`` column of ``snapshots``)."""

_BUSY_TIMEOUT_MS = 10_000
_BATCH = 500

SNAPSHOT_PART = 1 << 19
"""Characters of a snapshot's text per part (bytes, for a text given as UTF-8): a
snapshot longer than this is written a part per transaction
(:meth:`SqliteStorage.snapshot_steps`), about a millisecond each, instead of in one
transaction of tens of milliseconds."""
_PARTS_PRUNED_PER_STEP = 2
_COMMITS_PRUNED_PER_STEP = 1000

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 0.2
"""Seconds between the background checkpoints while writes come (none while idle)."""
CHECKPOINT_BACKSTOP_PAGES = 10_000
"""The writing connection's own automatic checkpoint, for when the background one
falls behind: the log is copied into the database on a commit once it holds this many
pages (SQLite's default is 1,000, on every commit that crosses it)."""

_SCHEMA = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    crc   INTEGER NOT NULL
);
CREATE TABLE commits (
    revision  INTEGER PRIMARY KEY AUTOINCREMENT,
    datastore TEXT    NOT NULL,
    timestamp REAL    NOT NULL,
    user      TEXT    NOT NULL,
    kind      TEXT    NOT NULL,
    label     TEXT    NOT NULL,
    size      INTEGER NOT NULL,
    payload   TEXT    NOT NULL,
    crc       INTEGER NOT NULL
);
CREATE INDEX commits_by_datastore ON commits (datastore, revision);
CREATE TABLE snapshots (
    datastore TEXT    NOT NULL,
    revision  INTEGER NOT NULL,
    content   TEXT    NOT NULL,
    crc       INTEGER NOT NULL,
    parts     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (datastore, revision)
);
CREATE TABLE snapshot_parts (
    datastore TEXT    NOT NULL,
    revision  INTEGER NOT NULL,
    part      INTEGER NOT NULL,
    content   TEXT    NOT NULL,
    crc       INTEGER NOT NULL,
    PRIMARY KEY (datastore, revision, part)
);
CREATE TABLE oper (
    owner   TEXT NOT NULL,
    key     TEXT NOT NULL,
    content TEXT NOT NULL,
    crc     INTEGER NOT NULL,
    PRIMARY KEY (owner, key)
);
CREATE TABLE notifications (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    module    TEXT NOT NULL,
    timestamp REAL NOT NULL,
    content   TEXT NOT NULL,
    crc       INTEGER NOT NULL
);
CREATE INDEX notifications_by_time ON notifications (module, timestamp);
CREATE INDEX notifications_by_seq ON notifications (module, seq);
"""

# Per table: the row's key (for messages) and its crc as computed in SQL, text as
# stored bytes (damaged UTF-8 must reach the checksum, not fail to decode).
_SNAPSHOT_CRC_V3 = "nfo_crc(CAST(datastore AS BLOB), revision, CAST(content AS BLOB))"
_COMMIT_CRC = ("nfo_crc(revision, CAST(datastore AS BLOB), timestamp, CAST(user AS BLOB),"
               " CAST(kind AS BLOB), CAST(label AS BLOB), CAST(payload AS BLOB))")
_CHECKED: dict[str, tuple[str, str]] = {
    "meta": ("key", "nfo_crc(CAST(key AS BLOB), CAST(value AS BLOB))"),
    # a commit's size (its payload's bytes) is not in its crc: checked against the payload
    "commits": ("revision", f"CASE WHEN size = length(CAST(payload AS BLOB)) THEN {_COMMIT_CRC}"
                " ELSE -1 END"),
    # a snapshot in parts: its count of parts too (a row from before version 4 has none)
    "snapshots": ("quote(datastore) || '@' || revision",
                  f"CASE WHEN parts = 0 THEN {_SNAPSHOT_CRC_V3} ELSE nfo_crc(CAST(datastore"
                  " AS BLOB), revision, CAST(content AS BLOB), parts) END"),
    "snapshot_parts": ("quote(datastore) || '@' || revision || '#' || part",
                       "nfo_crc(CAST(datastore AS BLOB), revision, part,"
                       " CAST(content AS BLOB))"),
    "oper": ("quote(owner) || ' ' || quote(key)",
             "nfo_crc(CAST(owner AS BLOB), CAST(key AS BLOB), CAST(content AS BLOB))"),
    "notifications": ("seq", "nfo_crc(seq, CAST(module AS BLOB), timestamp,"
                      " CAST(content AS BLOB))"),
}
_CHECKED_V3 = {t: c for t, c in _CHECKED.items() if t != "snapshot_parts"}
_CHECKED_V3["snapshots"] = (_CHECKED["snapshots"][0], _SNAPSHOT_CRC_V3)
"""The same for version 3: snapshots whole."""
_CHECKED_V2 = {
    **_CHECKED_V3,
    "notifications": ("seq", "nfo_crc(seq, CAST(stream AS BLOB), timestamp,"
                      " CAST(content AS BLOB))"),
}
"""The same for versions 1 and 2, whose notifications have ``stream`` for ``module``."""

_MODULE_OF_ENVELOPE = (
    "CASE WHEN json_valid(content) AND json_type(content, '$.module') = 'text'"
    " THEN json_extract(content, '$.module') ELSE '' END")
"""The module a version 2 notification was logged for: the ``module`` of the JSON
envelope the notification hub wrote (its stream was always ``NETCONF``)."""

_MODULES = """
WITH RECURSIVE m(name) AS (
    SELECT (SELECT MIN(module) FROM notifications)
    UNION ALL
    SELECT (SELECT MIN(module) FROM notifications WHERE module > m.name) FROM m
    WHERE m.name IS NOT NULL)
SELECT name FROM m WHERE name IS NOT NULL
"""
"""Every module with notifications, one index seek each (not a scan of the log)."""

_IO_ERROR_KEY = "storage-io-error"
"""Meta key written after an I/O error to supersede a commit that may be on disk."""

_COMMIT_COLUMNS = "revision, datastore, timestamp, user, kind, payload, label, crc"

# Errors the sqlite3 module raises: its own, plus text or integers it cannot bind.
_DB_ERRORS = (sqlite3.Error, UnicodeEncodeError, OverflowError)
OFF_LOOP_AFTER = 0.001
"""Seconds a COMMIT takes (moving average) from which durable_batch runs it in a thread:
handing it over and back costs a tenth of a millisecond or two."""


def _crc(*fields: object) -> int:
    """CRC-32 of a row's fields: text as UTF-8 bytes, numbers by repr."""
    h = 0
    for f in fields:
        if isinstance(f, bytes):
            data = f
        elif isinstance(f, int | float):
            data = repr(f).encode()
        else:
            data = str(f).encode("utf-8", "surrogatepass")
        h = zlib.crc32(data, h)
        h = zlib.crc32(b"\x00", h)
    return h


def _decoded(data: bytes, datastore: str, revision: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise OperationFailed(f"storage: the snapshot {datastore}@{revision} to write is not"
                              f" UTF-8 text: {e}") from e


def _parts(content: str | Sequence[bytes], size: int, datastore: str,
           revision: int) -> Iterator[str]:
    """``content`` in pieces of ``size`` characters (text) or of at most ``size`` bytes
    cut between characters (UTF-8 in pieces, each decoded when its turn comes)."""
    if isinstance(content, str):
        for i in range(0, len(content), size):
            yield content[i:i + size]
        return
    held = b""
    for chunk in content:
        held = held + chunk if held else bytes(chunk)
        while len(held) > size:
            end = size
            for _ in range(3):   # a character's continuation bytes: cut before them
                if held[end] & 0xC0 == 0x80:
                    end -= 1
            yield _decoded(held[:end], datastore, revision)
            held = held[end:]
    if held:
        yield _decoded(held, datastore, revision)


def _commit_or_roll_back(conn: sqlite3.Connection) -> BaseException | None:
    """COMMIT the open transaction (on the loop, or in durable_batch's worker thread); on
    failure roll it back, so the connection is idle again either way, and return the
    failure."""
    try:
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        return exc
    return None


def _errorcode(exc: BaseException) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else -1


class _Checkpointer:
    """Copies the write-ahead log into the database file from a thread and a connection
    of its own.

    SQLite copies the log on the commit that takes it past 1,000 pages, in the
    committing thread: a few milliseconds to tens of them (a 10 MB snapshot's log) on
    the event loop, which every request then waits for.  A PASSIVE checkpoint waits for
    no reader or writer and writers go on appending meanwhile; the log is reset by the
    next write once it is all copied.  While writes come (:meth:`poke`), one runs every
    ``every`` seconds; none while idle."""

    def __init__(self, path: str, every: float) -> None:
        self._path = path
        self._every = every
        self._due = threading.Event()
        self._stopping = threading.Event()
        self.checkpoints = 0
        self._failed: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="nfo-sqlite-checkpoint")
        self._thread.start()

    def poke(self) -> None:
        """Writes were committed: a checkpoint is due within ``every`` seconds."""
        if not self._due.is_set():
            self._due.set()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as e:
            log.warning("storage: no background checkpoints of %s: %s", self._path, e)
            return
        try:
            conn.execute("PRAGMA synchronous = FULL")
            while True:
                self._due.wait()
                if self._stopping.is_set():
                    return
                self._due.clear()
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                    self._failed = None
                except sqlite3.Error as e:  # the writer's backstop still copies the log
                    if str(e) != self._failed:
                        log.warning("storage: a background checkpoint of %s failed: %s",
                                    self._path, e)
                    self._failed = str(e)
                if self._stopping.wait(self._every):
                    return
        finally:
            conn.close()

    def close(self) -> None:
        self._stopping.set()
        self._due.set()
        self._thread.join(timeout=10)


class SqliteStorage:
    """:class:`~nfo.datastore.storage.base.Storage` on one SQLite file.

    Keeps the newest ``keep_snapshots`` snapshots per datastore and the commits from the
    oldest of them on (every commit, until there are that many).  Not thread-safe: call it
    from one thread at a time (the closing COMMIT of a :meth:`durable_batch` runs in a
    worker thread of its own, and every other call waits for it first).
    """

    def __init__(self, path: str | os.PathLike[str], *, keep_snapshots: int = 3,
                 checkpoint_every: float | None = None) -> None:
        """``checkpoint_every``: seconds between background checkpoints while writes
        come (default :data:`CHECKPOINT_EVERY`; 0: none, SQLite's own on every commit
        that takes the log past 1,000 pages)."""
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be at least 1")
        self._path = os.fspath(path)
        self._keep_snapshots = keep_snapshots
        self._conn: sqlite3.Connection | None = None
        self._oper_checked = False
        """Whether the open checked every operational record (a read of all of them, page
        by page, need not again; a read of chosen records checks them each time)."""
        self._batch_depth = 0
        self._batch_lost: NfoError | None = None
        self._defer_commit = False
        self._inflight: concurrent.futures.Future[BaseException | None] | None = None
        self._committer: DaemonPool | None = None
        self._checkpointer: _Checkpointer | None = None
        self.off_loop_after = OFF_LOOP_AFTER
        """A durable_batch's COMMIT runs in a worker thread once they take this long."""
        self.commit_seconds = 0.0
        """Moving average of a durable_batch's COMMIT."""
        action = f"open {self._path!r}"
        with self._checked(action):
            try:
                created = self._create_if_missing()
            except OSError as e:
                raise OperationFailed(f"storage: cannot {action}: {e}") from e
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
            try:
                conn.create_function("nfo_crc", -1, _crc, deterministic=True)
                self._setup(conn, check=not created)
            except BaseException:
                conn.close()
                raise
            every = CHECKPOINT_EVERY if checkpoint_every is None else checkpoint_every
            if every > 0 and not self._in_memory():
                conn.execute(f"PRAGMA wal_autocheckpoint = {CHECKPOINT_BACKSTOP_PAGES}")
                self._checkpointer = _Checkpointer(self._path, every)
        self._conn = conn

    @property
    def checkpoints(self) -> int:
        """Background checkpoints run so far."""
        return 0 if self._checkpointer is None else self._checkpointer.checkpoints

    def _committed(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.poke()

    def _in_memory(self) -> bool:
        return self._path in (":memory:", "")

    def _create_if_missing(self) -> bool:
        """Create a missing database whole: built as ``<path>.new`` and renamed into
        place, so that ``<path>`` exists only complete.  True if it was created."""
        if self._in_memory():
            return True
        if os.path.exists(self._path):
            if os.path.getsize(self._path) == 0:
                raise self._corrupt("the file is empty")
            return False
        tmp = self._path + ".new"
        for leftover in (tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"):
            with suppress(FileNotFoundError):
                os.unlink(leftover)
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
            conn.execute("PRAGMA journal_mode = WAL")
        finally:
            conn.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self._path)
        fsync_dir(os.path.dirname(os.path.abspath(self._path)))
        return True

    def _setup(self, conn: sqlite3.Connection, *, check: bool) -> None:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        mode = str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]).lower()
        if mode not in ("wal", "memory"):
            raise OperationFailed(
                f"storage: {self._path!r} cannot use write-ahead logging (journal_mode {mode})"
            )
        conn.execute("PRAGMA synchronous = FULL")
        integrity = None
        if check:   # SQLite's own check in a thread while this one checks every row's CRC
            pool = DaemonPool(1, "nfo-integrity-check")
            integrity = pool.submit(self._integrity_problems)
            pool.shutdown(wait=False)
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise OperationFailed(
                    f"storage: {self._path!r} has schema version {version}, written by a "
                    f"newer nfo; this nfo understands up to version {SCHEMA_VERSION}"
                )
            if version == 0:
                if conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchone():
                    raise OperationFailed(
                        f"storage: {self._path!r} is an SQLite database but not an nfo one"
                    )
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            else:
                if version == 1:
                    for table, (_, crc) in _CHECKED_V2.items():
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER NOT NULL"
                                     " DEFAULT 0")
                        conn.execute(f"UPDATE {table} SET crc = "
                                     f"{_COMMIT_CRC if table == 'commits' else crc}")
                elif check:
                    try:
                        self._verify_rows(conn, _CHECKED if version == SCHEMA_VERSION
                                          else _CHECKED_V3 if version == 3 else _CHECKED_V2)
                    except BaseException:
                        self._raise_integrity(integrity)   # what SQLite found first
                        raise
                    self._oper_checked = True
                if version < 3:
                    # renaming the column renames it in both indexes too
                    conn.execute("ALTER TABLE notifications RENAME COLUMN stream TO module")
                    conn.execute(f"UPDATE notifications SET module = {_MODULE_OF_ENVELOPE}")
                    conn.execute("UPDATE notifications SET crc = "
                                 f"{_CHECKED['notifications'][1]}")
                if version < 4:
                    conn.execute("ALTER TABLE snapshots ADD COLUMN parts INTEGER NOT NULL"
                                 " DEFAULT 0")
                    conn.execute(_SCHEMA[_SCHEMA.index("CREATE TABLE snapshot_parts"):]
                                 .split(";")[0])
                # the parts of a snapshot whose writing a stop or a crash cut short
                conn.execute(
                    "DELETE FROM snapshot_parts WHERE NOT EXISTS (SELECT 1 FROM snapshots AS s"
                    " WHERE s.datastore = snapshot_parts.datastore"
                    " AND s.revision = snapshot_parts.revision AND s.parts > 0)")
            self._raise_integrity(integrity)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _integrity_problems(self) -> list[str]:
        """``PRAGMA integrity_check`` on a connection of its own (a reader: WAL lets
        the opening connection check rows and migrate meanwhile)."""
        conn = sqlite3.connect(self._path, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
            return [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)")]
        finally:
            conn.close()

    def _raise_integrity(self, integrity: concurrent.futures.Future[list[str]] | None
                         ) -> None:
        if integrity is None:
            return
        problems = integrity.result()   # its sqlite3.Error: as the open's own (_checked)
        if problems != ["ok"]:
            raise self._corrupt("; ".join(problems))

    def _verify_rows(self, conn: sqlite3.Connection,
                     layout: dict[str, tuple[str, str]]) -> None:
        """Every row against its checksum, and the last revision assigned against those
        in use."""
        for table, (key, crc) in layout.items():
            bad = [str(r[0]) for r in conn.execute(
                f"SELECT {key} FROM {table} WHERE crc != {crc} LIMIT 5")]
            if bad:
                raise self._corrupt(f"{table} {', '.join(bad)} do not match their checksums")
        # the last revision assigned has no checksum: it must at least cover those in use
        last = self._last_revision(conn)
        used = conn.execute("SELECT MAX(r) FROM (SELECT MAX(revision) AS r FROM commits"
                            " UNION ALL SELECT MAX(revision) FROM snapshots)").fetchone()[0]
        if used is not None and last < used:
            raise self._corrupt(f"the last revision assigned, {last}, is below revision {used}"
                                " in use")

    # -- plumbing -------------------------------------------------------------

    def _corrupt(self, detail: str) -> StorageCorrupt:
        name = os.path.basename(self._path)
        what = f"cannot open {self._path}: it" if self._conn is None else self._path
        return StorageCorrupt(
            f"storage: {what} is damaged ({detail}); nfo will not "
            f"serve from it. Stop nfo and restore the state directory from a backup, or "
            f"move {name} and {name}-wal aside to start with an empty datastore "
            f"('sqlite3 {name} .recover' may salvage data)")

    def _failure(self, action: str, exc: BaseException, *, write: bool = False) -> NfoError:
        code = _errorcode(exc)
        if code == sqlite3.SQLITE_FULL:
            return StorageFull(
                f"storage: cannot {action}: the disk holding {self._path} is full; nothing "
                "was changed (free some space and retry)")
        if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB) or \
                str(exc).startswith("Could not decode to UTF-8"):
            return self._corrupt(str(exc))
        if code == sqlite3.SQLITE_IOERR and write and not self._batch_depth:
            if self._settle():
                return OperationFailed(f"storage: cannot {action}: {exc}; nothing was changed")
            return OperationFailed(
                f"storage: cannot {action}: {exc}; this write may still have reached the "
                "disk: until a later write succeeds, a restart may find it applied")
        return OperationFailed(f"storage: cannot {action}: {exc}")

    def _settle(self) -> bool:
        """After an I/O error while committing (a failed fsync), the commit's WAL frames
        may be on disk, and SQLite replays every whole commit it finds there: a crash
        now would bring back a write reported as failed.  A small durable write takes
        the place of those frames; True once it has."""
        conn = self._conn
        if conn is None or conn.in_transaction:
            return False
        value = repr(time.time())
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "INSERT INTO meta (key, value, crc) VALUES (?, ?, ?) ON CONFLICT (key)"
                " DO UPDATE SET value = excluded.value, crc = excluded.crc",
                (_IO_ERROR_KEY, value, _crc(_IO_ERROR_KEY, value)))
            conn.execute("COMMIT")
        except _DB_ERRORS:
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            return False
        return True

    @contextmanager
    def _checked(self, action: str, *, write: bool = False) -> Iterator[None]:
        """Turn a SQLite failure during ``action`` into an :class:`NfoError`."""
        try:
            yield
        except _DB_ERRORS as exc:
            raise self._failure(action, exc, write=write) from exc

    def _check_row(self, what: str, crc: object, *fields: object) -> None:
        if crc != _crc(*fields):
            raise self._corrupt(f"{what} does not match its checksum")

    def _commit(self, row: tuple[Any, ...]) -> CommitRecord:
        revision, datastore, timestamp, user, kind, payload, label, crc = row
        self._check_row(f"commit {revision}", crc, revision, datastore, timestamp, user, kind,
                        label, payload)
        return CommitRecord(
            revision=int(revision), datastore=str(datastore), timestamp=float(timestamp),
            user=str(user), kind=str(kind), payload=str(payload), label=str(label),
        )

    def _checked_snapshot(self, conn: sqlite3.Connection,
                          row: tuple[Any, ...] | None) -> Snapshot | None:
        """A ``snapshots`` row (datastore, revision, content, crc, parts) as a snapshot,
        its parts joined, each checked."""
        if row is None:
            return None
        datastore, revision, content, crc, parts = row
        what = f"snapshot {datastore}@{revision}"
        if not parts:
            self._check_row(what, crc, datastore, revision, content)
            return Snapshot(datastore=str(datastore), revision=int(revision),
                            content=str(content))
        self._check_row(what, crc, datastore, revision, content, parts)
        pieces = []
        for k, (part, piece, piece_crc) in enumerate(conn.execute(
                "SELECT part, content, crc FROM snapshot_parts WHERE datastore = ?"
                " AND revision = ? ORDER BY part", (datastore, revision))):
            if part != k:
                break
            self._check_row(f"{what} part {part}", piece_crc, datastore, revision, part, piece)
            pieces.append(str(piece))
        if len(pieces) != parts:
            raise self._corrupt(f"{what} has {len(pieces)} of its {parts} parts in order")
        return Snapshot(datastore=str(datastore), revision=int(revision),
                        content="".join(pieces))

    def _connection(self) -> sqlite3.Connection:
        if self._inflight is not None:
            self._inflight.result()  # a durable_batch's COMMIT, still running
            self._inflight = None
        if self._conn is None:
            raise OperationFailed("storage: already closed")
        return self._conn

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Group the writes inside into one durable transaction (group commit).

        Each write inside (and each nested batch) runs in its own savepoint, so one
        failing write is undone alone; the rest become durable together when the
        block ends.  If SQLite had to roll back the whole transaction (a full disk
        can do that), every later write inside fails and so does the block.
        """
        conn = self._connection()
        if self._batch_depth:
            with self._transaction("make the writes durable"):
                self._batch_depth += 1
                try:
                    yield
                finally:
                    self._batch_depth -= 1
            return
        with self._checked("make the writes durable", write=True):
            conn.execute("BEGIN IMMEDIATE")
            self._batch_depth = 1
            self._batch_lost = None
            try:
                yield
                if self._batch_lost is not None:
                    raise self._batch_lost
                if not self._defer_commit:  # else durable_batch commits
                    conn.execute("COMMIT")
                    self._committed()
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                self._batch_depth = 0
                self._batch_lost = None

    @asynccontextmanager
    async def durable_batch(self) -> AsyncIterator[None]:
        """:meth:`batch`, whose closing COMMIT (the log's write and its fsync, a
        checkpoint now and then) runs in a worker thread once COMMITs take
        :attr:`off_loop_after` seconds or more (a moving average): the event loop then
        goes on serving while the disk works.  A quicker disk is waited for on the
        loop, where handing the COMMIT to a thread would cost more than it saves.  The
        block's writes are durable when this returns; a storage call made meanwhile
        waits for the COMMIT first.  Not nested in another batch."""
        if self._batch_depth:
            raise RuntimeError("durable_batch inside a batch")
        self._defer_commit = True
        try:
            with self.batch():
                yield
        finally:
            self._defer_commit = False
        conn = self._connection()
        if not conn.in_transaction:
            return

        def commit() -> BaseException | None:
            began = time.perf_counter()
            exc = _commit_or_roll_back(conn)
            self.commit_seconds += (time.perf_counter() - began - self.commit_seconds) / 8
            return exc

        if self.commit_seconds < self.off_loop_after:
            exc = commit()
        else:
            exc = await self._commit_off_loop(commit)
        if exc is not None:
            if isinstance(exc, _DB_ERRORS):
                raise self._failure("make the writes durable", exc, write=True) from exc
            raise exc
        self._committed()

    async def _commit_off_loop(self, commit: Callable[[], BaseException | None]
                               ) -> BaseException | None:
        if self._committer is None:
            self._committer = DaemonPool(1, "nfo-storage-commit")
        done = self._inflight = self._committer.submit(commit)
        try:
            return await asyncio.shield(asyncio.wrap_future(done))
        except asyncio.CancelledError:
            # the COMMIT goes on: the connection is used again only once it ended
            with suppress(BaseException):
                done.result()
            raise
        finally:
            if self._inflight is done:
                self._inflight = None

    @contextmanager
    def _transaction(self, action: str, *, write: bool = True, single: bool = False,
                     durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic (and, for writes, durable) transaction around the block.
        ``single``: the block writes with one statement, which SQLite makes atomic by
        itself; inside a batch it needs no savepoint of its own.  ``durable`` false (not
        in a batch): committed without an fsync of its own (``synchronous=NORMAL``), so
        that it is durable with the next durable commit: the log is one file, synced
        whole, and read back in order only as far as its frames are whole."""
        conn = self._connection()
        if self._batch_depth:
            if self._batch_lost is not None:
                raise self._batch_lost
            with self._checked(action):
                if not single:
                    conn.execute("SAVEPOINT nfo_write")
                try:
                    yield conn
                    if not single:
                        conn.execute("RELEASE nfo_write")
                except BaseException as exc:
                    if not conn.in_transaction and self._batch_lost is None:
                        self._batch_lost = (
                            exc if isinstance(exc, NfoError) else
                            self._failure(action, exc) if isinstance(exc, _DB_ERRORS) else
                            OperationFailed(f"storage: cannot {action}: the grouped writes "
                                            "were rolled back"))
                    if not single:
                        with suppress(sqlite3.Error):
                            conn.execute("ROLLBACK TO nfo_write")
                            conn.execute("RELEASE nfo_write")
                    raise
            return
        with self._checked(action, write=write):
            mode = None if durable else int(conn.execute("PRAGMA synchronous").fetchone()[0])
            if mode is not None:
                conn.execute("PRAGMA synchronous = NORMAL")
            try:
                conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                yield conn
                conn.execute("COMMIT")
                if write:
                    self._committed()
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                if mode is not None:
                    conn.execute(f"PRAGMA synchronous = {mode}")

    @contextmanager
    def _reading(self, action: str) -> Iterator[sqlite3.Connection]:
        """A single-statement read, which SQLite runs in its own implicit transaction."""
        conn = self._connection()
        with self._checked(action):
            yield conn

    @staticmethod
    def _last_revision(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'commits'").fetchone()
        return int(row[0]) if row else 0

    def __enter__(self) -> SqliteStorage:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._inflight is not None:
            with suppress(BaseException):
                self._inflight.result()
            self._inflight = None
        if self._committer is not None:
            self._committer.shutdown(wait=False)
            self._committer = None
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._checked("close the database"):
                conn.close()

    # -- commits and snapshots ------------------------------------------------

    def load(self) -> StoredState:
        with self._transaction("load the stored state", write=False) as conn:
            snapshots: dict[str, Snapshot] = {}
            for row in conn.execute(
                "SELECT s.datastore, s.revision, s.content, s.crc, s.parts FROM snapshots AS s"
                " WHERE s.revision = (SELECT MAX(revision) FROM snapshots"
                "                     WHERE datastore = s.datastore)"
            ).fetchall():
                snap = self._checked_snapshot(conn, row)
                assert snap is not None
                snapshots[snap.datastore] = snap
            commits = [
                self._commit(row) for row in conn.execute(
                    f"SELECT {_COMMIT_COLUMNS} FROM commits AS c"
                    " WHERE c.revision > COALESCE((SELECT MAX(revision) FROM snapshots"
                    "                              WHERE datastore = c.datastore), -1)"
                    " ORDER BY c.revision"
                )
            ]
            last = self._last_revision(conn)
        return StoredState(snapshots=snapshots, commits=commits, last_revision=last)

    def append_commit(
        self, datastore: str, timestamp: float, user: str, kind: CommitKind, payload: str,
        label: str = "",
    ) -> CommitRecord:
        size = len(payload.encode("utf-8", "surrogatepass"))
        timestamp = float(timestamp)
        with self._transaction(f"append a commit to {datastore!r}", single=True) as conn:
            revision = self._last_revision(conn) + 1
            conn.execute(
                "INSERT INTO commits (revision, datastore, timestamp, user, kind, label, size,"
                " payload, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (revision, datastore, timestamp, user, kind, label, size, payload,
                 _crc(revision, datastore, timestamp, user, kind, label, payload)),
            )
        return CommitRecord(
            revision=revision, datastore=datastore, timestamp=timestamp, user=user, kind=kind,
            payload=payload, label=label,
        )

    def write_snapshot(self, datastore: str, revision: int, content: str) -> None:
        for _ in self.snapshot_steps(datastore, revision, content):
            pass

    def snapshot_steps(self, datastore: str, revision: int,
                       content: str | Sequence[bytes]) -> Generator[None, None, None]:
        """:meth:`write_snapshot` one transaction per step (``next``): a text longer than
        :data:`SNAPSHOT_PART` a part at a time, then the step that makes it the
        datastore's newest snapshot (and prunes older snapshots and commits), then the
        deletion of the parts the snapshots it replaced leave, a few at a time.  Until
        that step the snapshot does not exist for a reader or a restart; parts a stop or a
        crash leave behind are deleted on the next open.  Other writes may run between
        steps; one snapshot of a datastore is written at a time.  A snapshot at a
        revision that has one already is not written again: the data are the same, and
        the one stored stays whole until the end.  The parts and the deletions are
        committed without an fsync of their own; the step that makes the snapshot the
        newest syncs them with it."""
        what = f"write a snapshot of {datastore!r}"
        with self._transaction(what, write=False) as conn:
            self._check_snapshot_revision(conn, datastore, revision)
            if conn.execute("SELECT 1 FROM snapshots WHERE datastore = ? AND revision = ?",
                            (datastore, revision)).fetchone():
                return
        size = len(content) if isinstance(content, str) else sum(map(len, content))
        whole: str | None = None
        if size <= SNAPSHOT_PART:
            whole = (content if isinstance(content, str)
                     else _decoded(b"".join(content), datastore, revision))
        parts = 0
        for k, piece in enumerate(() if whole is not None else
                                  _parts(content, SNAPSHOT_PART, datastore, revision)):
            parts = k + 1
            with self._transaction(what, durable=False) as conn:
                if k == 0:
                    conn.execute("DELETE FROM snapshot_parts WHERE datastore = ?"
                                 " AND revision = ?", (datastore, revision))
                conn.execute(
                    "INSERT INTO snapshot_parts (datastore, revision, part, content, crc)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (datastore, revision, k, piece, _crc(datastore, revision, k, piece)))
            del piece
            yield
        with self._transaction(what) as conn:
            self._check_snapshot_revision(conn, datastore, revision)
            if whole is None:
                found = conn.execute("SELECT COUNT(*) FROM snapshot_parts WHERE datastore = ?"
                                     " AND revision = ?", (datastore, revision)).fetchone()[0]
                if found != parts:
                    raise OperationFailed(f"storage: {found} of the {parts} parts of"
                                          f" snapshot {datastore}@{revision} are stored")
                row = ("", _crc(datastore, revision, "", parts), parts)
            else:
                conn.execute("DELETE FROM snapshot_parts WHERE datastore = ? AND revision = ?",
                             (datastore, revision))
                assert whole is not None
                row = (whole, _crc(datastore, revision, whole), 0)
            conn.execute(
                "INSERT INTO snapshots (datastore, revision, content, crc, parts)"
                " VALUES (?, ?, ?, ?, ?)", (datastore, revision, *row))
            conn.execute(
                "DELETE FROM snapshots WHERE datastore = ?1 AND revision < ("
                "  SELECT revision FROM snapshots WHERE datastore = ?1"
                "  ORDER BY revision DESC LIMIT 1 OFFSET ?2)",
                (datastore, self._keep_snapshots - 1),
            )
            # the empty start counts as the oldest snapshot until there are enough
            row = conn.execute(
                "SELECT MIN(revision) FROM snapshots WHERE datastore = ?1"
                " HAVING COUNT(*) >= ?2", (datastore, self._keep_snapshots)).fetchone()
        # the commits no snapshot kept needs any more, then the parts of the snapshots it
        # replaced, a few a step (any a stop leaves go with the next snapshot's, or on open)
        if row is not None:
            yield from self._delete_in_steps(
                what, "DELETE FROM commits WHERE rowid IN (SELECT rowid FROM commits"
                " WHERE datastore = ?1 AND revision < ?2 LIMIT ?3)",
                (datastore, row[0]), _COMMITS_PRUNED_PER_STEP)
        yield from self._delete_in_steps(
            what, "DELETE FROM snapshot_parts WHERE rowid IN (SELECT p.rowid FROM"
            " snapshot_parts AS p WHERE p.datastore = ?1 AND p.revision != ?2"
            " AND NOT EXISTS (SELECT 1 FROM snapshots AS s WHERE s.datastore = ?1"
            " AND s.revision = p.revision AND s.parts > 0) LIMIT ?3)",
            (datastore, revision), _PARTS_PRUNED_PER_STEP)

    def _delete_in_steps(self, what: str, sql: str, args: tuple[object, ...],
                         per_step: int) -> Generator[None, None, None]:
        """``sql`` (a DELETE whose last parameter is its LIMIT) a step at a time, each
        step a transaction without an fsync of its own, until a step deletes fewer."""
        while True:
            yield
            with self._transaction(what, durable=False) as conn:
                gone = conn.execute(sql, (*args, per_step)).rowcount
            if gone < per_step:
                return

    def _check_snapshot_revision(self, conn: sqlite3.Connection, datastore: str,
                                 revision: int) -> None:
        last = self._last_revision(conn)
        if not 0 <= revision <= last:
            raise OperationFailed(
                f"storage: snapshot revision {revision} of {datastore!r} is outside"
                f" 0..{last}, the revisions assigned so far"
            )

    def since_snapshot(self, datastore: str) -> tuple[int, int]:
        with self._reading(f"count the commits of {datastore!r}") as conn:
            count, size = conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM commits"
                " WHERE datastore = ?1 AND revision > COALESCE("
                "   (SELECT MAX(revision) FROM snapshots WHERE datastore = ?1), -1)",
                (datastore,),
            ).fetchone()
        return int(count), int(size)

    def history(self, datastore: str, limit: int = 100,
                before: int | None = None) -> list[CommitRecord]:
        if limit <= 0:
            return []
        with self._reading(f"read the history of {datastore!r}") as conn:
            rows = conn.execute(
                f"SELECT {_COMMIT_COLUMNS} FROM commits WHERE datastore = ?"
                " AND revision < ? ORDER BY revision DESC LIMIT ?",
                (datastore, (1 << 63) - 1 if before is None else before, limit),
            ).fetchall()
        return [self._commit(row) for row in rows]

    def snapshot_at(self, datastore: str, revision: int) -> Snapshot | None:
        with self._transaction(f"read a snapshot of {datastore!r}", write=False) as conn:
            row = conn.execute(
                "SELECT datastore, revision, content, crc, parts FROM snapshots"
                " WHERE datastore = ? AND revision <= ? ORDER BY revision DESC LIMIT 1",
                (datastore, revision),
            ).fetchone()
            return self._checked_snapshot(conn, row)

    def commits_between(self, datastore: str, after: int, upto: int) -> list[CommitRecord]:
        with self._reading(f"read the commits of {datastore!r}") as conn:
            rows = conn.execute(
                f"SELECT {_COMMIT_COLUMNS} FROM commits"
                " WHERE datastore = ? AND revision > ? AND revision <= ? ORDER BY revision",
                (datastore, after, upto),
            ).fetchall()
        return [self._commit(row) for row in rows]

    # -- operational data -----------------------------------------------------

    def put_oper(self, owner: str, key: str, content: str | None) -> None:
        with self._transaction(f"store operational data of {owner!r}", single=True) as conn:
            if content is None:
                conn.execute("DELETE FROM oper WHERE owner = ? AND key = ?", (owner, key))
            else:
                conn.execute(
                    "INSERT INTO oper (owner, key, content, crc) VALUES (?, ?, ?, ?)"
                    " ON CONFLICT (owner, key) DO UPDATE SET content = excluded.content,"
                    " crc = excluded.crc",
                    (owner, key, content, _crc(owner, key, content)),
                )

    def load_oper(self) -> list[OperRecord]:
        with self._reading("load operational data") as conn:
            rows = conn.execute(
                "SELECT owner, key, content, crc FROM oper ORDER BY owner, key"
            ).fetchall()
        return [OperRecord(owner=str(o), key=str(k), content=self._oper_text(o, k, c, crc))
                for o, k, c, crc in rows]

    def oper_keys(self) -> list[tuple[str, str]]:
        with self._reading("list operational records") as conn:
            return conn.execute("SELECT owner, key FROM oper ORDER BY owner, key").fetchall()

    def oper_texts(self, owner: str, keys: Sequence[str]) -> list[str | None]:
        # the path of every read of one instance's state: no context managers
        conn = self._connection()
        out: list[str | None] = []
        try:
            for key in keys:
                row = conn.execute("SELECT content, crc FROM oper WHERE owner = ? AND key = ?",
                                   (owner, key)).fetchone()
                out.append(None if row is None
                           else self._oper_text(owner, key, *row, again=True))
        except _DB_ERRORS as exc:
            raise self._failure(f"read operational data of {owner!r}", exc) from exc
        return out

    def oper_page(self, owner: str, after: str | None, limit: int
                  ) -> list[tuple[str, str]]:
        with self._reading(f"read operational data of {owner!r}") as conn:
            if after is None:
                rows = conn.execute("SELECT key, content, crc FROM oper WHERE owner = ?"
                                    " ORDER BY key LIMIT ?", (owner, limit)).fetchall()
            else:
                rows = conn.execute(
                    "SELECT key, content, crc FROM oper WHERE owner = ? AND key > ?"
                    " ORDER BY key LIMIT ?", (owner, after, limit)).fetchall()
        return [(k, self._oper_text(owner, k, c, crc)) for k, c, crc in rows]

    def _oper_text(self, owner: str, key: str, content: str, crc: int, *,
                   again: bool = False) -> str:
        """A record's content, checked against its CRC: a chosen record (``again``)
        always; one read with all the others (a start's read) unless the open checked
        every row moments before."""
        if again or not self._oper_checked:
            self._check_row(f"operational record {owner} {key}", crc, owner, key, content)
        return str(content)

    def clear_oper(self, owner: str) -> None:
        with self._transaction(f"clear operational data of {owner!r}") as conn:
            conn.execute("DELETE FROM oper WHERE owner = ?", (owner,))

    # -- notifications --------------------------------------------------------

    def append_notification(self, module: str, timestamp: float, content: str) -> int:
        timestamp = float(timestamp)
        with self._transaction(f"log a notification of module {module!r}",
                               single=True) as conn:
            row = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'notifications'").fetchone()
            seq = (int(row[0]) if row else 0) + 1
            conn.execute(
                "INSERT INTO notifications (seq, module, timestamp, content, crc)"
                " VALUES (?, ?, ?, ?, ?)",
                (seq, module, timestamp, content, _crc(seq, module, timestamp, content)),
            )
        return seq

    def notifications(
        self, modules: Collection[str] | None = None, start: float | None = None,
        stop: float | None = None, after_seq: int = 0,
    ) -> Iterator[NotificationRecord]:
        if isinstance(modules, str):  # a module name is a collection of characters too
            raise TypeError("notifications() takes a collection of module names")
        window = ""
        bounds: list[float] = []
        if start is not None:
            window += " AND timestamp >= ?"
            bounds.append(start)
        if stop is not None:
            window += " AND timestamp <= ?"
            bounds.append(stop)
        action = "read notifications"
        # Each module's range is fixed first (the time index bounds it in a window);
        # notifications appended meanwhile are left for the caller's live feed.
        ranges: list[tuple[str | None, int, int]]
        with self._reading(action) as conn:
            if modules is None and not bounds:
                [(high,)] = conn.execute("SELECT MAX(seq) FROM notifications")
                ranges = [(None, after_seq, int(high or 0))]
            else:
                names = self._modules(conn) if modules is None else sorted(modules)
                ranges = [r for m in names
                          if (r := self._range(conn, m, after_seq, window, bounds))]
                if modules is None and ranges:  # every module: one read in seq order
                    ranges = [(None, min(r[1] for r in ranges), max(r[2] for r in ranges))]
        runs = [self._notification_rows(action, m, low, high,
                                        "seq, module, timestamp, content, crc", window, bounds)
                for m, low, high in ranges if high > low]
        for seq, module, timestamp, content, crc in heapq.merge(*runs):
            self._check_row(f"notification {seq}", crc, seq, module, timestamp, content)
            yield NotificationRecord(seq=int(seq), module=str(module),
                                     timestamp=float(timestamp), content=str(content))

    def _notification_rows(
        self, action: str, module: str | None, after_seq: int, high: int, columns: str,
        window: str = "", bounds: Collection[float] = (),
    ) -> Iterator[tuple[Any, ...]]:
        """Rows of ``module`` (None: of every module) with after_seq < seq <= high, in seq
        order, read in batches (each its own short read)."""
        where = "seq > ? AND seq <= ?" + window
        key: tuple[str, ...] = ()
        if module is not None:
            where = "module = ? AND " + where
            key = (module,)
        hint = "" if module is None else "INDEXED BY notifications_by_seq"
        while True:
            with self._reading(action) as conn:
                rows = conn.execute(
                    f"SELECT {columns} FROM notifications {hint} WHERE {where}"
                    f" ORDER BY seq LIMIT {_BATCH}", (*key, after_seq, high, *bounds),
                ).fetchall()
            yield from rows
            if len(rows) < _BATCH:
                return
            after_seq = int(rows[-1][0])

    @staticmethod
    def _range(conn: sqlite3.Connection, module: str, after_seq: int, window: str,
               bounds: Collection[float]) -> tuple[str | None, int, int] | None:
        """(module, the seq before its first record to read, its last one to read)."""
        if bounds:
            low, high = conn.execute(
                "SELECT MIN(seq), MAX(seq) FROM notifications INDEXED BY notifications_by_time"
                f" WHERE module = ?{window} AND seq > ?", (module, *bounds, after_seq)).fetchone()
            return None if low is None else (module, int(low) - 1, int(high))
        [(high,)] = conn.execute("SELECT MAX(seq) FROM notifications WHERE module = ?",
                                 (module,))
        return None if high is None or high <= after_seq else (module, after_seq, int(high))

    @staticmethod
    def _modules(conn: sqlite3.Connection) -> list[str]:
        return [str(r[0]) for r in conn.execute(_MODULES)]

    def notification_spans(self, modules: Collection[str] | None = None
                           ) -> list[NotificationSpan]:
        spans = []
        with self._transaction("read the notification log", write=False) as conn:
            for m in sorted(modules) if modules is not None else self._modules(conn):
                count, first = conn.execute(
                    "SELECT COUNT(*), MIN(seq) FROM notifications WHERE module = ?",
                    (m,)).fetchone()
                if count:
                    [(ts,)] = conn.execute(
                        "SELECT timestamp FROM notifications WHERE seq = ?", (first,))
                    spans.append(NotificationSpan(m, int(count),
                                                  NotificationMark(int(first), float(ts))))
        return spans

    def notification_after(self, modules: Collection[str] | None, after_seq: int,
                           skip: int = 0) -> NotificationMark | None:
        action = "read the notification log"
        if modules is not None and len(modules) > 1:
            high = 2 ** 63 - 1
            runs = [self._notification_rows(action, m, after_seq, high, "seq, timestamp")
                    for m in sorted(modules)]
            row = next(itertools.islice(heapq.merge(*runs), skip, None), None)
        else:
            key = tuple(modules or ())
            where = "module = ? AND seq > ?" if key else "seq > ?"
            with self._reading(action) as conn:
                row = conn.execute(
                    f"SELECT seq, timestamp FROM notifications WHERE {where}"
                    " ORDER BY seq LIMIT 1 OFFSET ?", (*key, after_seq, skip)).fetchone()
        return None if row is None else NotificationMark(int(row[0]), float(row[1]))

    def drop_notifications(self, cuts: Mapping[str, int]) -> int:
        dropped = 0
        with self._transaction("prune the notification log") as conn:
            for module, cut in sorted(cuts.items()):
                dropped += conn.execute(
                    "DELETE FROM notifications WHERE module = ? AND seq < ?",
                    (module, cut)).rowcount
        return dropped

    # -- records made elsewhere ---------------------------------------------------
    # A mirror of a store that assigns revisions and sequence numbers itself (the etcd
    # backend's, :mod:`.etcd`) takes its records as they are.

    def restore_commit(self, rec: CommitRecord) -> None:
        """Store ``rec`` with its own revision (above every one stored)."""
        with self._transaction(f"restore commit {rec.revision}", single=True) as conn:
            conn.execute(
                "INSERT INTO commits (revision, datastore, timestamp, user, kind, label, size,"
                " payload, crc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (rec.revision, rec.datastore, rec.timestamp, rec.user, rec.kind, rec.label,
                 len(rec.payload.encode("utf-8", "surrogatepass")), rec.payload,
                 _crc(rec.revision, rec.datastore, rec.timestamp, rec.user, rec.kind,
                      rec.label, rec.payload)))

    def restore_snapshot(self, snap: Snapshot) -> None:
        with self._transaction(f"restore snapshot {snap.datastore}@{snap.revision}") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO snapshots (datastore, revision, content, crc, parts)"
                " VALUES (?, ?, ?, ?, 0)", (snap.datastore, snap.revision, snap.content,
                                            _crc(snap.datastore, snap.revision, snap.content)))

    def restore_notification(self, rec: NotificationRecord) -> None:
        with self._transaction(f"restore notification {rec.seq}", single=True) as conn:
            conn.execute(
                "INSERT INTO notifications (seq, module, timestamp, content, crc)"
                " VALUES (?, ?, ?, ?, ?)",
                (rec.seq, rec.module, rec.timestamp, rec.content,
                 _crc(rec.seq, rec.module, rec.timestamp, rec.content)))

    def restore_counters(self, revision: int, seq: int) -> None:
        """The last revision and notification sequence number assigned (their records
        may have been pruned): the next ones follow them."""
        with self._transaction("restore the counters") as conn:
            for name, value in (("commits", revision), ("notifications", seq)):
                conn.execute("DELETE FROM sqlite_sequence WHERE name = ?", (name,))
                if value:
                    conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)",
                                 (name, value))

    def snapshot_revisions(self, datastore: str) -> list[int]:
        """The revisions of the snapshots kept of ``datastore``, oldest first."""
        with self._reading(f"list the snapshots of {datastore!r}") as conn:
            return [int(r[0]) for r in conn.execute(
                "SELECT revision FROM snapshots WHERE datastore = ? ORDER BY revision",
                (datastore,))]

    def first_commit(self, datastore: str) -> int | None:
        """The revision of the oldest commit kept of ``datastore``."""
        with self._reading(f"read the commits of {datastore!r}") as conn:
            row = conn.execute("SELECT MIN(revision) FROM commits WHERE datastore = ?",
                               (datastore,)).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    # -- meta -----------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        with self._reading(f"read meta {key!r}") as conn:
            row = conn.execute("SELECT value, crc FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        self._check_row(f"meta {key!r}", row[1], key, row[0])
        return str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._transaction(f"write meta {key!r}") as conn:
            conn.execute(
                "INSERT INTO meta (key, value, crc) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, crc = excluded.crc",
                (key, value, _crc(key, value)),
            )
