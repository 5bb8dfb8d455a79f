"""Smoke run of benchmarks/bench.py's fer_batch part on a 1 s clip (no TensorFlow, no timing asserted)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench  # noqa: E402
import make_clip  # noqa: E402
from recall import matched  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "face.mp4"
    assert make_clip.make_face_clip(path, seconds=1.0, size=(320, 240), fps=10) == 10
    return path


@pytest.mark.slow
def test_bench_writes_table_without_fer(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    md = tmp_path / "BENCH.md"
    rc = bench.main(["--clip", str(clip), "--repeat", "1", "--no-fer", "--no-classify", "--only", "0",
                     "--write", str(md)])  # fmt: skip
    assert rc == 0
    text = md.read_text()
    assert "skipped (--no-fer)" in text
    assert "Command: `python benchmarks/bench.py --clip" in text and "Machine:" in text
    lines = [[c.strip() for c in line.strip()[1:-1].split("|")] for line in text.splitlines() if line.startswith("| ")]
    header = lines[0]
    rows = {cells[0]: dict(zip(header, cells, strict=True)) for cells in lines[1:]}
    fb = rows["fer-batch analyze (defaults)"]
    assert float(fb["fps"]) > 0 and float(fb["peak MiB"]) > 0  # fps and peak MiB were measured
    assert fb["frames analysed"] == "10"  # every frame of the clip analysed
    assert int(fb["face rows"]) >= 10  # at least one row per frame
    assert float(fb["wall_s ÷ decode"].rstrip("×")) > 0  # the manifest's analysis time against a bare decode
    assert float(rows["PyAV decode only, 1 thread"]["fps"]) > 0
    assert text.strip() in capsys.readouterr().out  # the table printed is the table written


def test_child_failure_is_reported(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="failed"):
        bench.run_child(sys.executable, "decode", str(tmp_path / "missing.mp4"), "1")


def test_recall_matching_is_one_to_one() -> None:
    ref = np.array([[0, 0, 10, 10], [100, 100, 120, 120], [200, 200, 220, 220]], dtype=np.float32)
    found = np.array([[1, 1, 11, 11], [0, 0, 9, 9], [300, 300, 310, 310]], dtype=np.float32)
    assert matched(ref, found) == 1  # two boxes on the first face count once, the others are unmatched
    assert matched(ref, ref) == 3
    assert matched(ref, np.zeros((0, 4), np.float32)) == 0


@pytest.mark.slow
def test_video_candidates_runs(clip: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """benchmarks/video_candidates.py still runs against the package as it is (no timing asserted)."""
    import video_candidates

    for argv in (["--rounds", "1", "input"], ["--rounds", "1", "members"], ["threads", "--clip", str(clip)]):
        assert video_candidates.main(argv) == 0
    out = capsys.readouterr().out
    assert "one pass (Member.network_input)" in out and "two threads" in out and "CPU s by thread" in out
