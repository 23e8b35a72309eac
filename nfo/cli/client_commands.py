"""Running the ``nfo`` commands for a running server, through :mod:`nfo.client`.

Why thin: the client does the protocol; these functions only turn arguments into client
calls and answers into tables (rich, colour only on a terminal) or JSON (``--json``: the
RFC 7951 entries, stable keys), and failures into one message and the exit code of
:data:`nfo.cli.remote.EXIT`.
"""

from __future__ import annotations

import argparse
import getpass
import json
import signal
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nfo.cli.remote import EXIT, KINDS
from nfo.client import (
    CONFIG_ACTIONS,
    AuthenticationFailed,
    Client,
    ClientConfig,
    ClientError,
    Page,
    RequestFailed,
    Unreachable,
    WaitFailed,
    WaitTimeout,
    reached,
)

__all__ = ["run"]

_COLUMNS: dict[str, list[tuple[str, Callable[[dict[str, Any]], Any]]]] = {
    "catalog": [("ID", lambda e: e.get("id")), ("NAME", lambda e: e.get("name", "")),
                ("VERSION", lambda e: e.get("version", "")),
                ("VIM TYPES", lambda e: ", ".join(t.split(":")[-1]
                                                   for t in e.get("vim-types", [])))],
    "vim": [("NAME", lambda e: e.get("name")),
            ("TYPE", lambda e: e.get("type", "").split(":")[-1]),
            ("ENABLED", lambda e: str(e.get("enabled", True)).lower()),
            ("DESCRIPTION", lambda e: e.get("description", ""))],
    "instance": [("NAME", lambda e: e.get("name")),
                 ("DESCRIPTOR", lambda e: e.get("descriptor")),
                 ("VIM", lambda e: e.get("state", {}).get("vim") or e.get("vim", "")),
                 ("ADMIN", lambda e: e.get("admin-state", "enabled")),
                 ("STATE", lambda e: e.get("state", {}).get("oper-status", "")),
                 ("REASON", lambda e: e.get("state", {}).get("reason", ""))],
    "history": [("REVISION", lambda e: e.get("revision")),
                ("TIME (UTC)", lambda e: _time(e.get("timestamp"))),
                ("USER", lambda e: e.get("user")), ("COMMENT", lambda e: e.get("comment")),
                ("CHANGES", lambda e: e.get("changes", "?"))],
    "diff": [("OPERATION", lambda e: e.get("operation")), ("PATH", lambda e: e.get("path")),
             ("VALUE", lambda e: _change_value(e))],
}


def _time(stamp: str | None) -> str:
    """A commit's timestamp to the second, in UTC."""
    if not stamp:
        return ""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _change_value(ch: dict[str, Any]) -> str:
    """What a change did to its node, in one cell: old -> new for a leaf, the subtree
    (compact JSON) for an entry, where a moved entry now stands."""
    op = ch.get("operation")
    if op == "move":
        return f"after {ch['after']}" if ch.get("after") else "first"
    if "data" in ch:
        data = ch["data"]
        if isinstance(data, dict) and len(data) == 1:      # {"mod:list": [entry]}
            [inner] = data.values()
            data = inner[0] if isinstance(inner, list) and len(inner) == 1 else inner
        return json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if op == "modify":
        return f"{ch.get('previous-value', '')} -> {ch.get('value', '')}"
    return str(ch.get("value", ch.get("previous-value", "")))


class _Failed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _config(args: argparse.Namespace) -> ClientConfig:
    password = None
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    flags = {"url": args.url, "user": args.user, "ca": args.ca, "insecure": args.insecure,
             "cert": args.cert, "key": args.key}
    cfg = ClientConfig.resolve(password=password, **flags)
    if cfg.user and cfg.password is None and cfg.cert is None and sys.stdin.isatty():
        cfg = ClientConfig.resolve(password=getpass.getpass(f"password for {cfg.user}: "),
                                   **flags)
    return cfg


def _load_file(path: Path) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise _Failed("usage", f"{path}: {e.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise _Failed("usage", f"{path}:{e.lineno}:{e.colno}: not JSON: {e.msg}") from None
    import yaml
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise _Failed("usage", f"{path}{where}: not YAML: {problem}") from None


def _entries(kind: Any, path: Path) -> list[dict[str, Any]]:
    """The entries a file gives: one entry, a list of them, or the module's data."""
    from nfo.client.calls import entries_of
    data = _load_file(path)
    if not data:
        raise _Failed("usage", f"{path}: no {kind.list} in it")
    try:
        entries = entries_of(kind, data)
    except TypeError as e:
        raise _Failed("usage", f"{path}: {e}") from None
    bad = [n for n, e in enumerate(entries, 1) if not isinstance(e, dict) or kind.key not in e]
    if bad:
        raise _Failed("usage", f"{path}: entry {bad[0]} has no {kind.key!r}")
    from nfo.cli.inputs import InputError, check_entries
    try:
        check_entries(kind.module, kind.container, kind.list, entries, path)
    except InputError as e:
        raise _Failed("usage", str(e)) from None
    return entries


class _Out:
    def __init__(self, as_json: bool) -> None:
        from rich.console import Console
        self.json = as_json
        # not on a terminal: no colour (rich's own rule) and no wrapping at 80 columns
        self.console = Console(highlight=False, markup=False,  # names are data, not markup
                               width=None if sys.stdout.isatty() else 1000)

    def table(self, cmd: str, rows: list[dict[str, Any]]) -> None:
        if self.json:
            print(json.dumps(rows, indent=2, ensure_ascii=False))
            return
        from rich.table import Table
        t = Table(box=None, pad_edge=False, header_style="bold")
        for title, _ in _COLUMNS[cmd]:
            t.add_column(title)
        for r in rows:
            t.add_row(*[str(get(r) or "") for _, get in _COLUMNS[cmd]])
        self.console.print(t)

    def entry(self, e: dict[str, Any] | None) -> None:
        if self.json or e is None:
            print(json.dumps(e, indent=2, ensure_ascii=False))
            return
        self.console.print_json(json.dumps(e, ensure_ascii=False))

    def note(self, text: str) -> None:
        if not self.json:
            self.console.print(text)


def _watch(nfo: Client, names: list[str], state: str, timeout: float, out: _Out) -> None:
    """Wait for every instance, one read of the list per tick: a table updated in place
    on a terminal, else one line per change; a summary at the end.  Instances that fail
    are reported and end the command with its own exit code."""
    start = time.monotonic()
    seen: dict[str, str] = {}
    failed: dict[str, str] = {}
    pending = list(names)
    live = None
    if out.console.is_terminal and not out.json:
        from rich.live import Live
        live = Live(console=out.console, refresh_per_second=8)
        live.start()

    def render() -> Any:
        from rich.table import Table
        done = len(names) - len(pending)
        t = Table(box=None, header_style="bold", title=f"waiting for {state}",
                  title_justify="left", caption_justify="left",
                  caption=f"{done} of {len(names)} done, {time.monotonic() - start:.1f}s")
        for col in ("NAME", "STATE", "REASON"):
            t.add_column(col)
        for n in names:
            t.add_row(n, seen.get(n, "?"), failed.get(n, ""))
        return t

    try:
        while pending:
            rows = {e["name"]: e for e in nfo.instances.list()}
            for n in list(pending):
                inst = rows.get(n)
                st = "gone" if inst is None else inst.get("state", {}).get("oper-status", "?")
                if seen.get(n) != st:
                    seen[n] = st
                    if live is None and not out.json:
                        out.console.print(f"{n}: {st} ({time.monotonic() - start:.1f}s)")
                try:
                    if reached(n, state, inst):
                        pending.remove(n)
                except WaitFailed as e:
                    failed[n] = str(e)
                    pending.remove(n)
            if live is not None:
                live.update(render())
            if pending and time.monotonic() - start > timeout:
                raise WaitTimeout(f"{len(pending)} of {len(names)} not {state} after "
                                  f"{timeout:g} s: {', '.join(pending)}", None)
            if pending:
                time.sleep(0.3)
    finally:
        if live is not None:
            live.update(render())
            live.stop()
    ok = len(names) - len(failed)
    out.note(f"{ok} of {len(names)} {state} in {time.monotonic() - start:.1f}s"
             + (f", {len(failed)} failed" if failed else ""))
    if failed:
        raise WaitFailed("; ".join(failed.values()), {})


def _instances_from(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.file is not None:
        if args.name or args.descriptor:
            raise _Failed("usage", "give either -f FILE or NAME --descriptor D")
        from nfo.client.calls import INSTANCES
        return _entries(INSTANCES, args.file)
    if not args.name or not args.descriptor:
        raise _Failed("usage", "nfo instance create NAME --descriptor D (or -f FILE)")
    entry: dict[str, Any] = {"name": args.name, "descriptor": args.descriptor}
    if args.vim:
        entry["vim"] = args.vim
    params = []
    for p in args.param:
        k, sep, v = p.partition("=")
        if not sep or not k:
            raise _Failed("usage", f"--param wants KEY=VALUE, not {p!r}")
        params.append({"name": k, "value": v})
    if params:
        entry["parameter"] = params
    if args.disabled:
        entry["admin-state"] = "disabled"
    return [entry]


def _watch_changes(args: argparse.Namespace, out: _Out) -> None:
    """Until SIGINT or SIGTERM, which close the watch (a second SIGINT interrupts)."""
    with Client(_config(args)) as nfo, nfo.watch(args.names or None,
                                                 since=args.since) as changes:
        def stop(signum: int, frame: object) -> None:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            changes.close()

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            for ev in changes:
                if out.json:
                    print(json.dumps(ev, ensure_ascii=False), flush=True)
                    continue
                old = ev.get("old-status") or "-"
                reason = f"  {ev['reason']}" if ev.get("reason") else ""
                out.console.print(f"{ev.get('time', '')}  {ev.get('name')}  {old} -> "
                                  f"{ev.get('new-status')}{reason}", markup=False)
                out.console.file.flush()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _status(args: argparse.Namespace, out: _Out) -> None:
    with Client(_config(args)) as nfo:
        insts = nfo.instances.list()
        vims = nfo.vims.list()
    counts: dict[str, int] = {}
    for i in insts:
        st = i.get("state", {}).get("oper-status", "unknown")
        counts[st] = counts.get(st, 0) + 1
    vim_rows = [{"name": v.get("name"), "type": v.get("type"),
                 "reachability": v.get("state", {}).get("reachability", "unknown"),
                 "instances": v.get("state", {}).get("usage", {}).get("instances", 0)}
                for v in vims]
    if out.json:
        print(json.dumps({"server": nfo.config.base, "reachable": True,
                          "instances": {"total": len(insts), "by-state": counts},
                          "vims": vim_rows}, indent=2))
        return
    out.console.print(f"server {nfo.config.base}: answering", markup=False)
    out.console.print(f"instances: {len(insts)}" + "".join(
        f", {n} {st}" for st, n in sorted(counts.items())), markup=False)
    from rich.table import Table
    t = Table(box=None, header_style="bold")
    for col in ("VIM", "TYPE", "REACHABILITY", "INSTANCES"):
        t.add_column(col)
    for v in vim_rows:
        t.add_row(str(v["name"]), str(v["type"]).split(":")[-1], str(v["reachability"]),
                  str(v["instances"]))
    out.console.print(t)


def _transactions(args: argparse.Namespace, out: _Out) -> None:
    """``history``, ``diff REVISION``, ``rollback REVISION``."""
    with Client(_config(args)) as nfo:
        if args.cmd == "history":
            out.table("history", nfo.history(args.limit, args.before))
        elif args.cmd == "diff":
            changes = nfo.diff(args.revision)
            if changes or out.json:
                out.table("diff", changes)
            else:
                out.note(f"revision {args.revision} changed nothing you may read")
        else:
            rev = nfo.rollback(args.revision, args.comment)
            if out.json:
                print(json.dumps({"revision": rev}))
            elif rev is None:
                out.note(f"nothing to do: the configuration is as it was after revision "
                         f"{args.revision}")
            else:
                out.note(f"rolled back to revision {args.revision}: new revision {rev}")


def _list(args: argparse.Namespace, coll: Any, out: _Out) -> None:
    """Every entry, or the page the paging flags ask the server for; under a partial
    page, how many entries are left (on standard error with ``--json``)."""
    paged = {"limit": args.limit, "offset": args.offset, "sort_by": args.sort_by,
             "direction": "backwards" if args.reverse else None, "where": args.where}
    if all(v is None for v in paged.values()):
        out.table(args.cmd, coll.list())
        return
    page: Page = coll.list(**paged)
    out.table(args.cmd, page.entries)
    if page.remaining:   # a page with entries left after it is never empty
        more = (f"{page.offset + 1}-{page.offset + len(page)} shown, {page.remaining} "
                f"more (next page: --offset {page.next_offset})")
        if out.json:
            print(f"nfo: {more}", file=sys.stderr)
        else:
            out.note(more)


def _run(args: argparse.Namespace, out: _Out) -> None:
    if args.cmd == "watch":
        _watch_changes(args, out)
        return
    if args.cmd == "status":
        _status(args, out)
        return
    if args.cmd in ("history", "diff", "rollback"):
        _transactions(args, out)
        return
    coll_name, key, what = KINDS[args.cmd]
    with Client(_config(args)) as nfo:
        coll = getattr(nfo, coll_name)
        if args.op == "list":
            _list(args, coll, out)
        elif args.op == "show":
            e = coll.get(getattr(args, key))
            if e is None:
                raise _Failed("refused", f"no {what} {getattr(args, key)!r}")
            out.entry(e)
        elif args.op == "add":
            coll.add(_entries(coll.kind, args.file), comment=args.comment)
            out.note(f"added {what}s from {args.file}")
        elif args.op == "create":
            entries = _instances_from(args)
            nfo.instances.add(entries, comment=args.comment)
            names = [e["name"] for e in entries]
            out.note(f"created {', '.join(names)}")
            if args.wait:
                _watch(nfo, names, "running", args.timeout, out)
            if out.json:
                out.table(args.cmd, [nfo.instances.get(n) for n in names])
        elif args.op == "delete":
            coll.delete(getattr(args, key))
            out.note(f"deleted {what} {getattr(args, key)}")
            if getattr(args, "wait", False):
                _watch(nfo, [getattr(args, key)], "gone", args.timeout, out)
        elif args.op == "wait":
            _watch(nfo, args.names, args.state, args.timeout, out)
            if out.json:
                out.table(args.cmd, [e for n in args.names
                                     if (e := nfo.instances.get(n)) is not None])
        elif args.op in ("restart", "redeploy"):
            result = (nfo.restart(args.name) if args.op == "restart"
                      else nfo.redeploy(args.name, args.vim))
            if out.json:
                print(json.dumps(result))
            else:
                out.note(str(result.get("result", f"{args.op} requested")))
        elif args.op in CONFIG_ACTIONS:
            result = nfo.config_action(args.name, args.op)
            if out.json:
                print(json.dumps(result))
            elif args.op == "check-sync":
                print("in sync" if result.get("in-sync") else
                      f"out of sync:\n{result.get('difference', '')}")
            elif args.op == "dry-run":
                print(result.get("edit") or f"nothing to send (target {result.get('target')})")
            else:
                out.note(str(result.get("result", "")))


_EXIT_FOR: tuple[tuple[type[ClientError], str], ...] = (
    (Unreachable, "unreachable"), (AuthenticationFailed, "auth"), (WaitFailed, "failed"),
    (WaitTimeout, "timeout"), (RequestFailed, "refused"), (ClientError, "usage"))
"""The exit code of each client failure, the most specific first."""


def run(args: argparse.Namespace) -> int:
    try:
        _run(args, _Out(args.json))
    except KeyboardInterrupt:
        return EXIT["interrupted"]
    except (_Failed, ClientError) as e:
        code = e.code if isinstance(e, _Failed) else next(
            c for cls, c in _EXIT_FOR if isinstance(e, cls))
        print(f"nfo: error: {' '.join(str(e).split())}", file=sys.stderr)
        return EXIT[code]
    return EXIT["ok"]
