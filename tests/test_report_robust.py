"""Issue 26 item 9: the report never tracebacks and never misleads (odd names, odd photos, foreign files, another
working folder, an annotated video left by an earlier run)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import astronaut_face, one_face, write_clip

from fer_batch.options import Options
from fer_batch.outputs.report import write_report
from fer_batch.outputs.report.thumbnails import thumb_jpeg
from fer_batch.runs.runner import run_many


def test_a_name_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    odd = src / os.fsdecode(b"bad\xffname.png")
    cv2.imwrite(str(src / "ok.png"), astronaut_face(64))
    os.rename(src / "ok.png", odd)
    out = tmp_path / "out"
    assert [r.status for r in run_many([src], out, Options.of(detector="none"), quiet=True)] == ["ok"]
    html = write_report(out).read_text(encoding="utf-8")
    assert "bad\\xffname" in html


def test_a_thumbnail_of_a_very_wide_photo_is_small_and_valid() -> None:
    rgb = np.full((1, 100_000, 3), 128, np.uint8)
    jpeg = thumb_jpeg(rgb, (0.0, 0.0, 100_000.0, 1.0))
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None and img.shape[0] == 80 and img.shape[1] <= 4 * 80


def test_a_foreign_parquet_is_skipped_with_a_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "in" / "v.mp4"
    src.parent.mkdir()
    write_clip(src, n=4, faces=one_face)
    out = tmp_path / "out"
    run_many([src], out, Options(), quiet=True)
    pq.write_table(pa.table({"a": [1, 2]}), out / "notes.parquet")
    with caplog.at_level(logging.WARNING):
        page = write_report(out)
    assert page.is_file() and "notes.parquet: skipped, not a fer-batch table" in caplog.text


def test_sources_are_found_from_another_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    (work / "in").mkdir(parents=True)
    write_clip(work / "in" / "v.mp4", n=6, faces=one_face)
    monkeypatch.chdir(work)
    run_many(["in/v.mp4"], Path("out"), Options(), quiet=True)  # relative paths, as a user types them
    monkeypatch.chdir(tmp_path)
    html = write_report(work / "out").read_text(encoding="utf-8")
    assert "not there any more" not in html and "data:image/jpeg" in html  # thumbnails cut from the source


def test_an_annotated_video_of_an_earlier_run_is_not_shown_as_this_tables(tmp_path: Path) -> None:
    src = tmp_path / "in" / "v.mp4"
    src.parent.mkdir()
    write_clip(src, n=6, faces=one_face)
    out = tmp_path / "out"
    run_many([src], out, Options(), quiet=True, annotate=True)
    assert "<video" in write_report(out).read_text(encoding="utf-8")
    run_many([src], out, Options.of(fps=5), quiet=True)  # other options, no --annotate: the old video stays
    assert (out / "v.annotated.mp4").exists()
    assert "<video" not in write_report(out).read_text(encoding="utf-8")
