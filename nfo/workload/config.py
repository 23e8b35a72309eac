"""Configuring a network function over NETCONF with the function's own YANG modules.

The workload manager decides *when* (from the instance's recorded state, in the
instance's own worker); this module says *what*: the desired configuration of an
instance (the descriptor's day-1 template with the instance's parameters, with the
instance's day-2 data over it), validated by libyang against the function's modules
before any NETCONF call, the endpoint to reach the function, and the two device
conversations: compare (drift) and apply (lock, edit the candidate with the difference
only, confirmed commit, read back, confirm, unlock; running when the function has no
candidate).  The read-back is what makes ``in-sync`` true: some servers answer
``<ok/>`` to a commit that changed nothing.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from nfo.device import Device, DeviceError, Endpoint
from nfo.errors import InvalidValue, NfoError
from nfo.schema import ModuleText, NfModules, Tree, render

__all__ = ["ConfigError", "ConfigSpec", "apply", "compare", "config_spec", "connect",
           "dry_run", "modules_of", "read_running"]

_PARAM = re.compile(r"\{param:([a-zA-Z0-9][a-zA-Z0-9._-]{0,62})\}")


class ConfigError(Exception):
    """Configuring failed; ``temporary`` ones are retried with backoff."""

    def __init__(self, reason: str, *, temporary: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary


@dataclass(frozen=True)
class ConfigSpec:
    """What one instance's function should hold, and how to reach it."""

    modules: NfModules
    desired: str
    """The desired configuration as XML (no defaults), validated."""
    digest: str
    endpoint: Endpoint
    on_drift: str
    check_interval: float
    confirm_timeout: int

    def with_host_key(self, key: str | None) -> ConfigSpec:
        """The spec trusting ``key`` when the descriptor names none (trust on first use)."""
        if key is None or self.endpoint.host_key is not None:
            return self
        return replace(self, endpoint=replace(self.endpoint, host_key=key))


def _substitute(text: str, params: Mapping[str, str], what: str) -> str:
    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in params:
            raise InvalidValue(f"{what}: placeholder {m.group(0)} names parameter {name!r}, "
                               "which the instance does not set")
        return params[name]
    return _PARAM.sub(sub, text)


def modules_of(netconf: Mapping[str, Any]) -> NfModules:
    """The function's modules of a descriptor's ``netconf`` (compiled once per content)."""
    return NfModules.cached([ModuleText(str(m["name"]), str(m["source"]))
                             for m in netconf.get("module", [])])


def config_spec(netconf: Mapping[str, Any], params: Mapping[str, str],
                day2: Mapping[str, Any] | None, on_drift: str | None) -> ConfigSpec:
    """The instance's desired configuration, validated against the function's modules.

    Raises :class:`~nfo.errors.NfoError` naming the function module's data path when the
    template or the day-2 data is invalid (the write that introduced it is refused)."""
    mods = modules_of(netconf)
    day1 = netconf.get("day1") or {}
    day2 = day2 or {}
    replace_all = day2.get("mode") == "replace"
    texts: list[tuple[str, str, str]] = []
    if not replace_all:
        texts.append((str(day1.get("template", "")), str(day1.get("format", "xml")),
                      "the descriptor's day-1 template"))
    if day2.get("config") or replace_all:
        texts.append((str(day2.get("config", "")), str(day2.get("format", "xml")),
                      "the instance's day-2 configuration"))
    parts: list[Tree] = []
    try:
        for text, fmt, what in texts:  # a part alone need not be valid: their sum must
            parts.append(mods.parse(render(text, fmt, params), fmt, what=what,
                                    validate=len(texts) == 1))
        if len(parts) == 2:
            parts.append(mods.merged(parts[0], parts[1],
                                     what="the day-1 template with the day-2 configuration"))
        if not parts:
            parts.append(mods.parse("", "xml"))
        desired = mods.print(parts[-1], "xml")
        digest = mods.digest_of(parts[-1])
    finally:
        for t in parts:
            t.free()
    port_text = _substitute(str(netconf.get("port", "830")), params, "netconf port")
    try:
        port = int(port_text)
    except ValueError:
        raise InvalidValue(f"netconf port: {port_text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise InvalidValue(f"netconf port: {port} is out of range 1..65535")
    drift = netconf.get("drift") or {}
    endpoint = Endpoint(
        host=_substitute(str(netconf.get("address", "127.0.0.1")), params, "netconf address"),
        port=port,
        username=str(netconf.get("username", "")),
        password=netconf.get("password"),
        private_key=netconf.get("private-key"),
        host_key=netconf.get("host-key"),
    )
    return ConfigSpec(
        modules=mods,
        desired=desired,
        digest=digest,
        endpoint=endpoint,
        on_drift=on_drift or str(drift.get("on-drift", "report-only")),
        check_interval=float(drift.get("check-interval", 300)),
        confirm_timeout=int(netconf.get("confirm-timeout", 60)),
    )


@contextlib.contextmanager
def _device(doing: str) -> Iterator[None]:
    """The one place a device's failure becomes a ConfigError (temporary as the device
    call's error says), named after what nfo was doing."""
    try:
        yield
    except DeviceError as e:
        raise ConfigError(f"{doing}: {e.reason}" if doing else e.reason,
                          temporary=e.temporary) from None


async def connect(spec: ConfigSpec) -> Device:
    with _device(""):
        return await Device.connect(spec.endpoint)


async def read_running(dev: Device, spec: ConfigSpec) -> Tree:
    """The function's running configuration of its modules, parsed by them."""
    with _device("reading the configuration"):
        text = await dev.get_config("running", spec.modules.filter_xml())
    try:
        # not validated: a configuration someone broke on the device can still be put right
        return spec.modules.parse(text, "xml", what="the function's running configuration",
                                  validate=False)
    except NfoError as e:
        raise ConfigError(f"the function's running configuration is not valid for its "
                          f"modules: {e.message}", temporary=False) from None


def _desired_tree(spec: ConfigSpec) -> Tree:
    return spec.modules.parse(spec.desired, "xml", what="the desired configuration")


def _same(spec: ConfigSpec, tree: Tree) -> bool:
    return spec.modules.digest_of(tree) == spec.digest


async def compare(dev: Device, spec: ConfigSpec) -> list[str]:
    """How the function's running configuration differs from the desired one."""
    with await read_running(dev, spec) as current:
        if _same(spec, current):
            return []
        with _desired_tree(spec) as desired:
            return spec.modules.differences(current, desired) or ["differs"]


async def dry_run(dev: Device, spec: ConfigSpec) -> tuple[str, str]:
    """The target and the edit :func:`apply` would send now."""
    with await read_running(dev, spec) as current, _desired_tree(spec) as desired:
        edit = spec.modules.edit(current, desired)
    return ("candidate" if dev.has_candidate else "running"), edit


async def apply(dev: Device, spec: ConfigSpec, *, persist: str | None = None) -> bool:
    """Bring the function to the desired configuration; whether anything was sent.

    Only the difference is sent, so applying again after a crash sends nothing.  With a
    ``persist`` token (one per instance) and a device that supports it, the confirmed
    commit outlives nfo's session: an apply first cancels one a dead nfo left pending,
    so the comparison never sees a configuration the device is about to roll back."""
    persist = persist if persist is not None and dev.has_persist else None
    if persist is not None:
        with contextlib.suppress(DeviceError):  # none pending: the usual case
            await dev.cancel_commit(persist_id=persist)
    target, edit = await dry_run(dev, spec)
    if not edit:
        return False
    with _device(f"lock of {target}"):
        await dev.lock(target)
    try:
        with _device("edit-config"):
            if target == "candidate":
                await dev.discard_changes()
            await dev.edit_config(target, edit)
        confirmed = target == "candidate" and dev.has_confirmed_commit
        if target == "candidate":
            try:
                with _device("commit"):
                    await dev.commit(confirmed=confirmed, timeout=spec.confirm_timeout
                                     if confirmed else None,
                                     persist=persist if confirmed else None)
            except ConfigError:
                with contextlib.suppress(DeviceError):
                    await dev.discard_changes()
                raise
        with await read_running(dev, spec) as back:
            if not _same(spec, back):
                with _desired_tree(spec) as want:
                    diff = spec.modules.differences(back, want, limit=3)
                if confirmed:
                    with contextlib.suppress(DeviceError):
                        await dev.cancel_commit(persist_id=persist)
                raise ConfigError("the function acknowledged the edit but its running "
                                  f"configuration differs: {'; '.join(diff)}", temporary=True)
        if confirmed:
            with _device("confirming the commit"):
                await dev.commit(persist_id=persist)
        return True
    finally:
        with contextlib.suppress(DeviceError):
            await dev.unlock(target)
