"""The one H.264 writer behind the renderer and the webcam recorder: padding, PTS order, nothing left on failure."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from fer_batch.outputs.h264 import AudioSource, H264Writer
from fer_batch.planes import i420, i420_views


def frames_of(path: Path) -> tuple[tuple[int, int], list[float], list[np.ndarray]]:
    """(encoded size, frame times in ms, BGR frames) of a written file."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        frames = list(c.decode(s))
        times = [round(float(f.pts * f.time_base) * 1000, 3) for f in frames]
        return (s.codec_context.width, s.codec_context.height), times, [f.to_ndarray(format="bgr24") for f in frames]


def test_odd_sides_are_padded_by_a_replicated_pixel(tmp_path: Path) -> None:
    out = tmp_path / "odd.mp4"
    img = np.zeros((33, 47, 3), np.uint8)
    img[:, -1] = (0, 0, 255)  # the last column red: the pad column must repeat it
    writer = H264Writer(out, 47, 33, time_base=Fraction(1, 1000), rate=10)
    for k in range(3):
        writer.write_bgr(img, k / 10)
    writer.finish()
    assert writer.commit() == out
    size, pts, frames = frames_of(out)
    assert size == (48, 34) and pts == [0, 100, 200]
    assert frames[0][10, 47, 2] > 180 and frames[0][10, 47, 0] < 80  # red, as the column before it


def test_timestamps_that_repeat_or_go_back_get_the_next_tick(tmp_path: Path) -> None:
    out = tmp_path / "pts.mp4"
    writer = H264Writer(out, 32, 32, time_base=Fraction(1, 1000), rate=10)
    for t in (0.0, 0.1, 0.1, 0.05, 0.3):
        writer.write_bgr(np.full((32, 32, 3), 128, np.uint8), t)
    writer.finish()
    writer.commit()
    assert frames_of(out)[1] == [0, 100, 101, 102, 300]  # ms: the time base is 1/1000 s


def test_i420_images_go_to_the_encoder_as_they_are(tmp_path: Path) -> None:
    y = np.full((32, 64), 200, np.uint8)
    u = np.full((16, 32), 128, np.uint8)
    v = np.full((16, 32), 128, np.uint8)
    image = i420(y, u, v)
    ys, us, vs = i420_views(image, 64, 32)
    assert (ys == 200).all() and (us == 128).all() and (vs == 128).all()
    out = tmp_path / "planes.mp4"
    writer = H264Writer(out, 64, 32, time_base=Fraction(1, 90000))
    writer.write_i420(image, 0.0)
    writer.finish()
    writer.commit()
    gray = frames_of(out)[2][0].mean()
    assert abs(gray - 200 * 255 / 219 + 16 * 255 / 219) < 6  # limited-range Y 200 shown as full-range gray


def test_discard_leaves_nothing(tmp_path: Path) -> None:
    writer = H264Writer(tmp_path / "x.mp4", 32, 32, time_base=Fraction(1, 1000))
    writer.write_bgr(np.zeros((32, 32, 3), np.uint8), 0.0)
    writer.discard()
    assert list(tmp_path.iterdir()) == []


def test_a_writer_that_cannot_start_leaves_nothing(tmp_path: Path) -> None:
    missing = AudioSource(tmp_path / "gone.mp4", "aac")
    with pytest.raises((av.error.FFmpegError, OSError)):
        H264Writer(tmp_path / "x.mp4", 32, 32, time_base=Fraction(1, 1000), audio=missing)
    assert list(tmp_path.iterdir()) == []
