"""Who a ``local`` network function runs as, and which programs it may execute.

Why it exists: a ``local`` descriptor's command runs on the orchestrator host,
by default as the user nfo runs as -- often root.  A VIM account can name an
unprivileged user of the host (``run-as-user``) and an allow-list of programs
(``allowed-executable``).  The decisions live here, small and free of side
effects, so that they can be tested without starting anything; the driver
(:mod:`nfo.drivers.local`) applies them.

The working directory of a process started as another user: the driver's state
directory lies inside nfo's state directory, which nfo keeps at mode 0700 (and
resets to it at every start), so no path from ``/`` leads another user to it, and
opening it up would expose every other file in it.  Instead the per-instance
directory is owned by the user (mode 0700) inside a work base private to nfo
(0700), and the process is *started in it*: :class:`subprocess.Popen` changes
directory before it drops privileges.  The process then uses its directory as its
current directory (relative paths, ``getcwd``), but can neither reach it by its
absolute path nor climb out of it (``..``) to the records and logs of the other
instances.  Its output goes to a log file that nfo opens and passes as stdout.
"""

from __future__ import annotations

import os
import pwd
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from nfo.registry.protocol import PermanentError

__all__ = ["RunAs", "allowed_executable", "give_directory", "proc_uid", "resolve_run_as"]


@dataclass(frozen=True)
class RunAs:
    """The identity a network function runs with."""

    user: str
    uid: int
    gid: int
    """Primary group."""
    groups: tuple[int, ...]
    """Supplementary groups (primary included), as ``initgroups`` would set them."""
    home: str
    switch: bool
    """Whether the process must change identity: False when nfo already is this user."""


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def resolve_run_as(user: str, vim: str, euid: int) -> RunAs:
    """The identity of ``run-as-user`` ``user`` of VIM ``vim`` for an nfo running as ``euid``.

    Only root may start processes as another user; PermanentError otherwise, and
    for a user the host does not know.
    """
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise PermanentError(
            f"run-as-user {user!r} of local VIM {vim!r}: no such user on this host") from None
    if euid != 0:
        if pw.pw_uid != euid:
            raise PermanentError(
                f"local VIM {vim!r} runs network functions as user {user!r} (run-as-user), "
                f"but nfo runs as {_user_name(euid)!r} (uid {euid}), not root, and cannot "
                f"start processes as another user: run nfo as root, or set run-as-user to "
                f"{_user_name(euid)!r} or remove it")
        return RunAs(user, pw.pw_uid, pw.pw_gid, (), pw.pw_dir, switch=False)
    groups = tuple(os.getgrouplist(user, pw.pw_gid))
    return RunAs(user, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir, switch=True)


def allowed_executable(exe: str, cwd: Path, allowed: Iterable[str], vim: str) -> str:
    """The file to execute for ``exe`` under the allow-list ``allowed`` of VIM ``vim``.

    An empty list allows anything and returns ``exe`` unchanged.  Otherwise the
    real path of ``exe`` (relative to ``cwd``, where the process starts) must be
    the real path of a listed entry, and that real path is returned: executing it,
    rather than a symbolic link that could be changed meanwhile, runs the file
    that was checked.
    """
    listed = {os.path.realpath(p) for p in allowed}
    if not listed:
        return exe
    real = os.path.realpath(cwd / exe)
    if real not in listed:
        raise PermanentError(
            f"executable {exe!r} (resolved to {real!r}) is not in allowed-executable "
            f"of local VIM {vim!r}")
    return real


def give_directory(path: Path, run_as: RunAs) -> None:
    """Make the directory ``path`` the private property of ``run_as`` (owner, mode 0700)."""
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise PermanentError(f"working directory {str(path)!r} is not a directory")
    if (st.st_uid, st.st_gid) != (run_as.uid, run_as.gid):
        os.chown(path, run_as.uid, run_as.gid, follow_symlinks=False)
    if st.st_mode & 0o777 != 0o700:
        os.chmod(path, 0o700)


def proc_uid(pid: int) -> int | None:
    """The real uid of ``pid``; None when ``/proc`` does not tell."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("Uid:"):
            try:
                return int(line.split()[1])
            except (IndexError, ValueError):
                return None
    return None
