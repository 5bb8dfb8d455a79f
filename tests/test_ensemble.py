"""``--detector none``, ``--tta flip`` and ensembles, each checked against onnxruntime called by hand."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import astronaut_face

import fer_batch
from fer_batch.analysis.classify import FER7, Classifier
from fer_batch.analysis.models import models_dir, resolve
from fer_batch.errors import ModelError
from fer_batch.options import Options


def fer_by_hand(gray64: np.ndarray) -> np.ndarray:
    """fer's network on 64x64 gray crops, with its transform (v / 127.5 - 1) written out."""
    sess = ort.InferenceSession(str(models_dir() / "fer2013_minixception.onnx"), providers=["CPUExecutionProvider"])
    x = (gray64.astype(np.float32) / 127.5 - 1.0)[:, None]
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "happy" / "face.png"
    path.parent.mkdir(parents=True)
    cv2.imwrite(str(path), astronaut_face(256)[..., ::-1])
    return path


def test_detector_none_classifies_the_whole_image(photo: Path) -> None:
    df = fer_batch.analyze_video(photo, detector="none", model="fer2013-minixception")
    assert len(df) == 1
    row = df.iloc[0]
    assert (row["x"], row["y"], row["w"], row["h"]) == (0, 0, 256, 256) and np.isnan(row["det_score"])
    gray = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2GRAY)
    want = fer_by_hand(cv2.resize(gray, (64, 64), interpolation=cv2.INTER_AREA)[None])[0]
    np.testing.assert_allclose(row[list(FER7)].to_numpy(float), want, atol=1e-6)


def test_detector_none_null_score_survives_parquet(photo: Path, tmp_path: Path) -> None:
    fer_batch.analyze_many([photo.parent.parent], tmp_path / "out", detector="none")
    table = pq.read_table(tmp_path / "out" / "happy" / "face.parquet")
    assert table["det_score"].null_count == 1 and table["angry"].null_count == 0


def test_detector_none_pads_a_wide_image_to_a_square(tmp_path: Path) -> None:
    """A 256x128 image is not stretched: the model sees it centred in a square with its border repeated."""
    wide = np.zeros((128, 256), np.uint8)
    wide[:, 128:] = 255
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), wide)
    clf = Classifier(Options.of(detector="none", model="fer2013-minixception"))
    from fer_batch.analysis.detect.whole import WholeFrame
    from fer_batch.types import Frames

    frames = Frames(index=np.array([0]), time_s=np.array([0.0]), gray=[wide], small=[None])
    crop = clf.members[0].crops(frames, WholeFrame(Options.of(detector="none"))(frames))[0]
    assert crop.shape == (64, 64)
    assert (crop[:, :30] == 0).all() and (crop[:, 34:] == 255).all()  # left half dark, right half light, rows alike


def test_tta_flip_averages_the_mirrored_crop() -> None:
    crops = np.stack([cv2.cvtColor(astronaut_face(64), cv2.COLOR_RGB2GRAY), np.eye(64, dtype=np.uint8) * 200])
    got = Classifier(Options.of(model="fer2013-minixception", tta="flip")).predict_crops(0, crops)
    want = (fer_by_hand(crops) + fer_by_hand(crops[:, :, ::-1].copy())) / 2
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.abs(want - fer_by_hand(crops)).max() > 1e-3  # the mirror changes something, so the test can fail


def test_ensemble_averages_members_and_records_them(photo: Path, tmp_path: Path) -> None:
    ids = [e["id"] for e in json.loads((models_dir() / "manifest.json").read_text()) if e["task"] == "emotion"]
    model = "+".join(ids) if len(ids) > 1 else "fer2013-minixception+fer2013-minixception"
    single = [fer_batch.analyze_video(photo, detector="none", model=m).iloc[0] for m in model.split("+")]
    df = fer_batch.analyze_video(photo, detector="none", model=model)
    want = np.mean([s[list(FER7)].to_numpy(float) for s in single], axis=0)
    np.testing.assert_allclose(df.iloc[0][list(FER7)].to_numpy(float), want, atol=1e-6)
    fer_batch.analyze_many([photo.parent], tmp_path / "out", detector="none", model=model)
    meta = json.loads(pq.read_metadata(tmp_path / "out" / "face.parquet").metadata[b"fer_batch"])
    assert meta["model"]["id"] == model
    assert [m["id"] for m in meta["model"]["members"]] == model.split("+")
    assert [m["sha256"] for m in meta["model"]["members"]] == [resolve(m).sha256 for m in model.split("+")]


def test_ensemble_with_an_unknown_member_is_a_usage_error(photo: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fer_batch.cli import app

    with pytest.raises(ModelError, match="unknown model"):
        Classifier(Options.of(model="fer2013-minixception+no-such-model"))
    r = CliRunner().invoke(app, ["analyze", str(photo), "--out", str(tmp_path / "o"), "--model",
                                 "fer2013-minixception+no-such-model"])  # fmt: skip
    assert r.exit_code == 2 and "no-such-model" in r.output and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_annotating_does_not_change_the_table(clip, tmp_path: Path) -> None:
    """Colour models cut faces from the decoded planes whether or not the whole frame is also converted to draw."""
    from conftest import one_face

    path, _ = clip(n=6, faces=one_face)
    plain = fer_batch.analyze_many([path], tmp_path / "a")
    drawn = fer_batch.analyze_many([path], tmp_path / "b", annotate=True)
    assert [r.status for r in plain + drawn] == ["ok", "ok"]
    assert (tmp_path / "b" / "clip.annotated.mp4").is_file()
    a, b = fer_batch.load(tmp_path / "a"), fer_batch.load(tmp_path / "b")
    assert a.dropna(subset=["face"]).shape[0] == 6
    pd.testing.assert_frame_equal(a, b)


def test_cli_detector_none_tta_and_crop_margin_reach_the_table(photo: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from fer_batch.cli import app

    out = tmp_path / "o"
    r = CliRunner().invoke(app, ["analyze", str(photo), "--out", str(out), "-q", "--detector", "none", "--tta", "flip",
                                 "--crop-margin", "0.2"])  # fmt: skip
    assert r.exit_code == 0, r.output
    meta = json.loads(pq.read_metadata(out / "face.parquet").metadata[b"fer_batch"])
    assert meta["options"]["detector"] == "none" and meta["options"]["tta"] == "flip"
    assert meta["model"]["tta"] == "flip" and meta["options"]["crop_margin"] == 0.2
    assert [m["crop"]["margin"] for m in meta["model"]["members"]] == [0.0] * len(meta["model"]["members"])  # whole
    bad = CliRunner().invoke(app, ["analyze", str(photo), "--out", str(tmp_path / "p"), "--tta", "rotate"])
    assert bad.exit_code == 2 and "tta" in bad.output
