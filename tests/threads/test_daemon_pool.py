"""nfo.threads.DaemonPool: an executor whose stuck work never holds the process up."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

from nfo.threads import DaemonPool


def test_results_exceptions_and_the_thread_bound() -> None:
    pool = DaemonPool(3, "t")
    gate = threading.Event()
    seen: set[str] = set()
    lock = threading.Lock()

    def job(i: int) -> int:
        with lock:
            seen.add(threading.current_thread().name)
        assert gate.wait(30)
        if i == 7:
            raise ValueError("seven")
        return i * 2

    futs = [pool.submit(job, i) for i in range(10)]
    gate.set()
    assert [f.result(30) for f in futs if f is not futs[7]] == [
        i * 2 for i in range(10) if i != 7]
    with pytest.raises(ValueError, match="seven"):
        futs[7].result(30)
    assert 1 <= len(seen) <= 3 and all(t.daemon for t in pool._threads)
    pool.shutdown()
    with pytest.raises(RuntimeError):
        pool.submit(job, 1)


def test_shutdown_can_cancel_what_has_not_started() -> None:
    pool = DaemonPool(1, "t")
    gate = threading.Event()
    first = pool.submit(gate.wait, 30)
    while not first.running():
        time.sleep(0.01)
    queued = [pool.submit(time.sleep, 0) for _ in range(3)]
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(f.cancelled() for f in queued)
    gate.set()
    assert first.result(30) is True


def test_a_stuck_job_does_not_keep_the_process_alive() -> None:
    child = ("import threading\nfrom nfo.threads import DaemonPool\n"
             "p = DaemonPool(2, 'stuck')\np.submit(threading.Event().wait)\n"
             "p.shutdown(wait=False)\nprint('done', flush=True)\n")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True,
                         timeout=60)  # a guard: the child must end once its main ends
    assert out.returncode == 0 and out.stdout == "done\n", out.stderr
