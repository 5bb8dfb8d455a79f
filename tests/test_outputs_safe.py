"""Nothing mixed up, nothing overwritten: literal paths, unique outputs, outputs never read as inputs, odd names."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import one_face, write_clip
from typer.testing import CliRunner

import fer_batch
from fer_batch.cli import app
from fer_batch.options import UsageError

cli = CliRunner()


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}


# --- 1. a path that exists is that file ------------------------------------------------------------------------
def test_an_existing_path_is_taken_literally_not_as_a_pattern(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_clip(d / "take1.mp4", n=3)
    write_clip(d / "take[1].mp4", n=5)
    res = fer_batch.analyze_many([str(d / "take[1].mp4")], tmp_path / "out")
    assert [(Path(r.path).name, r.status, r.frames_decoded) for r in res] == [("take[1].mp4", "ok", 5)]
    (d / "take1.mp4").unlink()
    res = fer_batch.analyze_many([str(d / "take[1].mp4")], tmp_path / "out2")
    assert [(Path(r.path).name, r.status) for r in res] == [("take[1].mp4", "ok")]


def test_an_argument_that_does_not_exist_is_still_a_pattern(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    write_clip(d / "take1.mp4", n=3)
    write_clip(d / "take2.mp4", n=3)
    res = fer_batch.analyze_many([str(d / "take[12].mp4")], tmp_path / "out")
    assert sorted(Path(r.path).name for r in res) == ["take1.mp4", "take2.mp4"]


# --- 4. outputs never collide and never land on inputs -------------------------------------------------------------
@pytest.mark.slow
def test_the_same_name_under_several_roots_gives_separate_tables(tmp_path: Path) -> None:
    roots = [tmp_path / f"r{k}" for k in (1, 2, 3)]
    for k, root in enumerate(roots):
        root.mkdir()
        write_clip(root / "x.mp4", n=3 + k)
    out = tmp_path / "out"
    res = fer_batch.analyze_many([str(r / "x.mp4") for r in roots], out)
    assert [r.status for r in res] == ["ok"] * 3
    tables = {r.path: Path(r.table) for r in res}
    assert len(set(tables.values())) == 3
    for k, root in enumerate(roots):  # each manifest row points at the table of its own source
        df = pd.read_parquet(tables[str(root / "x.mp4")])
        assert df["frame"].nunique() == 3 + k
    m = pd.read_parquet(out / "manifest.parquet")
    assert sorted(m["table"]) == sorted(str(t) for t in tables.values())
    videos = fer_batch.load(out).groupby("video")["frame"].nunique().to_dict()
    assert videos == {"r1/x.mp4": 3, "r2/x.mp4": 4, "r3/x.mp4": 5}


def test_several_folder_arguments_keep_their_own_subfolders(tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name / "day1").mkdir(parents=True)
        write_clip(tmp_path / name / "day1" / "s.mp4", n=3)
    out = tmp_path / "out"
    res = fer_batch.analyze_many([tmp_path / "a", tmp_path / "b"], out)
    assert sorted(Path(r.table).relative_to(out).as_posix() for r in res) == ["a/day1/s.parquet", "b/day1/s.parquet"]


def test_one_root_keeps_the_flat_layout(tmp_path: Path) -> None:
    (tmp_path / "in" / "day1").mkdir(parents=True)
    write_clip(tmp_path / "in" / "day1" / "s.mp4", n=3)
    write_clip(tmp_path / "in" / "t.mp4", n=3)
    res = fer_batch.analyze_many([tmp_path / "in"], tmp_path / "out")
    assert sorted(Path(r.table).relative_to(tmp_path / "out").as_posix() for r in res) == [
        "day1/s.parquet", "t.parquet"]  # fmt: skip


def test_out_inside_an_input_folder_is_never_read_as_input(tmp_path: Path) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    write_clip(rec / "a.mp4", n=4, faces=one_face)
    out = rec / "results"
    for _ in range(2):
        r = cli.invoke(app, ["analyze", str(rec), "--out", str(out), "--annotate", "-q"])
        assert r.exit_code == 0, r.output
    names = sorted(p.relative_to(rec).as_posix() for p in rec.rglob("*") if p.is_file() and not p.name.startswith("."))
    assert names == ["a.mp4", "results/a.annotated.mp4", "results/a.parquet", "results/manifest.parquet"]
    assert list(pd.read_parquet(out / "manifest.parquet")["status"]) == ["skipped"]


@pytest.mark.parametrize("how", ["same_folder", "symlink_to_it", "file_inside_out"])
def test_outputs_that_would_land_on_inputs_are_a_usage_error(tmp_path: Path, how: str) -> None:
    rec = tmp_path / "rec"
    rec.mkdir()
    write_clip(rec / "a.mp4", n=3)
    write_clip(rec / "a.annotated.mp4", n=3)
    write_clip(rec / "v.mp4", n=3)
    (rec / "v.mp4").rename(rec / "v.parquet")  # a video someone named .parquet
    args = [str(rec)]
    out = rec
    if how == "symlink_to_it":
        out = tmp_path / "link"
        out.symlink_to(rec)
    elif how == "file_inside_out":
        args = [str(rec / "v.parquet")]
    before = snapshot(rec)
    r = cli.invoke(app, ["analyze", *args, "--out", str(out), "--annotate"])
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--out" in lines[0]
    assert snapshot(rec) == before


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="only Linux allows file names that are not UTF-8")
def test_names_that_are_not_utf8_or_hold_a_newline_are_analysed(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "ok.mp4", n=3)
    bad = Path(os.fsdecode(bytes(src) + b"/bad\xffname.mp4"))
    shutil.copy(src / "ok.mp4", bad)
    shutil.copy(src / "ok.mp4", src / "new\nline.mp4")
    out = tmp_path / "out"
    r = cli.invoke(app, ["analyze", str(src), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert len([ln for ln in r.output.splitlines() if ": ok (" in ln]) == 3  # one line each, the newline escaped
    assert sorted(fer_batch.load(out)["video"].unique()) == ["bad\\xffname.mp4", "new\nline.mp4", "ok.mp4"]
    assert len(pd.read_parquet(out / "manifest.parquet")) == 3


def test_an_empty_argument_is_not_the_current_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    write_clip(tmp_path / "here.mp4", n=3)
    with pytest.raises(UsageError, match="empty path"):
        fer_batch.analyze_many([""], tmp_path / "out")
    assert not (tmp_path / "out").exists()
