"""The converted emotion model must reproduce the original Keras model, not just resemble it.

Why: ``models/convert_emotion.py`` rebuilds the network by hand (layouts, SAME padding, BatchNorm epsilon), so
a subtle mistake would still give plausible-looking probabilities. The references were recorded once with
TensorFlow/Keras by ``models/record_reference.py``; these tests need only onnxruntime and numpy.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")
cv2 = pytest.importorskip("cv2")

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
DATA = Path(__file__).resolve().parent / "data"
MODEL_ID = "fer2013-minixception"
ATOL_KERAS = 1e-4
ATOL_BATCH = 1e-6


@pytest.fixture(scope="module")
def entry() -> dict[str, Any]:
    entries = json.loads((MODELS / "manifest.json").read_text())
    (found,) = [e for e in entries if e["id"] == MODEL_ID]
    return found


@pytest.fixture(scope="module")
def sess(entry: dict[str, Any]) -> Any:
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    path = str(MODELS / entry["file"])
    return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "emotion_reference.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def crowd_reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "emotion_reference_crowd.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def to_input(crops: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    """uint8 [N, H, W] gray crops -> the model's NCHW float32, by the manifest's rule only."""
    inp = entry["input"]
    assert inp["layout"] == "NCHW" and inp["color"] == "gray" and inp["channels"] == 1
    assert crops.shape[1:] == (inp["height"], inp["width"])
    mean = np.asarray(inp["mean"], np.float64).reshape(1, -1, 1, 1)
    std = np.asarray(inp["std"], np.float64).reshape(1, -1, 1, 1)
    x = crops[:, None].astype(np.float64) * inp["scale"] + inp["offset"]
    return ((x - mean) / std).astype(np.float32)


def run(sess: Any, crops: np.ndarray, entry: dict[str, Any]) -> np.ndarray:
    (probs,) = sess.run(["probs"], {"input": to_input(crops, entry)})
    return probs


def assert_matches_keras(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.float32
    diff = np.abs(got - want)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= ATOL_KERAS, f"max |onnx - keras| = {diff.max():.3g} at {worst}"
    mismatched = np.flatnonzero(got.argmax(1) != want.argmax(1))
    assert mismatched.size == 0, f"argmax differs for crops {mismatched.tolist()}"


def test_manifest_sha256_matches_file(entry: dict[str, Any]) -> None:
    data = (MODELS / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_manifest_describes_the_model(entry: dict[str, Any], sess: Any) -> None:
    (inp,) = sess.get_inputs()
    (out,) = sess.get_outputs()
    assert inp.name == "input" and inp.type == "tensor(float)"
    assert inp.shape == ["N", entry["input"]["channels"], entry["input"]["height"], entry["input"]["width"]]
    assert out.name == "probs" and out.shape == ["N", len(entry["labels"])]
    assert entry["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def test_references_come_from_the_recorded_source(
    entry: dict[str, Any], reference: dict[str, np.ndarray], crowd_reference: dict[str, np.ndarray]
) -> None:
    assert str(reference["hdf5_sha256"]) == entry["source"]["sha256"]
    assert str(crowd_reference["hdf5_sha256"]) == entry["source"]["sha256"]
    assert json.loads(str(reference["versions"]))["tensorflow"]
    assert reference["crops"].dtype == np.uint8 and reference["crops"].shape[1:] == (64, 64)
    assert (reference["source"] != "synthetic").sum() >= 60


def test_matches_keras_on_public_domain_faces(
    sess: Any, entry: dict[str, Any], reference: dict[str, np.ndarray]
) -> None:
    assert_matches_keras(run(sess, reference["crops"], entry), reference["probs"])


def test_batch_equals_single_runs(sess: Any, entry: dict[str, Any], reference: dict[str, np.ndarray]) -> None:
    crops = reference["crops"]
    batch = run(sess, crops, entry)
    single = np.concatenate([run(sess, crops[i : i + 1], entry) for i in range(len(crops))])
    np.testing.assert_allclose(batch, single, rtol=0, atol=ATOL_BATCH)
    np.testing.assert_allclose(batch.sum(1), 1.0, rtol=0, atol=1e-5)


def crowd_crops(media: Path, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The recorder's gray image and crops, rebuilt from the unlicensed photo that is never committed."""
    bgr = cv2.imread(str(media / "photos" / "selfie.jpg"))
    if bgr is None:
        pytest.skip("photos/selfie.jpg is absent from the shared media")
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    crops = np.stack([cv2.resize(gray[y1:y2, x1:x2], (64, 64)) for x1, y1, x2, y2 in boxes])
    return gray, crops


def test_matches_keras_on_crowd_faces(
    shared_media: Path, sess: Any, entry: dict[str, Any], crowd_reference: dict[str, np.ndarray]
) -> None:
    boxes = crowd_reference["boxes"]
    assert len(boxes) >= 50
    gray, crops = crowd_crops(shared_media, boxes)
    # Same pixels as at recording time, else a failure below would blame the model for a JPEG decoder change.
    gray_sha = hashlib.sha256(gray.tobytes()).hexdigest()
    assert gray_sha == str(crowd_reference["gray_sha256"]), "JPEG decoding differs from the recording's"
    crops_sha = hashlib.sha256(crops.tobytes()).hexdigest()
    assert crops_sha == str(crowd_reference["crops_sha256"]), "cv2.resize differs from the recording's"
    got = run(sess, crops, entry)
    assert_matches_keras(got, crowd_reference["probs"])
    single = np.concatenate([run(sess, crops[i : i + 1], entry) for i in range(len(crops))])
    np.testing.assert_allclose(got, single, rtol=0, atol=ATOL_BATCH)
