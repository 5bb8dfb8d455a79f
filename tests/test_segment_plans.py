"""Issue 26 item 1: segment plans are deterministic, recorded in the table, and a rerun cleans a killed run's parts."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import write_clip

from fer_batch._atomic import TMP_MARK
from fer_batch.options import Options
from fer_batch.outputs.metadata import read_metadata
from fer_batch.runs.runner import run_many
from fer_batch.runs.segments import frame_times, segments_dir


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("in") / "long.mp4"
    write_clip(path, n=600, fps=10, size=(64, 48))  # 60 s
    return path


def test_frame_times_are_the_same_on_every_call(long_clip: Path) -> None:
    # the time base was read after the container closed: most calls said the clip ended near 6 s, or at 1e10 s
    runs = [frame_times(long_clip) for _ in range(40)]
    assert all(r == runs[0] for r in runs)
    assert runs[0] is not None and len(runs[0]) == 600 and abs(runs[0][-1] - 59.9) < 1e-6


def test_a_split_table_records_its_parts_and_a_whole_one_null(long_clip: Path, tmp_path: Path) -> None:
    opts = Options.of(detector="none", fps=1)
    split = run_many([long_clip], tmp_path / "split", opts, quiet=True, segment_seconds=20)
    assert [r.status for r in split] == ["ok"]
    meta = read_metadata(tmp_path / "split" / "long.parquet")
    assert meta is not None and meta["segments"] == [[0.0, 20.0], [20.0, 40.0], [40.0, 60.0]]
    whole = run_many([long_clip], tmp_path / "whole", opts, quiet=True)
    assert [r.status for r in whole] == ["ok"]
    meta = read_metadata(tmp_path / "whole" / "long.parquet")
    assert meta is not None and "segments" in meta and meta["segments"] is None


def _leave_killed_run(table: Path) -> list[Path]:
    """What a segmented run killed mid-way leaves: a part table, a part's and the join's temporary files."""
    folder = segments_dir(table)
    folder.mkdir(parents=True)
    left = [folder / "part-00007.segment", folder / f".part-00000.segment{TMP_MARK}123-abcdef01",
            table.parent / f".{table.name}{TMP_MARK}123-abcdef02"]  # fmt: skip
    for p in left:
        p.write_bytes(b"left by a killed run")
    return left


@pytest.mark.parametrize("split_again", [False, True])
def test_a_resumed_run_cleans_every_leftover(long_clip: Path, tmp_path: Path, split_again: bool) -> None:
    out = tmp_path / "out"
    table = out / "long.parquet"
    left = _leave_killed_run(table)
    res = run_many([long_clip], out, Options.of(detector="none", fps=1), quiet=True,
                   segment_seconds=20 if split_again else None)  # fmt: skip
    assert [r.status for r in res] == ["ok"]
    assert not [p for p in left if p.exists()]
    assert not segments_dir(table).exists()
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]
