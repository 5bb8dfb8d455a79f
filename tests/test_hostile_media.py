"""Issue 26 items 6, 7, 8 and 11: odd but valid media and names — every frame annotated, image sizes found wherever
the header keeps them, long names, and "partial" only when something is missing."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from fer_batch.options import Options
from fer_batch.runs.runner import run_many


def negative_ts(path: Path, n: int = 60, start: float = -3.0) -> list[float]:
    """A transport stream whose first half has negative presentation times (as cut recordings do)."""
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w", format="mpegts", options={"avoid_negative_ts": "disabled"}) as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.time_base = s.codec_context.time_base = tb
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 4, np.uint8), format="rgb24")
            f.pts, f.time_base = round((start + i / 10) / tb), tb
            out.mux(s.encode(f))
        out.mux(s.encode())
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return [float(f.pts * vs.time_base) for f in c.decode(vs)]


def test_annotate_writes_every_frame_including_negative_times(tmp_path: Path) -> None:
    src = tmp_path / "in" / "neg.ts"
    src.parent.mkdir()
    times = negative_ts(src)
    assert len(times) == 60 and times[0] < -2.9  # the clip really starts before 0
    out = tmp_path / "out"
    res = run_many([src], out, Options.of(detector="none"), quiet=True, annotate=True)
    assert [r.status for r in res] == ["ok"]
    table = pq.read_table(out / "neg.parquet")
    with av.open(str(out / "neg.annotated.mp4")) as c:
        vs = c.streams.video[0]
        shown = [float(f.pts * vs.time_base) for f in c.decode(vs)]
    assert len(shown) == table.num_rows == 60  # 30 were hidden behind the MP4 edit list
    np.testing.assert_allclose(np.diff(shown), np.diff(table["time_s"].to_numpy()), atol=2e-3)  # frame by frame


def edit_listed(path: Path) -> None:
    """An MP4 whose header counts 60 frames while its edit list shows 30, covering its whole stated 3 s."""
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.time_base = s.codec_context.time_base = tb
        for i in range(60):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 4, np.uint8), format="rgb24")
            f.pts, f.time_base = round((-3.0 + i / 10) / tb), tb
            out.mux(s.encode(f))
        out.mux(s.encode())


def test_a_complete_file_whose_header_overcounts_frames_is_ok(tmp_path: Path) -> None:
    src = tmp_path / "in" / "edit.mp4"
    src.parent.mkdir()
    edit_listed(src)
    with av.open(str(src)) as c:
        vs = c.streams.video[0]
        assert vs.frames == 60 and sum(1 for _ in c.decode(vs)) == 30  # what the file really is
    res = run_many([src], tmp_path / "out", Options.of(detector="none"), quiet=True)
    assert [(r.status, r.error) for r in res] == [("ok", None)]
    assert res[0].frames_analysed == 30


def test_a_file_that_stops_early_in_time_stays_partial(tmp_path: Path) -> None:
    from conftest import write_clip

    full = tmp_path / "full.mkv"
    write_clip(full, n=150, fps=10, size=(96, 64))  # 15 s: several Matroska clusters
    data = full.read_bytes()
    cut = tmp_path / "in" / "cut.mkv"
    cut.parent.mkdir()
    cut.write_bytes(data[: int(len(data) * 0.7)])
    res = run_many([cut], tmp_path / "out", Options.of(detector="none"), quiet=True)
    assert res[0].status == "partial" and "stream ended at" in res[0].error


def _jpeg_with_big_exif(path: Path, w: int, h: int, pad: int) -> None:
    """A real JPEG whose frame header follows ``pad`` bytes of APP segments (as large EXIF/ICC blocks put it)."""
    import cv2

    ok, data = cv2.imencode(".jpg", np.zeros((h, w, 3), np.uint8))
    assert ok
    raw = data.tobytes()
    segment = b"\xff\xe2" + (65535).to_bytes(2, "big") + bytes(65533)  # APP2, the largest a segment can be
    path.write_bytes(raw[:2] + segment * (pad // 65537 + 1) + raw[2:])


def test_an_image_size_is_found_wherever_the_header_keeps_it(tmp_path: Path) -> None:
    from fer_batch.media.imagesize import image_size

    path = tmp_path / "in" / "big_exif.jpg"
    path.parent.mkdir()
    _jpeg_with_big_exif(path, 3000, 2000, 300_000)  # the frame header ~300 KB in: past the first 64 KiB
    assert image_size(path) == (3000, 2000)
    res = run_many([path], tmp_path / "out", Options.of(detector="none", max_pixels=5_000_000), quiet=True)
    assert res[0].status == "failed" and "larger than --max-pixels" in res[0].error  # refused before decoding


def test_an_image_that_cannot_be_sized_is_refused_before_decoding(tmp_path: Path, monkeypatch) -> None:
    import fer_batch.media.probe as probe

    path = tmp_path / "in" / "odd.jpg"
    path.parent.mkdir()
    path.write_bytes(b"\xff\xd8\xff\xda" + bytes(100))  # a scan before any frame header
    monkeypatch.setattr(probe, "read_image", lambda p: pytest.fail("decoded an image of unknown size"))
    res = run_many([path], tmp_path / "out", Options.of(detector="none"), quiet=True)
    assert res[0].status == "failed" and "size cannot be read" in res[0].error


def test_long_valid_names_work_with_their_temporary_files(tmp_path: Path) -> None:
    from conftest import one_face, write_clip

    from fer_batch._atomic import TMP_MARK, AtomicPath, remove_stale

    stem = "x" * 236  # the table's name is 244 bytes, the annotated video's 250: both fit, their temporaries too
    src = tmp_path / "in" / f"{stem}.mp4"
    src.parent.mkdir()
    write_clip(src, n=4, size=(96, 64), faces=one_face)
    out = tmp_path / "out"
    res = run_many([src], out, Options.of(detector="none"), quiet=True, annotate=True)
    assert [(r.status, r.error) for r in res] == [("ok", None)]
    assert (out / f"{stem}.parquet").exists() and (out / f"{stem}.annotated.mp4").exists()
    # a leftover of a killed run under the short temporary name is found and removed
    final = out / f"{stem}.parquet"
    left = AtomicPath(final).tmp
    assert len(left.name.encode()) <= 255 and TMP_MARK in left.name
    left.write_bytes(b"killed")
    remove_stale(final)
    assert not left.exists()


def long_last_frame(path: Path, n: int = 20, hold: float = 2.0) -> None:
    """A complete MP4 whose last frame stays on screen ``hold`` seconds (screen recordings, slides)."""
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=10, options={"bf": "0"})
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.time_base = s.codec_context.time_base = tb
        packets = []
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 4, np.uint8), format="rgb24")
            f.pts, f.time_base = i * 100, tb
            packets += s.encode(f)
        packets += s.encode()
        for p in packets:
            p.duration = 100
        packets[-1].duration = round(hold * 1000)
        for p in packets:
            out.mux(p)


def test_a_last_frame_that_stays_on_screen_is_not_a_missing_end(tmp_path: Path) -> None:
    src = tmp_path / "in" / "slides.mp4"
    src.parent.mkdir()
    long_last_frame(src)
    with av.open(str(src)) as c:
        vs = c.streams.video[0]
        assert abs(float(vs.duration * vs.time_base) - 3.9) < 0.01  # 20 frames, the last shown for 2 s
    res = run_many([src], tmp_path / "out", Options.of(detector="none"), quiet=True)
    assert [(r.status, r.error) for r in res] == [("ok", None)]
