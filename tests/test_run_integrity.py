"""Results stay tied to what produced them: the source as it was read, the annotated video of the same run."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import one_face, write_clip
from typer.testing import CliRunner

import fer_batch

pytestmark = pytest.mark.slow  # every test here runs processes or clusters

cli = CliRunner()


# --- 5. results stay tied to what produced them --------------------------------------------------------------------
def test_a_source_replaced_while_it_is_read_is_not_recorded_as_done(tmp_path: Path) -> None:
    from fer_batch.options import Options
    from fer_batch.runs.one_input import run_video

    src = tmp_path / "in" / "v.mp4"
    src.parent.mkdir()
    write_clip(src, n=60, faces=one_face)
    other = tmp_path / "other.mp4"
    write_clip(other, n=10, faces=one_face)
    table = tmp_path / "out" / "v.parquet"
    swapped = []

    class Swap:
        """A ``Progress`` whose first window replaces the source."""

        def start(self, total: int | None = None) -> None:
            pass

        def advance(self, n: int = 1) -> None:
            if not swapped:
                os.replace(other, src)  # what a sync client or a re-export does
                swapped.append(True)

        def close(self) -> None:
            pass

    result, _ = run_video(src, Options.of(batch_size=4), video_name="v.mp4", table_path=table, progress=Swap())
    assert swapped and result.status == "failed" and "changed while" in result.error
    assert not table.exists() and not list(table.parent.glob("*tmp*"))
    res = fer_batch.analyze_many(src, tmp_path / "out")  # the next run analyses the new file
    assert res[0].status == "ok" and res[0].frames_decoded == 10


def test_an_annotated_video_made_with_other_options_is_not_resumed(tmp_path: Path) -> None:
    src = tmp_path / "in" / "v.mp4"
    src.parent.mkdir()
    write_clip(src, n=20, faces=one_face)
    out = tmp_path / "out"
    assert fer_batch.analyze_many(src, out, fps=2, annotate=True)[0].status == "ok"
    first_video = (out / "v.annotated.mp4").stat().st_mtime_ns
    assert fer_batch.analyze_many(src, out, fps=5)[0].status == "ok"  # a new table, the old annotated video stays
    res = fer_batch.analyze_many(src, out, fps=5, annotate=True)
    assert res[0].status == "ok"  # not skipped: the annotated video belongs to the fps=2 table
    assert (out / "v.annotated.mp4").stat().st_mtime_ns != first_video
    assert fer_batch.analyze_many(src, out, fps=5, annotate=True)[0].status == "skipped"
    shutil.copy(src, out / "v.annotated.mp4")  # someone else's file under that name
    assert fer_batch.analyze_many(src, out, fps=5, annotate=True)[0].status == "ok"


def test_an_annotated_video_made_at_another_scale_is_made_again(tmp_path: Path) -> None:
    """--annotate-scale changes only the video: a resumed run asking for another scale renders it again."""
    import av

    src = tmp_path / "in" / "v.mp4"
    src.parent.mkdir()
    write_clip(src, n=6, size=(160, 120), faces=one_face)
    out = tmp_path / "out"
    assert fer_batch.analyze_many(src, out, annotate=True, annotate_scale=1)[0].status == "ok"
    assert fer_batch.analyze_many(src, out, annotate=True, annotate_scale=1)[0].status == "skipped"
    assert fer_batch.analyze_many(src, out, annotate=True, annotate_scale=2)[0].status == "ok"
    with av.open(str(out / "v.annotated.mp4")) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (320, 240)
    assert fer_batch.analyze_many(src, out, annotate=True, annotate_scale=2)[0].status == "skipped"
    assert fer_batch.analyze_many(src, out, annotate=False)[0].status == "skipped"  # the table alone is the same
