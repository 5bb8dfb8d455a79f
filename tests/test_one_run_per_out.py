"""One run writes an output folder at a time; nothing of an earlier run is lost; webcam sessions never share a file."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import write_clip
from typer.testing import CliRunner

import fer_batch
from fer_batch.cli import app

cli = CliRunner()


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    from fer_batch.runs.outdir import OutputLock

    src = tmp_path / "in" / "v.mp4"
    src.parent.mkdir()
    write_clip(src, n=3)
    out = tmp_path / "out"
    out.mkdir()
    with OutputLock(out):
        r = cli.invoke(app, ["analyze", str(src), "--out", str(out)])
        assert r.exit_code == 2
        assert f"another fer-batch run (pid {os.getpid()}) is writing to {out}" in r.output
        assert not (out / "v.parquet").exists()
    r = cli.invoke(app, ["analyze", str(src), "--out", str(out), "-q"])
    assert r.exit_code == 0 and (out / "v.parquet").exists()


def test_a_later_run_keeps_the_manifest_rows_of_earlier_ones(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "a.mp4", n=3)
    write_clip(src / "b.mp4", n=3)
    out = tmp_path / "out"
    fer_batch.analyze_many(src / "a.mp4", out)
    fer_batch.analyze_many(src / "b.mp4", out)
    m = pq.read_table(out / "manifest.parquet").to_pandas()
    assert sorted(Path(p).name for p in m["path"]) == ["a.mp4", "b.mp4"]


def test_two_webcam_sessions_in_the_same_second_get_different_files(tmp_path: Path) -> None:
    from fer_batch.live.session import output_paths

    now = datetime(2024, 5, 1, 12, 0, 0)
    first = output_paths(tmp_path, True, now)
    second = output_paths(tmp_path, True, now)  # the first has not written anything yet
    assert first[0] != second[0] and first[1] != second[1]


@pytest.mark.slow
def test_two_runs_started_together_lose_nothing(tmp_path: Path) -> None:
    """Whichever way the two runs interleave, every table present is whole and has its manifest row."""
    import subprocess
    import sys

    from conftest import REPO

    for group in ("a", "b"):
        (tmp_path / group).mkdir()
        for k in range(3):
            write_clip(tmp_path / group / f"{group}{k}.mp4", n=40, size=(160, 120))
    out = tmp_path / "out"
    procs = [subprocess.Popen([sys.executable, "-m", "fer_batch.cli", "analyze", str(tmp_path / g), "--out", str(out),
                               "-q"], cwd=REPO, stderr=subprocess.PIPE, text=True) for g in ("a", "b")]  # fmt: skip
    outcomes = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in procs]
    assert sorted(code for code, _ in outcomes) in ([0, 0], [0, 2]), outcomes
    for code, err in outcomes:
        if code == 2:
            assert "another fer-batch run (pid " in err and "Traceback" not in err
    tables = sorted(p.name for p in out.glob("*.parquet") if p.name != "manifest.parquet")
    for name in tables:
        pq.read_table(out / name)
    rows = pq.read_table(out / "manifest.parquet").to_pandas()
    assert sorted(os.path.basename(t) for t in rows["table"]) == tables
    assert len(tables) == 3 * sum(code == 0 for code, _ in outcomes)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
