"""The operator's module set in a state directory (``nfo module ...``).

Like ``sysrepoctl -i``: installed YANG files live in ``<state>/modules`` and
are part of the state.  Installing compiles the whole set first, so a broken
module never lands; removing a module that still has data is refused unless
forced, and a forced removal first deletes that data in one commit.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from nfo.datastore import Datastore, SqliteStorage
from nfo.datastore.storage.files import make_dirs, remove_durably, write_durably
from nfo.errors import InUse, InvalidValue, NfoError
from nfo.schema import ModuleInfo, Schema, Tree, module_name_of

__all__ = ["StateDir", "install_modules", "list_modules", "remove_module"]


class StateDir:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def modules(self) -> Path:
        return self.path / "modules"

    @property
    def db(self) -> Path:
        return self.path / "nfo.db"

    @property
    def lock(self) -> Path:
        return self.path / "lock"

    @property
    def control(self) -> Path:
        return self.path / "control.sock"

    def ensure(self) -> None:
        """Create the state directory (durably: a power cut right after the first
        commit must not lose the directory holding it)."""
        make_dirs(self.modules)
        self.path.chmod(0o700)

    def schema(self, extra_dirs: list[Path] | None = None) -> Schema:
        return Schema(self.modules, extra_dirs or [])


def install_modules(state: StateDir, files: list[Path]) -> list[str]:
    """Add YANG files to the module set; all-or-nothing, the set must compile."""
    state.ensure()
    names = []
    for f in files:
        if not f.is_file():
            raise InvalidValue(f"{f}: no such file")
        name, _ = module_name_of(f)
        names.append(name)
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp)
        for existing in state.modules.glob("*.yang"):
            shutil.copy2(existing, trial / existing.name)
        for f in files:
            shutil.copy2(f, trial / f.name)
        Schema(trial)
    for f in files:
        write_durably(state.modules / f.name, f.read_bytes())
    return names


def list_modules(state: StateDir, extra_dirs: list[Path] | None = None) -> list[ModuleInfo]:
    return state.schema(extra_dirs).modules()


async def remove_module(state: StateDir, name: str, *, force: bool = False) -> None:
    """Remove an installed module; refuse while data of it exists unless forced."""
    files = [p for p in state.modules.glob("*.yang") if module_name_of(p)[0] == name]
    if not files:
        raise InvalidValue(f"module {name!r} is not installed in {state.modules}")
    with tempfile.TemporaryDirectory() as tmp:
        trial = Path(tmp)
        for p in state.modules.glob("*.yang"):
            if p not in files:
                shutil.copy2(p, trial / p.name)
        try:
            Schema(trial)
        except NfoError as e:
            raise InUse(f"other installed modules still need {name!r}: {e.message}") from e
    schema = state.schema()
    ds = Datastore.open(schema, SqliteStorage(state.db))
    try:
        await ds.start()
        holders = [d for d in ("running", "startup") if _has_data(ds.tree(d), name)]
        if holders and not force:
            raise InUse(f"module {name!r} still has data in {', '.join(holders)}; "
                        "delete it first or use --force")
        async with ds.internal_session("nfo-module-remove") as s:
            for d in holders:
                keep = ds.tree(d).dup()
                with keep:
                    for top in keep.nodes():
                        if top.module == name:
                            keep.remove(top)
                    await s.copy_config(d, keep)
                ds.snapshot(d)
            for owner in ds.oper_owners():
                tops = {top for text in ds.oper_records(owner) for top in json.loads(text)}
                for top in sorted(tops):
                    if top.partition(":")[0] == name:
                        s.delete_oper(f"/{top}", owner=owner)
    finally:
        await ds.close()
    for p in files:
        remove_durably(p)


def _has_data(tree: Tree, module: str) -> bool:
    return any(n.module == module and not n.is_default for n in tree.nodes())
