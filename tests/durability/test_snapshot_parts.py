"""A snapshot written in parts costs one fsync, not one a part: the parts are
committed without a sync of their own and made durable by the step that makes the
snapshot the newest (the log is one file, synced whole).  That this loses nothing
acknowledged across a power cut is the power-loss check's (test_powerloss.py, with
snapshots in parts among its runs)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.durability import fsshim

SCRIPT = """
import sys
from nfo.datastore.storage import sqlite as s
s.SNAPSHOT_PART = 1000
s.CHECKPOINT_EVERY = 0
st = s.SqliteStorage(sys.argv[1])
rec = st.append_commit("running", 0.0, "t", "edit", "[]", "")
marks = open(sys.argv[2], "a", buffering=1)
marks.write("BEGIN\\n")
st.write_snapshot("running", rec.revision, '{"x": "' + "y" * 30000 + '"}')
marks.write("END\\n")
st.close()
"""


def test_a_snapshot_in_thirty_parts_is_synced_once(tmp_path: Path, shim_lib: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    log, marks = tmp_path / "fs.log", tmp_path / "marks"
    env = fsshim.environment(shim_lib, state, log=log, marks=marks)
    subprocess.run([sys.executable, "-c", SCRIPT, str(state / "nfo.db"), str(marks)],
                   env=env, check=True, timeout=60)
    records = fsshim.read_log(log)
    kinds = [r.kind if r.kind != "M" else r.data.decode().strip() for r in records]
    during = kinds[kinds.index("BEGIN") + 1:kinds.index("END")]
    writes = sum(1 for k in during if k == "W")
    assert writes > 30  # the parts went to the log
    assert during.count("S") == 1, during.count("S")
    with sqlite3.connect(state / "nfo.db") as conn:
        parts, = conn.execute("SELECT parts FROM snapshots WHERE revision = 1").fetchone()
    assert parts == 31
