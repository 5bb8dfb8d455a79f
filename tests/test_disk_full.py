"""A full disk or a read-only mount: one line per input (or one usage error), nothing half-written, the run goes on.

The real thing needs a small file system: where this test may mount a tmpfs (root, Linux), it does; elsewhere the
same failure is raised where the table writer would raise it.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from conftest import REPO, one_face, write_clip

import fer_batch

pytestmark = pytest.mark.slow  # every test here runs processes or clusters


def mounted_tmpfs(where: Path, size: str, read_only: bool = False) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    mount = shutil.which("mount")
    options = f"size={size}" + (",ro" if read_only else "")
    if mount is None or not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root")
    done = subprocess.run([mount, "-t", "tmpfs", "-o", options, "tmpfs", str(where)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mounted_tmpfs(tmp_path / "disk", "200k")


@pytest.fixture
def inputs(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "a.mp4", n=5, faces=one_face)
    write_clip(src / "b_big.mp4", n=120, size=(640, 360), faces=one_face)  # its annotated video does not fit
    write_clip(src / "c.mp4", n=5, faces=one_face)
    return src


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fer_batch.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300)  # fmt: skip


def test_a_full_disk_fails_one_input_and_the_run_goes_on(inputs: Path, small_disk: Path) -> None:
    out = small_disk / "out"
    r = run_cli("analyze", str(inputs), "--out", str(out), "--annotate", "--annotate-scale", "1", "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert lines == [f"{inputs / 'b_big.mp4'}: failed — No space left on device (writing the annotated video)"]
    m = pd.read_parquet(out / "manifest.parquet").set_index("path")["status"].to_dict()
    assert m == {str(inputs / "a.mp4"): "ok", str(inputs / "b_big.mp4"): "failed", str(inputs / "c.mp4"): "ok"}
    assert sorted(p.name for p in out.iterdir()) == [".fer-batch.lock", "a.annotated.mp4", "a.parquet",
                                                     "c.annotated.mp4", "c.parquet", "manifest.parquet"]  # fmt: skip


def test_a_disk_too_full_for_the_manifest_says_so(inputs: Path, small_disk: Path) -> None:
    out = small_disk / "out"
    out.mkdir()
    st = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"x" * (st.f_bavail * st.f_frsize - 4096))
    r = run_cli("analyze", str(inputs), "--out", str(out), "-q")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("manifest.parquet: not written (No space left on device)")
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_a_read_only_mount_is_a_usage_error(inputs: Path, tmp_path: Path) -> None:
    for ro in mounted_tmpfs(tmp_path / "ro", "100k", read_only=True):
        r = run_cli("analyze", str(inputs), "--out", str(ro / "out"))
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert r.stderr.strip().splitlines() == [f"error: --out {ro / 'out'}: cannot write to {ro} "
                                                 "(read-only file system)"]  # fmt: skip


def test_a_write_that_fails_midway_leaves_nothing_and_the_next_input_runs(inputs: Path, tmp_path: Path,
                                                                          monkeypatch) -> None:  # fmt: skip
    """The same failure without a small disk: the table writer raises what a full disk makes it raise."""
    from fer_batch.outputs import table as sink

    real = sink.ParquetSink.flush

    def flush(self) -> None:
        if self.path.name == "b_big.parquet" and self._pending:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(self)

    monkeypatch.setattr(sink.ParquetSink, "flush", flush)
    out = tmp_path / "out"
    res = {Path(r.path).name: r for r in fer_batch.analyze_many(inputs, out, batch_size=4)}
    assert res["b_big.mp4"].status == "failed" and res["b_big.mp4"].error == "No space left on device"
    assert res["a.mp4"].status == "ok" and res["c.mp4"].status == "ok"
    assert sorted(p.name for p in out.iterdir()) == [".fer-batch.lock", "a.parquet", "c.parquet", "manifest.parquet"]
