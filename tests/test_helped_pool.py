"""Runs left to choose their processes (``jobs`` None) on hundreds of photos: this process works, helped by a worker
per further core (``workers.HelpedPool``), and writes exactly what it writes alone."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from test_photo_batches import assert_same, outputs, photo_folder
from test_workers import killer_pool
from worker_hooks import fails, pid_after

import fer_batch
from fer_batch.runs import runner, workers

pytestmark = [
    pytest.mark.slow,  # every test here starts a worker process
    pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="waits on worker processes through pidfds (Linux)"),
]


def test_a_helper_takes_tasks_while_it_is_free_and_this_process_runs_the_rest() -> None:
    pool = workers.HelpedPool(1)
    try:
        futures = [pool.submit(pid_after, 0.0) for _ in range(6)]  # the helper is still starting: busy throughout
        failed = pool.submit(fails)
        pids = [f.result() for f in futures]
    finally:
        pool.shutdown()
    assert pids[0] == pids[1] != os.getpid()  # one running, one waiting in the helper
    assert pids[2:] == [os.getpid()] * 4
    with pytest.raises(ValueError, match="this task fails"):  # here too, a failure comes through the future
        failed.result()


@pytest.mark.parametrize("detector", ["none", "centerface-int8"])
def test_hundreds_of_photos_use_a_helper_and_write_what_one_process_writes(
    detector: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = photo_folder(tmp_path)
    monkeypatch.setattr(runner, "cores", lambda: 2)  # a helper even on a one-core machine
    alone = fer_batch.analyze_many(folder, tmp_path / "alone", jobs=1, detector=detector, smooth=0.4)
    used: list[type] = []
    real = runner.FolderRun.__init__

    def record(self: runner.FolderRun, out: Path, executor: object, *args: object, **kwargs: object) -> None:
        used.append(type(executor))
        real(self, out, executor, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(runner.FolderRun, "__init__", record)
    monkeypatch.setattr(runner, "HELPED_FROM", 4)  # "hundreds": a few, for a test
    helped = fer_batch.analyze_many(folder, tmp_path / "helped", jobs=None, detector=detector, smooth=0.4)
    assert used == [workers.HelpedPool]
    assert sorted((r.path, r.status) for r in helped) == sorted((r.path, r.status) for r in alone)
    assert_same(threads_set_aside(outputs(tmp_path / "helped"), 1), threads_set_aside(outputs(tmp_path / "alone"), 2))


@pytest.mark.parametrize("detector", ["none", "centerface-int8"])
def test_tables_a_helper_writes_are_those_this_process_writes(detector: str, tmp_path: Path) -> None:
    """The photos' two units of work both go to the helper (a pool without ``prepare`` is ready at once, and takes
    two tasks before running any here), so every table below was written in the helper process."""
    folder = photo_folder(tmp_path)
    alone = fer_batch.analyze_many(folder, tmp_path / "alone", jobs=1, detector=detector, threads=1, smooth=0.4)
    pool = workers.HelpedPool(1)
    try:
        helped = fer_batch.analyze_many(folder, tmp_path / "helped", executor=pool, detector=detector, threads=1,
                                        smooth=0.4)  # fmt: skip
    finally:
        pool.shutdown()
    assert sorted((r.path, r.status) for r in helped) == sorted((r.path, r.status) for r in alone)
    assert_same(outputs(tmp_path / "helped"), outputs(tmp_path / "alone"))


def threads_set_aside(got: dict[str, object], threads: int) -> dict[str, object]:
    """The outputs with each table's recorded thread count checked and set aside: each process of a helped run
    takes its share of the cores (1 of 2), a run alone all of them; nothing else may differ."""
    for value in got.values():
        if isinstance(value, tuple):
            options = value[1]["options"]
            assert options.pop("threads") == threads
    return got


def test_a_photo_that_kills_its_helper_fails_alone_and_the_rest_finish(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import cv2
    from conftest import astronaut_face

    src = tmp_path / "in"
    src.mkdir()
    names = ["a.png", "b.png", "c_dies.png", "d.png", "e.png", "f.png"]
    for k, name in enumerate(names):
        cv2.imwrite(str(src / name), cv2.cvtColor(astronaut_face(48 + 8 * k), cv2.COLOR_RGB2BGR))
    pool = workers.HelpedPool(1, partial(killer_pool, "c_dies.png"))  # the first batch (a, b, c) goes to it
    try:
        res = {Path(r.path).name: r for r in fer_batch.analyze_many(src, tmp_path / "out", executor=pool,
                                                                    detector="none")}  # fmt: skip
    finally:
        pool.shutdown()
    assert res["c_dies.png"].status == "failed" and res["c_dies.png"].error == "worker died (killed or out of memory)"
    assert {n: r.status for n, r in res.items() if n != "c_dies.png"} == dict.fromkeys(set(names) - {"c_dies.png"},
                                                                                      "ok")  # fmt: skip
    manifest = pd.read_parquet(tmp_path / "out" / "manifest.parquet").set_index("path")
    assert len(manifest) == 6 and manifest.loc[str(src / "c_dies.png"), "status"] == "failed"
    died = [r.getMessage() for r in caplog.records if "worker died" in r.getMessage()]
    assert died[0] == f"{src / 'a.png'} and 2 more photos: their worker died (killed or out of memory); trying each " \
                      "again on its own"  # one line for the batch, naming its first photo
    assert len(died) == 1  # the photos retried alone are not announced again; the killer's failure is its result


def test_a_task_submitted_to_a_broken_pool_runs_here(monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures.process import BrokenProcessPool

    pool = workers.HelpedPool(1)

    def broken(*args: object, **kwargs: object) -> None:
        raise BrokenProcessPool("a helper died")

    monkeypatch.setattr(pool, "in_worker", broken)
    try:
        assert pool.submit(pid_after, 0.0).result() == os.getpid()
    finally:
        pool.shutdown()


def test_no_task_waits_for_a_helper_that_is_still_starting() -> None:
    """Until a helper has done its ``prepare`` task (imports, models), every task runs here; then helpers take
    tasks: a run too small to wait for a helper's start never waits for one."""
    import time

    pool = workers.HelpedPool(1)
    try:
        pool.prepare(pid_after, 1.0)
        assert pool.submit(pid_after, 0.0).result() == os.getpid()
        deadline = time.monotonic() + 60
        away = None
        while away is None and time.monotonic() < deadline:
            fut = pool.submit(pid_after, 0.0)
            away = fut if fut.result() != os.getpid() else None
            time.sleep(0.05)
    finally:
        pool.shutdown()
    assert away is not None  # once started, the helper works


def test_a_helper_for_every_few_hundred_photos_up_to_one_per_further_core(monkeypatch: pytest.MonkeyPatch) -> None:
    from fer_batch.runs.jobs import Job

    def jobs(n: int, suffix: str = ".png") -> list[Job]:
        return [Job(source=Path(f"p{k}{suffix}"), name=f"p{k}{suffix}", table=Path(f"p{k}.parquet"), annotated=None)
                for k in range(n)]  # fmt: skip

    monkeypatch.setattr(runner, "cores", lambda: 4)
    per = runner.HELPED_FROM
    assert [runner._helpers(None, jobs(n), None) for n in (per - 1, per, 2 * per, 10 * per)] == [0, 1, 2, 3]
    assert runner._helpers(None, jobs(10 * per, ".mp4"), None) == 0  # videos use every core themselves
    assert runner._helpers(1, jobs(10 * per), None) == 0  # --jobs given: as asked
    monkeypatch.setattr(runner, "cores", lambda: 1)
    assert runner._helpers(None, jobs(10 * per), None) == 0
