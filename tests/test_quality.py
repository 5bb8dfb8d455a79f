"""The trust signals of a row: pose from landmarks, sharpness, calibrated quality, and --min-quality."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import astronaut_face, one_face

import fer_batch
from fer_batch.analysis import quality
from fer_batch.options import Options
from fer_batch.outputs.table import SIGNAL_COLUMNS, window_table
from fer_batch.types import Faces

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# a frontal five-point face (image pixels): eyes, nose tip at NOSE_HEIGHT between eyes and mouth, mouth corners
FRONTAL = np.array([[40, 50], [80, 50], [60, 50 + 40 * quality.NOSE_HEIGHT], [45, 90], [75, 90]], np.float32)


def turned(points: np.ndarray, degrees: float) -> np.ndarray:
    """``points`` rotated in the image plane about their centre (clockwise on screen for positive degrees)."""
    a = math.radians(degrees)
    c = points.mean(axis=0)
    r = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]], np.float32)
    return (points - c) @ r.T + c


@pytest.mark.parametrize("roll", [-40.0, -10.0, 0.0, 15.0, 60.0])
def test_roll_is_the_eye_lines_angle_and_frontal_faces_have_no_yaw_or_pitch(roll: float) -> None:
    yaw, pitch, got = quality.pose(turned(FRONTAL, roll)[None])[0]
    assert got == pytest.approx(roll, abs=1e-3)
    assert abs(yaw) < 1e-3 and abs(pitch) < 1e-3  # an in-plane turn changes neither


def test_yaw_and_pitch_signs_follow_the_nose() -> None:
    """Nose towards the image's right: yaw > 0; nose up: pitch > 0; mirrored face: yaw negated."""
    right, up = FRONTAL.copy(), FRONTAL.copy()
    right[2, 0] += 8
    up[2, 1] -= 6
    (yaw_r, _, _), (_, pitch_u, _) = quality.pose(np.stack([right, up]))
    assert yaw_r > 10 and pitch_u > 10
    mirrored = right.copy()
    mirrored[:, 0] = 120 - mirrored[:, 0]
    mirrored = mirrored[[1, 0, 2, 4, 3]]  # left/right as seen in the image swap in a mirror
    assert quality.pose(mirrored[None])[0, 0] == pytest.approx(-yaw_r, abs=1e-3)


def test_no_landmarks_no_pose() -> None:
    assert np.isnan(quality.pose(np.full((2, 5, 2), np.nan, np.float32))).all()


def test_sharpness_falls_on_a_blurred_face_and_does_not_depend_on_its_size() -> None:
    face = cv2.cvtColor(astronaut_face(256), cv2.COLOR_RGB2GRAY)
    box = np.array([0, 0, 256, 256], np.float32)
    sharp = quality.look_one(face, box)[0]
    blurred = quality.look_one(cv2.GaussianBlur(face, (0, 0), 4), box)[0]
    small = cv2.resize(face, (128, 128), interpolation=cv2.INTER_AREA)
    assert blurred < sharp / 4
    assert quality.look_one(small, box / 2)[0] == pytest.approx(sharp, rel=0.35)  # the same face at half the size


def test_table_has_the_signal_columns_null_where_there_is_no_face_or_landmark() -> None:
    lms = np.stack([FRONTAL, np.full((5, 2), np.nan, np.float32)])
    faces = Faces(frame=np.array([0, 2]), boxes=np.array([[30, 40, 90, 100], [0, 0, 50, 50]], np.float32),
                  scores=np.ones(2, np.float32), landmarks=lms, track_id=np.array([0, 1]),
                  probs=np.full((2, 7), 1 / 7, np.float32), pose=quality.pose(lms),
                  sharpness=np.array([12.0, 3.0], np.float32), quality=np.array([0.7, 0.2], np.float32))  # fmt: skip
    df = window_table("v", np.array([0, 1, 2]), np.array([0.0, 0.1, 0.2]), faces, LABELS).to_pandas()
    assert list(df.columns[-len(SIGNAL_COLUMNS) :]) == list(SIGNAL_COLUMNS)
    assert df[list(SIGNAL_COLUMNS)].dtypes.eq("float32").all()
    assert df.loc[1, list(SIGNAL_COLUMNS)].isna().all()  # the frame without a face
    assert df.loc[0, "eye_right_x"] == 80 and df.loc[0, "mouth_left_y"] == 90 and df.loc[0, "quality"] == 0.7
    assert df.loc[2, ["yaw", "pitch", "roll", "eye_left_x", "nose_y"]].isna().all()  # no landmarks
    assert df.loc[2, "quality"] == pytest.approx(0.2) and df.loc[2, "sharpness"] == 3.0


def test_shipped_calibration_is_for_the_default_ensemble() -> None:
    cal = quality.shipped()
    assert cal is not None and cal.classifier == Options().classification.model and cal.tta is None
    assert quality.calibration_for("fer2013-minixception", None) is None  # others fall back to the top probability
    assert quality.calibration_for(cal.classifier, "flip") is None


def test_video_rows_carry_landmarks_pose_sharpness_and_quality(clip) -> None:
    path, _ = clip(size=(320, 240), n=6, faces=one_face)
    df = fer_batch.analyze_video(path)
    faces = df[df["face"].notna()]
    assert len(faces) == 6
    assert faces["quality"].between(0, 1).all() and (faces["sharpness"] > 0).all()
    # landmarks in displayed-frame pixels, inside the box, left/right as seen in the image
    assert (faces["eye_left_x"] < faces["eye_right_x"]).all() and (faces["mouth_left_x"] < faces["mouth_right_x"]).all()
    for p in ("eye_left", "nose", "mouth_right"):
        assert faces[f"{p}_x"].between(faces["x"], faces["x"] + faces["w"]).all()
        assert faces[f"{p}_y"].between(faces["y"], faces["y"] + faces["h"]).all()
    assert faces[["yaw", "pitch", "roll"]].abs().max().max() < 30  # a frontal photo


def test_blurred_copy_of_a_clip_scores_lower_sharpness_and_quality(tmp_path) -> None:
    """The same face pasted sharp and blurred: sharpness and quality both fall."""
    img = np.full((240, 320, 3), 110, np.uint8)
    img[60:180, 100:220] = astronaut_face(120)[..., ::-1]
    cv2.imwrite(str(tmp_path / "sharp.png"), img)
    cv2.imwrite(str(tmp_path / "blurred.png"), cv2.GaussianBlur(img, (0, 0), 3))
    sharp, blurred = (fer_batch.analyze_video(tmp_path / f"{n}.png").iloc[0] for n in ("sharp", "blurred"))
    assert blurred["sharpness"] < sharp["sharpness"] / 3
    assert blurred["quality"] < sharp["quality"]


@pytest.mark.parametrize("detector", ["none", "haar"])
def test_detectors_without_landmarks_give_quality_but_no_landmarks_or_pose(tmp_path, detector: str) -> None:
    img = np.full((240, 320, 3), 110, np.uint8)
    img[40:200, 80:240] = astronaut_face(160)[..., ::-1]
    cv2.imwrite(str(tmp_path / "face.png"), img)
    row = fer_batch.analyze_video(tmp_path / "face.png", detector=detector).iloc[0]
    assert 0 <= row["quality"] <= 1 and row["sharpness"] > 0
    assert pd.isna(row[["yaw", "pitch", "roll", "eye_left_x", "mouth_right_y"]]).all()


def test_min_quality_leaves_faces_out_of_tables_and_load(clip, tmp_path) -> None:
    path, _ = clip(size=(320, 240), n=4, faces=one_face)
    all_rows = fer_batch.analyze_video(path)
    q = float(all_rows["quality"].median())
    above = int((all_rows["quality"] >= q).sum())
    kept = fer_batch.analyze_video(path, min_quality=q)
    assert len(kept) == len(all_rows)  # one row per analysed frame stays: a frame without a kept face is null
    assert kept["face"].notna().sum() == above and kept["quality"].dropna().ge(q).all()
    fer_batch.analyze_many([path], tmp_path / "out")
    assert fer_batch.load(tmp_path / "out")["face"].notna().sum() == 4
    assert fer_batch.load(tmp_path / "out", min_quality=q)["face"].notna().sum() == above
    with pytest.raises(ValueError, match="min-quality"):
        fer_batch.load(tmp_path / "out", min_quality=2)


def _timeline(q: float) -> np.ndarray:
    """The report's timeline of a track whose rows all have quality ``q`` (a happy face), decoded to BGR."""
    import base64

    from fer_batch.outputs.report.parts import timeline_png
    from fer_batch.outputs.summary import label_colors

    times = pd.Series(np.arange(10) / 10, index=np.arange(10))
    rows = pd.DataFrame({lb: np.full(10, 0.9 if lb == "happy" else 0.0167) for lb in LABELS}, index=times.index)
    rows["quality"] = q
    if np.isnan(q):  # no rows at all: the axes alone
        rows[LABELS] = np.nan
    uri = timeline_png(times, rows, LABELS, label_colors(LABELS), False, (0.0, 0.9))
    return cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)


@pytest.mark.slow
def test_report_draws_rows_below_the_reliable_quality_fainter() -> None:
    strong, faint, empty = (_timeline(q) for q in (quality.RELIABLE + 0.1, quality.RELIABLE - 0.1, np.nan))
    dark = lambda img: int((img.astype(int).sum(axis=2) < 450).sum())  # noqa: E731 - saturated line pixels
    pale = lambda img: int((img.astype(int).sum(axis=2) < 740).sum())  # noqa: E731 - anything not white
    assert dark(faint) - dark(empty) < (dark(strong) - dark(empty)) / 5  # below the threshold: no strong line
    assert pale(faint) - pale(empty) > (pale(strong) - pale(empty)) / 2  # but a pale one


def test_report_says_per_track_how_much_is_reliable_and_the_face_size(clip, tmp_path) -> None:
    path, _ = clip(size=(320, 240), n=6, faces=one_face)
    fer_batch.analyze_many([path], tmp_path / "out")
    text = fer_batch.write_report(tmp_path / "out").read_text()
    import re

    share = re.search(r"median face (\d+) px; (\d+)% of its frames reliable \(quality ≥ 0.5", text)
    assert share is not None and 30 <= int(share[1]) <= 90  # the face inside the 90-px pasted photo
    q = fer_batch.load(tmp_path / "out")["quality"]
    assert int(share[2]) == round(100 * (q >= quality.RELIABLE).mean())


def test_annotated_face_below_the_reliable_quality_is_dashed_and_unlabelled() -> None:
    from fer_batch.outputs.draw import Painter

    painter = Painter(LABELS, 320, 240)

    def drawn(q: float) -> np.ndarray:
        img = np.zeros((240, 320, 3), np.uint8)
        faces = Faces(frame=np.zeros(1, np.int64), boxes=np.array([[100, 80, 200, 180]], np.float32),
                      scores=np.ones(1, np.float32), landmarks=np.full((1, 5, 2), np.nan, np.float32),
                      track_id=np.zeros(1, np.int64), probs=np.eye(7, dtype=np.float32)[[3]],
                      quality=np.array([q], np.float32))  # fmt: skip
        painter.draw(img, faces)
        return img

    solid, dashed = drawn(0.9), drawn(0.1)
    r = painter.ring
    edge = lambda img: img[80 - r : 79, 100:200].max(axis=(0, 2)) > 0  # noqa: E731 - the outline above the box
    assert edge(solid).all() and 0.3 < edge(dashed).mean() < 0.8  # gaps in the dashed line
    outside = np.ones((240, 320), bool)
    outside[80 - r : 180 + r, 100 - r : 200 + r] = False  # the box and its outline
    assert dashed[outside].max() == 0  # nothing but the outline: no label, no chart
    assert solid[outside].max() > 0


def test_metadata_says_what_quality_means(clip, tmp_path) -> None:
    from fer_batch.outputs.metadata import read_table_meta

    path, _ = clip(size=(320, 240), n=2, faces=one_face)
    fer_batch.analyze_many([path], tmp_path / "a")
    fer_batch.analyze_many([path], tmp_path / "b", model="fer2013-minixception")
    a, b = (read_table_meta(tmp_path / d / "clip.parquet") for d in ("a", "b"))
    assert a.model is not None and a.model.quality is not None and a.model.quality["calibrated"] is True
    assert b.model is not None and b.model.quality is not None and b.model.quality["calibrated"] is False
    df = fer_batch.load(tmp_path / "b")  # uncalibrated: the top probability
    np.testing.assert_allclose(df["quality"], df[LABELS].max(axis=1), atol=1e-6)


def test_resume_redoes_a_table_written_before_the_quality_columns(clip, tmp_path) -> None:
    import pyarrow.parquet as pq

    path, _ = clip(size=(320, 240), n=2, faces=one_face)
    out = tmp_path / "out"
    fer_batch.analyze_many([path], out)
    table = out / "clip.parquet"
    old = pq.read_table(table)
    kept = pq.read_metadata(table).metadata  # the table's own record (source, options, models): an older version's
    pq.write_table(old.drop_columns(list(SIGNAL_COLUMNS)).replace_schema_metadata(kept), table)
    mtime = table.stat().st_mtime_ns
    assert fer_batch.analyze_many([path], out)[0].status == "ok"  # redone, not "skipped"
    assert table.stat().st_mtime_ns != mtime and "quality" in pq.read_schema(table).names  # in place
    assert sorted(p.name for p in out.glob("*.parquet")) == ["clip.parquet", "manifest.parquet"]
    assert fer_batch.analyze_many([path], out)[0].status == "skipped"  # and now complete


def test_cli_min_quality(clip, tmp_path) -> None:
    from typer.testing import CliRunner

    from fer_batch.cli import app

    path, _ = clip(size=(320, 240), n=4, faces=one_face)
    q = math.floor(float(fer_batch.analyze_video(path)["quality"].max()) * 1e6) / 1e6  # the best face row reaches it
    r = CliRunner().invoke(app, ["analyze", str(path), "--out", str(tmp_path / "o"), "--min-quality", str(q), "-q"])
    assert r.exit_code == 0, r.output
    df = fer_batch.load(tmp_path / "o")
    assert len(df) == 4 and 1 <= df["face"].notna().sum() < 4  # every frame keeps its row; faces below Q are null
    bad = CliRunner().invoke(app, ["analyze", str(path), "--out", str(tmp_path / "p"), "--min-quality", "1.5"])
    assert bad.exit_code == 2 and "--min-quality" in bad.output
