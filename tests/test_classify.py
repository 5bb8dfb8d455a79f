"""Emotion classification: one row of probabilities per face, taken from that face's own frame and place."""

from __future__ import annotations

import numpy as np
from conftest import astronaut_face

from fer_batch.analysis.classify import Classifier
from fer_batch.options import Options
from fer_batch.types import Faces, Frames


def two_frames() -> Frames:
    """Frame 10 shows a face at (20, 20, 120, 120); frame 11 is the same picture mirrored left-right."""
    img = np.full((160, 240), 90, np.uint8)
    face = astronaut_face(100)
    img[20:120, 20:120] = (0.299 * face[..., 0] + 0.587 * face[..., 1] + 0.114 * face[..., 2]).astype(np.uint8)
    gray = [img, img[:, ::-1].copy()]
    return Frames(index=np.array([10, 11]), time_s=np.array([0.0, 0.1]), gray=gray, small=[None, None],
                  bgr=[np.repeat(g[..., None], 3, axis=2) for g in gray])  # fmt: skip


def faces_at(frames: list[int], boxes: list[list[float]]) -> Faces:
    n = len(frames)
    return Faces(frame=np.array(frames, np.int64), boxes=np.array(boxes, np.float32), scores=np.ones(n, np.float32),
                 landmarks=np.zeros((n, 5, 2), np.float32), track_id=np.arange(n))  # fmt: skip


def test_one_row_of_probabilities_per_face() -> None:
    clf = Classifier(Options.of(crop_margin=0.1))
    out = clf(two_frames(), faces_at([10, 11, 10], [[20, 20, 120, 120], [120, 20, 220, 120], [150, 30, 230, 110]]))
    assert out.probs is not None and out.probs.shape == (3, len(clf.labels))
    np.testing.assert_allclose(out.probs.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(out.track_id, [0, 1, 2])  # everything but probs passes through


def test_each_face_is_cropped_from_its_own_frame() -> None:
    """The same box on the two frames shows the face on one and background on the other: different scores;
    the face and its mirror image, each from its own frame, score alike."""
    clf = Classifier(Options.of(crop_margin=0.1))
    frames = two_frames()
    same_box = clf(frames, faces_at([10, 11], [[20, 20, 120, 120], [20, 20, 120, 120]])).probs
    mirrored = clf(frames, faces_at([10, 11], [[20, 20, 120, 120], [120, 20, 220, 120]])).probs
    assert same_box is not None and mirrored is not None
    assert np.abs(same_box[0] - same_box[1]).max() > 0.05
    assert np.abs(mirrored[0] - mirrored[1]).max() < np.abs(same_box[0] - same_box[1]).max()


def test_order_of_faces_is_kept() -> None:
    clf = Classifier(Options.of(crop_margin=0.1))
    frames = two_frames()
    faces = faces_at([10, 11], [[20, 20, 120, 120], [20, 20, 120, 120]])
    forward = clf(frames, faces).probs
    backward = clf(frames, faces.take(np.array([1, 0]))).probs
    assert forward is not None and backward is not None
    np.testing.assert_allclose(backward, forward[::-1], atol=1e-6)


def test_boxes_at_the_edge_and_no_faces() -> None:
    clf = Classifier(Options.of(crop_margin=0.1))
    frames = two_frames()
    edge = clf(frames, faces_at([10], [[200, 120, 240, 160]])).probs  # the margin would leave the frame
    assert edge is not None and np.isfinite(edge).all()
    none = clf(frames, Faces()).probs
    assert none is not None and none.shape == (0, len(clf.labels))


def test_network_input_is_the_manifest_transform_in_the_models_layout() -> None:
    """The one-pass input (``Member.network_input``) holds exactly the float32 values of ``crops * a + b``,
    transposed to the layout the model reads, for gray and RGB models and for a channel-reversed view."""
    clf = Classifier(Options())
    rng = np.random.default_rng(0)
    for member in clf.members:
        c = 1 if member.color == "gray" else 3
        crops = rng.integers(0, 256, (5, member.height, member.width, c), dtype=np.uint8)
        views = [crops[..., 0]] if c == 1 else [crops, crops[..., ::-1]]
        for view in views:
            x = view.astype(np.float32).reshape(5, member.height, member.width, c) * member.a + member.b
            want = np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if member.layout == "NCHW" else x
            got = member.network_input(view)
            assert got.dtype == np.float32 and got.flags.c_contiguous
            np.testing.assert_array_equal(got, want)
        member.layout = "NHWC"  # a custom model may take channels last
        want = crops.astype(np.float32) * member.a + member.b
        np.testing.assert_array_equal(member.network_input(crops if c == 3 else crops[..., 0]), want)
