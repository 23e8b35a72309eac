"""The ``nfo`` command line: ``serve``, the module set (``module install|list|remove``) and
the accounts (``user ...``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from nfo.cli.moduleset import StateDir, install_modules, list_modules, remove_module
from nfo.cli.statelock import StateLock
from nfo.cli.users import add_user_parser, run_user
from nfo.errors import InvalidValue, NfoError
from nfo.restconf.server import RestconfOptions

__all__ = ["main"]


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
    s.add_argument("--concurrency", type=int, default=64, metavar="N",
                   help="VIM calls in flight per VIM account at most (default 64)")
    s.add_argument("--demo", type=int, nargs="?", const=7777, default=None, metavar="PORT",
                   help="also run the demo NF: a udp-echo instance 'demo-echo' on the local "
                        "VIM, listening on 127.0.0.1:PORT (default 7777)")
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
    return p


def _restconf(args: argparse.Namespace) -> RestconfOptions | None:
    if args.restconf == "off":
        return None
    host, sep, port = args.restconf.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidValue(f"--restconf wants HOST:PORT, not {args.restconf!r}")
    if (args.tls_cert is None) != (args.tls_key is None):
        raise InvalidValue("--tls-cert and --tls-key go together")
    return RestconfOptions(host=host.strip("[]"), port=int(port), tls_cert=args.tls_cert,
                           tls_key=args.tls_key, dev_cert=args.dev_cert,
                           client_ca=args.tls_client_ca)


def _netconf(args: argparse.Namespace) -> tuple[str, int] | None:
    if args.netconf == "off":
        return None
    host, sep, port = args.netconf.rpartition(":")
    if not sep or not port.isdigit():
        raise InvalidValue(f"--netconf wants HOST:PORT, not {args.netconf!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    quiet = args.cmd == "user" and not args.verbose
    logging.basicConfig(level=logging.DEBUG if args.verbose else
                        logging.WARNING if quiet else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = StateDir(args.state_dir)
    try:
        if args.cmd == "serve":
            from nfo.cli.serve import serve
            asyncio.run(serve(state, args.yang_dir, demo_port=args.demo,
                              concurrency=args.concurrency, restconf=_restconf(args),
                              netconf=_netconf(args)))
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
