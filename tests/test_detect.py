"""Face detectors and their shared clean-up: boxes where the faces are, NMS, clipping, size filter and order."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_clip

from fer_batch.analysis.detect import RegionDetector, finish, make_detector, nms
from fer_batch.media.probe import probe
from fer_batch.media.reader import FrameReader
from fer_batch.options import Options
from fer_batch.types import Faces, Frames


def faces_of(frames: list[int], boxes: list[list[float]]) -> Faces:
    n = len(frames)
    return Faces(frame=np.array(frames, np.int64), boxes=np.array(boxes, np.float32), scores=np.ones(n, np.float32),
                 landmarks=np.zeros((n, 5, 2), np.float32), track_id=np.full(n, -1, np.int64))  # fmt: skip


def blank_frames(index: list[int], w: int = 200, h: int = 100) -> Frames:
    return Frames(index=np.array(index), time_s=np.zeros(len(index)), gray=[np.zeros((h, w), np.uint8)] * len(index),
                  small=[None] * len(index))  # fmt: skip


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    assert nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.3).tolist() == [1, 2]
    assert nms(boxes, np.array([0.5, 0.9, 0.7], np.float32), 0.99).tolist() == [1, 2, 0]  # none overlaps that much


def test_finish_clips_drops_small_and_orders_largest_first() -> None:
    faces = faces_of([5, 4, 5, 5], [[-10, 10, 30, 50], [0, 0, 40, 40], [150, 20, 230, 90], [60, 60, 70, 70]])
    out = finish(faces, blank_frames([4, 5]), min_face=20)
    assert out.frame.tolist() == [4, 5, 5]  # frame order; the 10-px face is gone
    np.testing.assert_array_equal(out.boxes[1], [150, 20, 200, 90])  # clipped to the 200 x 100 frame, largest first
    np.testing.assert_array_equal(out.boxes[2], [0, 10, 30, 50])


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["centerface", "centerface-int8", "haar"])
def test_detectors_find_the_pasted_face_in_frame_pixels(tmp_path, detector: str) -> None:
    path = tmp_path / "c.mp4"
    write_clip(path, n=3, size=(480, 270), faces=lambda i: [(300, 60, 130)])
    options = Options.of(detector=detector)
    frames = Frames.from_decoded(list(FrameReader(path, probe(path), options)))
    faces = make_detector(options)(frames)
    assert faces.frame.tolist() == [0, 1, 2]
    centres = (faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2
    assert np.abs(centres - [365, 125]).max() < 20
    width = faces.boxes[:, 2] - faces.boxes[:, 0]
    assert ((width > 40) & (width < 130)).all()  # the face inside the pasted 130-px picture


def test_only_centerface_looks_in_regions(tmp_path) -> None:
    path = tmp_path / "c.mp4"
    write_clip(path, n=1, size=(480, 270), faces=lambda i: [(300, 60, 130)])
    centerface, haar = make_detector(Options()), make_detector(Options.of(detector="haar"))
    assert isinstance(centerface, RegionDetector) and not isinstance(haar, RegionDetector)
    frames = Frames.from_decoded(list(FrameReader(path, probe(path), Options())))
    near = centerface.regions(frames, 0, np.array([[290, 50, 420, 180]], np.float32))
    elsewhere = centerface.regions(frames, 0, np.array([[10, 10, 120, 120]], np.float32))
    assert len(near) == 1
    assert np.abs((near.boxes[0, :2] + near.boxes[0, 2:]) / 2 - [365, 125]).max() < 20  # in frame pixels
    assert len(elsewhere) == 0


@pytest.mark.slow
def test_int8_scans_find_the_faces_the_float_model_finds(tmp_path) -> None:
    """centerface-int8 scans with the int8 model and looks in regions with the float one; on many faces of different
    sizes, its scans find the float scans' faces at nearly the same places (recall.py measures the real bar)."""
    from fer_batch.analysis.track import iou_matrix

    path = tmp_path / "c.mp4"
    layout = [(20 + 110 * k, 30 + 60 * (k % 3), 40 + 12 * k) for k in range(6)]  # faces of 40 to 100 px
    write_clip(path, n=2, size=(720, 300), faces=lambda i: layout)
    float_opts, int8_opts = Options(), Options.of(detector="centerface-int8")
    frames = Frames.from_decoded(list(FrameReader(path, probe(path), float_opts)))
    ref, got = make_detector(float_opts)(frames), make_detector(int8_opts)(frames)
    assert len(ref) >= 10  # most pasted faces found by the float model: there is something to compare
    best = iou_matrix(ref.boxes, got.boxes).max(axis=1)
    assert (best >= 0.5).mean() >= 0.9 and np.median(best) > 0.85
    int8 = make_detector(int8_opts)
    assert int8.id == "centerface-int8" and int8.sha256 != make_detector(float_opts).sha256  # the tables can tell
    assert int8.session is not int8.region_session  # regions: the float model
