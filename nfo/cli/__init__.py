"""The ``nfo`` command line: ``serve``, the module set (``module install|list|remove``),
the accounts (``user ...``), and the commands for a running server (``catalog``, ``vim``,
``instance``: :mod:`nfo.cli.remote`)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from nfo.cli.moduleset import StateDir, install_modules, list_modules, remove_module
from nfo.cli.remote import COMMANDS, add_remote_parsers, run_remote
from nfo.cli.statelock import StateLock
from nfo.cli.users import add_user_parser, run_user
from nfo.datastore.notifications import DEFAULT_KEEP
from nfo.datastore.workers import DEFAULT_DEADLINE, DEFAULT_PER_USER, DEFAULT_THREADS, Workers
from nfo.errors import InvalidValue, NfoError
from nfo.netconf.server import NetconfOptions
from nfo.restconf.server import ConnectionLimits, RestconfOptions, SessionLimits

__all__ = ["main"]


def _count(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return n


def _seconds(text: str) -> float:
    s = float(text)
    if not s > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number of seconds")
    return s


def _retention(text: str) -> tuple[str, int]:
    stream, sep, count = text.partition("=")
    if not sep or not stream or not count.isdigit() or int(count) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not STREAM=COUNT (COUNT at least 1)")
    return stream, int(count)


def _add_limits(s: argparse.ArgumentParser) -> None:
    """The limits of docs/limits.md."""
    rc, nc = ConnectionLimits(), NetconfOptions()
    g = s.add_argument_group("limits (docs/limits.md)")
    g.add_argument("--restconf-max-connections", type=_count, default=rc.max_connections,
                   metavar="N", help="RESTCONF connections served at once (default "
                   f"{rc.max_connections}); beyond, an idle one is closed or 503 answered")
    g.add_argument("--restconf-header-timeout", type=_seconds, default=rc.header_timeout,
                   metavar="SECONDS", help="time for a request head and a TLS handshake "
                   f"(default {rc.header_timeout:g})")
    g.add_argument("--restconf-keepalive-timeout", type=_seconds,
                   default=rc.keepalive_timeout, metavar="SECONDS",
                   help=f"idle keep-alive connections are closed after this (default "
                   f"{rc.keepalive_timeout:g})")
    g.add_argument("--ui-idle-timeout", type=_seconds, default=SessionLimits.idle_timeout,
                   metavar="SECONDS", help="a web UI login session ends after this long "
                   f"without a request (default {SessionLimits.idle_timeout:g})")
    g.add_argument("--restconf-max-body", type=_count, default=RestconfOptions.max_body,
                   metavar="BYTES", help="largest request body (default "
                   f"{RestconfOptions.max_body}); beyond, 413")
    g.add_argument("--netconf-max-sessions", type=_count, default=nc.max_sessions,
                   metavar="N", help=f"NETCONF sessions in all (default {nc.max_sessions})")
    g.add_argument("--netconf-max-sessions-per-user", type=_count,
                   default=nc.max_sessions_per_user, metavar="N",
                   help=f"NETCONF sessions per user (default {nc.max_sessions_per_user})")
    g.add_argument("--netconf-max-startups", type=_count, default=nc.max_startups,
                   metavar="N", help="SSH connections without a NETCONF session yet "
                   f"(default {nc.max_startups})")
    g.add_argument("--netconf-login-timeout", type=_seconds, default=nc.login_timeout,
                   metavar="SECONDS", help="time to log in and open the NETCONF session "
                   f"(default {nc.login_timeout:g})")
    g.add_argument("--netconf-max-message", type=_count, default=nc.max_message,
                   metavar="BYTES", help=f"largest NETCONF message (default {nc.max_message})")
    g.add_argument("--netconf-message-timeout", type=_seconds, default=nc.message_timeout,
                   metavar="SECONDS", help="time from a message's first byte to its end "
                   f"(default {nc.message_timeout:g})")
    g.add_argument("--query-threads", type=_count, default=DEFAULT_THREADS, metavar="N",
                   help=f"threads that finish XPath reads (default {DEFAULT_THREADS})")
    g.add_argument("--queries-per-user", type=_count, default=DEFAULT_PER_USER, metavar="N",
                   help="XPath reads of one user running or waiting at once (default "
                   f"{DEFAULT_PER_USER}); beyond, resource-denied")
    g.add_argument("--query-deadline", type=_seconds, default=DEFAULT_DEADLINE,
                   metavar="SECONDS", help="time a client waits for an XPath read (default "
                   f"{DEFAULT_DEADLINE:g}); beyond, resource-denied")
    g.add_argument("--notification-retention", type=_retention, action="append", default=[],
                   metavar="STREAM=COUNT", help="notifications event stream STREAM keeps "
                   f"for replay (repeatable; default {DEFAULT_KEEP} for NETCONF and for nfo)")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nfo", description="Model-driven NF orchestrator")
    p.add_argument("--state-dir", type=Path, default=Path("nfo-state"),
                   help="state directory (default: ./nfo-state)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run the orchestrator in the foreground")
    s.add_argument("--yang-dir", type=Path, action="append", default=[],
                   help="also load every module in DIR for this run (repeatable)")
    s.add_argument("--restconf", default="127.0.0.1:8080", metavar="HOST:PORT",
                   help="RESTCONF listener (default 127.0.0.1:8080, loopback only); 'off' "
                        "to disable")
    s.add_argument("--netconf", default="127.0.0.1:8830", metavar="HOST:PORT",
                   help="NETCONF over SSH listener (default 127.0.0.1:8830, loopback only); "
                        "'off' to disable")
    s.add_argument("--tls-cert", type=Path, help="serve RESTCONF over HTTPS with this "
                   "certificate (PEM) ...")
    s.add_argument("--tls-key", type=Path, help="... and this private key (PEM)")
    s.add_argument("--tls-client-ca", type=Path,
                   help="accept client certificates issued by this CA (PEM)")
    s.add_argument("--dev-cert", action="store_true",
                   help="HTTPS with a self-signed development certificate kept in the state "
                        "directory (generated on first use)")
    s.add_argument("--store", metavar="etcd://HOST:PORT,...",
                   help="keep the state on this etcd cluster, shared with other replicas "
                   "(docs/replicas.md); default: the state directory's SQLite file")
    s.add_argument("--replica", metavar="NAME",
                   help="this replica's name in the cluster (default: host and pid)")
    s.add_argument("--drivers-dir", type=Path, metavar="DIR",
                   help="where drivers keep their records of the VIMs' workloads (default: "
                   "the state directory); replicas on one host share it")
    s.add_argument("--concurrency", type=int, default=64, metavar="N",
                   help="VIM calls in flight per VIM account at most (default 64)")
    s.add_argument("--demo", type=int, nargs="?", const=7777, default=None, metavar="PORT",
                   help="also run the demo NF: a udp-echo instance 'demo-echo' on the local "
                        "VIM, listening on 127.0.0.1:PORT (default 7777)")
    _add_limits(s)
    m = sub.add_parser("module", help="manage the installed YANG module set")
    msub = m.add_subparsers(dest="mcmd", required=True)
    mi = msub.add_parser("install", help="install YANG module files")
    mi.add_argument("files", type=Path, nargs="+")
    ml = msub.add_parser("list", help="list the module set")
    ml.add_argument("--yang-dir", type=Path, action="append", default=[])
    mr = msub.add_parser("remove", help="remove an installed module")
    mr.add_argument("name")
    mr.add_argument("--force", action="store_true",
                    help="delete the module's data first instead of refusing")
    add_user_parser(sub)
    add_remote_parsers(sub)
    c = sub.add_parser("completion", help="print a shell completion script",
                       description="Print a completion script: source <(nfo completion bash)")
    c.add_argument("shell", choices=["bash"])
    return p


def _restconf(args: argparse.Namespace) -> RestconfOptions | None:
    if args.restconf == "off":
        return None
    host, sep, port = args.restconf.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidValue(f"--restconf wants HOST:PORT, not {args.restconf!r}")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidValue("--tls-cert and --tls-key go together")
    limits = ConnectionLimits(max_connections=args.restconf_max_connections,
                              header_timeout=args.restconf_header_timeout,
                              keepalive_timeout=args.restconf_keepalive_timeout)
    return RestconfOptions(host=host.strip("[]"), port=int(port), tls_cert=args.tls_cert,
                           tls_key=args.tls_key, dev_cert=args.dev_cert,
                           client_ca=args.tls_client_ca, max_body=args.restconf_max_body,
                           limits=limits,
                           web_sessions=SessionLimits(idle_timeout=args.ui_idle_timeout))


def _netconf(args: argparse.Namespace) -> NetconfOptions | None:
    if args.netconf == "off":
        return None
    host, sep, port = args.netconf.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidValue(f"--netconf wants HOST:PORT, not {args.netconf!r}")
    return NetconfOptions(host=host.strip("[]"), port=int(port),
                          max_sessions=args.netconf_max_sessions,
                          max_sessions_per_user=args.netconf_max_sessions_per_user,
                          max_startups=args.netconf_max_startups,
                          login_timeout=args.netconf_login_timeout,
                          max_message=args.netconf_max_message,
                          message_timeout=args.netconf_message_timeout)


def _notification_retention(args: argparse.Namespace) -> dict[str, int]:
    given: list[tuple[str, int]] = args.notification_retention
    keep = dict(given)
    if len(keep) < len(given):
        raise InvalidValue("--notification-retention names a stream more than once")
    return keep


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd in COMMANDS:
        return run_remote(args)
    if args.cmd == "completion":
        from nfo.cli.completion import bash_script
        print(bash_script(_parser()), end="")
        return 0
    quiet = args.cmd == "user" and not args.verbose
    logging.basicConfig(level=logging.DEBUG if args.verbose else
                        logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:  # asyncssh reports every connection at INFO: a flood floods the log
        logging.getLogger("asyncssh").setLevel(logging.WARNING)
    state = StateDir(args.state_dir)
    try:
        if args.cmd == "serve":
            from nfo.cli.serve import serve
            asyncio.run(serve(state, args.yang_dir, demo_port=args.demo,
                              concurrency=args.concurrency, restconf=_restconf(args),
                              netconf=_netconf(args),
                              workers=Workers(args.query_threads,
                                              per_user=args.queries_per_user,
                                              deadline=args.query_deadline),
                              notification_retention=_notification_retention(args),
                              store=args.store, replica=args.replica,
                              drivers_dir=args.drivers_dir))
        elif args.cmd == "user":
            run_user(state, args)
        elif args.mcmd == "install":
            names = install_modules(state, args.files)
            print("installed: " + ", ".join(names))
        elif args.mcmd == "list":
            for mod in list_modules(state, args.yang_dir):
                flag = "implemented" if mod.implemented else "import-only"
                print(f"{mod.name:40} {mod.revision or '-':12} {mod.source:10} {flag}")
        elif args.mcmd == "remove":
            with StateLock.acquire(state, "the state directory is in use; stop the server "
                                          "first"):
                asyncio.run(remove_module(state, args.name, force=args.force))
            print(f"removed: {args.name}")
    except NfoError as e:
        print(f"nfo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
