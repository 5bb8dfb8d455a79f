"""Folder runs: a corpus of bad and odd inputs, exit codes, resume, atomic outputs, parallel jobs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import one_face, write_clip
from typer.testing import CliRunner
from worker_hooks import DRIVER, ready_fifo, ready_pids

import fer_batch
from fer_batch.cli import app

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime) for p in folder.rglob("*") if p.is_file()}


def manifest(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "manifest.parquet").set_index("path")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """A folder of broken and odd inputs, as real recording folders have."""
    d = tmp_path / "corpus"
    d.mkdir()
    (d / "zero.mp4").write_bytes(b"")
    (d / "text.mp4").write_text("this is a note, not a video\n" * 50)
    full = tmp_path / "full.mkv"
    write_clip(full, n=150, size=(96, 64), faces=lambda i: [(10, 0, 60)])  # 15 s: several Matroska clusters
    data = full.read_bytes()
    (d / "truncated.mkv").write_bytes(data[: int(len(data) * 0.7)])
    with av.open(str(d / "audio_only.mp4"), "w") as out:
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        samples = np.zeros((1, 16000), np.float32)
        for k in range(0, 16000, 1024):
            f = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k : k + 1024]), format="fltp", layout="mono")
            f.sample_rate, f.pts = 16000, k
            out.mux(a.encode(f))
        out.mux(a.encode())
    write_clip(d / "tiny.mkv", n=3, size=(1, 1), pix_fmt="yuv444p")
    write_clip(d / "odd.mkv", n=3, size=(33, 17), pix_fmt="yuv444p")
    write_clip(d / "rotated.mp4", n=5, rotation=-90, faces=one_face)
    write_clip(d / "vfr.mp4", times=[0, 0.01, 0.5, 0.52, 1.7], faces=one_face)
    write_clip(d / "gray.mkv", n=4, pix_fmt="gray", codec="ffv1", faces=one_face)
    write_clip(d / "noface.MP4", n=5)
    write_clip(d / "many.mp4", size=(640, 360), n=2, faces=lambda i: [(x, y, 70) for x in range(10, 560, 110)
                                                                      for y in (10, 180)])  # fmt: skip
    (d / "empty_folder").mkdir()
    (d / "readme.txt").write_text("not media, ignored by the folder scan")
    return d


EXPECTED = {
    "zero.mp4": "failed",
    "text.mp4": "failed",
    "truncated.mkv": "partial",
    "audio_only.mp4": "failed",
    "tiny.mkv": "ok",
    "odd.mkv": "ok",
    "rotated.mp4": "ok",
    "vfr.mp4": "ok",
    "gray.mkv": "ok",
    "noface.MP4": "ok",
    "many.mp4": "ok",
}


@pytest.mark.slow
def test_corpus_each_file_gets_the_right_status(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "nope.mp4"
    before = snapshot(corpus)
    typo = runner.invoke(app, ["analyze", str(corpus), str(missing), "--out", str(out), "--quiet"])
    assert typo.exit_code == 2 and typo.output.strip() == f"error: {missing}: no such file or directory", typo.output
    assert not out.exists()  # a path that names nothing is a typing mistake, answered before any work
    result = runner.invoke(app, ["analyze", str(corpus), str(corpus / "empty_folder"), "--out", str(out),
                                 "--quiet"])  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    m = manifest(out)
    for name, status in EXPECTED.items():
        assert m.loc[str(corpus / name), "status"] == status, (name, m.loc[str(corpus / name)].to_dict())
    assert "no video or image" in m.loc[str(corpus / "empty_folder"), "error"]
    assert "no video stream" in m.loc[str(corpus / "audio_only.mp4"), "error"]
    assert "stream ended" in m.loc[str(corpus / "truncated.mkv"), "error"]
    # every failure is one line on the console naming the file
    err_lines = [line for line in result.output.splitlines() if ": failed" in line]
    assert len(err_lines) == sum(m["status"] == "failed") and all("\n" not in x for x in err_lines)
    # tables for ok/partial inputs, none for failures, nothing left half-written
    for name, status in EXPECTED.items():
        table = out / Path(name).with_suffix(".parquet")
        assert table.exists() == (status != "failed"), name
    assert not [p for p in out.rglob("*") if ".tmp-" in p.name]
    assert snapshot(corpus) == before  # inputs untouched, nothing written beside them
    truncated = pd.read_parquet(out / "truncated.parquet")
    assert len(truncated) > 0 and truncated["frame"].tolist() == list(range(len(truncated)))
    rotated = pd.read_parquet(out / "rotated.parquet")
    assert rotated["frame"].tolist() == list(range(5))
    found = rotated.dropna(subset=["x"])
    # the displayed width of a rotated 320x240 clip is 240
    assert len(found) >= 1 and (found["x"] + found["w"] <= 240 + 1e-3).all()
    many = pd.read_parquet(out / "many.parquet")
    assert many.groupby("frame").size().min() >= 8


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    r = runner.invoke(app, ["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--fps", "5", "--every", "2"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--detector", "yolo"])
    assert r.exit_code == 2
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_resume_skips_complete_tables_and_redoes_changed_ones(clip, tmp_path: Path) -> None:
    a, _ = clip("a.mp4", n=5, faces=one_face)
    clip("b.mp4", n=5)
    out = tmp_path / "out"
    fer_batch.analyze_many(a.parent, out)
    first = (out / "a.parquet").stat().st_mtime_ns
    res = fer_batch.analyze_many(a.parent, out)
    assert [r.status for r in res] == ["skipped", "skipped"]
    os.utime(a, (time.time() + 10, time.time() + 10))  # the source changed
    res = {Path(r.path).name: r.status for r in fer_batch.analyze_many(a.parent, out)}
    assert res == {"a.mp4": "ok", "b.mp4": "skipped"}
    res = {Path(r.path).name: r.status for r in fer_batch.analyze_many(a.parent, out, fps=2)}
    assert res == {"a.mp4": "ok", "b.mp4": "ok"}  # other options: redone
    res = fer_batch.analyze_many(a.parent, out, fps=2, resume=False)
    assert [r.status for r in res] == ["ok", "ok"]
    assert (out / "a.parquet").stat().st_mtime_ns != first


def test_a_stale_temporary_file_is_never_taken_for_a_table(clip, tmp_path: Path) -> None:
    a, _ = clip("a.mp4", n=4)
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.parquet.tmp-123-deadbeef").write_bytes(b"PAR1 half written")
    res = fer_batch.analyze_many(a, out)
    assert [r.status for r in res] == ["ok"]
    assert not list(out.glob("*.tmp-*"))


def test_outputs_mirror_the_input_tree_and_stay_inside_out(tmp_path: Path) -> None:
    root = tmp_path / "rec"
    (root / "day1").mkdir(parents=True)
    write_clip(root / "day1" / "s1.mp4", n=3)
    write_clip(root / "s1.mov", n=3)
    write_clip(root / "s1.mp4", n=3)
    out = tmp_path / "out"
    res = fer_batch.analyze_many([root], out)
    assert all(r.status == "ok" for r in res)
    tables = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.parquet"))
    assert tables == ["day1/s1.parquet", "manifest.parquet", "s1.mov.parquet", "s1.parquet"] or tables == [
        "day1/s1.parquet", "manifest.parquet", "s1.mp4.parquet", "s1.parquet"]  # fmt: skip
    videos = set(fer_batch.load(out)["video"])
    assert videos == {"day1/s1.mp4", "s1.mov", "s1.mp4"}


@pytest.mark.slow
def test_parallel_jobs_give_identical_tables(clip, tmp_path: Path) -> None:
    for k in range(3):
        clip(f"v{k}.mp4", n=6, faces=lambda i, k=k: [(20 + 10 * k, 30, 90)])
    src = tmp_path / "in"
    r1 = runner.invoke(app, ["analyze", str(src), "--out", str(tmp_path / "j1"), "-q"])
    r2 = runner.invoke(app, ["analyze", str(src), "--out", str(tmp_path / "j2"), "-q", "--jobs", "2"])
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    for k in range(3):
        a = pd.read_parquet(tmp_path / "j1" / f"v{k}.parquet")
        b = pd.read_parquet(tmp_path / "j2" / f"v{k}.parquet")
        pd.testing.assert_frame_equal(a, b)


@pytest.mark.slow
def test_kill_9_then_resume_gives_the_same_tables(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for k in range(4):
        write_clip(src / f"v{k}.mp4", n=40, size=(320, 240), faces=lambda i, k=k: [(20 + 5 * k, 30, 90)])
    clean = tmp_path / "clean"
    assert runner.invoke(app, ["analyze", str(src), "--out", str(clean), "-q"]).exit_code == 0
    out = tmp_path / "out"
    fifo, ready = ready_fifo(tmp_path)
    # the run reports once it has a table half written, and stops there until it is killed (no polling, no race)
    cmd = [sys.executable, "-c", DRIVER, fifo, "hold", "analyze", str(src), "--out", str(out), "-q", "--batch-size",
           "4"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert ready_pids(ready, proc, 1) == [proc.pid]  # one job: the driver writes the tables itself
    os.close(ready)
    in_progress = list(out.glob(".v*.parquet.tmp-*"))  # a table being written at the moment of the kill
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before the kill"
    assert len(in_progress) == 1, "no table was being written when the kill landed"
    assert not list(out.glob("v*.parquet"))  # the run was cut short in its first table
    for p in out.glob("v*.parquet"):  # anything with the final name is a complete, readable table
        pq.read_table(p)
    assert runner.invoke(app, ["analyze", str(src), "--out", str(out), "-q"]).exit_code == 0
    for k in range(4):
        pd.testing.assert_frame_equal(pd.read_parquet(clean / f"v{k}.parquet"), pd.read_parquet(out / f"v{k}.parquet"))
    assert not list(out.glob("*.tmp-*"))
    assert set(manifest(out)["status"]) <= {"ok", "skipped"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_fails_cleanly(clip, tmp_path: Path) -> None:
    a, _ = clip("locked.mp4", n=3)
    a.chmod(0)
    res = fer_batch.analyze_many(a, tmp_path / "out")
    assert res[0].status == "failed" and res[0].error


def test_a_file_that_cannot_be_opened_fails_with_the_reason(clip, tmp_path: Path, monkeypatch) -> None:
    """Root reads any file, so the permission error is raised where PyAV would raise it for other users."""
    import fer_batch.media.probe as decode

    locked, _ = clip("locked.mp4", n=3)
    fine, _ = clip("fine.mp4", n=3)
    real_open = decode.av.open

    def guarded_open(path, *args, **kwargs):
        if str(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(decode.av, "open", guarded_open)
    res = {Path(r.path).name: r for r in fer_batch.analyze_many(locked.parent, tmp_path / "out")}
    assert res["locked.mp4"].status == "failed" and "Permission denied" in res["locked.mp4"].error
    assert res["fine.mp4"].status == "ok"
