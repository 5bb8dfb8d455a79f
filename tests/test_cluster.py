"""Cluster runs on a real ``distributed.LocalCluster`` (2 worker processes of 1 thread) and long videos in segments.

No network: the cluster listens on 127.0.0.1. Skipped where ``distributed`` is not installed.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import write_clip
from typer.testing import CliRunner

import fer_batch
from fer_batch._atomic import TMP_MARK
from fer_batch.cli import app
from fer_batch.options import Options
from fer_batch.runs import cluster
from fer_batch.runs.runner import run_many

pytestmark = pytest.mark.slow  # every test here runs processes or clusters

distributed = pytest.importorskip("distributed")
runner = CliRunner()


@pytest.fixture(scope="module")
def client() -> Any:
    """Two single-threaded worker processes; a task whose worker dies may run once more (allowed-failures 1)."""
    import cloudpickle
    import dask

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers need not import this test module
    with dask.config.set({"distributed.scheduler.allowed-failures": 1,
                          "distributed.scheduler.worker-saturation": 1.0}):  # fmt: skip
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                      host="127.0.0.1", silence_logs=40) as lc:  # fmt: skip
            with distributed.Client(lc) as c:
                yield c


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Four short clips and their tables from an in-process run (``--jobs 1``): the reference."""
    root = tmp_path_factory.mktemp("corpus")
    src = root / "in"
    src.mkdir()
    for k in range(4):
        write_clip(src / f"v{k}.mp4", n=30, size=(320, 240), faces=lambda i, k=k: [(20 + 5 * k + 2 * i, 30, 90)])
    ref = root / "ref"
    assert all(r.status == "ok" for r in run_many([src], ref, Options(), quiet=True))
    return src, ref


def assert_same_tables(ref: Path, out: Path, names: list[str]) -> None:
    for name in names:
        pd.testing.assert_frame_equal(pd.read_parquet(ref / name), pd.read_parquet(out / name))
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name or p.name.endswith(".segments")]


def test_cluster_run_gives_the_same_tables_as_jobs_1(client: Any, corpus: tuple[Path, Path], tmp_path: Path) -> None:
    src, ref = corpus
    out = tmp_path / "out"
    r = runner.invoke(app, ["analyze", str(src), "--out", str(out), "-q", "--scheduler", client.scheduler.address])
    assert r.exit_code == 0, r.output
    assert_same_tables(ref, out, [f"v{k}.parquet" for k in range(4)])
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["status"]) == ["ok"] * 4
    # and the Python API with the client's executor; a second run resumes (nothing redone)
    res = fer_batch.analyze_many([src], out, executor=client.get_executor())
    assert [x.status for x in res] == ["skipped"] * 4


def die_mid_video(marker: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Test-only task wrapper: the first task, on any worker, to write a window of its table kills its own worker
    (kill -9) right after that write, while the table is half written; ``marker`` (made with O_EXCL, so across
    processes only one task can) records that it happened. Its retry, and every other task, run as they are."""
    from fer_batch.outputs.table import ParquetSink

    real = ParquetSink.write

    def write(self: ParquetSink, table: Any) -> None:
        real(self, table)
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    ParquetSink.write = write  # type: ignore[method-assign]  # in this worker process only, for this task only
    try:
        return fn(*args)
    finally:
        ParquetSink.write = real  # type: ignore[method-assign]


class DyingExecutor(cluster.ClusterExecutor):
    def __init__(self, inner: Any, slots: dict[str, int], marker: Path) -> None:
        super().__init__(inner, slots)
        self.marker = str(marker)

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(die_mid_video, self.marker, fn, *args)


def test_a_worker_killed_mid_video_still_gives_identical_tables(
    client: Any, corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    """A worker is killed (kill -9) while it writes a table, at a point the task itself chooses: no polling."""
    src, ref = corpus
    out = tmp_path / "out"
    marker = tmp_path / "killed"
    slots = cluster.check_cluster(client, sorted(src.glob("*.mp4")), out, Options())
    res = run_many([src], out, Options(), executor=DyingExecutor(client.get_executor(), slots, marker), quiet=True)
    assert marker.exists(), "no worker was killed"
    assert [x.status for x in res] == ["ok"] * 4, [x.error for x in res]
    assert_same_tables(ref, out, [f"v{k}.parquet" for k in range(4)])
    client.wait_for_workers(2, timeout=30)  # the nanny restarted it


def crash_on(name: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Test-only task wrapper: an input named ``name`` kills its worker process every time, as a codec crash would."""
    job = args[0]
    if getattr(job, "source", None) is not None and job.source.name == name:
        os._exit(1)
    return fn(*args)


class CrashingExecutor(cluster.ClusterExecutor):
    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(crash_on, "v2.mp4", fn, *args)


def test_an_input_that_kills_every_worker_fails_and_the_rest_finish(
    client: Any, corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    src, ref = corpus
    out = tmp_path / "out"
    slots = cluster.check_cluster(client, sorted(src.glob("*.mp4")), out, Options())
    res = {Path(x.path).name: x for x in run_many([src], out, Options(), quiet=True,
                                                  executor=CrashingExecutor(client.get_executor(), slots))}  # fmt: skip
    assert res["v2.mp4"].status == "failed" and "worker failed" in res["v2.mp4"].error
    assert [res[f"v{k}.mp4"].status for k in (0, 1, 3)] == ["ok"] * 3
    assert_same_tables(ref, out, [f"v{k}.parquet" for k in (0, 1, 3)])
    assert not (out / "v2.parquet").exists()
    client.wait_for_workers(2, timeout=30)


def set_version(version: str) -> None:
    """On a worker: pretend another fer_batch version is installed there."""
    import fer_batch.runs.cluster as module

    module.__version__ = version


def test_a_worker_that_differs_is_named_and_nothing_is_written(
    client: Any, corpus: tuple[Path, Path], tmp_path: Path
) -> None:
    src, _ = corpus
    out = tmp_path / "out"
    address = sorted(client.scheduler_info()["workers"])[0]
    client.run(set_version, "0.0.0-other", workers=[address])
    try:
        r = runner.invoke(app, ["analyze", str(src), "--out", str(out), "-q", "--scheduler", client.scheduler.address])
    finally:
        client.run(set_version, fer_batch.__version__)
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and address in lines[0] and "0.0.0-other" in lines[0], r.output
    assert not out.exists()


def test_an_unreachable_scheduler_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 2.0)
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    clip = tmp_path / "a.mp4"
    write_clip(clip, n=2)
    out = tmp_path / "out"
    r = runner.invoke(app, ["analyze", str(clip), "--out", str(out), "--scheduler", f"tcp://127.0.0.1:{port}"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "not reachable" in lines[0] and str(port) in lines[0], r.output
    assert not out.exists()


def two_faces(i: int) -> list[tuple[int, int, int]]:
    """Two faces crossing the frame in opposite directions (each keeps its track across segment boundaries)."""
    return [(10 + 3 * i, 40, 80), (300 - 3 * i, 130, 70)]


def test_segments_join_into_the_unsplit_table_with_tracks_stitched(client: Any, tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "long.mp4", n=60, fps=10, size=(480, 270), faces=two_faces)  # 6 s
    whole, split = tmp_path / "whole", tmp_path / "split"
    # at default settings: regions between full scans depend only on the frames since the last scan
    assert run_many([src], whole, Options(), quiet=True)[0].status == "ok"
    r = runner.invoke(app, ["analyze", str(src), "--out", str(split), "-q", "--scheduler", client.scheduler.address,
                            "--segment-seconds", "2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    a, b = pd.read_parquet(whole / "long.parquet"), pd.read_parquet(split / "long.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="track_id"), b.drop(columns="track_id"))
    pairs = pd.crosstab(a["track_id"], b["track_id"])
    assert pairs.shape == (2, 2) and ((pairs > 0).sum(axis=0) == 1).all() and ((pairs > 0).sum(axis=1) == 1).all()
    meta = fer_batch.outputs.metadata.read_metadata(split / "long.parquet")
    assert meta is not None and len(meta["segments"]) == 3 and meta["frames_analysed"] == 60
    assert not [p for p in split.rglob("*") if TMP_MARK in p.name or p.name.endswith(".segments")]


def test_device_cuda_without_cuda_is_a_clear_error(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    clip = tmp_path / "a.mp4"
    write_clip(clip, n=2)
    r = runner.invoke(app, ["analyze", str(clip), "--out", str(tmp_path / "out"), "--device", "cuda"])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "CUDAExecutionProvider" in lines[0]
