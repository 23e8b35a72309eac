"""``nfo user ...``: the accounts of a state directory, managed from the host.

The recovery identity is the local command line on the state directory, never a
network login: whoever may use the directory can add an administrator, reset a
forgotten password or re-enable an account, whether or not a server runs.  With no
server the command takes the directory's lock and opens the datastore as ``nfo
serve`` does; while a server holds the lock it sends the same operation to the
server's control socket (:mod:`nfo.cli.control`), and the server sees the change at
once.  Either way the operation is :func:`nfo.cli.control.execute` on a user store.

Passwords come from a terminal (asked twice) or from one line of standard input
(``--password-stdin``), never from the arguments, which other users of the host can
read.  ``nfo user unlock`` clears an account's record in the running server's login
throttle (with no server there is none: throttle state lives in the server's memory).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from nfo.cli.control import Request, call, execute
from nfo.cli.moduleset import StateDir
from nfo.cli.statelock import StateLock
from nfo.datastore.users import UserStore
from nfo.errors import InUse, InvalidValue, OperationFailed

__all__ = ["add_user_parser", "build_request", "describe", "perform", "read_password",
           "run_user"]

_WAIT_FOR_SERVER = 10.0


def add_user_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    u = sub.add_parser("user", help="manage accounts from this host (with or without a "
                                    "running server)")
    u.add_argument("--yang-dir", type=Path, action="append", default=[], metavar="DIR",
                   help="with no server running: also load every module in DIR, as the "
                        "server's --yang-dir does (repeatable)")
    usub = u.add_subparsers(dest="ucmd", required=True)
    a = usub.add_parser("add", help="create an account")
    a.add_argument("name", metavar="NAME")
    a.add_argument("--group", action="append", default=[], metavar="GROUP",
                   help="put it in this NACM group (repeatable; 'admin' may do everything)")
    pw = a.add_mutually_exclusive_group()
    pw.add_argument("--password-stdin", action="store_true",
                    help="read the password from one line of standard input")
    pw.add_argument("--no-password", action="store_true",
                    help="no password: the account logs in with SSH keys only")
    a.add_argument("--disabled", action="store_true", help="create it disabled")
    p = usub.add_parser("passwd", help="set an account's password")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--password-stdin", action="store_true",
                   help="read the password from one line of standard input")
    for cmd, text in (("remove", "delete an account"), ("enable", "allow an account to "
                      "log in"), ("disable", "stop an account from logging in")):
        usub.add_parser(cmd, help=text).add_argument("name", metavar="NAME")
    un = usub.add_parser("unlock", help="clear an account's record in the running server's "
                         "login throttle (its failed logins; its budget is full again)")
    un.add_argument("name", metavar="NAME")
    upw = un.add_mutually_exclusive_group()
    upw.add_argument("--with-password", action="store_true",
                     help="also give the account's password (asked on the terminal): the "
                          "server checks it and lets it log in at once for 10 minutes, "
                          "whatever the throttle says")
    upw.add_argument("--password-stdin", action="store_true",
                     help="the same, reading the password from one line of standard input")
    usub.add_parser("list", help="list the accounts: name, enabled or disabled, groups")
    k = usub.add_parser("key", help="an account's SSH public keys (NETCONF)")
    ksub = k.add_subparsers(dest="kcmd", required=True)
    for cmd, text in (("add", "authorise a public key"), ("remove", "remove a key")):
        kp = ksub.add_parser(cmd, help=text)
        kp.add_argument("name", metavar="NAME")
        kp.add_argument("keyline", nargs="*", metavar="KEYLINE",
                        help="an OpenSSH public key line: TYPE BASE64 [COMMENT]")
        kp.add_argument("--file", type=Path, help="read the key line from this file")
    g = usub.add_parser("group", help="an account's NACM groups")
    gsub = g.add_subparsers(dest="gcmd", required=True)
    ga = gsub.add_parser("add", help="add an account to groups")
    ga.add_argument("name", metavar="NAME")
    ga.add_argument("groups", nargs="+", metavar="GROUP")


def read_password(name: str, *, from_stdin: bool, stdin: TextIO,
                  ask: Callable[[str], str] = getpass.getpass, new: bool = True) -> str:
    """One line of ``stdin`` without its line end, or asked on a terminal (twice when it
    is a ``new`` password)."""
    if from_stdin:
        line = stdin.readline()
        if not line:
            raise InvalidValue("no password on standard input")
        return line[:-2] if line.endswith("\r\n") else line.removesuffix("\n")
    if not stdin.isatty():
        raise InvalidValue("standard input is not a terminal: give the password on it "
                           "with --password-stdin")
    if not new:
        return ask(f"Password of {name}: ")
    first = ask(f"New password for {name}: ")
    if ask(f"New password for {name} (again): ") != first:
        raise InvalidValue("the two passwords differ")
    return first


def _key_line(args: argparse.Namespace) -> str:
    if args.file is not None and args.keyline:
        raise InvalidValue("give KEYLINE or --file, not both")
    path: Path | None = args.file
    if path is None:
        if not args.keyline:
            raise InvalidValue("give the public key as KEYLINE or --file")
        return " ".join(args.keyline)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidValue(f"{path}: {e}") from None
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) != 1:
        raise InvalidValue(f"{path} holds {len(lines)} key lines; give one at a time")
    return lines[0]


def build_request(args: argparse.Namespace,
                  password: Callable[[str, bool, bool], str]) -> Request:
    """The control operation ``args`` ask for; ``password(name, from_stdin, new)`` is
    asked only when one is needed."""
    name = getattr(args, "name", "")
    cmd = args.ucmd
    if cmd == "add":
        secret = None if args.no_password else password(name, args.password_stdin, True)
        return Request("user-add", name=name, password=secret, groups=tuple(args.group),
                       enabled=not args.disabled)
    if cmd == "passwd":
        return Request("user-passwd", name=name,
                       password=password(name, args.password_stdin, True))
    if cmd == "unlock":
        given = args.with_password or args.password_stdin
        return Request("user-unlock", name=name,
                       password=password(name, args.password_stdin, False) if given else None)
    if cmd in ("remove", "enable", "disable", "list"):
        return Request(f"user-{cmd}", name=name)
    if cmd == "key":
        return Request(f"user-key-{args.kcmd}", name=name, key=_key_line(args))
    return Request("user-groups-add", name=name, groups=tuple(args.groups))


async def _local(state: StateDir, req: Request, yang_dirs: list[Path]) -> Any:
    from nfo.cli.serve import open_datastore  # the whole server's imports, only when needed

    ds = await open_datastore(state, yang_dirs)
    try:
        return await execute(UserStore(ds), req)
    finally:
        await ds.close()


def perform(state: StateDir, req: Request, yang_dirs: Sequence[Path] = ()) -> Any:
    """Run ``req`` on the state directory: here under its lock when it is free, else
    through the control socket of the server holding it."""
    deadline = time.monotonic() + _WAIT_FOR_SERVER
    while True:
        try:
            lock = StateLock.try_acquire(state)
        except OSError as e:
            raise OperationFailed(f"cannot lock {state.lock}: {e}") from None
        if lock is not None:
            with lock:
                return asyncio.run(_local(state, req, list(yang_dirs)))
        try:
            return call(state.control, req)
        except (FileNotFoundError, ConnectionRefusedError):
            pass  # a server starting or stopping, or another command at work
        except OSError as e:
            raise OperationFailed(f"cannot reach {state.control}: {e}") from None
        if time.monotonic() > deadline:
            raise InUse(f"another process holds {state.lock} and no server answers on "
                        f"{state.control}")
        time.sleep(0.1)


def describe(req: Request, result: Any) -> list[str]:
    """What to print for a successful ``req``."""
    if req.op == "user-list":
        return [f"{u['name']:24} {'enabled' if u['enabled'] else 'disabled':9} "
                f"{','.join(u['groups']) or '-'}" for u in result]
    if req.op == "user-add":
        notes = [f"groups {', '.join(req.groups)}"] if req.groups else []
        if req.password is None:
            notes.append("no password")
        if not req.enabled:
            notes.append("disabled")
        return [f"added user {req.name}" + (f" ({'; '.join(notes)})" if notes else "")]
    return [{
        "user-passwd": f"changed the password of {req.name}",
        "user-remove": f"removed user {req.name}",
        "user-enable": f"enabled user {req.name}",
        "user-disable": f"disabled user {req.name}",
        "user-key-add": f"authorised for {req.name}: {result}",
        "user-key-remove": f"removed the key from {req.name}",
        "user-groups-add": f"added {req.name} to {', '.join(req.groups)}",
        "user-unlock": f"cleared the login throttle's record of {req.name}" + (
            "; its password logs in at once for 10 minutes" if req.password else ""),
    }[req.op]]


def run_user(state: StateDir, args: argparse.Namespace) -> None:
    def password(name: str, from_stdin: bool, new: bool) -> str:
        return read_password(name, from_stdin=from_stdin, stdin=sys.stdin, new=new)
    req = build_request(args, password)
    for line in describe(req, perform(state, req, args.yang_dir)):
        print(line)
