"""Crash-test writer for test_storage_sqlite: appends commits until killed.

Usage: python _storage_crash_child.py DB SNAPSHOT_EVERY

Alternates between two datastores.  Each commit's payload carries ``n``, the
datastore's own commit count; every SNAPSHOT_EVERY commits of a datastore it
writes a snapshot ``{"count": n, "last": revision}`` (padded so that snapshots
take a while to write).  After append_commit returns it prints
``REVISION DATASTORE N`` and flushes: every printed line is acknowledged.
"""

from __future__ import annotations

import json
import sys
import time

from nfo.datastore.storage import SqliteStorage

DATASTORES = ("running", "startup")


def main() -> None:
    path, snapshot_every = sys.argv[1], int(sys.argv[2])
    storage = SqliteStorage(path)
    state = storage.load()
    counts = {
        ds: json.loads(state.snapshots[ds].content)["count"] if ds in state.snapshots else 0
        for ds in DATASTORES
    }
    for commit in state.commits:
        counts[commit.datastore] += 1
    pad = "x" * 50_000
    i = state.last_revision
    while True:
        i += 1
        ds = "startup" if i % 3 == 0 else "running"
        n = counts[ds] + 1
        record = storage.append_commit(ds, time.time(), "crash", "edit", json.dumps({"n": n}))
        counts[ds] = n
        print(record.revision, ds, n, flush=True)
        if n % snapshot_every == 0:
            content = json.dumps({"count": n, "last": record.revision, "pad": pad})
            storage.write_snapshot(ds, record.revision, content)


if __name__ == "__main__":
    main()
