"""Tracking: ids stay with their face through misses and crossings, carried boxes, smoothing beside raw values."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import write_clip

import fer_batch
from fer_batch.analysis.track import Smoother, Tracker, linear_assignment
from fer_batch.types import Faces


def frame_faces(index: int, boxes: list[tuple[float, float, float, float]]) -> Faces:
    """One frame's detections from xyxy boxes (listed in the given order)."""
    n = len(boxes)
    return Faces(
        frame=np.full(n, index, dtype=np.int64),
        boxes=np.array(boxes, dtype=np.float32).reshape(n, 4),
        scores=np.linspace(0.9, 0.8, n, dtype=np.float32),
        landmarks=np.zeros((n, 5, 2), dtype=np.float32),
        track_id=np.full(n, -1, dtype=np.int64),
    )


def square(cx: float, cy: float, side: float = 40) -> tuple[float, float, float, float]:
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


def run(tracker: Tracker, frames: list[list[tuple[float, float, float, float]]]) -> list[list[int]]:
    return [tracker.update(frame_faces(i, boxes)).track_id.tolist() for i, boxes in enumerate(frames)]


# --- assignment --------------------------------------------------------------------------------------------------


def test_linear_assignment_is_optimal() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = (int(k) for k in rng.integers(1, 6, 2))
        cost = rng.random((n, m))
        cost[rng.random((n, m)) < 0.3] = 1e6
        pairs = linear_assignment(cost)
        k = min(n, m)
        assert len({i for i, _ in pairs}) == len({j for _, j in pairs}) == len(pairs) == k
        best = min(
            sum(cost[i, j] for i, j in zip(rows, cols, strict=True))
            for rows in itertools.combinations(range(n), k)
            for cols in itertools.permutations(range(m), k)
        )
        assert sum(cost[i, j] for i, j in pairs) == pytest.approx(best)


def test_linear_assignment_beats_greedy() -> None:
    # greedy would take the 0.1 and then be forced into 10; the optimum pays 0.2 + 0.2
    cost = np.array([[0.1, 0.2], [0.2, 10.0]])
    assert linear_assignment(cost) == [(0, 1), (1, 0)]
    assert linear_assignment(np.zeros((0, 3))) == []


# --- synthetic detections ----------------------------------------------------------------------------------------


def test_ids_start_at_zero_and_stay_while_visible() -> None:
    frames = [[square(100 + 5 * i, 100), square(300 - 4 * i, 200)] for i in range(10)]
    ids = run(Tracker(), frames)
    assert ids == [[0, 1]] * 10
    # a new tracker (a new video) counts from 0 again
    assert run(Tracker(), frames[:1]) == [[0, 1]]


@pytest.mark.parametrize("dy", [0, 10, 25])
def test_crossing_faces_keep_their_ids(dy: float) -> None:
    """Two faces walk through each other (same row or a little apart); detections come in varying order."""
    frames = []
    for i in range(30):
        a, b = square(50 + 8 * i, 100), square(290 - 8 * i, 100 + dy)
        frames.append([a, b] if i % 2 == 0 else [b, a])
    tracker = Tracker()
    got = [tracker.update(frame_faces(i, boxes)) for i, boxes in enumerate(frames)]
    for i, faces in enumerate(got):
        cx = (faces.boxes[:, 0] + faces.boxes[:, 2]) / 2
        a_id = faces.track_id[np.argmin(np.abs(cx - (50 + 8 * i)))]
        b_id = faces.track_id[np.argmin(np.abs(cx - (290 - 8 * i)))]
        if i != 15:  # at frame 15 the two boxes coincide
            assert (a_id, b_id) == (0, 1), f"frame {i}"


def test_crossing_with_the_hidden_face_missed() -> None:
    """While they overlap, only the front face is detected; the hidden one comes back with its own id."""
    frames = []
    for i in range(30):
        a, b = square(50 + 8 * i, 100), square(290 - 8 * i, 105)
        frames.append([b] if 13 <= i <= 17 else [a, b])
    tracker = Tracker()
    for i, boxes in enumerate(frames):
        ids = tracker.update(frame_faces(i, boxes)).track_id.tolist()
        assert ids == ([1] if len(boxes) == 1 else [0, 1]), f"frame {i}"


@pytest.mark.parametrize("misses", [1, 2])
def test_missed_detections_keep_the_id(misses: int) -> None:
    frames = [[square(100 + 6 * i, 100)] if not 5 <= i < 5 + misses else [] for i in range(12)]
    ids = run(Tracker(), frames)
    assert {i for frame in ids for i in frame} == {0}


def test_face_leaving_and_new_face_get_new_ids() -> None:
    tracker = Tracker(max_missed=2)
    frames = [[square(100 + 5 * i, 100)] for i in range(5)]  # face 0
    frames += [[]] * 4  # it leaves; after max_missed rounds its track is dropped
    frames += [[square(300, 200)] for _ in range(3)]  # someone else elsewhere
    frames += [[square(300, 200), square(120, 100)] for _ in range(3)]  # and another one where 0 used to be
    ids = run(tracker, frames)
    assert ids[:5] == [[0]] * 5
    assert ids[5:9] == [[]] * 4
    assert ids[9:12] == [[1]] * 3
    assert ids[12:] == [[1, 2]] * 3


def test_fast_motion_without_overlap_keeps_the_id() -> None:
    """30 px per frame with 40 px boxes: consecutive boxes barely overlap (IoU 0.14), the distance gate joins them."""
    frames = [[square(50 + 30 * i, 100)] for i in range(8)]
    assert run(Tracker(), frames) == [[0]] * 8


def test_far_jump_is_a_new_face() -> None:
    ids = run(Tracker(), [[square(50, 50)], [square(50, 50)], [square(400, 300)]])
    assert ids == [[0], [0], [1]]


def test_predict_carries_boxes_along_the_velocity() -> None:
    tracker = Tracker()
    tracker.update(frame_faces(0, [square(100, 100), square(200, 100, 60)]))
    tracker.update(frame_faces(1, [square(110, 104), square(195, 100, 60)]))
    carried = tracker.predict(2, 640, 480)
    assert carried.frame.tolist() == [2, 2]
    assert carried.track_id.tolist() == [1, 0]  # largest first, like the detector
    np.testing.assert_allclose(carried.boxes[1], square(120, 108), atol=1e-4)
    np.testing.assert_allclose(carried.boxes[0], square(190, 100, 60), atol=1e-4)
    assert carried.scores.tolist() == pytest.approx([0.8, 0.9])
    # the next detection round accounts for the carried frames (gap of 2)
    faces = tracker.update(frame_faces(3, [square(130, 112), square(185, 100, 60)]))
    assert faces.track_id.tolist() == [0, 1]


def test_predict_clips_to_the_frame_and_skips_lost_tracks() -> None:
    tracker = Tracker()
    tracker.update(frame_faces(0, [square(30, 100), square(300, 300)]))
    tracker.update(frame_faces(1, [square(10, 100)]))  # moving out to the left; the other one is missed
    carried = tracker.predict(2, 320, 240)
    assert carried.track_id.tolist() == [0]  # the missed track is not carried
    assert carried.boxes[0, 0] == 0 and carried.boxes[0, 2] == pytest.approx(10)
    assert len(tracker.predict(3, 320, 240)) == 0  # moved out of the frame entirely


def test_smoother_is_an_ema_per_track_and_leaves_raw_alone() -> None:
    probs = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.5, 0.5]], dtype=np.float32)
    faces = Faces(
        frame=np.array([0, 0, 1, 1]),
        boxes=np.zeros((4, 4), np.float32),
        scores=np.ones(4, np.float32),
        landmarks=np.zeros((4, 5, 2), np.float32),
        track_id=np.array([0, 1, 0, -1]),
        probs=probs,
    )
    raw = probs.copy()
    out = Smoother(0.25)(faces)
    np.testing.assert_array_equal(faces.probs, raw)
    np.testing.assert_allclose(out, [[1, 0], [0, 1], [0.75, 0.25], [0.5, 0.5]])
    with pytest.raises(ValueError):
        Smoother(0.0)


# --- through the pipeline ----------------------------------------------------------------------------------------

N_FRAMES = 36


def _person_a(i: int) -> tuple[int, int, int]:
    return (20 + 10 * i, 40, 90)


def _person_b(i: int) -> tuple[int, int, int]:
    return (370 - 10 * i, 60, 90)  # 20 px lower: the two squares overlap heavily as they pass


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two astronaut faces walking towards each other and past (PyAV-made, 480x270, 10 fps)."""
    path = tmp_path_factory.mktemp("track") / "two.mp4"
    write_clip(path, size=(480, 270), n=N_FRAMES, fps=10, faces=lambda i: [_person_a(i), _person_b(i)])
    return path


@pytest.fixture(scope="module")
def analysed(two_faces: Path) -> Callable[..., pd.DataFrame]:
    """``analysed(**options)``: the clip's table, computed once per set of options in this module."""
    cache: dict[tuple[tuple[str, object], ...], pd.DataFrame] = {}

    def get(**options: object) -> pd.DataFrame:
        key = tuple(sorted(options.items()))
        if key not in cache:
            cache[key] = fer_batch.analyze_video(two_faces, **options)
        return cache[key].copy()

    return get


def _ids_of(df: pd.DataFrame, person: Callable[[int], tuple[int, int, int]]) -> list[int]:
    """Track id of the row nearest the person's true face centre in each frame where it is detected."""
    ids = []
    faces = df[df["face"].notna()]
    for i in range(N_FRAMES):
        x, y, side = person(i)
        rows = faces[faces["frame"] == i]
        if not len(rows):
            continue
        d = np.hypot(rows["x"] + rows["w"] / 2 - (x + side / 2), rows["y"] + rows["h"] / 2 - (y + side / 2))
        if d.min() < 0.25 * side:  # else: hidden behind the other face in this frame
            ids.append(int(rows["track_id"].to_numpy()[int(np.argmin(d.to_numpy()))]))
    return ids


@pytest.mark.slow
@pytest.mark.parametrize("detect_every", [1, 3])
def test_two_people_keep_their_ids(analysed: Callable[..., pd.DataFrame], detect_every: int) -> None:
    df = analysed(detect_every=detect_every)
    assert df["frame"].nunique() == N_FRAMES
    dominant = []
    for person in (_person_a, _person_b):
        ids = _ids_of(df, person)
        assert len(ids) >= 0.8 * N_FRAMES  # the clip really shows the person most of the time
        top = pd.Series(ids).value_counts()
        assert top.iloc[0] >= 0.9 * len(ids), top.to_dict()
        dominant.append(int(top.index[0]))
    assert sorted(dominant) == [0, 1]


@pytest.mark.slow
def test_detect_every_carries_boxes_on_every_analysed_frame(two_faces: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fer_batch.cli import app

    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["analyze", str(two_faces), "-o", str(out), "--detect-every", "3", "-q"])
    assert res.exit_code == 0, res.output
    df = fer_batch.load(out)
    assert sorted(df["frame"].unique()) == list(range(N_FRAMES))
    # frames 0, 3, 6, ... are detected; the two in between carry each track's box along its velocity
    carried = df[(df["frame"] % 3 != 0) & df["face"].notna()]
    assert carried["frame"].nunique() >= 0.6 * N_FRAMES * 2 / 3
    for _, g in df[df["face"].notna()].groupby("track_id"):
        g = g.set_index("frame")
        for f in g.index:
            if f % 3 == 1 and f - 1 in g.index and f + 1 in g.index:
                # score carried from the detection, box centre moved by a constant step
                assert g.loc[f, "det_score"] == g.loc[f - 1, "det_score"] == g.loc[f + 1, "det_score"]
                cx, cy = g["x"] + g["w"] / 2, g["y"] + g["h"] / 2
                step1 = np.array([cx[f] - cx[f - 1], cy[f] - cy[f - 1]])
                step2 = np.array([cx[f + 1] - cx[f], cy[f + 1] - cy[f]])
                if f - 1 > 0:  # the first detection has no velocity yet
                    np.testing.assert_allclose(step1, step2, atol=0.05)
    # and the carried rows are classified like any other
    assert df.loc[carried.index, "happy"].notna().all()


@pytest.mark.slow
def test_smoothing_leaves_raw_columns_identical(analysed: Callable[..., pd.DataFrame]) -> None:
    plain, smooth = analysed(detect_every=1), analysed(smooth=0.3)
    labels = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    pd.testing.assert_frame_equal(smooth[plain.columns], plain)
    assert [c for c in smooth.columns if c not in plain.columns] == [f"{k}_smooth" for k in labels]
    # the smoothed columns are the EMA of the raw ones along each track
    for _, g in smooth[smooth["face"].notna()].groupby("track_id"):
        raw, sm = g[labels].to_numpy(np.float64), g[[f"{k}_smooth" for k in labels]].to_numpy(np.float64)
        expect = raw.copy()
        for i in range(1, len(raw)):
            expect[i] = 0.3 * raw[i] + 0.7 * expect[i - 1]
        np.testing.assert_allclose(sm, expect, atol=1e-5)
    assert not np.allclose(smooth["happy"].dropna(), smooth["happy_smooth"].dropna())


@pytest.mark.slow
def test_two_real_people_crossing_keep_their_ids(shared_media: Path, tmp_path: Path) -> None:
    """Two real heads (from the two-person photo) walk through each other on one line; the right one passes in
    front, hiding the other for a few frames. Each keeps its id on >= 90% of the frames where it is visible."""
    import cv2

    from fer_batch.analysis.track import iou_matrix

    img = cv2.cvtColor(cv2.imread(str(shared_media / "photos" / "s_l.jpg")), cv2.COLOR_BGR2RGB)
    heads = [img[30:200, 240:360], img[50:200, 115:230]]
    n = 40

    def rect(k: int, i: int) -> np.ndarray:
        x, y = (20 + 12 * i, 60) if k == 0 else (500 - 12 * i, 60)
        h, w = heads[k].shape[:2]
        return np.array([[x, y, x + w, y + h]], np.float32)

    background = np.random.default_rng(0).integers(60, 200, (360, 640, 3)).astype(np.uint8)
    frames = []
    for i in range(n):
        f = background.copy()
        for k in (0, 1):  # head 1 pasted last: in front
            x1, y1, x2, y2 = rect(k, i)[0].astype(int)
            f[y1:y2, x1:x2] = heads[k]
        frames.append(f)
    path = tmp_path / "crossing.mp4"
    _write_rgb(path, frames, fps=15)

    faces = fer_batch.analyze_video(path).dropna(subset=["face"])
    for k in (0, 1):
        ids = []
        for i in range(n):
            rows = faces[faces["frame"] == i]
            hidden = k == 0 and iou_matrix(rect(0, i), rect(1, i))[0, 0] > 0.2
            if hidden or not len(rows):
                continue
            boxes = rows[["x", "y", "w", "h"]].to_numpy(np.float32, copy=True)
            boxes[:, 2:] += boxes[:, :2]
            overlap = iou_matrix(rect(k, i), boxes)[0]
            if overlap.max() > 0.1:
                ids.append(int(rows["track_id"].to_numpy()[int(np.argmax(overlap))]))
        assert len(ids) >= 0.8 * n
        top = pd.Series(ids).value_counts()
        assert top.iloc[0] >= 0.9 * len(ids), (k, top.to_dict())
        assert int(top.index[0]) == k


def _write_rgb(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import fractions

    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, fractions.Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
