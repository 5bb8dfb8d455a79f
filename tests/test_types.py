"""The contracts between stages: Frames and Faces select, reorder and group without losing rows."""

from __future__ import annotations

import numpy as np

from fer_batch.types import Faces, Frames


def faces(frames: list[int]) -> Faces:
    n = len(frames)
    return Faces(
        frame=np.array(frames, np.int64),
        boxes=np.arange(4 * n, dtype=np.float32).reshape(n, 4),
        scores=np.linspace(0.5, 1.0, n).astype(np.float32),
        landmarks=np.zeros((n, 5, 2), np.float32),
        track_id=np.arange(n, dtype=np.int64),
        probs=np.eye(n, 3, dtype=np.float32),
    )


def test_by_frame_groups_like_of_frame_whatever_the_order() -> None:
    f = faces([7, 3, 7, 9, 3, 7])
    grouped = f.by_frame()
    assert sorted(grouped) == [3, 7, 9]
    for index, part in grouped.items():
        expected = f.of_frame(index)
        np.testing.assert_array_equal(part.track_id, expected.track_id)  # order within a frame kept
        np.testing.assert_array_equal(part.boxes, expected.boxes)
        assert part.probs is not None and expected.probs is not None
        np.testing.assert_array_equal(part.probs, expected.probs)
    assert Faces().by_frame() == {}


def test_concat_take_and_replace() -> None:
    a, b = faces([1, 1]), faces([2])
    both = Faces.concat([a, Faces(), b])
    assert both.frame.tolist() == [1, 1, 2] and both.probs is not None and both.probs.shape == (3, 3)
    assert Faces.concat([a, b.replace(probs=None)]).probs is None  # probabilities only where every part has them
    assert both.take(np.array([2, 0])).frame.tolist() == [2, 1]
    assert len(Faces.concat([])) == 0


def test_frames_subset_and_size() -> None:
    gray = [np.full((4, 6), k, np.uint8) for k in range(3)]
    frames = Frames(index=np.array([5, 6, 7]), time_s=np.array([0.5, 0.6, 0.7]), gray=gray, small=[None] * 3)
    sub = frames.subset(np.array([2, 0]))
    assert sub.index.tolist() == [7, 5] and [int(g[0, 0]) for g in sub.gray] == [2, 0]
    assert len(sub) == 2 and frames.size == (6, 4)


def test_the_detector_image_is_made_from_the_planes_once() -> None:
    y = np.full((64, 96), 120, np.uint8)
    u = v = np.full((32, 48), 128, np.uint8)
    frames = Frames(index=np.array([0]), time_s=np.array([0.0]), gray=[y], small=[None], yuv=[(y, u, v)])
    small = frames.small_image(0, (32, 32))
    assert small.shape == (32, 32, 3) and frames.small[0] is small
    assert frames.small_image(0, (32, 32)) is small
