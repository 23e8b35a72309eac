"""The ``nfo`` command line: ``serve`` and the module set (``module install|list|remove``)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from nfo.cli.moduleset import StateDir, install_modules, list_modules, remove_module
from nfo.errors import NfoError

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
    s.add_argument("--concurrency", type=int, default=64, metavar="N",
                   help="instances reconciled in parallel at most (default 64)")
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    state = StateDir(args.state_dir)
    try:
        if args.cmd == "serve":
            from nfo.cli.serve import serve
            asyncio.run(serve(state, args.yang_dir, demo_port=args.demo,
                              concurrency=args.concurrency))
        elif args.mcmd == "install":
            names = install_modules(state, args.files)
            print("installed: " + ", ".join(names))
        elif args.mcmd == "list":
            for mod in list_modules(state, args.yang_dir):
                flag = "implemented" if mod.implemented else "import-only"
                print(f"{mod.name:40} {mod.revision or '-':12} {mod.source:10} {flag}")
        elif args.mcmd == "remove":
            asyncio.run(remove_module(state, args.name, force=args.force))
            print(f"removed: {args.name}")
    except NfoError as e:
        print(f"nfo: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
