"""The driver registry: entry-point discovery, duplicate refusal, placement."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import ClassVar

import pytest

import nfo.registry.registry as registry_module
from nfo.drivers.local import LocalDriver
from nfo.drivers.sim import SimDriver
from nfo.errors import InvalidValue
from nfo.registry import (
    ENTRY_POINT_GROUP,
    Capacity,
    ComputeNeeds,
    Driver,
    DriverContext,
    DriverRegistry,
    PlacementError,
    Usage,
    VimAccount,
)


def test_built_in_drivers_come_from_the_entry_point_group(tmp_path: Path) -> None:
    reg = DriverRegistry.from_entry_points(tmp_path, "t")
    assert {"local", "sim"} <= set(reg.names())
    assert {"nfo-vim:local", "nfo-vim:sim"} <= reg.types()


def test_drivers_satisfy_the_protocol(tmp_path: Path) -> None:
    ctx = DriverContext(tmp_path, "t")
    assert isinstance(SimDriver(VimAccount("s", "nfo-vim:sim"), ctx), Driver)
    assert isinstance(LocalDriver(VimAccount("l", "nfo-vim:local"), ctx), Driver)


@pytest.fixture
def third_party(tmp_path: Path) -> Iterator[Path]:
    """A driver in a distribution of its own, installed on sys.path with real metadata."""
    site = tmp_path / "site"
    pkg = site / "acme_nfo_driver"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(textwrap.dedent("""\
        from nfo.drivers.sim import SimDriver

        class AcmeDriver(SimDriver):
            name = "acme"
            vim_type = "acme:cloud"
        """))
    dist = site / "acme_nfo_driver-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-nfo-driver\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        f"[{ENTRY_POINT_GROUP}]\nacme = acme_nfo_driver:AcmeDriver\n")
    sys.path.insert(0, str(site))
    try:
        yield site
    finally:
        sys.path.remove(str(site))
        sys.modules.pop("acme_nfo_driver", None)


def test_a_third_party_driver_is_a_first_class_citizen(third_party: Path,
                                                       tmp_path: Path) -> None:
    reg = DriverRegistry.from_entry_points(tmp_path, "t")
    assert "acme" in reg.names()
    assert reg.driver_name("acme:cloud") == "acme"


def _patch_entry_points(monkeypatch: pytest.MonkeyPatch, eps: list[EntryPoint]) -> None:
    def fake(group: str) -> list[EntryPoint]:
        assert group == ENTRY_POINT_GROUP
        return eps
    monkeypatch.setattr(registry_module, "entry_points", fake)


def test_duplicate_entry_point_names_are_refused(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    _patch_entry_points(monkeypatch, [
        EntryPoint("sim", "nfo.drivers.sim:SimDriver", ENTRY_POINT_GROUP),
        EntryPoint("sim", "nfo.drivers.local:LocalDriver", ENTRY_POINT_GROUP),
    ])
    with pytest.raises(InvalidValue, match="registered twice"):
        DriverRegistry.from_entry_points(tmp_path, "t")


def test_entry_point_name_must_match_the_driver(monkeypatch: pytest.MonkeyPatch,
                                                tmp_path: Path) -> None:
    _patch_entry_points(monkeypatch, [
        EntryPoint("other", "nfo.drivers.sim:SimDriver", ENTRY_POINT_GROUP)])
    with pytest.raises(InvalidValue, match="loads a driver named 'sim'"):
        DriverRegistry.from_entry_points(tmp_path, "t")


def test_register_refuses_duplicate_names_and_types(tmp_path: Path) -> None:
    reg = DriverRegistry(tmp_path, "t", [SimDriver])
    with pytest.raises(InvalidValue, match="already registered"):
        reg.register(SimDriver)

    class Twin(SimDriver):
        name: ClassVar[str] = "twin"
    with pytest.raises(InvalidValue, match="already has driver 'sim'"):
        reg.register(Twin)


def test_driver_rebuilt_when_the_vim_account_changes(tmp_path: Path) -> None:
    reg = DriverRegistry(tmp_path, "t", [SimDriver])
    a = VimAccount("s", "nfo-vim:sim", {"failure-rate": "0"})
    d1 = reg.driver(a)
    assert reg.driver(a) is d1
    d2 = reg.driver(VimAccount("s", "nfo-vim:sim", {"failure-rate": "0.5"}))
    assert d2 is not d1


# -- placement ---------------------------------------------------------------------------

NEEDS = ComputeNeeds(vcpus=2, memory_mb=1024, disk_gb=1)


def vims(*accounts: VimAccount) -> dict[str, VimAccount]:
    return {v.name: v for v in accounts}


@pytest.fixture
def reg(tmp_path: Path) -> DriverRegistry:
    return DriverRegistry(tmp_path, "t", [SimDriver, LocalDriver])


def test_least_loaded_fitting_vim_wins_with_a_reason(reg: DriverRegistry) -> None:
    v = vims(VimAccount("a", "nfo-vim:sim", capacity=Capacity(max_instances=10)),
             VimAccount("b", "nfo-vim:sim", capacity=Capacity(max_instances=10)))
    usage = {"a": Usage(instances=5), "b": Usage(instances=2)}
    p = reg.place("x", ["nfo-vim:sim"], NEEDS, v, usage, None)
    assert (p.vim.name, p.driver) == ("b", "sim")
    assert "least loaded of 2" in p.reason and "20%" in p.reason


def test_placement_respects_types_capacity_and_enabled(reg: DriverRegistry) -> None:
    v = vims(VimAccount("off", "nfo-vim:sim", enabled=False),
             VimAccount("full", "nfo-vim:sim", capacity=Capacity(max_instances=1)),
             VimAccount("small", "nfo-vim:sim", capacity=Capacity(memory_mb=512)),
             VimAccount("lcl", "nfo-vim:local"),
             VimAccount("os", "nfo-vim:openstack"))
    usage = {"full": Usage(instances=1)}
    with pytest.raises(PlacementError) as e:
        reg.place("x", ["nfo-vim:sim"], NEEDS, v, usage, None)
    msg = str(e.value)
    for why in ("off: disabled", "full: instance capacity full (1/1)",
                "small: not enough memory-mb", "lcl: descriptor does not allow type",
                "os: no driver for type nfo-vim:openstack"):
        assert why in msg


def test_a_named_vim_is_used_or_refused_with_the_reason(reg: DriverRegistry) -> None:
    v = vims(VimAccount("a", "nfo-vim:sim"), VimAccount("b", "nfo-vim:sim"))
    p = reg.place("x", ["nfo-vim:sim"], NEEDS, v, {"b": Usage(instances=99)}, "b")
    assert p.vim.name == "b" and "named by the instance" in p.reason
    with pytest.raises(PlacementError, match="'missing' is not configured"):
        reg.place("x", ["nfo-vim:sim"], NEEDS, v, {}, "missing")
    with pytest.raises(PlacementError, match="descriptor does not allow"):
        reg.place("x", ["nfo-vim:local"], NEEDS, v, {}, "a")


def test_no_vim_at_all(reg: DriverRegistry) -> None:
    with pytest.raises(PlacementError, match="no VIM is configured"):
        reg.place("x", ["nfo-vim:sim"], NEEDS, {}, {}, None)



def test_unregister_forgets_the_vim_type(tmp_path: Path) -> None:
    from nfo.registry import DriverRegistry

    reg = DriverRegistry.from_entry_points(tmp_path, "owner")
    assert "openstack" in reg.names()
    reg.unregister("openstack")
    assert "openstack" not in reg.names()
    assert reg.driver_name("nfo-vim:openstack") is None
    reg.unregister("openstack")  # idempotent


def test_vim_account_repr_hides_settings() -> None:
    from nfo.registry import VimAccount

    vim = VimAccount("os1", "nfo-vim:openstack", {"auth-url": "http://127.0.0.1:1/v3",
                                                  "password": "s3cret-pw"})
    assert "s3cret-pw" not in repr(vim) and "os1" in repr(vim)
