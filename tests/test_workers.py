"""--jobs workers: a dying worker costs one input, not the run; workers stop when their driver dies."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import REPO, write_clip
from worker_hooks import DRIVER, ready_fifo, ready_pids

import fer_batch
from fer_batch.runs import workers

pytestmark = [
    pytest.mark.slow,  # every test here runs processes
    pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on worker processes through pidfds (Linux)"),
]


def killer_pool(victim: str, jobs: int, started: object):
    """A pool factory of ``WorkerPool`` whose workers kill themselves (SIGKILL, as the OOM killer) on one input."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from worker_hooks import init_with_killer

    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=init_with_killer,
                               initargs=(victim, workers.worker_init, 1, started))  # fmt: skip


def test_an_input_that_kills_its_worker_fails_alone_and_the_rest_finish(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c_dies", "d", "e"):
        write_clip(src / f"{name}.mp4", n=6, size=(96, 64))
    pool = workers.WorkerPool(2, partial(killer_pool, "c_dies.mp4"))  # two workers even on a one-core machine
    try:
        res = {Path(r.path).name: r for r in fer_batch.analyze_many(src, tmp_path / "out", executor=pool)}
    finally:
        pool.shutdown()
    assert res["c_dies.mp4"].status == "failed" and res["c_dies.mp4"].error == "worker died (killed or out of memory)"
    assert {name: r.status for name, r in res.items() if name != "c_dies.mp4"} == dict.fromkeys(
        ["a.mp4", "b.mp4", "d.mp4", "e.mp4"], "ok")  # fmt: skip
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("path")
    assert len(manifest) == 5 and manifest.loc[str(src / "c_dies.mp4"), "status"] == "failed"


def test_a_photo_that_kills_its_batch_worker_fails_alone_and_its_batch_mates_finish(tmp_path: Path,
                                                                                    monkeypatch) -> None:  # fmt: skip
    import cv2
    from conftest import astronaut_face

    src = tmp_path / "in"
    src.mkdir()
    names = ["a.png", "b.png", "c_dies.png", "d.png", "e.png", "f.png"]
    for k, name in enumerate(names):
        cv2.imwrite(str(src / name), cv2.cvtColor(astronaut_face(48 + 8 * k), cv2.COLOR_RGB2BGR))
    monkeypatch.setattr(workers, "make_pool", partial(killer_pool, "c_dies.png"))
    monkeypatch.setattr("fer_batch.runs.runner.cores", lambda: 2)  # two workers: batches of 3 photos
    res = {Path(r.path).name: r for r in fer_batch.analyze_many(src, tmp_path / "out", jobs=2, detector="none")}
    assert res["c_dies.png"].status == "failed" and res["c_dies.png"].error == "worker died (killed or out of memory)"
    assert {n: r.status for n, r in res.items() if n != "c_dies.png"} == dict.fromkeys(set(names) - {"c_dies.png"},
                                                                                      "ok")  # fmt: skip
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("path")
    assert len(manifest) == 6 and manifest.loc[str(src / "c_dies.png"), "status"] == "failed"


def make_inputs(tmp_path: Path, n_inputs: int) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for k in range(n_inputs):
        write_clip(src / f"v{k}.mp4", n=150, size=(320, 240))
    return src


def start_run(src: Path, out: Path, fifo: str, *more: str, **popen: Any) -> subprocess.Popen:
    cmd = [sys.executable, "-c", DRIVER, fifo, "go", "analyze", str(src), "--out", str(out), "--jobs", "2",
           "--batch-size", "4", *more]  # fmt: skip
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)


def wait_for_work(ready: int, proc: subprocess.Popen) -> list[int]:
    """The pids of the first two workers that report a table half written."""
    return ready_pids(ready, proc, 2)


def still_running(pids: list[int], timeout: float = 15) -> list[int]:
    """The processes of ``pids`` still running after up to ``timeout`` s: each one's pidfd becomes readable when
    it exits, so this returns as soon as they all have (no polling of /proc)."""
    fds = {}
    for pid in pids:
        try:
            fds[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    try:
        while fds and (left := deadline - time.monotonic()) > 0:
            for fd in select.select(list(fds), [], [], left)[0]:
                os.close(fd)
                del fds[fd]
    finally:
        for fd in fds:
            os.close(fd)
    return list(fds.values())


def test_kill_9_of_a_worker_costs_nothing_but_a_retry(tmp_path: Path) -> None:
    src, out = make_inputs(tmp_path, 4), tmp_path / "out"
    fifo, ready = ready_fifo(tmp_path)
    proc = start_run(src, out, fifo, "-q")
    pids = wait_for_work(ready, proc)
    os.kill(pids[0], signal.SIGKILL)  # while its table is half written
    _, err = proc.communicate(timeout=300)
    os.close(ready)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["status"]) == ["ok"] * 4
    for k in range(4):
        assert pd.read_parquet(out / f"v{k}.parquet")["frame"].nunique() == 150


def test_workers_stop_when_the_driver_is_killed(tmp_path: Path) -> None:
    src, out = make_inputs(tmp_path, 4), tmp_path / "out"
    fifo, ready = ready_fifo(tmp_path)
    proc = start_run(src, out, fifo, "-q")
    pids = wait_for_work(ready, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    gone = not still_running(pids)
    os.close(ready)  # after the workers are gone: a report opening the FIFO with no reader left would block
    assert gone, "workers kept running after their driver died"
    assert not list(out.glob(".*.tmp-*")), "a stopped worker left its temporary file"  # removed before it exited


def test_ctrl_c_with_workers_stops_them_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground process group: the driver stops its workers and says what finished."""
    src, out = make_inputs(tmp_path, 4), tmp_path / "out"
    fifo, ready = ready_fifo(tmp_path)
    run = start_run(src, out, fifo, start_new_session=True)  # its own process group, to signal as a terminal does
    pids = wait_for_work(ready, run)
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=60)
    gone = not still_running(pids)
    os.close(ready)
    assert run.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted: ")
    assert gone
    assert not list(out.glob(".*.tmp-*"))


@pytest.mark.slow
def test_thousands_of_inputs_do_not_fill_the_start_reports_and_hang() -> None:
    """Each task reports its start through a pipe; unread, 3 576 reports filled it and a run of 3 589 photos hung."""
    from concurrent.futures import wait

    pool = workers.WorkerPool(2)
    try:
        futures = [pool.submit(abs, -k) for k in range(8000)]
        done, pending = wait(futures, timeout=120)
        assert not pending, f"{len(pending)} tasks never finished"
        assert sorted(f.result() for f in done) == list(range(8000))
        assert pool.started(futures[-1])
    finally:
        pool.stop()
