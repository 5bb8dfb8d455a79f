"""Decoding: exact presentation times, rotation, sampling by time, odd inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import one_face

from fer_batch.analysis.detect.scan_size import small_size
from fer_batch.errors import DecodeError
from fer_batch.media.probe import probe
from fer_batch.media.reader import FrameReader
from fer_batch.media.sampling import Sampler
from fer_batch.options import Options
from fer_batch.planes import yuv_to_rgb


def decode_all(path: Path, **opts: object) -> list:
    options = Options.of(**opts)  # type: ignore[arg-type]
    return list(FrameReader(path, probe(path), options))


def test_vfr_times_are_the_stream_pts(clip) -> None:
    times = [0.0, 0.04, 0.1, 0.5, 0.52, 1.3, 1.31, 2.0]
    path, pts = clip(times=times)
    items = decode_all(path)
    assert [d.index for d in items] == list(range(len(times)))
    assert np.allclose([d.time_s for d in items], pts, atol=1e-9)
    assert np.allclose(pts, times, atol=1e-3)
    assert all(d.analyse for d in items)


def test_rotation_is_applied_to_every_image(clip) -> None:
    path, _ = clip(size=(320, 160), n=3, rotation=90)
    info = probe(path)
    assert (info.width, info.height, info.rotation) == (160, 320, 90)
    items = decode_all(path)
    assert items[0].gray.shape == (320, 160)
    y, u, v = items[0].yuv
    assert y.shape == (320, 160) and u.shape == v.shape == (160, 80)
    sw, sh = small_size(160, 320, Options().detection.det_size, Options().detection.min_face)
    assert yuv_to_rgb(y, u, v, (sw, sh)).shape == (sh, sw, 3)


def test_small_size_is_a_multiple_of_32_and_never_upscales() -> None:
    assert small_size(1280, 720, 640) == (640, 384)
    assert small_size(320, 240, 640) == (320, 256)
    assert small_size(1, 1, 640) == (32, 32)
    assert small_size(4000, 3000, 0) == (4000, 3008)
    assert small_size(1280, 720, 640, min_face=24) == (864, 480)  # a 24-px face spans 16 px at the input
    assert small_size(640, 360, 640, min_face=8) == (640, 384)


@pytest.mark.parametrize("fps", [5.0, 3.0, 1.0])
def test_fps_sampling_picks_the_frame_nearest_each_target_time(fps: float) -> None:
    rng = np.random.default_rng(1)
    times = np.cumsum(rng.uniform(0.01, 0.12, 120))  # variable frame rate
    sampler = Sampler(Options.of(fps=fps))
    decisions = []
    for i, t in enumerate(times):
        decisions += sampler.push(i, float(t))
    decisions += sampler.flush()
    assert [i for i, _ in decisions] == list(range(len(times)))  # every frame decided once, in order
    chosen = sorted(i for i, a in decisions if a)
    period = 1 / fps
    k0 = int(np.ceil((times[0] - period / 2) / period - 1e-9))
    shown_until = min(times[-1] + (times[-1] - times[-2]), times[-1] + period / 2)
    targets = [k * period for k in range(k0, 10_000) if k * period < shown_until - 1e-9]
    expected = sorted({int(np.argmin(np.abs(times - target))) for target in targets})
    assert chosen == expected


def test_every_n_and_start_end(clip) -> None:
    path, pts = clip(n=30, fps=10)
    items = decode_all(path, every=4)
    assert [d.index for d in items if d.analyse] == list(range(0, 30, 4))
    assert len(items) == 30  # non-analysed frames still pass (the renderer needs them)
    items = decode_all(path, start=1.0, end=2.0)
    assert [round(d.time_s, 3) for d in items] == [round(t, 3) for t in pts if 1.0 <= t < 2.0]
    assert items[0].index == 10  # the index stays the decoded frame's index in the whole video


def test_fps_sampling_on_a_real_clip(clip) -> None:
    path, pts = clip(n=40, fps=10)
    items = decode_all(path, fps=2)
    assert [d.index for d in items if d.analyse] == [0, 5, 10, 15, 20, 25, 30, 35]


@pytest.mark.parametrize(
    ("kwargs", "shape"),
    [({"size": (1, 1), "pix_fmt": "yuv444p"}, (1, 1)), ({"size": (33, 17), "pix_fmt": "yuv444p"}, (17, 33)),
     ({"pix_fmt": "gray", "codec": "ffv1"}, (240, 320))],
)  # fmt: skip
def test_odd_sizes_and_grayscale_decode(clip, kwargs: dict, shape: tuple[int, int]) -> None:
    path, _ = clip(name="odd.mkv", n=3, **kwargs)
    items = decode_all(path)
    assert len(items) == 3 and items[0].gray.shape == shape and items[0].yuv[0].shape == shape


def test_unreadable_inputs_raise_decode_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video at all\n" * 100)
    for p in (empty, text):
        with pytest.raises(DecodeError):
            probe(p)


@pytest.mark.slow
def test_reader_keeps_memory_bounded(clip) -> None:
    """The reader thread runs at most a queue's length ahead of a slow consumer: it stops decoding, it does not
    just stop queueing (an unbounded reader would have decoded all 60 frames)."""
    import time

    path, _ = clip(n=60, faces=one_face)
    reader = FrameReader(path, probe(path), Options(), queue_size=4)
    it = iter(reader)
    next(it)
    deadline = time.monotonic() + 10
    while not reader._queue.full() and time.monotonic() < deadline:  # let the reader run as far as it can
        time.sleep(0.01)
    time.sleep(0.2)
    assert reader._queue.full()
    # one taken, four queued, one held by the blocked producer: a frame or two of slack, not the whole clip
    assert reader.decoded <= 1 + 4 + 2
    assert len(list(it)) == 59  # and nothing is lost once the consumer catches up
