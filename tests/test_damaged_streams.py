"""Damaged and unusual streams: decoding goes past damage, the shown stream and picture are the ones analysed."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pandas as pd
import pytest
from conftest import one_face, write_clip

import fer_batch
from fer_batch.media.probe import probe
from fer_batch.media.reader import FrameReader
from fer_batch.options import Options


def damage(path: Path, out: Path, *, at: float = 0.5, spots: int = 10) -> Path:
    """A copy of ``path`` with ``spots`` runs of 100 random bytes written from ``at`` of its length on."""
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    start = int(len(data) * at)
    for off in range(start, start + 400 * spots, 400):
        data[off : off + 100] = rng.integers(0, 256, 100, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return out


@pytest.mark.slow
def test_decoding_goes_on_past_a_damaged_middle(tmp_path: Path) -> None:
    clean = tmp_path / "clean.mp4"
    write_clip(clean, n=200, size=(160, 120), fps=25)
    bad = damage(clean, tmp_path / "bad.mp4")
    res = fer_batch.analyze_many(bad, tmp_path / "out")[0]
    assert res.status == "partial" and "damaged" in res.error
    assert res.frames_decoded >= 180  # all but the damaged packets (stopping at the damage gave about 100)
    df = pd.read_parquet(tmp_path / "out" / "bad.parquet")
    assert df["frame"].is_monotonic_increasing and df["time_s"].max() > 7.5  # frames after the damage are there
    assert df["frame"].nunique() == res.frames_analysed


def write_two_streams(path: Path, default: int) -> None:
    """Two video streams of different sizes; ``default`` carries the default disposition, the other none."""
    sizes = [(64, 48), (128, 96)]
    with av.open(str(path), "w") as out:
        streams = []
        for k, (w, h) in enumerate(sizes):
            s = out.add_stream("libx264", rate=10)
            s.width, s.height, s.pix_fmt = w, h, "yuv420p"
            s.disposition = av.stream.Disposition.default if k == default else av.stream.Disposition(0)
            streams.append(s)
        for i in range(6):
            for s, (w, h) in zip(streams, sizes, strict=True):
                f = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * i, np.uint8), format="rgb24")
                f.pts = i
                out.mux(s.encode(f))
        for s in streams:
            out.mux(s.encode())


@pytest.mark.parametrize("default", [0, 1])
def test_the_default_video_stream_is_analysed(tmp_path: Path, default: int) -> None:
    path = tmp_path / "two.mkv"
    write_two_streams(path, default)
    info = probe(path)
    assert (info.width, info.height) == [(64, 48), (128, 96)][default]
    items = list(FrameReader(path, info, Options()))
    assert len(items) == 6 and items[0].gray.shape == (info.height, info.width)


@pytest.mark.parametrize(("rotation", "hflip", "vflip"), [(0, True, False), (0, False, True), (90, True, False),
                                                          (90, False, False), (270, True, False)])  # fmt: skip
def test_a_display_matrix_with_a_flip_is_applied(tmp_path: Path, rotation: int, hflip: bool, vflip: bool) -> None:
    """The decoded picture must equal what the matrix shows: rotation first, then the mirror(s)."""
    w, h = 64, 32
    stored = np.zeros((h, w), np.uint8)
    stored[:8, :16] = 255  # a bright block in the top-left corner
    path = tmp_path / "flip.mp4"
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10, options={"qp": "0"})
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.set_display_rotation(rotation, hflip=hflip, vflip=vflip)
        for i in range(2):
            f = av.VideoFrame.from_ndarray(np.dstack([stored] * 3), format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode())
    expected = np.rot90(stored, rotation // 90)
    if hflip:
        expected = expected[:, ::-1]
    if vflip:
        expected = expected[::-1, :]
    items = list(FrameReader(path, probe(path), Options()))
    gray = np.asarray(items[0].gray)  # a video frame's luma plane, read as gray
    assert gray.shape == expected.shape
    assert np.abs(gray.astype(int) - expected.astype(int)).mean() < 20  # the block is where the matrix shows it


@pytest.mark.slow
def test_timestamps_that_jump_back_keep_the_second_part_analysed(tmp_path: Path) -> None:
    """Two transport streams concatenated byte for byte: the second restarts its timestamps."""
    a, b = tmp_path / "a.ts", tmp_path / "b.ts"
    write_clip(a, n=30, fps=10, faces=one_face)
    write_clip(b, n=30, fps=10, faces=one_face)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    df = fer_batch.analyze_video(joined, fps=2)
    times = df.groupby("frame")["time_s"].first()
    assert times.is_monotonic_increasing and times.index.max() >= 55  # frames of the second half are analysed
    assert len(times) >= 11  # about 6 s at 2 per second, not the first 3 s only


@pytest.mark.parametrize("annotate", [False, True])
def test_start_past_the_end_fails_the_same_way_with_or_without_annotate(tmp_path: Path, annotate: bool) -> None:
    path = tmp_path / "short.mp4"
    write_clip(path, n=10, fps=10)
    res = fer_batch.analyze_many(path, tmp_path / "out", start=100.0, annotate=annotate)[0]
    assert res.status == "failed" and "no frame at or after --start 100 s" in res.error
    assert not [p for p in (tmp_path / "out").iterdir() if p.name not in ("manifest.parquet", ".fer-batch.lock")]


@pytest.mark.slow
def test_temporary_names_are_never_taken_for_a_users_files(tmp_path: Path) -> None:
    """An input named like a temporary file of another input's table: its table is loaded and never deleted."""
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "x.mp4", n=3)
    write_clip(src / "x.parquet.tmp-a.mp4", n=5)
    out = tmp_path / "out"
    for resume in (True, False):  # --overwrite clears a killed run's temporary files of each table first
        res = fer_batch.analyze_many(src, out, resume=resume)
        assert sorted(r.status for r in res) == ["ok", "ok"]
        frames = fer_batch.load(out).groupby("video")["frame"].nunique().to_dict()
        assert frames == {"x.mp4": 3, "x.parquet.tmp-a.mp4": 5}
    assert not [p for p in out.iterdir() if p.name.startswith(".x.")]  # no temporary file left behind


@pytest.mark.slow
def test_a_stream_that_changes_size_midway_ends_there_as_partial(tmp_path: Path) -> None:
    """Two transport streams of different sizes joined: boxes of the second part would be mapped at the wrong scale."""
    a, b = tmp_path / "a.ts", tmp_path / "b.ts"
    write_clip(a, n=20, fps=10, size=(320, 240), faces=one_face)
    write_clip(b, n=20, fps=10, size=(160, 120))
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    res = fer_batch.analyze_many(joined, tmp_path / "out")[0]
    assert res.status == "partial" and "frame size changed from 320x240 to 160x120" in res.error
    df = pd.read_parquet(tmp_path / "out" / "joined.parquet")
    assert df["frame"].nunique() == 20 and (df["x"].dropna() + df["w"].dropna() <= 320 + 1e-3).all()


def test_small_size_never_exceeds_the_scan_limit() -> None:
    from fer_batch.analysis.detect.scan_size import SCAN_PIXELS_LIMIT, small_size

    w, h = small_size(16000, 16000, 0)  # --det-size 0: full size, up to the limit
    assert w * h <= SCAN_PIXELS_LIMIT * 1.01
    assert small_size(4000, 3000, 0) == (4000, 3008)  # a 12 Mpx photo is still scanned at full size
