"""Files and directories that survive a power cut once created.

An fsync makes a file's data durable, not its name: a file or directory created
(or renamed, or removed) without an fsync of the directory holding it may be gone
after a power cut, together with everything inside it.  SQLite syncs the directory
of its own journal files; these helpers do the same for what nfo creates itself:
the state directory, its ``modules`` folder and the files installed there, and a
new database file.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["fsync_dir", "make_dirs", "remove_durably", "write_durably"]


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make the entries of directory ``path`` (creations, renames, removals) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` whose new directories survive a power cut."""
    missing = []
    p = path.absolute()
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:
            continue
        fsync_dir(d)
        fsync_dir(d.parent)


def write_durably(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` atomically and durably (a temporary file,
    fsync, rename, fsync of the directory): after a power cut it holds the old
    content or the new, whole."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)


def remove_durably(path: Path) -> None:
    path.unlink()
    fsync_dir(path.parent)
