"""Tests for the nfo YANG modules, using real libyang, pyang and yanglint."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import libyang
import pytest

ROOT = Path(__file__).resolve().parents[2]
YANG_DIR = ROOT / "yang"
IETF_DIR = Path(sys.prefix) / "share" / "yang" / "modules" / "ietf"
LINT_SCRIPT = ROOT / "tools" / "lint-yang"
DEMO_CATALOG = YANG_DIR / "nfo-demo-catalog.json"
MODULES = ("nfo-vim", "nfo-catalog", "nfo-instances", "nfo-users", "nfo-security")

Data = dict[str, Any]


@pytest.fixture(scope="module")
def ctx() -> Iterator[libyang.Context]:
    context = libyang.Context(f"{YANG_DIR}:{IETF_DIR}")
    for name in MODULES:
        context.load_module(name).feature_enable_all()
    yield context
    untyped: Any = context  # the binding's destroy() is unannotated
    untyped.destroy()


@pytest.fixture
def demo() -> Data:
    data: Data = json.loads(DEMO_CATALOG.read_text())
    return data


@pytest.fixture
def with_instance(demo: Data) -> Data:
    """Demo catalog plus a valid instance and a sim VIM."""
    data = copy.deepcopy(demo)
    data["nfo-vim:vims"]["vim"].append(
        {
            "name": "sim-1",
            "type": "nfo-vim:sim",
            "sim": {"latency": {"mean": 20, "jitter": 5}, "failure-rate": "0.25"},
            "capacity": {"max-instances": 10, "vcpus": 8, "memory-mb": "4096"},
        }
    )
    data["nfo-instances:nf-instances"] = {
        "nf-instance": [
            {
                "name": "echo-1",
                "descriptor": "udp-echo",
                "vim": "local",
                "parameter": [{"name": "port", "value": "7007"}],
            }
        ]
    }
    return data


def parse(ctx: libyang.Context, data: Data | str, *, config: bool = True) -> Any:
    text = data if isinstance(data, str) else json.dumps(data)
    tree = ctx.parse_data_mem(text, "json", strict=True, no_state=config, validate_present=True)
    assert tree is not None
    tree.validate(no_state=config, validate_present=True)
    return tree


def assert_rejected(ctx: libyang.Context, data: Data, *fragments: str) -> str:
    with pytest.raises(libyang.LibyangError) as excinfo:
        parse(ctx, data)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def instance(data: Data) -> Data:
    inst: Data = data["nfo-instances:nf-instances"]["nf-instance"][0]
    return inst


def descriptor(data: Data) -> Data:
    desc: Data = data["nfo-catalog:catalog"]["nf-descriptor"][0]
    return desc


# --------------------------------------------------------------------------
# Tooling


def test_lint_script_passes() -> None:
    if shutil.which("yanglint") is None:
        pytest.skip("yanglint is not installed")
    result = subprocess.run(
        [str(LINT_SCRIPT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHON": sys.executable},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == "", result.stderr


def test_yanglint_validates_demo_catalog() -> None:
    yanglint = shutil.which("yanglint")
    if yanglint is None:
        pytest.skip("yanglint is not installed")
    result = subprocess.run(
        [
            yanglint,
            "-p",
            str(YANG_DIR),
            "-p",
            str(IETF_DIR),
            "-t",
            "config",
            *(str(YANG_DIR / f"{name}.yang") for name in MODULES),
            str(DEMO_CATALOG),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "" and result.stderr == ""


# --------------------------------------------------------------------------
# Schema


def test_modules_load(ctx: libyang.Context) -> None:
    expected = {
        "nfo-vim": ("nfo-vim", "urn:nfo:vim", ["2026-12-04", "2026-11-25"]),
        "nfo-catalog": ("nfo-cat", "urn:nfo:catalog", ["2026-12-05", "2026-12-04", "2026-11-25"]),
        "nfo-instances": ("nfo-inst", "urn:nfo:instances",
                          ["2026-12-07", "2026-12-05", "2026-11-25"]),
        "nfo-users": ("nfo-users", "urn:nfo:users", ["2026-12-05", "2026-12-04"]),
        "nfo-security": ("nfo-sec", "urn:nfo:security", ["2026-12-04"]),
    }
    for name, (prefix, namespace, revisions) in expected.items():
        module = ctx.get_module(name)
        assert module.implemented()
        assert module.prefix() == prefix
        assert [rev.date() for rev in module.revisions()] == revisions
        assert f'namespace "{namespace}";' in module.print_mem("yang")


@pytest.mark.parametrize("vim_type", ["local", "sim", "openstack"])
def test_vim_type_identities(ctx: libyang.Context, vim_type: str) -> None:
    leaf: Any = next(ctx.find_path("/nfo-vim:vims/nfo-vim:vim/nfo-vim:type"))
    assert leaf.type().base() == libyang.Type.IDENT
    vim: Data = {"name": "v", "type": f"nfo-vim:{vim_type}"}
    if vim_type == "openstack":
        vim["openstack"] = {"cloud": "lab"}
    parse(ctx, {"nfo-vim:vims": {"vim": [vim]}}).free()


def test_base_vim_type_is_not_a_value(ctx: libyang.Context) -> None:
    # Only identities derived from vim-type are valid values.
    data = {"nfo-vim:vims": {"vim": [{"name": "v", "type": "nfo-vim:vim-type"}]}}
    assert_rejected(ctx, data, "vim-type")


def test_password_is_default_deny_all(ctx: libyang.Context) -> None:
    path = "/nfo-vim:vims/nfo-vim:vim/nfo-vim:openstack/nfo-vim:password"
    (leaf,) = ctx.find_path(path)
    extensions = [(ext.module().name(), ext.name()) for ext in leaf.extensions()]
    assert ("ietf-netconf-acm", "default-deny-all") in extensions


# --------------------------------------------------------------------------
# Valid data


def test_demo_catalog_validates(ctx: libyang.Context, demo: Data) -> None:
    tree = parse(ctx, demo)
    printed = json.loads(tree.print_mem("json", with_siblings=True))
    desc = descriptor(printed)
    assert desc["id"] == "udp-echo"
    assert desc["vim-types"] == ["nfo-vim:local"]
    assert desc["local"]["command"][:3] == ["{python}", "-m", "nfo.drivers.local.udp_echo"]
    assert desc["local"]["readiness-probe"]["udp"]["port"] == "{param:port}"
    assert [p["name"] for p in desc["parameter"]] == ["port"]
    assert printed["nfo-vim:vims"]["vim"][0] == {
        "name": "local",
        "type": "nfo-vim:local",
        "description": "Runs network functions as processes on the orchestrator host.",
        "capacity": {"max-instances": 32},
        "local": {"max-processes": 32},
    }
    tree.free()


def test_valid_instance_and_defaults(ctx: libyang.Context, with_instance: Data) -> None:
    tree = parse(ctx, with_instance)
    printed = json.loads(tree.print_mem("json", with_siblings=True, include_implicit_defaults=True))
    inst = instance(printed)
    assert inst["admin-state"] == "enabled"
    compute = descriptor(printed)["compute"]
    assert compute == {"vcpus": 1, "memory-mb": 64, "disk-gb": 0}
    tree.free()


def test_an_instance_without_day2_holds_no_day2_node(ctx: libyang.Context,
                                                    with_instance: Data) -> None:
    """A million instances each pay for every node validation adds to them: an instance
    with no day-2 configuration gets admin-state alone, and day2's defaults come with
    day2."""
    tree = parse(ctx, with_instance)
    printed = json.loads(tree.print_mem("json", with_siblings=True, include_implicit_defaults=True))
    tree.free()
    assert sorted(instance(printed)) == ["admin-state", "descriptor", "name", "parameter", "vim"]
    instance(with_instance)["day2"] = {"config": "<x/>"}
    tree = parse(ctx, with_instance)
    printed = json.loads(tree.print_mem("json", with_siblings=True, include_implicit_defaults=True))
    tree.free()
    assert instance(printed)["day2"] == {"mode": "merge", "format": "xml", "config": "<x/>"}


def test_descriptor_defaults(ctx: libyang.Context, demo: Data) -> None:
    desc = descriptor(demo)
    del desc["compute"]
    del desc["instantiation-timeout"]
    desc["local"]["readiness-probe"] = {}
    tree = parse(ctx, demo)
    printed = json.loads(tree.print_mem("json", with_siblings=True, include_implicit_defaults=True))
    out = descriptor(printed)
    assert out["instantiation-timeout"] == 300
    assert out["compute"] == {"vcpus": 1, "memory-mb": 512, "disk-gb": 1}
    assert out["local"]["readiness-probe"]["interval-ms"] == 250
    tree.free()


def test_instance_without_vim_is_valid(ctx: libyang.Context, with_instance: Data) -> None:
    del instance(with_instance)["vim"]
    parse(ctx, with_instance).free()


def test_openstack_vim_and_descriptor(ctx: libyang.Context, with_instance: Data) -> None:
    with_instance["nfo-vim:vims"]["vim"] += [
        {"name": "os-cloud", "type": "nfo-vim:openstack", "openstack": {"cloud": "lab"}},
        {
            "name": "os-explicit",
            "type": "nfo-vim:openstack",
            "openstack": {
                "auth-url": "https://keystone.example.net:5000/v3",
                "username": "nfo",
                "password": "secret",
                "project-name": "nfv",
                "region": "RegionOne",
            },
        },
    ]
    desc = descriptor(with_instance)
    desc["vim-types"].append("nfo-vim:openstack")
    desc["openstack"] = {
        "image": "udp-echo-1.0",
        "flavor": "m1.tiny",
        "network": [{"name": "mgmt"}, {"name": "data", "fixed-ip": "10.0.0.5"}],
        "user-data": "#cloud-config\n",
    }
    instance(with_instance)["vim"] = "os-explicit"
    parse(ctx, with_instance).free()


def test_operational_state_parses(ctx: libyang.Context, with_instance: Data) -> None:
    instance(with_instance)["state"] = {
        "oper-status": "failed",
        "vim": "local",
        "driver": "local",
        "placement-reason": "explicit vim",
        "vim-resource-id": "4242",
        "reason": "readiness probe timed out",
        "attempts": 3,
        "next-retry": "2026-11-25T10:00:30Z",
        "created": "2026-11-25T10:00:00Z",
        "last-change": "2026-11-25T10:00:20+01:00",
    }
    with_instance["nfo-vim:vims"]["vim"][0]["state"] = {
        "reachability": "reachable",
        "last-checked": "2026-11-25T10:00:00Z",
        "usage": {"instances": 1, "vcpus": 1, "memory-mb": "64", "disk-gb": "0"},
    }
    parse(ctx, with_instance, config=False).free()
    # State is rejected where only configuration is allowed.
    with pytest.raises(libyang.LibyangError):
        parse(ctx, with_instance, config=True)


# --------------------------------------------------------------------------
# Invalid data


def test_instance_without_descriptor(ctx: libyang.Context, with_instance: Data) -> None:
    del instance(with_instance)["descriptor"]
    assert_rejected(ctx, with_instance, 'Mandatory node "descriptor"')


def test_instance_with_unknown_descriptor(ctx: libyang.Context, with_instance: Data) -> None:
    instance(with_instance)["descriptor"] = "no-such-nf"
    assert_rejected(ctx, with_instance, "Invalid leafref value", "no-such-nf")


def test_instance_with_unknown_vim(ctx: libyang.Context, with_instance: Data) -> None:
    instance(with_instance)["vim"] = "ghost"
    assert_rejected(ctx, with_instance, "Invalid leafref value", "ghost")


def test_vim_type_not_supported_by_descriptor(ctx: libyang.Context, with_instance: Data) -> None:
    instance(with_instance)["vim"] = "sim-1"
    assert_rejected(ctx, with_instance, "not among the descriptor's vim-types")
    # Allowing the type makes the same instance valid.
    descriptor(with_instance)["vim-types"].append("nfo-vim:sim")
    parse(ctx, with_instance).free()


@pytest.mark.parametrize("name", ["-leading-hyphen", ".dot", "has space", "x" * 64, "", "ünicode"])
def test_bad_instance_name(ctx: libyang.Context, with_instance: Data, name: str) -> None:
    instance(with_instance)["name"] = name
    message = assert_rejected(ctx, with_instance)
    assert "pattern" in message or "length" in message, message


@pytest.mark.parametrize(
    ("field", "value"),
    [("vcpus", 0), ("vcpus", 257), ("memory-mb", 8), ("disk-gb", 70000)],
)
def test_compute_out_of_range(ctx: libyang.Context, demo: Data, field: str, value: int) -> None:
    descriptor(demo)["compute"][field] = value
    assert_rejected(ctx, demo, "Unsatisfied range", str(value))


def test_instantiation_timeout_out_of_range(ctx: libyang.Context, demo: Data) -> None:
    descriptor(demo)["instantiation-timeout"] = 0
    assert_rejected(ctx, demo, "Unsatisfied range")


@pytest.mark.parametrize("rate", ["1.5", "-0.1"])
def test_failure_rate_out_of_range(ctx: libyang.Context, with_instance: Data, rate: str) -> None:
    with_instance["nfo-vim:vims"]["vim"][1]["sim"]["failure-rate"] = rate
    assert_rejected(ctx, with_instance, "Unsatisfied range", rate)


def test_type_specific_settings_need_matching_type(ctx: libyang.Context, demo: Data) -> None:
    demo["nfo-vim:vims"]["vim"][0]["sim"] = {"failure-rate": "0.5"}
    assert_rejected(ctx, demo, "When condition", "nfo-vim:sim")


def test_openstack_vim_needs_credentials(ctx: libyang.Context, demo: Data) -> None:
    vims = demo["nfo-vim:vims"]["vim"]
    vims.append({"name": "os", "type": "nfo-vim:openstack"})
    assert_rejected(ctx, demo, 'Mandatory choice "auth"')
    vims[-1]["openstack"] = {"auth-url": "https://k.example.net/v3", "username": "u"}
    assert_rejected(ctx, demo, 'Mandatory node "password"')


def test_unknown_vim_type(ctx: libyang.Context, demo: Data) -> None:
    demo["nfo-vim:vims"]["vim"][0]["type"] = "nfo-vim:vmware"
    demo["nfo-vim:vims"]["vim"][0].pop("local")
    assert_rejected(ctx, demo, "vmware")


def test_descriptor_needs_vim_types(ctx: libyang.Context, demo: Data) -> None:
    del descriptor(demo)["vim-types"]
    assert_rejected(ctx, demo, 'Too few "vim-types"')


def test_descriptor_needs_deployment_data_for_its_types(ctx: libyang.Context, demo: Data) -> None:
    del descriptor(demo)["local"]
    assert_rejected(ctx, demo, "no 'local' deployment data")


def test_local_command_needs_elements(ctx: libyang.Context, demo: Data) -> None:
    descriptor(demo)["local"]["command"] = []
    assert_rejected(ctx, demo, 'Too few "command"')


def test_readiness_probe_choice(ctx: libyang.Context, demo: Data) -> None:
    probe = descriptor(demo)["local"]
    probe["readiness-probe"] = {"tcp": {}}
    assert_rejected(ctx, demo, 'Mandatory node "port"')
    probe["readiness-probe"] = {"tcp": {"port": 80}, "udp": {"port": 81}}
    assert_rejected(ctx, demo, "both cases")
    probe["readiness-probe"] = {"tcp": {"port": "{param:}"}}
    assert_rejected(ctx, demo, "{param:}")
    probe["readiness-probe"] = {"tcp": {"port": 8080}}
    parse(ctx, demo).free()


def test_mandatory_parameter_cannot_have_default(ctx: libyang.Context, demo: Data) -> None:
    descriptor(demo)["parameter"][0]["default"] = "7"
    assert_rejected(ctx, demo, "mandatory parameter cannot have a default")


def test_instance_must_set_mandatory_parameters(ctx: libyang.Context, with_instance: Data) -> None:
    del instance(with_instance)["parameter"]
    assert_rejected(ctx, with_instance, "mandatory parameter of the descriptor is not set")


def test_instance_parameter_must_be_declared(ctx: libyang.Context, with_instance: Data) -> None:
    instance(with_instance)["parameter"].append({"name": "colour", "value": "blue"})
    assert_rejected(ctx, with_instance, "does not declare this parameter")


def test_bad_admin_state(ctx: libyang.Context, with_instance: Data) -> None:
    instance(with_instance)["admin-state"] = "paused"
    assert_rejected(ctx, with_instance, "paused")


# --------------------------------------------------------------------------
# Operations


def test_state_change_notification(ctx: libyang.Context) -> None:
    text = json.dumps(
        {
            "nfo-instances:nf-instance-state-change": {
                "name": "echo-1",
                "old-status": "initializing",
                "new-status": "running",
                "reason": "readiness probe succeeded",
            }
        }
    )
    notif = ctx.parse_op_mem("json", text, dtype=libyang.DataType.NOTIF_YANG)
    assert notif.name() == "nf-instance-state-change"
    assert (
        json.loads(notif.print_mem("json"))["nfo-instances:nf-instance-state-change"]["new-status"]
        == "running"
    )


def test_notification_rejects_bad_status(ctx: libyang.Context) -> None:
    text = json.dumps(
        {"nfo-instances:nf-instance-state-change": {"name": "x", "new-status": "exploded"}}
    )
    with pytest.raises(libyang.LibyangError) as excinfo:
        ctx.parse_op_mem("json", text, dtype=libyang.DataType.NOTIF_YANG)
    assert "exploded" in str(excinfo.value)


def test_restart_action_and_reply(ctx: libyang.Context) -> None:
    request = json.dumps(
        {"nfo-instances:nf-instances": {"nf-instance": [{"name": "echo-1", "restart": {}}]}}
    )
    action = ctx.parse_op_mem("json", request, dtype=libyang.DataType.RPC_YANG)
    assert action.name() == "restart"
    assert action.parent().name() == "nf-instance"

    reply = json.dumps(
        {
            "nfo-instances:nf-instances": {
                "nf-instance": [{"name": "echo-1", "restart": {"result": "restarted"}}]
            }
        }
    )
    output = ctx.parse_op_mem("json", reply, dtype=libyang.DataType.REPLY_YANG)
    assert json.loads(output.print_mem("json")) == {
        "nfo-instances:restart": {"result": "restarted"}
    }


def test_restart_action_has_no_input(ctx: libyang.Context) -> None:
    request = json.dumps(
        {
            "nfo-instances:nf-instances": {
                "nf-instance": [{"name": "echo-1", "restart": {"result": "x"}}]
            }
        }
    )
    with pytest.raises(libyang.LibyangError):
        ctx.parse_op_mem("json", request, dtype=libyang.DataType.RPC_YANG)


def test_redeploy_action(ctx: libyang.Context) -> None:
    request = json.dumps(
        {
            "nfo-instances:nf-instances": {
                "nf-instance": [{"name": "echo-1", "redeploy": {"vim": "sim-1"}}]
            }
        }
    )
    action = ctx.parse_op_mem("json", request, dtype=libyang.DataType.RPC_YANG)
    assert action.name() == "redeploy"
