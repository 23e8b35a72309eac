"""The ``nfo`` commands that talk to a running server (``catalog``, ``vim``, ``instance``,
``watch``, ``status``, ``history``, ``diff``, ``rollback``; docs/cli.md): what they accept,
their exit codes, and the entry that runs them.

Why apart from :mod:`nfo.cli.client_commands`: every ``nfo`` start builds the parser,
``nfo serve`` included; running a client command needs httpx and rich, which are
imported only then.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "EXIT", "KINDS", "add_remote_parsers", "run_remote"]

COMMANDS = ("catalog", "vim", "instance", "watch", "status", "history", "diff", "rollback")
"""The commands this module runs (against a running server)."""

EXIT = {"ok": 0, "refused": 1, "usage": 2, "unreachable": 3, "auth": 4, "failed": 5,
        "timeout": 6, "interrupted": 130}
"""Exit codes (docs/cli.md): scripts may rely on them."""

KINDS = {"catalog": ("catalog", "id", "NF descriptor"), "vim": ("vims", "name", "VIM"),
          "instance": ("instances", "name", "NF instance")}


# -- parsers ----------------------------------------------------------------------------

def _connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server (else NFO_URL, NFO_USER, NFO_PASSWORD, then "
                             "~/.config/nfo/config.toml)")
    g.add_argument("--url", help="the server's URL (default http://127.0.0.1:8080)")
    g.add_argument("--user", help="user name")
    g.add_argument("--password-stdin", action="store_true",
                   help="read the password from standard input (never from an argument)")
    g.add_argument("--ca", help="CA bundle to verify the server's certificate")
    g.add_argument("--insecure", action="store_true", default=None,
                   help="do not verify the server's certificate")
    g.add_argument("--cert", help="client certificate (TLS client authentication)")
    g.add_argument("--key", help="its private key, when not in the certificate file")
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return int(text)


def _number(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number (0 or more)")
    return int(text)


def _paging_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("paging, done by the server (docs/pagination.md)")
    g.add_argument("--limit", type=_count, metavar="N", help="at most N entries")
    g.add_argument("--offset", type=_number, metavar="N", help="skip the first N entries")
    g.add_argument("--sort-by", metavar="NODE",
                   help="sort on this descendant of the entries (name, state/oper-status)")
    g.add_argument("--reverse", action="store_true",
                   help="walk the entries backwards (descending with --sort-by)")
    g.add_argument("--where", metavar="XPATH",
                   help="only entries for which this XPath is true (descriptor = 'fw')")


_OP_EXAMPLES = {
    ("catalog", "list"): "nfo catalog list --json",
    ("catalog", "show"): "nfo catalog show udp-echo",
    ("catalog", "add"): "nfo catalog add -f descriptors.yaml",
    ("catalog", "delete"): "nfo catalog delete fw",
    ("vim", "list"): "nfo vim list", ("vim", "show"): "nfo vim show local --json",
    ("vim", "add"): "nfo vim add -f lab-vims.yaml", ("vim", "delete"): "nfo vim delete lab",
    ("instance", "list"): "nfo instance list --json\n"
                          "  nfo instance list --sort-by state/oper-status --limit 20 "
                          "--offset 40\n  nfo instance list --where \"descriptor = 'fw'\" "
                          "--reverse",
    ("instance", "show"): "nfo instance show echo-1",
    ("instance", "create"): "nfo instance create echo-1 --descriptor udp-echo "
                            "--param port=40001 --wait\n  nfo instance create -f many.yaml --wait",
    ("instance", "delete"): "nfo instance delete echo-1 --wait",
    ("instance", "wait"): "nfo instance wait echo-1 echo-2 --state running --timeout 120",
    ("instance", "restart"): "nfo instance restart echo-1",
    ("instance", "redeploy"): "nfo instance redeploy echo-1 --vim lab",
    ("instance", "check-sync"): "nfo instance check-sync r1",
    ("instance", "sync-to"): "nfo instance sync-to r1",
    ("instance", "sync-from"): "nfo instance sync-from r1",
    ("instance", "dry-run"): "nfo instance dry-run r1",
}


def _op_parser(ops: Any, cmd: str, op: str, text: str, **kw: Any) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = ops.add_parser(
        op, help=text, epilog=f"example:\n  {_OP_EXAMPLES[(cmd, op)]}",
        formatter_class=argparse.RawDescriptionHelpFormatter, **kw)
    return p


def add_remote_parsers(sub: Any) -> None:
    for cmd, (_, key, what) in KINDS.items():
        p = sub.add_parser(cmd, help=f"{what}s on a running server",
                           description=f"{what}s on a running server.",
                           epilog=_EXAMPLES[cmd],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        ops = p.add_subparsers(dest="op", required=True, metavar="ACTION")
        for op, text in (("list", f"every {what}"), ("show", f"one {what}")):
            o = _op_parser(ops, cmd, op, text)
            if op == "show":
                o.add_argument(key, help=f"the {what}'s {key}")
            else:
                _paging_args(o)
            _connection_args(o)
        if cmd == "instance":
            c = _op_parser(ops, cmd, "create", "create NF instances",
                               description="Create one instance from flags, or every "
                               "instance of a YAML or JSON file (one request).")
            c.add_argument("name", nargs="?", help="the instance's name (not with -f)")
            c.add_argument("--descriptor", help="catalog id of the NF descriptor")
            c.add_argument("--vim", help="VIM to run on (else placement decides)")
            c.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                           help="a descriptor parameter (repeatable)")
            c.add_argument("--disabled", action="store_true",
                           help="create it with admin-state disabled")
            c.add_argument("-f", "--file", type=Path, help="YAML or JSON file of instances")
            _comment_arg(c)
            _wait_args(c)
            _connection_args(c)
        else:
            a = _op_parser(ops, cmd, "add", f"add {what}s from a YAML or JSON file")
            a.add_argument("-f", "--file", type=Path, required=True,
                           help=f"YAML or JSON file of {what}s")
            _comment_arg(a)
            _connection_args(a)
        d = _op_parser(ops, cmd, "delete", f"delete a {what}")
        d.add_argument(key, help=f"the {what}'s {key}")
        if cmd == "instance":
            _wait_args(d)
        _connection_args(d)
        if cmd == "instance":
            w = _op_parser(ops, cmd, "wait", "wait until instances reach a state")
            w.add_argument("names", nargs="+", metavar="NAME")
            w.add_argument("--state", default="running",
                           choices=["running", "failed", "terminated", "gone"])
            w.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS")
            _connection_args(w)
            for action in ("restart", "redeploy"):
                r = _op_parser(ops, cmd, action, f"{action} an instance")
                r.add_argument("name")
                if action == "redeploy":
                    r.add_argument("--vim", help="redeploy on this VIM")
                _connection_args(r)
            for action, text in (
                    ("check-sync", "compare the NF's configuration with the desired one"),
                    ("sync-to", "push the desired configuration to the NF now"),
                    ("sync-from", "adopt the NF's configuration as the instance's day-2"),
                    ("dry-run", "show the NETCONF edit nfo would send, without sending it")):
                r = _op_parser(ops, cmd, action, text)
                r.add_argument("name")
                _connection_args(r)
    _add_watch_status(sub)
    _add_transactions(sub)


def _comment_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--comment", metavar="TEXT",
                   help="why: stored with the commit, shown by nfo history")


def _add_transactions(sub: Any) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    h = sub.add_parser("history", help="the commits of the configuration, newest first",
                       description="The commits of running, newest first: revision, time, "
                       "user, comment, and how many changes each made.",
                       epilog="examples:\n  nfo history\n  nfo history --limit 50 "
                       "--before 120\n  nfo history --json", formatter_class=raw)
    h.add_argument("--limit", type=_count, default=20, metavar="N",
                   help="at most N commits (1..1000, default 20)")
    h.add_argument("--before", type=_count, metavar="REV",
                   help="only commits older than revision REV (the next page)")
    _connection_args(h)
    d = sub.add_parser("diff", help="the changes one commit made",
                       description="The changes commit REVISION made to the configuration "
                       "(nfo history lists the revisions); what you may not read is left "
                       "out.", epilog="examples:\n  nfo diff 42\n  nfo diff 42 --json",
                       formatter_class=raw)
    d.add_argument("revision", type=_count, metavar="REVISION")
    _connection_args(d)
    r = sub.add_parser("rollback", help="make the configuration what it was after a commit",
                       description="Make the configuration what it was right after commit "
                       "REVISION, as a new commit (which can be rolled back in turn); "
                       "prints its revision.",
                       epilog="examples:\n  nfo rollback 41 --comment \"fw1 broke the lab\"\n"
                       "  nfo history --limit 5 && nfo rollback 41", formatter_class=raw)
    r.add_argument("revision", type=_number, metavar="REVISION")
    _comment_arg(r)
    _connection_args(r)


def _add_watch_status(sub: Any) -> None:
    w = sub.add_parser("watch", help="NF instance state changes as they happen",
                       description="Print NF instance state changes as they happen, until "
                       "interrupted; reconnects and resumes if the connection is lost.",
                       epilog="examples:\n  nfo watch\n  nfo watch echo-1 --json\n"
                       "  nfo watch --since 2026-12-05T00:00:00Z",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    w.add_argument("names", nargs="*", metavar="NAME", help="only these instances")
    w.add_argument("--since", metavar="TIME", help="replay changes from this RFC 3339 time")
    _connection_args(w)
    st = sub.add_parser("status", help="server health, instances per state, VIMs",
                        description="The server's health: whether it answers, how many "
                        "instances are in each state, and each VIM's reachability.")
    _connection_args(st)


def _wait_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", action="store_true",
                   help="wait until running (delete: until gone), showing progress")
    p.add_argument("--timeout", type=float, default=300.0, metavar="SECONDS",
                   help="how long --wait waits (default 300)")


_EXAMPLES = {
    "catalog": "examples:\n  nfo catalog list\n  nfo catalog add -f descriptors.yaml\n"
               "  nfo catalog show udp-echo --json",
    "vim": "examples:\n  nfo vim list\n  nfo vim add -f lab-vims.yaml\n  nfo vim delete lab",
    "instance": "examples:\n  nfo instance create echo-1 --descriptor udp-echo "
                "--param port=40001 --wait\n  nfo instance create -f instances.yaml --wait\n"
                "  nfo instance list --json\n  nfo instance wait echo-1 echo-2 --timeout 120\n"
                "  nfo instance delete echo-1 --wait",
}


def run_remote(args: argparse.Namespace) -> int:
    from nfo.cli.client_commands import run
    return run(args)
