"""--jobs workers: a dying worker costs one input, not the run; workers stop when their driver dies."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, write_clip

import fer_batch
from fer_batch.runs import workers

pytestmark = [
    pytest.mark.slow,  # every test here runs processes
    pytest.mark.skipif(not Path("/proc/self").exists(), reason="reads worker processes from /proc"),
]


def killer_pool(victim: str, jobs: int, started: object):
    """``workers.make_pool`` whose workers kill themselves (SIGKILL, as the OOM killer does) on one input."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from worker_hooks import init_with_killer

    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=init_with_killer,
                               initargs=(victim, workers.worker_init, 1, started))  # fmt: skip


def test_an_input_that_kills_its_worker_fails_alone_and_the_rest_finish(tmp_path: Path, monkeypatch) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b", "c_dies", "d", "e"):
        write_clip(src / f"{name}.mp4", n=6, size=(96, 64))
    monkeypatch.setattr(workers, "make_pool", partial(killer_pool, "c_dies.mp4"))
    monkeypatch.setattr("fer_batch.runs.runner.cores", lambda: 2)  # two workers even on a one-core machine
    res = {Path(r.path).name: r for r in fer_batch.analyze_many(src, tmp_path / "out", jobs=2)}
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


def worker_pids(driver: int) -> list[int]:
    """The pool workers among ``driver``'s children (not multiprocessing's resource tracker)."""
    try:
        children = Path(f"/proc/{driver}/task/{driver}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children if b"spawn_main" in _cmdline(int(c))]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start_run(tmp_path: Path, n_inputs: int) -> tuple[subprocess.Popen, Path, Path]:
    src = tmp_path / "in"
    src.mkdir()
    for k in range(n_inputs):
        write_clip(src / f"v{k}.mp4", n=150, size=(320, 240))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fer_batch.cli", "analyze", str(src), "--out", str(out), "--jobs", "2", "-q",
           "--batch-size", "4"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    return proc, src, out


def wait_for_work(proc: subprocess.Popen, out: Path, timeout: float = 120) -> list[int]:
    """The worker pids once both workers are writing a table."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        pids = worker_pids(proc.pid)
        if len(pids) == 2 and len(list(out.glob(".*.parquet.tmp-*"))) >= 2:
            return pids
        time.sleep(0.05)
    raise AssertionError("the run never had two workers writing")


def test_kill_9_of_a_worker_costs_nothing_but_a_retry(tmp_path: Path) -> None:
    proc, src, out = start_run(tmp_path, 4)
    pids = wait_for_work(proc, out)
    os.kill(pids[0], signal.SIGKILL)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "BrokenProcessPool" not in err
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["status"]) == ["ok"] * 4
    for k in range(4):
        assert pd.read_parquet(out / f"v{k}.parquet")["frame"].nunique() == 150


def test_workers_stop_when_the_driver_is_killed(tmp_path: Path) -> None:
    proc, _, out = start_run(tmp_path, 4)
    pids = wait_for_work(proc, out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    assert not [p for p in pids if alive(p)], "workers kept running after their driver died"
    time.sleep(0.5)
    assert not list(out.glob(".*.tmp-*")), "a stopped worker left its temporary file"


def test_ctrl_c_with_workers_stops_them_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole foreground process group: the driver stops its workers and says what finished."""
    proc, _, out = start_run(tmp_path, 4)
    proc.kill()  # this run was only for the inputs; start one in its own process group to signal as a terminal does
    proc.wait()
    cmd = [sys.executable, "-m", "fer_batch.cli", "analyze", str(tmp_path / "in"), "--out", str(out), "--jobs", "2",
           "--batch-size", "4"]  # fmt: skip
    run = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                           start_new_session=True)  # fmt: skip
    pids = wait_for_work(run, out)
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith("interrupted: ")
    time.sleep(0.5)
    assert not [p for p in pids if alive(p)]
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
