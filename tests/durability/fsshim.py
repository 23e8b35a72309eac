"""The fsshim LD_PRELOAD library (``fsshim.c``) from Python: build it, run a process
under it, read its log and rebuild what a disk could hold after a power cut.

A power cut keeps only what an fsync covered.  :class:`Disk` replays the log of a
run: each file's data is *durable* up to its last ``fsync``/``fdatasync``, each
directory's entries up to the last fsync of that directory; everything after is
*pending*.  :meth:`Disk.image` writes one possible post-power-loss state of the
directory: the durable part plus, depending on the mode, none, all, a prefix or an
arbitrary subset of the pending operations, a pending write torn into its 512-byte
sectors (any subset of them present), a file grown by a lost write left with zeros
where the data should be, and pending creates, unlinks and renames each kept or
lost.  Bytes a write did not touch never change (SQLite's "powersafe overwrite"
assumption, which its unix VFS makes by default).
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

__all__ = ["MODES", "SECTOR", "Disk", "Record", "build", "environment", "read_log"]

_T = TypeVar("_T")

SOURCE = Path(__file__).with_name("fsshim.c")
SECTOR = 512
MODES = ("synced", "all", "prefix", "torn")
"""``synced``: only what fsync covered; ``all``: every write (a process kill);
``prefix``: the pending operations up to a random point, per file and directory;
``torn``: each pending operation kept, lost or (a write) partly kept, independently."""


def build(dest: Path) -> Path:
    """Compile ``fsshim.c`` into ``dest/fsshim.so`` (once per source version)."""
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        raise FileNotFoundError("no C compiler (cc or gcc) to build the fsshim library")
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"fsshim-{int(SOURCE.stat().st_mtime_ns)}.so"
    if not out.exists():
        with tempfile.TemporaryDirectory(dir=dest) as tmp:
            tmp_out = Path(tmp) / "fsshim.so"
            subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(tmp_out),
                            str(SOURCE), "-ldl", "-lpthread"], check=True)
            tmp_out.replace(out)
    return out


def environment(lib: Path, watch: Path, *, log: Path | None = None,
                marks: Path | None = None, enospc: Path | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a process whose I/O under ``watch`` the shim observes."""
    env = dict(os.environ if base is None else base)
    env["LD_PRELOAD"] = str(lib)
    env["FSSHIM_DIR"] = str(watch.resolve())
    for name, value in (("FSSHIM_LOG", log), ("FSSHIM_MARKS", marks),
                        ("FSSHIM_ENOSPC", enospc)):
        if value is not None:
            env[name] = str(value.resolve())
        else:
            env.pop(name, None)
    return env


# -- the log ----------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    kind: str
    ino: int = 0
    offset: int = 0
    data: bytes = b""
    path: str = ""
    path2: str = ""
    created: bool = False
    is_dir: bool = False
    trunc: bool = False


def read_log(path: Path) -> list[Record]:
    raw = path.read_bytes() if path.exists() else b""
    out: list[Record] = []
    i = 0
    while i < len(raw):
        if i + 8 > len(raw):
            raise ValueError(f"{path}: torn record header at {i}")
        kind = chr(raw[i])
        (n,) = struct.unpack_from("<I", raw, i + 4)
        p = raw[i + 8:i + 8 + n]
        if len(p) != n:
            raise ValueError(f"{path}: torn record at {i}")
        i += 8 + n
        if kind == "O":
            ino, created, is_dir, trunc = struct.unpack_from("<QBBB", p)
            out.append(Record("O", ino=ino, path=p[11:].decode(), created=bool(created),
                              is_dir=bool(is_dir), trunc=bool(trunc)))
        elif kind == "W":
            ino, offset = struct.unpack_from("<QQ", p)
            out.append(Record("W", ino=ino, offset=offset, data=p[16:]))
        elif kind == "T":
            ino, length = struct.unpack_from("<QQ", p)
            out.append(Record("T", ino=ino, offset=length))
        elif kind == "S":
            out.append(Record("S", ino=struct.unpack_from("<Q", p)[0]))
        elif kind == "U":
            out.append(Record("U", path=p.decode()))
        elif kind == "R":
            (alen,) = struct.unpack_from("<I", p)
            out.append(Record("R", path=p[4:4 + alen].decode(), path2=p[4 + alen:].decode()))
        elif kind == "D":
            out.append(Record("D", ino=struct.unpack_from("<Q", p)[0], path=p[8:].decode()))
        elif kind == "M":
            out.append(Record("M", data=p))
        elif kind == "X":
            raise ValueError(f"{path}: the run used {p.decode()}, which the shim cannot log")
        else:
            raise ValueError(f"{path}: unknown record {kind!r} at {i}")
    return out


# -- the disk model ---------------------------------------------------------------


@dataclass
class _Inode:
    is_dir: bool
    durable: bytearray = field(default_factory=bytearray)
    pending: list[tuple[str, int, bytes]] = field(default_factory=list)
    """('w', offset, data) or ('t', length, b'')"""


def _write(buf: bytearray, offset: int, data: bytes) -> None:
    end = offset + len(data)
    if len(buf) < end:
        buf.extend(bytes(end - len(buf)))
    buf[offset:end] = data


def _truncate(buf: bytearray, length: int) -> None:
    if len(buf) > length:
        del buf[length:]
    else:
        buf.extend(bytes(length - len(buf)))


def _apply(buf: bytearray, op: tuple[str, int, bytes]) -> None:
    if op[0] == "w":
        _write(buf, op[1], op[2])
    else:
        _truncate(buf, op[1])


NsOp = tuple[str, str, str, int]
"""('link', path, '', id), ('unlink', path, '', id) or ('rename', old, new, id)"""


class Disk:
    """What the watched directory holds, durably and pending, after each logged operation.

    Feed the records in order with :meth:`feed`; :meth:`image` may be called between
    any two of them.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._inodes: dict[int, _Inode] = {}
        self._by_ino: dict[int, int] = {}
        self._names: dict[str, int] = {}
        self._durable_names: dict[str, int] = {}
        self._pending_ns: dict[str, list[NsOp]] = {}
        self._dir_path: dict[int, str] = {}
        self._first_name: dict[int, str] = {}
        self._ids = 0
        for dirpath, dirnames, filenames in os.walk(self.root):
            for name in [".", *dirnames, *filenames]:
                p = Path(dirpath) if name == "." else Path(dirpath) / name
                st = p.lstat()
                is_dir = p.is_dir()
                i = self._new(is_dir)
                if not is_dir:
                    self._inodes[i].durable = bytearray(p.read_bytes())
                else:
                    self._dir_path[i] = str(p)
                self._by_ino[st.st_ino] = i
                self._names[str(p)] = i
                self._durable_names[str(p)] = i
                self._first_name[i] = str(p)
        self.fed = 0

    def _new(self, is_dir: bool) -> int:
        self._ids += 1
        self._inodes[self._ids] = _Inode(is_dir)
        return self._ids

    def _ns(self, path: str, op: NsOp) -> None:
        self._pending_ns.setdefault(os.path.dirname(path), []).append(op)

    def feed(self, rec: Record) -> None:
        self.fed += 1
        k = rec.kind
        if k == "O":
            if rec.created:
                i = self._new(rec.is_dir)
                self._by_ino[rec.ino] = i
                self._names[rec.path] = i
                self._first_name[i] = rec.path
                self._ns(rec.path, ("link", rec.path, "", i))
            elif rec.ino not in self._by_ino:
                raise ValueError(f"{rec.path} was opened but neither existed at the start "
                                 "nor was created under the shim")
            i = self._by_ino[rec.ino]
            if rec.is_dir:
                self._dir_path[i] = rec.path
            elif rec.trunc:
                self._inodes[i].pending.append(("t", 0, b""))
        elif k == "D":
            i = self._new(True)
            self._by_ino[rec.ino] = i
            self._names[rec.path] = i
            self._dir_path[i] = rec.path
            self._ns(rec.path, ("link", rec.path, "", i))
        elif k == "W":
            self._inodes[self._by_ino[rec.ino]].pending.append(("w", rec.offset, rec.data))
        elif k == "T":
            self._inodes[self._by_ino[rec.ino]].pending.append(("t", rec.offset, b""))
        elif k == "S":
            i = self._by_ino[rec.ino]
            node = self._inodes[i]
            if node.is_dir:
                for op in self._pending_ns.pop(self._dir_path[i], []):
                    _ns_apply(self._durable_names, op)
            else:
                for op in node.pending:
                    _apply(node.durable, op)
                node.pending.clear()
        elif k == "U":
            i = self._names.pop(rec.path)
            self._ns(rec.path, ("unlink", rec.path, "", i))
        elif k == "R":
            if os.path.dirname(rec.path) != os.path.dirname(rec.path2):
                raise ValueError(f"rename across directories: {rec.path} -> {rec.path2}")
            i = self._names.pop(rec.path)
            self._names[rec.path2] = i
            self._ns(rec.path, ("rename", rec.path, rec.path2, i))
        # 'M' (markers) change nothing on disk

    def pending_bytes(self) -> int:
        """Bytes written and not yet fsynced, the WAL index (``-shm``) left out."""
        return sum(len(op[2]) for i, n in self._inodes.items() for op in n.pending
                   if not self._first_name.get(i, "").endswith("-shm"))

    def image(self, dest: Path, rng: random.Random, mode: str) -> None:
        """Write one state the directory could be in after a power cut now."""
        if mode not in MODES:
            raise ValueError(mode)
        names = dict(self._durable_names)
        for ops in self._pending_ns.values():
            for op in _choose(ops, rng, mode):
                _ns_apply(names, op)
        dest.mkdir(parents=True, exist_ok=False)
        root = str(self.root)
        for path in sorted(names, key=lambda p: (p.count("/"), p)):
            parent = os.path.dirname(path)
            while parent != root and parent in names:
                parent = os.path.dirname(parent)
            if parent != root:
                continue  # a directory on the way lost its entry: unreachable
            target = dest / os.path.relpath(path, root)
            node = self._inodes[names[path]]
            if node.is_dir:
                target.mkdir(exist_ok=True)
                continue
            data = bytearray(node.durable)
            if mode == "torn":
                for op in node.pending:
                    _torn(data, op, rng)
            else:
                for op in _choose(node.pending, rng, mode):
                    _apply(data, op)
            target.write_bytes(bytes(data))


def _ns_apply(names: dict[str, int], op: NsOp) -> None:
    kind, a, b, i = op
    if kind == "link":
        names[a] = i
    elif kind == "unlink":
        if names.get(a) == i:
            del names[a]
    elif names.get(a) == i:
        del names[a]
        names[b] = i


def _choose(ops: list[_T], rng: random.Random, mode: str) -> list[_T]:
    if mode == "synced" or not ops:
        return []
    if mode == "all":
        return list(ops)
    if mode == "prefix":
        return ops[:rng.randint(0, len(ops))]
    return [op for op in ops if rng.random() < 0.5]


def _torn(data: bytearray, op: tuple[str, int, bytes], rng: random.Random) -> None:
    """Apply a pending operation as a power cut may have left it."""
    fate = rng.random()
    if op[0] == "t":
        if fate < 0.5:
            _truncate(data, op[1])
        return
    _, offset, payload = op
    if fate < 0.3:
        _write(data, offset, payload)
        return
    if fate < 0.6:
        # lost; the size may still have grown (metadata written, data not)
        if offset + len(payload) > len(data) and rng.random() < 0.5:
            _truncate(data, offset + len(payload))
        return
    start = offset
    while start < offset + len(payload):
        end = min((start // SECTOR + 1) * SECTOR, offset + len(payload))
        if rng.random() < 0.5:
            _write(data, start, payload[start - offset:end - offset])
        start = end
