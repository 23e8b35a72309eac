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
(commits, snapshots, oper, notifications, meta), prunes old snapshots, commits
and notifications as it goes, and turns every SQLite failure into an
:class:`~nfo.errors.NfoError`: a full disk into :class:`~nfo.errors.StorageFull`,
damage into :class:`~nfo.errors.StorageCorrupt`, the rest into
:class:`~nfo.errors.OperationFailed`.

Damage is looked for when the file is opened (a new file is created whole under
another name and renamed into place, so an empty or header-less ``nfo.db`` is
damage, never a fresh start; ``PRAGMA integrity_check`` for the pages; a CRC-32
of every row, computed when written, for the data inside them) and again on
every row read: nfo refuses to serve what it cannot trust.
"""

from __future__ import annotations

import os
import sqlite3
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType
from typing import Any

from nfo.errors import NfoError, OperationFailed, StorageCorrupt, StorageFull

from .base import CommitKind, CommitRecord, NotificationRecord, OperRecord, Snapshot, StoredState
from .files import fsync_dir

__all__ = ["SCHEMA_VERSION", "SqliteStorage"]

SCHEMA_VERSION = 2
"""Stored in ``PRAGMA user_version``; a database from a newer nfo is refused.
1: the tables; 2: a ``crc`` column in each (version 1 files are upgraded on open)."""

_BUSY_TIMEOUT_MS = 10_000
_BATCH = 500
_MAX_PRUNE_INTERVAL = 1000

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
    UNIQUE (datastore, revision)
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
    stream    TEXT NOT NULL,
    timestamp REAL NOT NULL,
    content   TEXT NOT NULL,
    crc       INTEGER NOT NULL
);
CREATE INDEX notifications_by_time ON notifications (stream, timestamp);
CREATE INDEX notifications_by_seq ON notifications (stream, seq);
"""

# Per table: the row's key (for messages) and the columns its crc covers, text
# as stored bytes (damaged UTF-8 must reach the checksum, not fail to decode).
_CHECKED: dict[str, tuple[str, str]] = {
    "meta": ("key", "CAST(key AS BLOB), CAST(value AS BLOB)"),
    "commits": ("revision", "revision, CAST(datastore AS BLOB), timestamp, CAST(user AS BLOB),"
                " CAST(kind AS BLOB), CAST(label AS BLOB), CAST(payload AS BLOB)"),
    "snapshots": ("quote(datastore) || '@' || revision",
                  "CAST(datastore AS BLOB), revision, CAST(content AS BLOB)"),
    "oper": ("quote(owner) || ' ' || quote(key)",
             "CAST(owner AS BLOB), CAST(key AS BLOB), CAST(content AS BLOB)"),
    "notifications": ("seq", "seq, CAST(stream AS BLOB), timestamp, CAST(content AS BLOB)"),
}

_IO_ERROR_KEY = "storage-io-error"
"""Meta key written after an I/O error to supersede a commit that may be on disk."""

_COMMIT_COLUMNS = "revision, datastore, timestamp, user, kind, payload, label, crc"

# Errors the sqlite3 module raises: its own, plus text or integers it cannot bind.
_DB_ERRORS = (sqlite3.Error, UnicodeEncodeError, OverflowError)


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


def _errorcode(exc: BaseException) -> int:
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else -1


def _snapshot(row: tuple[Any, ...] | None) -> tuple[Snapshot, int] | None:
    if row is None:
        return None
    return Snapshot(datastore=str(row[0]), revision=int(row[1]), content=str(row[2])), row[3]


class SqliteStorage:
    """:class:`~nfo.datastore.storage.base.Storage` on one SQLite file.

    Keeps the newest ``keep_snapshots`` snapshots per datastore (and the commits
    from the oldest of them on) and about ``keep_notifications`` notifications
    per stream.  Not thread-safe: call it from one thread at a time.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, keep_snapshots: int = 3,
        keep_notifications: int = 100_000,
    ) -> None:
        if keep_snapshots < 1:
            raise ValueError("keep_snapshots must be at least 1")
        if keep_notifications < 1:
            raise ValueError("keep_notifications must be at least 1")
        self._path = os.fspath(path)
        self._keep_snapshots = keep_snapshots
        self._keep_notifications = keep_notifications
        self._prune_every = max(1, min(_MAX_PRUNE_INTERVAL, keep_notifications // 100))
        # Appends per stream until the next prune; a stream not seen yet is pruned first.
        self._until_prune: dict[str, int] = {}
        self._conn: sqlite3.Connection | None = None
        self._batch_depth = 0
        self._batch_lost: NfoError | None = None
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
        self._conn = conn

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
        if check:
            problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)")]
            if problems != ["ok"]:
                raise self._corrupt("; ".join(problems))
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
            elif version == 1:
                for table, (_, columns) in _CHECKED.items():
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN crc INTEGER NOT NULL"
                                 " DEFAULT 0")
                    conn.execute(f"UPDATE {table} SET crc = nfo_crc({columns})")
            elif check:
                self._verify_rows(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise

    def _verify_rows(self, conn: sqlite3.Connection) -> None:
        """Every row against its checksum."""
        for table, (key, columns) in _CHECKED.items():
            bad = [str(r[0]) for r in conn.execute(
                f"SELECT {key} FROM {table} WHERE crc != nfo_crc({columns}) LIMIT 5")]
            if bad:
                raise self._corrupt(f"{table} {', '.join(bad)} do not match their checksums")

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

    def _checked_snapshot(self, row: tuple[Any, ...] | None) -> Snapshot | None:
        found = _snapshot(row)
        if found is None:
            return None
        snap, crc = found
        self._check_row(f"snapshot {snap.datastore}@{snap.revision}", crc, snap.datastore,
                        snap.revision, snap.content)
        return snap

    def _connection(self) -> sqlite3.Connection:
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
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                self._batch_depth = 0
                self._batch_lost = None

    @contextmanager
    def _transaction(self, action: str, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic (and, for writes, durable) transaction around the block."""
        conn = self._connection()
        if self._batch_depth:
            if self._batch_lost is not None:
                raise self._batch_lost
            with self._checked(action):
                conn.execute("SAVEPOINT nfo_write")
                try:
                    yield conn
                    conn.execute("RELEASE nfo_write")
                except BaseException as exc:
                    if not conn.in_transaction and self._batch_lost is None:
                        self._batch_lost = (
                            exc if isinstance(exc, NfoError) else
                            self._failure(action, exc) if isinstance(exc, _DB_ERRORS) else
                            OperationFailed(f"storage: cannot {action}: the grouped writes "
                                            "were rolled back"))
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK TO nfo_write")
                        conn.execute("RELEASE nfo_write")
                    raise
            return
        with self._checked(action, write=write):
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

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
        conn, self._conn = self._conn, None
        if conn is not None:
            with self._checked("close the database"):
                conn.close()

    # -- commits and snapshots ------------------------------------------------

    def load(self) -> StoredState:
        with self._transaction("load the stored state", write=False) as conn:
            snapshots: dict[str, Snapshot] = {}
            for row in conn.execute(
                "SELECT s.datastore, s.revision, s.content, s.crc FROM snapshots AS s"
                " WHERE s.revision = (SELECT MAX(revision) FROM snapshots"
                "                     WHERE datastore = s.datastore)"
            ):
                snap = self._checked_snapshot(row)
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
        with self._transaction(f"append a commit to {datastore!r}") as conn:
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
        with self._transaction(f"write a snapshot of {datastore!r}") as conn:
            last = self._last_revision(conn)
            if not 0 <= revision <= last:
                raise OperationFailed(
                    f"storage: snapshot revision {revision} of {datastore!r} is outside"
                    f" 0..{last}, the revisions assigned so far"
                )
            conn.execute(
                "INSERT INTO snapshots (datastore, revision, content, crc) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (datastore, revision) DO UPDATE SET content = excluded.content,"
                " crc = excluded.crc",
                (datastore, revision, content, _crc(datastore, revision, content)),
            )
            conn.execute(
                "DELETE FROM snapshots WHERE datastore = ?1 AND revision < ("
                "  SELECT revision FROM snapshots WHERE datastore = ?1"
                "  ORDER BY revision DESC LIMIT 1 OFFSET ?2)",
                (datastore, self._keep_snapshots - 1),
            )
            conn.execute(
                "DELETE FROM commits WHERE datastore = ?1 AND revision < ("
                "  SELECT MIN(revision) FROM snapshots WHERE datastore = ?1)",
                (datastore,),
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

    def history(self, datastore: str, limit: int = 100) -> list[CommitRecord]:
        if limit <= 0:
            return []
        with self._reading(f"read the history of {datastore!r}") as conn:
            rows = conn.execute(
                f"SELECT {_COMMIT_COLUMNS} FROM commits WHERE datastore = ?"
                " ORDER BY revision DESC LIMIT ?",
                (datastore, limit),
            ).fetchall()
        return [self._commit(row) for row in rows]

    def snapshot_at(self, datastore: str, revision: int) -> Snapshot | None:
        with self._reading(f"read a snapshot of {datastore!r}") as conn:
            row = conn.execute(
                "SELECT datastore, revision, content, crc FROM snapshots"
                " WHERE datastore = ? AND revision <= ? ORDER BY revision DESC LIMIT 1",
                (datastore, revision),
            ).fetchone()
        return self._checked_snapshot(row)

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
        with self._transaction(f"store operational data of {owner!r}") as conn:
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
        for o, k, c, crc in rows:
            self._check_row(f"operational record {o} {k}", crc, o, k, c)
        return [OperRecord(owner=str(o), key=str(k), content=str(c)) for o, k, c, _ in rows]

    def clear_oper(self, owner: str) -> None:
        with self._transaction(f"clear operational data of {owner!r}") as conn:
            conn.execute("DELETE FROM oper WHERE owner = ?", (owner,))

    # -- notifications --------------------------------------------------------

    def append_notification(self, stream: str, timestamp: float, content: str) -> int:
        due = self._until_prune.get(stream, 1) - 1
        timestamp = float(timestamp)
        with self._transaction(f"log a notification of stream {stream!r}") as conn:
            row = conn.execute(
                "SELECT seq FROM sqlite_sequence WHERE name = 'notifications'").fetchone()
            seq = (int(row[0]) if row else 0) + 1
            conn.execute(
                "INSERT INTO notifications (seq, stream, timestamp, content, crc)"
                " VALUES (?, ?, ?, ?, ?)",
                (seq, stream, timestamp, content, _crc(seq, stream, timestamp, content)),
            )
            if due <= 0:
                conn.execute(
                    "DELETE FROM notifications WHERE stream = ?1 AND seq <= ("
                    "  SELECT seq FROM notifications WHERE stream = ?1"
                    "  ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                    (stream, self._keep_notifications),
                )
        self._until_prune[stream] = due if due > 0 else self._prune_every
        return seq

    def notifications(
        self, stream: str, start: float | None = None, stop: float | None = None,
        after_seq: int = 0,
    ) -> Iterator[NotificationRecord]:
        """Yields what was logged when iteration began, in batches."""
        where = "stream = ? AND seq > ?"
        bounds: list[float] = []
        if start is not None:
            where += " AND timestamp >= ?"
            bounds.append(start)
        if stop is not None:
            where += " AND timestamp <= ?"
            bounds.append(stop)
        action = f"read notifications of stream {stream!r}"
        with self._reading(action) as conn:
            # The time index bounds the seq range to scan; notifications
            # appended meanwhile are left for the caller's live feed.
            low, high = conn.execute(
                f"SELECT MIN(seq), MAX(seq) FROM notifications WHERE {where}",
                (stream, after_seq, *bounds),
            ).fetchone()
        if low is None:
            return
        cursor_seq = int(low) - 1
        while True:
            with self._reading(action) as conn:
                rows = conn.execute(
                    f"SELECT seq, timestamp, content, crc FROM notifications"
                    f" WHERE {where} AND seq <= ? ORDER BY seq LIMIT {_BATCH}",
                    (stream, cursor_seq, *bounds, high),
                ).fetchall()
            for seq, timestamp, content, crc in rows:
                self._check_row(f"notification {seq}", crc, seq, stream, timestamp, content)
                yield NotificationRecord(
                    seq=int(seq), stream=stream, timestamp=float(timestamp), content=str(content)
                )
            if len(rows) < _BATCH:
                return
            cursor_seq = int(rows[-1][0])

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
