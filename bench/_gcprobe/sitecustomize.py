"""Bench-only probe (bench/bench_gc.py puts this directory on a server's PYTHONPATH):
when NFO_BENCH_GC_PROBE names a file, every full (generation 2) garbage collection of the
process appends its duration in milliseconds to it, one per line."""

import gc
import os
import time

_path = os.environ.get("NFO_BENCH_GC_PROBE")
if _path:
    _out = open(_path, "a", buffering=1)  # noqa: SIM115 (lives as long as the process)
    _began = [0.0]

    def _probe(phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            _began[0] = time.perf_counter()
        else:
            _out.write(f"{(time.perf_counter() - _began[0]) * 1e3:.2f}\n")

    gc.callbacks.append(_probe)
