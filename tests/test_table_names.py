"""Issue 26 items 4 and 10: a table's name never depends on which other inputs exist, and planning is linear."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from conftest import astronaut_face

import fer_batch
from fer_batch.options import Options
from fer_batch.outputs.table import tables
from fer_batch.runs.jobs import plan_jobs
from fer_batch.runs.runner import run_many

OPTS = Options.of(detector="none")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """``a.jpg`` and ``a.png``: two inputs, one name stem."""
    src = tmp_path / "in"
    src.mkdir()
    for ext in ("jpg", "png"):
        cv2.imwrite(str(src / f"a.{ext}"), astronaut_face(48))
    return src


def _names(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in tables(out))


def test_removing_an_input_never_renames_another_inputs_table(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert [r.status for r in run_many([folder], out, OPTS, quiet=True)] == ["ok", "ok"]
    first = _names(out)
    (folder / "a.jpg").unlink()
    assert [r.status for r in run_many([folder], out, OPTS, quiet=True)] == ["skipped"]
    assert _names(out) == first  # no second table for a.png
    df = fer_batch.load(out)
    assert (df["video"] == "a.png").sum() == 1  # counted once


def test_adding_an_input_never_takes_another_inputs_table(folder: Path, tmp_path: Path) -> None:
    (folder / "a.jpg").rename(tmp_path / "later.jpg")
    out = tmp_path / "out"
    run_many([folder], out, OPTS, quiet=True)
    png_table = _names(out)
    (tmp_path / "later.jpg").rename(folder / "a.jpg")
    res = {Path(r.path).name: r for r in run_many([folder], out, OPTS, quiet=True)}
    assert res["a.png"].status == "skipped" and res["a.jpg"].status == "ok"
    assert res["a.png"].table == str(out.resolve() / png_table[0])
    assert len(_names(out)) == 2 and len(fer_batch.load(out)) == 2


def test_planning_a_thousand_inputs_lists_each_folder_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Planning is linear: the old planning probed the disk per name and candidate (minutes for 1,000 photos);
    counted, not timed, so a loaded machine cannot fail it."""
    import fer_batch.runs.jobs as jobs_mod

    root = tmp_path / "in"
    files = [(root / f"p{i:04d}.jpg", root) for i in range(1000)]
    files += [(root / f"same.{ext}", root) for ext in ("jpg", "png", "bmp", "tif")]  # one stem, four inputs
    (tmp_path / "out").mkdir()
    listed: list[str] = []
    real_listdir = jobs_mod.os.listdir

    def counting_listdir(path: str) -> list[str]:
        listed.append(str(path))
        return real_listdir(path)

    monkeypatch.setattr(jobs_mod.os, "listdir", counting_listdir)
    jobs = plan_jobs(files, tmp_path / "out", annotate=False)
    assert len(listed) == len(set(listed)) <= 1, listed  # the one output folder, once
    names = [j.table.name for j in jobs]
    assert len(set(names)) == len(names) == 1004
    assert names[:2] == ["p0000.parquet", "p0001.parquet"] and "same.parquet" in names
