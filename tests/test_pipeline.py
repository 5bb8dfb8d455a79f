"""The per-video pipeline: complete time line, batch-size invariance, faces found where they are."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import one_face

import fer_batch
from fer_batch.options import Options
from fer_batch.outputs.metadata import read_metadata

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def test_every_decoded_frame_has_a_row_with_its_pts(clip) -> None:
    times = [0.0, 0.03, 0.2, 0.21, 0.6, 0.9, 1.4]
    path, pts = clip(times=times, faces=one_face)
    df = fer_batch.analyze_video(path)
    assert df["frame"].tolist() == list(range(len(times)))
    assert np.allclose(df["time_s"], pts, atol=1e-6)
    assert df["face"].tolist() == [0] * len(times)
    probs = df[LABELS].to_numpy(dtype=np.float64)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    assert (df["emotion"].astype(str) == np.array(LABELS)[probs.argmax(axis=1)]).all()


def test_no_face_clip_keeps_one_null_row_per_frame(clip) -> None:
    path, _ = clip(n=12)
    df = fer_batch.analyze_video(path)
    assert df["frame"].tolist() == list(range(12))
    assert df["face"].isna().all() and df["x"].isna().all() and df["emotion"].isna().all()
    assert df["happy"].isna().all()


def test_face_appears_and_boxes_match_where_it_was_pasted(clip) -> None:
    path, _ = clip(n=20, faces=lambda i: [(150, 60, 100)] if i >= 10 else [])
    df = fer_batch.analyze_video(path)
    assert df["frame"].tolist() == list(range(20))
    assert df["face"].iloc[:10].isna().all()
    late = df.iloc[10:]
    assert late["face"].notna().all()
    cx, cy = late["x"] + late["w"] / 2, late["y"] + late["h"] / 2
    assert ((cx > 150) & (cx < 250) & (cy > 60) & (cy < 160)).all()
    assert late["track_id"].nunique() == 1


def test_two_faces_are_ordered_largest_first(clip) -> None:
    path, _ = clip(size=(400, 240), n=4, faces=lambda i: [(10, 60, 80), (200, 30, 150)])
    df = fer_batch.analyze_video(path)
    assert (df.groupby("frame").size() == 2).all()
    areas = (df["w"] * df["h"]).to_numpy().reshape(-1, 2)
    assert (areas[:, 0] >= areas[:, 1]).all()
    assert (df[df["face"] == 0]["x"] > 190).all()


@pytest.mark.slow
@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_results_do_not_depend_on_batch_size(clip, batch_size: int) -> None:
    path, _ = clip(size=(400, 240), n=13, faces=lambda i: [(10 + 2 * i, 60, 80), (200, 30, 120)])
    ref = fer_batch.analyze_video(path, batch_size=8)
    got = fer_batch.analyze_video(path, batch_size=batch_size)
    pd.testing.assert_frame_equal(ref.drop(columns=LABELS), got.drop(columns=LABELS))
    np.testing.assert_allclose(got[LABELS].to_numpy(float), ref[LABELS].to_numpy(float), atol=1e-6)


def test_batched_classification_equals_one_at_a_time(clip) -> None:
    """One ORT call over the crops of every face of a window gives what one call per crop gives."""
    from fer_batch.analysis.classify import Classifier
    from fer_batch.analysis.detect import make_detector
    from fer_batch.media.probe import probe
    from fer_batch.media.reader import FrameReader, ReaderImages
    from fer_batch.options import Options
    from fer_batch.types import Frames

    path, _ = clip(size=(400, 240), n=6, faces=lambda i: [(10 + 4 * i, 60, 80), (200, 30, 120)])
    options = Options()
    reader = FrameReader(path, probe(path), options, images=ReaderImages.ANALYSED)
    frames = Frames.from_decoded(list(reader), colour=True)
    classifier = Classifier(options)
    faces = make_detector(options)(frames)
    assert len(faces) == 12  # both faces on each of the 6 frames
    for k, member in enumerate(classifier.members):  # every model of the default ensemble
        crops = member.crops(frames, faces)
        batched = classifier.predict_crops(k, crops)
        single = np.concatenate([classifier.predict_crops(k, crops[i : i + 1]) for i in range(len(crops))])
        np.testing.assert_allclose(batched, single, atol=1e-6)
        assert np.ptp(np.log(batched), axis=0).max() > 1e-3  # different faces and frames: rows not all the same


@pytest.mark.slow
def test_haar_detector_finds_the_face_where_it_was_pasted(clip) -> None:
    path, _ = clip(n=5, faces=lambda i: [(100 + 4 * i, 40, 140)])
    df = fer_batch.analyze_video(path, detector="haar")
    found = df[df["face"].notna()]
    assert len(found) >= 4 and found["frame"].is_unique  # one face, on (nearly) every frame
    left = 100 + 4 * found["frame"].to_numpy()
    cx, cy = found["x"] + found["w"] / 2, found["y"] + found["h"] / 2
    assert (np.abs(cx - (left + 70)) < 25).all() and (np.abs(cy - 110) < 25).all()  # centred on the pasted face
    assert ((found["w"] > 70) & (found["w"] < 200)).all()


def test_photo_is_a_one_frame_video(tmp_path) -> None:
    import cv2
    from conftest import astronaut_face

    img = np.full((300, 400, 3), 120, np.uint8)
    img[50:200, 100:250] = astronaut_face(150)[..., ::-1]
    path = tmp_path / "photo.PNG"
    cv2.imwrite(str(path), img)
    df = fer_batch.analyze_video(path)
    assert len(df) == 1 and df["frame"].iloc[0] == 0 and df["time_s"].iloc[0] == 0
    assert df["face"].iloc[0] == 0


def test_table_metadata_and_load(clip, tmp_path) -> None:
    path, _ = clip(n=6, faces=one_face)
    out = tmp_path / "out"
    results = fer_batch.analyze_many([path.parent], out, fps=5)
    assert [r.status for r in results] == ["ok"]
    table = out / "clip.parquet"
    meta = read_metadata(table)
    assert meta["options"]["fps"] == 5 and meta["model"]["id"] == Options().classification.model
    assert meta["detector"]["id"] == "centerface" and meta["status"] == "ok" and meta["frames_decoded"] == 6
    assert meta["source"]["size"] == path.stat().st_size and meta["width"] == 320
    loaded = fer_batch.load(out)
    direct = pd.read_parquet(table)
    assert len(loaded) == len(direct) and loaded["frame"].tolist() == direct["frame"].tolist()
    assert loaded["video"].unique().tolist() == ["clip.mp4"]


@pytest.mark.slow
def test_region_tracking_follows_what_full_scans_find(clip) -> None:
    """Between full scans the detector looks only around tracked faces: boxes and labels must not drift."""
    from fer_batch.analysis.track import iou_matrix

    path, _ = clip(size=(480, 320), n=40, fps=20, faces=lambda i: [(20 + 6 * i, 40 + 2 * i, 110), (380, 10, 70)])
    full = fer_batch.analyze_video(path, scan_interval=0)
    fast = fer_batch.analyze_video(path)  # default: a full scan every 0.5 s
    assert full["face"].notna().sum() == fast["face"].notna().sum() == 80
    m = full.merge(fast, on=["frame", "face"], suffixes=("_a", "_b"))
    a = m[["x_a", "y_a", "w_a", "h_a"]].to_numpy(float, copy=True)
    b = m[["x_b", "y_b", "w_b", "h_b"]].to_numpy(float, copy=True)
    a[:, 2:] += a[:, :2]
    b[:, 2:] += b[:, :2]
    iou = np.diag(iou_matrix(a, b))
    assert iou.min() > 0.7 and np.median(iou) > 0.85
    assert (m["emotion_a"] == m["emotion_b"]).mean() >= 0.95
    assert fast.dropna(subset=["track_id"]).groupby("face")["track_id"].nunique().max() == 1


@pytest.mark.slow
def test_a_face_that_appears_is_found_by_the_next_full_scan(clip) -> None:
    path, _ = clip(n=30, fps=10, faces=lambda i: [(40, 40, 100)] + ([(200, 60, 90)] if i >= 12 else []))
    df = fer_batch.analyze_video(path, scan_interval=0.5)
    per_frame = df.groupby("frame")["face"].count()
    assert (per_frame.loc[:11] == 1).all()
    assert (per_frame.loc[15:] == 2).all()  # the scan at 1.5 s (frame 15) at the latest


@pytest.mark.parametrize("rotation", [90, -90, 180])
def test_phone_clip_boxes_are_in_the_displayed_frame(tmp_path, rotation: int) -> None:
    """A phone stores the image turned and says so in the display matrix: boxes follow what a player shows."""
    import av
    from conftest import astronaut_face

    shown = np.full((320, 240, 3), 120, np.uint8)  # portrait, as displayed
    shown[100:220, 60:180] = astronaut_face(120)
    stored = np.ascontiguousarray(np.rot90(shown, {90: -1, -90: 1, 180: 2}[rotation]))
    path = tmp_path / "phone.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = stored.shape[1], stored.shape[0], "yuv420p"
        stream.set_display_rotation(rotation)
        for i in range(4):
            frame = av.VideoFrame.from_ndarray(stored, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    df = fer_batch.analyze_video(path)
    assert df["face"].notna().all()
    cx, cy = df["x"] + df["w"] / 2, df["y"] + df["h"] / 2
    assert (cx.between(100, 140) & cy.between(140, 180)).all()  # the face's centre in the displayed frame


@pytest.mark.slow
def test_results_do_not_depend_on_threads(clip) -> None:
    """Scans, regions and the classifier run in threads of their own, with intra-op threads split by ``threads``;
    neither changes a table."""
    path, _ = clip(size=(400, 240), n=24, fps=12, faces=lambda i: [(10 + 3 * i, 60, 80), (220, 30, 110)])
    ref = fer_batch.analyze_video(path, threads=1, batch_size=5)
    got = fer_batch.analyze_video(path, threads=4, batch_size=5)
    assert ref["face"].notna().sum() >= 40  # both faces on most frames: the comparison has rows to compare
    pd.testing.assert_frame_equal(ref.drop(columns=LABELS), got.drop(columns=LABELS))
    np.testing.assert_allclose(got[LABELS].to_numpy(float), ref[LABELS].to_numpy(float), atol=1e-6)


def test_an_error_while_finishing_a_window_fails_the_video_and_leaves_no_table(clip, tmp_path, monkeypatch) -> None:
    """A window's rows are written in another thread than the one that detects; its error still fails the video."""
    from fer_batch.outputs.table import ParquetSink
    from fer_batch.runs.one_input import run_video

    path, _ = clip(n=12, faces=one_face)
    calls = []

    def failing_write(self, table) -> None:  # noqa: ANN001
        calls.append(len(table))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ParquetSink, "write", failing_write)
    table = tmp_path / "out" / "clip.parquet"
    table.parent.mkdir()
    result, _ = run_video(path, Options.of(batch_size=4), video_name="clip", table_path=table)
    assert result.status == "failed" and "No space left" in (result.error or "")
    assert len(calls) == 1  # the run stopped at the first failing window
    assert not table.exists() and list(table.parent.iterdir()) == []


@pytest.mark.slow
def test_a_stream_that_breaks_keeps_the_windows_before_the_damage(clip, monkeypatch) -> None:
    """Windows handed over before the decoder fails are finished and written, and the video is partial."""
    from fer_batch.errors import StreamBroken
    from fer_batch.media.reader import FrameReader
    from fer_batch.runs.one_input import run_video

    path, _ = clip(n=20, faces=one_face)
    real_iter = FrameReader.__iter__

    def breaking(self):  # noqa: ANN001, ANN202
        for k, item in enumerate(real_iter(self)):
            if k == 13:
                raise StreamBroken("stream broken after 13 frames: test")
            yield item

    monkeypatch.setattr(FrameReader, "__iter__", breaking)
    result, sink = run_video(path, Options.of(batch_size=4), video_name="clip")
    assert result.status == "partial" and "after 13 frames" in (result.error or "")
    assert sink is not None
    assert set(sink.to_pandas()["frame"]) >= set(range(12))  # the three windows of four before the damage
