"""Power loss: every acknowledged write survives losing what no fsync covered.

The fixed-seed subset of tests/durability/powerloss.py (the long run is
``tools/powerloss``), a check that the method catches a store that acknowledges
before fsync (``synchronous=NORMAL``), and the disk model itself on plain files.
Set ``NFO_POWERLOSS_SEED`` to run the subset with another seed.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from tests.durability import fsshim, powerloss

SEED = int(os.environ.get("NFO_POWERLOSS_SEED", "20240611"))
REPO = Path(__file__).resolve().parents[2]


async def test_acknowledged_writes_survive_power_loss(tmp_path: Path, shim_lib: Path) -> None:
    figures = await powerloss.run(seed=SEED, iterations=50, work=tmp_path, lib=shim_lib,
                                  ops=60, cuts_per_run=25)
    assert figures.iterations == 50 and figures.recordings == 2
    assert not figures.failures
    assert figures.modes["synced"] and figures.modes["torn"]


async def test_the_check_catches_acknowledging_before_fsync(tmp_path: Path,
                                                              shim_lib: Path) -> None:
    """With synchronous=NORMAL a WAL commit is acknowledged before its fsync: lost."""
    figures = await powerloss.run(seed=SEED, iterations=10, work=tmp_path, lib=shim_lib,
                                  ops=40, cuts_per_run=10, synchronous="NORMAL",
                                  keep_going=True, modes={"synced": 1})
    assert len(figures.failures) >= 5, figures.summary()
    assert "acknowledged writes" in figures.failures[0]


# -- the disk model on plain files -------------------------------------------------

SCRIPT = """
import os, sys
d = sys.argv[1]
def put(name, data, sync_file):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, data)
    if sync_file:
        os.fsync(fd)
    os.close(fd)
def sync_dir():
    fd = os.open(d, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
put("durable", b"a" * 1000, True)
sync_dir()
put("unsynced-name", b"b" * 10, True)
fd = os.open(os.path.join(d, "durable"), os.O_WRONLY)
os.pwrite(fd, b"c" * 2048, 512)
os.close(fd)
os.rename(os.path.join(d, "durable"), os.path.join(d, "renamed"))
"""


def test_disk_model(tmp_path: Path, shim_lib: Path) -> None:
    watch = tmp_path / "watch"
    watch.mkdir()
    disks = [fsshim.Disk(watch) for _ in range(42)]  # each sees the directory as it starts
    log = tmp_path / "fs.log"
    subprocess.run([sys.executable, "-c", SCRIPT, str(watch)], check=True,
                   env=fsshim.environment(shim_lib, watch, log=log))
    records = fsshim.read_log(log)

    def image(mode: str, seed: int = 0) -> dict[str, bytes]:
        disk = disks.pop()
        for r in records:
            disk.feed(r)
        dest = tmp_path / f"{mode}{seed}"
        disk.image(dest, random.Random(seed), mode)
        return {p.name: p.read_bytes() for p in dest.iterdir()}

    # what the run left, as a process kill would
    assert image("all") == {"renamed": b"a" * 512 + b"c" * 2048, "unsynced-name": b"b" * 10}
    # a power cut: the unsynced overwrite and both unsynced directory changes are gone
    assert image("synced") == {"durable": b"a" * 1000}
    # torn: each 512-byte sector of the pending write old or new, the file under one name
    seen: set[bytes] = set()
    for seed in range(40):
        files = image("torn", seed)
        data = files.get("durable", files.get("renamed"))
        assert data is not None and ("durable" in files) != ("renamed" in files)
        assert data[:512] == b"a" * 512
        for at in range(512, len(data), 512):
            chunk = data[at:at + 512]
            before = (b"a" * 1000)[at:at + 512].ljust(len(chunk), b"\0")
            assert chunk in (b"c" * len(chunk), before), (seed, at, chunk)
        seen.add(data)
    assert len(seen) > 4


def test_log_refuses_unknown_records(tmp_path: Path) -> None:
    bad = tmp_path / "fs.log"
    bad.write_bytes(b"X\0\0\0\x07\0\0\0pwritev")
    with pytest.raises(ValueError, match="pwritev"):
        fsshim.read_log(bad)


# -- regressions -------------------------------------------------------------------


async def test_a_first_start_survives_power_loss(tmp_path: Path, shim_lib: Path) -> None:
    """The state directory itself is created durably: a power cut after the first
    acknowledged writes must not take the whole directory with it."""
    rec = powerloss.record(shim_lib, None, tmp_path / "run", seed=SEED, ops=8, prefix="f")
    for r in rec.records:
        rec.disk.feed(r)
    exp = powerloss.expect(powerloss.Model(), rec.events, len(rec.records))
    assert exp.acked == 8 and exp.inflight is None
    image = tmp_path / "image"
    rec.disk.image(image, random.Random(SEED), "synced")
    assert (image / "state" / "nfo.db").exists(), sorted(p.name for p in image.rglob("*"))
    assert await powerloss.check(image / "state", exp) == exp.candidates[0]


def test_an_installed_module_survives_power_loss(tmp_path: Path, shim_lib: Path) -> None:
    """``nfo module install`` returns once the module file and its name are durable."""
    watch = tmp_path / "watch"
    watch.mkdir()
    disk = fsshim.Disk(watch)
    log = tmp_path / "fs.log"
    module = REPO / "tests" / "datastore" / "yang" / "nfo-test.yang"
    subprocess.run([sys.executable, "-m", "nfo", "--state-dir", str(watch / "state"),
                    "module", "install", str(module)], check=True, cwd=REPO,
                   env=fsshim.environment(shim_lib, watch, log=log))
    for r in fsshim.read_log(log):
        disk.feed(r)
    disk.image(tmp_path / "image", random.Random(SEED), "synced")
    installed = tmp_path / "image" / "state" / "modules" / "nfo-test.yang"
    assert installed.read_bytes() == module.read_bytes()
