"""The driver registry and the placement policy.

Drivers are found through the ``nfo.drivers`` entry-point group, nfo's own
included, and a name may be registered once only.  The registry keeps one
driver per configured VIM account and rebuilds it when the account changes.
Placement chooses where an instance runs: its ``vim`` when it names one,
else the least-loaded enabled VIM whose type has a driver, which the
descriptor allows, and which has room for the descriptor's compute needs.
The reason for the choice is returned for operational state.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from nfo.errors import InvalidValue
from nfo.registry.protocol import (
    ComputeNeeds,
    Driver,
    DriverContext,
    DriverFactory,
    VimAccount,
)

__all__ = ["ENTRY_POINT_GROUP", "DriverRegistry", "Placement", "PlacementError", "Usage"]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "nfo.drivers"


class PlacementError(Exception):
    """No VIM can serve the instance; the message says why (a permanent condition)."""


@dataclass(frozen=True)
class Placement:
    vim: VimAccount
    driver: str
    reason: str


@dataclass
class Usage:
    instances: int = 0
    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def add(self, needs: ComputeNeeds, sign: int = 1) -> None:
        self.instances += sign
        self.vcpus += sign * needs.vcpus
        self.memory_mb += sign * needs.memory_mb
        self.disk_gb += sign * needs.disk_gb


class DriverRegistry:
    def __init__(self, state_dir: Path, owner_tag: str,
                 factories: Iterable[DriverFactory] = ()) -> None:
        self.state_dir = state_dir
        self.owner_tag = owner_tag
        self._factories: dict[str, DriverFactory] = {}
        self._by_type: dict[str, DriverFactory] = {}
        self._drivers: dict[str, tuple[VimAccount, Driver]] = {}
        self._stale: list[Driver] = []
        self._shared: dict[str, dict[str, Any]] = {}
        for f in factories:
            self.register(f)

    @classmethod
    def from_entry_points(cls, state_dir: Path, owner_tag: str) -> DriverRegistry:
        reg = cls(state_dir, owner_tag)
        seen: dict[str, str] = {}
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in seen:
                raise InvalidValue(f"driver name {ep.name!r} is registered twice "
                                   f"({seen[ep.name]} and {ep.value})")
            seen[ep.name] = ep.value
            factory = ep.load()
            if getattr(factory, "name", None) != ep.name:
                raise InvalidValue(f"entry point {ep.name!r} loads a driver named "
                                   f"{getattr(factory, 'name', None)!r}")
            reg.register(factory)
        return reg

    def register(self, factory: DriverFactory) -> None:
        if factory.name in self._factories:
            raise InvalidValue(f"a driver named {factory.name!r} is already registered")
        if factory.vim_type in self._by_type:
            raise InvalidValue(f"VIM type {factory.vim_type} already has driver "
                               f"{self._by_type[factory.vim_type].name!r}")
        self._factories[factory.name] = factory
        self._by_type[factory.vim_type] = factory

    def unregister(self, name: str) -> None:
        """Forget a driver factory (drivers already built for VIMs stay until rebuilt)."""
        factory = self._factories.pop(name, None)
        if factory is not None:
            self._by_type.pop(factory.vim_type, None)

    def names(self) -> list[str]:
        return sorted(self._factories)

    def types(self) -> set[str]:
        return set(self._by_type)

    def driver_name(self, vim_type: str) -> str | None:
        f = self._by_type.get(vim_type)
        return f.name if f else None

    def driver(self, vim: VimAccount) -> Driver:
        """The driver for a VIM account (built on first use, rebuilt when the account changed)."""
        cached = self._drivers.get(vim.name)
        if cached is not None and cached[0] == vim:
            return cached[1]
        factory = self._by_type.get(vim.type)
        if factory is None:
            raise PlacementError(f"no driver is registered for VIM type {vim.type}")
        d = self.state_dir / "drivers" / factory.name / vim.name
        d.mkdir(parents=True, exist_ok=True)
        drv = factory(vim, DriverContext(d, self.owner_tag,
                                         self._shared.setdefault(factory.name, {})))
        if cached is not None:
            self._stale.append(cached[1])
        self._drivers[vim.name] = (vim, drv)
        return drv

    async def close(self) -> None:
        for _, drv in list(self._drivers.values()):
            await drv.close()
        for drv in self._stale:
            await drv.close()
        self._drivers.clear()
        self._stale = []

    def place(self, instance: str, vim_types: Sequence[str], needs: ComputeNeeds,
              vims: Mapping[str, VimAccount], usage: Mapping[str, Usage],
              requested: str | None) -> Placement:
        """Choose a VIM and driver; raise PlacementError with the reason when none fits."""
        allowed = set(vim_types)
        if requested is not None:
            vim = vims.get(requested)
            if vim is None:
                raise PlacementError(f"VIM {requested!r} is not configured")
            why = self._unfit(vim, allowed, needs, usage.get(vim.name, Usage()))
            if why:
                raise PlacementError(f"VIM {requested!r} cannot run {instance!r}: {why}")
            drv = self._by_type[vim.type].name
            return Placement(vim, drv, f"VIM {vim.name!r} named by the instance; driver {drv!r}")
        rejected: list[str] = []
        fits: list[tuple[float, str, VimAccount]] = []
        for vim in vims.values():
            u = usage.get(vim.name, Usage())
            why = self._unfit(vim, allowed, needs, u)
            if why:
                rejected.append(f"{vim.name}: {why}")
                continue
            load = u.instances / vim.capacity.max_instances if vim.capacity.max_instances else 0.0
            fits.append((load, vim.name, vim))
        if not fits:
            detail = "; ".join(rejected) if rejected else "no VIM is configured"
            raise PlacementError(f"no VIM can run {instance!r} ({detail})")
        fits.sort(key=lambda f: (f[0], f[1]))
        load, _, vim = fits[0]
        drv = self._by_type[vim.type].name
        return Placement(vim, drv, f"placed on VIM {vim.name!r} (type {vim.type}, driver {drv!r}):"
                         f" least loaded of {len(fits)} fitting VIM(s), {load:.0%} of its"
                         " instance capacity in use")

    def _unfit(self, vim: VimAccount, allowed: set[str], needs: ComputeNeeds,
               u: Usage) -> str:
        if not vim.enabled:
            return "disabled"
        if vim.type not in self._by_type:
            return f"no driver for type {vim.type}"
        if vim.type not in allowed:
            return f"descriptor does not allow type {vim.type}"
        c = vim.capacity
        if c.max_instances is not None and u.instances + 1 > c.max_instances:
            return f"instance capacity full ({u.instances}/{c.max_instances})"
        for what, have, need, cap in (("vcpus", u.vcpus, needs.vcpus, c.vcpus),
                                      ("memory-mb", u.memory_mb, needs.memory_mb, c.memory_mb),
                                      ("disk-gb", u.disk_gb, needs.disk_gb, c.disk_gb)):
            if cap is not None and have + need > cap:
                return f"not enough {what} ({have} used + {need} needed > {cap})"
        return ""
