"""Cross-check what the datastore emits with an independent validator: Debian's yanglint."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from nfo.datastore import Datastore
from nfo.schema import WithDefaults, ietf_dir
from nfo.schema.context import nfo_yang_dir

YANGLINT = shutil.which("yanglint")
pytestmark = pytest.mark.skipif(YANGLINT is None, reason="yanglint (libyang2-tools) missing")

TEST_YANG = Path(__file__).parent / "yang"
MODULES = [
    nfo_yang_dir() / "nfo-vim.yang",
    nfo_yang_dir() / "nfo-catalog.yang",
    nfo_yang_dir() / "nfo-instances.yang",
    TEST_YANG / "nfo-test.yang",
    ietf_dir() / "ietf-netconf-acm.yang",  # its defaults are part of every datastore
]
DEMO = (nfo_yang_dir() / "nfo-demo-catalog.json").read_text()


def yanglint(tmp: Path, text: str, suffix: str, dtype: str,
             extra: tuple[Path, ...] = ()) -> subprocess.CompletedProcess[str]:
    f = tmp / f"data.{suffix}"
    f.write_text(text)
    assert YANGLINT is not None
    cmd = [YANGLINT, "-D", "-p", str(nfo_yang_dir()), "-p", str(ietf_dir()), "-p", str(TEST_YANG),
           "-t", dtype, *map(str, [*MODULES, *extra]), str(f)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


async def populate(ds: Datastore) -> None:
    async with ds.internal_session("t") as s:
        await s.edit("running", DEMO, "json")
        inst = [{"name": f"nf{k}", "descriptor": "udp-echo", "vim": "local",
                 "parameter": [{"name": "port", "value": str(20000 + k)}]} for k in range(20)]
        await s.edit("running", json.dumps({"nfo-instances:nf-instances": {"nf-instance": inst}}),
                     "json")
        await s.edit("running", json.dumps({"nfo-test:top": {
            "name": "x", "tags": ["b", "a"], "sorted": [3, 1],
            "thing": [{"id": "t1", "needed": "y", "label": "l1"}],
            "item": [{"name": "i1", "size": 5, "ref": "t1"}],
            "pair": [{"a": "it's", "b": -3, "v": "q"}], "side": 4,
            "extra": {"level": 5, "only-when": "w"}, "colour": "nfo-test:red",
            "addr": "10.0.0.1"}}), "json")


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize("wd", list(WithDefaults))
async def test_running_output_validates_in_yanglint(ds: Datastore, tmp_path: Path, fmt: str,
                                                    wd: WithDefaults) -> None:
    await populate(ds)
    with ds.get("running") as t:
        text = t.print(fmt, with_defaults=wd)
    extra = ()
    if wd is WithDefaults.REPORT_ALL_TAGGED:
        assert "default" in text
        extra = (ietf_dir() / "ietf-netconf-with-defaults.yang",)
    res = yanglint(tmp_path, text, fmt, "config", extra)
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip() == ""


async def test_operational_output_validates_in_yanglint(ds: Datastore, tmp_path: Path) -> None:
    await populate(ds)
    async with ds.internal_session("wm") as s:
        s.set_oper(json.dumps({"nfo-instances:nf-instances": {"nf-instance": [
            {"name": "nf1", "state": {"oper-status": "running", "vim": "local",
                                      "driver": "local", "attempts": 1}}]}}), "json")
    with ds.get("operational") as t:
        text = t.print("xml")
    assert "<oper-status>running</oper-status>" in text
    res = yanglint(tmp_path, text, "xml", "get")
    assert res.returncode == 0, res.stderr


async def test_yanglint_rejects_what_nfo_rejects(ds: Datastore, tmp_path: Path) -> None:
    """The cross-check can fail: corrupt the emitted data and yanglint must object."""
    await populate(ds)
    with ds.get("running") as t:
        text = t.print("json")
    bad = text.replace('"descriptor":"udp-echo"', '"descriptor":"missing"', 1)
    assert bad != text
    res = yanglint(tmp_path, bad, "json", "config")
    assert res.returncode != 0
