"""A quiet, honest console: one line per problem, nothing from the libraries underneath, Ctrl-C explained."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, interrupted_run, one_face, write_clip


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fer_batch.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env=env)  # fmt: skip


@pytest.mark.slow
def test_damaged_inputs_give_one_line_each_and_nothing_else(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    img = np.random.default_rng(0).integers(0, 255, (64, 96, 3)).astype(np.uint8)
    cv2.imwrite(str(src / "good.png"), img)
    data = bytearray((src / "good.png").read_bytes())
    data[100:140] = b"x" * 40  # a CRC error inside the image data: libpng prints its own line for it
    (src / "crc.png").write_bytes(bytes(data))
    (src / "half.png").write_bytes(bytes(data[: len(data) // 2]))
    a, b = tmp_path / "a.ts", tmp_path / "b.ts"
    write_clip(a, n=20, fps=10, faces=one_face)
    write_clip(b, n=20, fps=10, faces=one_face)
    (src / "joined.ts").write_bytes(a.read_bytes() + b.read_bytes())  # timestamps jump back: once, not per frame
    r = run_cli("analyze", str(src), "--out", str(tmp_path / "out"), "--annotate", "-q")
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 2, r.stderr  # -q: the two failures, one line each, and nothing from libpng or OpenCV
    assert any("crc.png: failed" in ln and "CRC" in ln for ln in lines)
    assert any("half.png: failed" in ln for ln in lines)
    assert not r.stdout


def test_non_increasing_timestamps_are_reported_once(tmp_path: Path, caplog) -> None:
    from fer_batch.outputs.render import Renderer
    from fer_batch.types import Decoded, Faces

    src = tmp_path / "src.mp4"
    write_clip(src, n=6)
    from fer_batch.media.probe import probe

    info = probe(src)
    y = np.full((info.height, info.width), 100, np.uint8)
    u = v = np.full((info.height // 2, info.width // 2), 128, np.uint8)
    frames = [Decoded(index=i, time_s=0.5, analyse=False, yuv=(y, u, v)) for i in range(6)]  # all at one time
    with Renderer(src, tmp_path / "a.mp4", info, ["happy"]) as rend:
        rend.write(frames, Faces())
    warnings = [rec.getMessage() for rec in caplog.records if "non-increasing" in rec.getMessage()]
    assert len(warnings) == 1 and "5 frame(s)" in warnings[0]


def test_onnxruntime_telemetry_is_off(tmp_path: Path) -> None:
    """onnxruntime >= 1.32 writes a record under $XDG_CACHE_HOME/Microsoft/DeveloperTools at import."""
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    env.update(HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    code = "import fer_batch, onnxruntime; from fer_batch.analysis.models import check_all; check_all()"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=120)
    assert not list(tmp_path.rglob("*DeveloperTools*")), sorted(tmp_path.rglob("*"))


@pytest.mark.slow
def test_ctrl_c_says_what_was_finished_and_how_to_go_on(tmp_path: Path) -> None:
    rc, seen, rest, src = interrupted_run(tmp_path, signal.SIGINT, 120, (160, 120))
    out = tmp_path / "out"
    assert rc == 130, seen + rest
    assert "Traceback" not in rest
    last = rest.strip().splitlines()[-1]
    assert last.startswith("interrupted: ") and "ok=1" in last and "run the same command again" in last
    assert not [p for p in out.rglob("*") if p.name.startswith("a") and ".tmp" in p.name]
    again = run_cli("analyze", str(src), "--out", str(out))
    assert again.returncode == 0 and "skipped=1" in again.stdout.splitlines()[-1], again.stdout + again.stderr
    assert "skipped=1" not in again.stderr  # the run's summary is its result: stdout only


@pytest.mark.slow
def test_a_log_gets_plain_progress_lines_and_stdout_the_summary(tmp_path: Path) -> None:
    """``analyze … 2>run.log | tee summary.txt``: a line per input at its start and end on stderr, no carriage
    return or bar; the summary on stdout only; ``--quiet``: nothing but the summary's absence."""
    clips = [tmp_path / f"c{k}.mp4" for k in range(2)]
    for c in clips:
        write_clip(c, n=12, faces=one_face)
    out = tmp_path / "out"
    r = run_cli("analyze", *map(str, clips), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stdout == f"ok=2 partial=0 failed=0 skipped=0; manifest: {out / 'manifest.parquet'}\n"
    assert "\r" not in r.stderr and "█" not in r.stderr and "%|" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(str(tmp_path))]
    assert lines == [f"{clips[0]}: started (12 frames)", lines[1], f"{clips[1]}: started (12 frames)", lines[3]]
    assert lines[1].startswith(f"{clips[0]}: ok (12 frames") and lines[3].startswith(f"{clips[1]}: ok (12 frames")
    quiet = run_cli("analyze", *map(str, clips), "--out", str(tmp_path / "q"), "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == "", quiet.stderr
