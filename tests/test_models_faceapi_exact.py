"""The converted face-api.js expression model must reproduce face-api.js itself, not just resemble it.

Why: ``models/convert_faceapi.py`` rebuilds FaceExpressionNet by hand (quantized weights, TF 'same' padding, the
dense blocks' sums, the average pool), so a subtle mistake would still give plausible-looking probabilities.
The references were recorded once with face-api.js 0.22.2 in Node by ``models/record_faceapi_reference.py``;
these tests need only onnxruntime and numpy, and go through the project's own classifier, so the manifest's
pixel transform is checked as well.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from fer_batch.analysis.classify import Classifier, Member  # noqa: E402
from fer_batch.options import Options  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODELS = REPO / "models"
DATA = Path(__file__).resolve().parent / "data"
MODEL_ID = "face-api-expression"
ATOL_JS = 1e-4
ATOL_BATCH = 1e-6
# face-api.js' FACE_EXPRESSION_LABELS, as the project's FER2013 model names the same classes
OUR_NAMES = {"fearful": "fear", "disgusted": "disgust", "surprised": "surprise"}


@pytest.fixture(scope="module")
def entry() -> dict[str, Any]:
    entries = json.loads((MODELS / "manifest.json").read_text())
    (found,) = [e for e in entries if e["id"] == MODEL_ID]
    return found


@pytest.fixture(scope="module")
def classifier() -> Member:
    """The model as the pipeline runs it (manifest transform, session), outputs in the network's own order."""
    return Classifier(Options.of(model=MODEL_ID, device="cpu", threads=1)).members[0]


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    with np.load(DATA / "faceapi_reference.npz", allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


@pytest.fixture(scope="module")
def converter() -> ModuleType:
    sys.path.insert(0, str(MODELS))
    try:
        import convert_faceapi
    finally:
        sys.path.remove(str(MODELS))
    return convert_faceapi


def assert_matches_js(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == np.float32
    diff = np.abs(got - want)
    worst = np.unravel_index(diff.argmax(), diff.shape)
    assert diff.max() <= ATOL_JS, f"max |onnx - face-api.js| = {diff.max():.3g} at {worst}"
    mismatched = np.flatnonzero(got.argmax(1) != want.argmax(1))
    assert mismatched.size == 0, f"argmax differs for crops {mismatched.tolist()}"


def test_manifest_sha256_matches_file(entry: dict[str, Any]) -> None:
    data = (MODELS / entry["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_manifest_describes_the_model(entry: dict[str, Any], classifier: Member) -> None:
    (inp,) = classifier.session.get_inputs()
    (out,) = classifier.session.get_outputs()
    assert inp.name == "input" and inp.type == "tensor(float)"
    assert inp.shape == ["N", entry["input"]["channels"], entry["input"]["height"], entry["input"]["width"]]
    assert out.name == "probs" and out.shape == ["N", len(entry["labels"])]
    assert entry["input"]["color"] == "rgb" and entry["input"]["layout"] == "NCHW"
    assert (MODELS / "LICENSES" / "face-api-MIT.txt").is_file()


def test_labels_follow_the_networks_output_order(entry: dict[str, Any], reference: dict[str, np.ndarray]) -> None:
    js_labels = [str(label) for label in reference["labels"]]
    assert entry["labels"] == [OUR_NAMES.get(label, label) for label in js_labels]


def test_references_come_from_the_recorded_source(entry: dict[str, Any], reference: dict[str, np.ndarray]) -> None:
    assert str(reference["shard_sha256"]) == entry["source"]["sha256"]
    versions = json.loads(str(reference["versions"]))
    assert versions["face-api.js"] == entry["source"]["version"] and versions["tfjs-core"]
    assert reference["crops"].dtype == np.uint8 and reference["crops"].shape[1:] == (112, 112, 3)
    assert (np.isin(reference["source"], ["astronaut", "camera"])).sum() >= 50
    assert len(np.unique(reference["probs"].argmax(1))) >= 3  # not one class for everything


def test_matches_faceapi_js_through_the_classifier(classifier: Member, reference: dict[str, np.ndarray]) -> None:
    assert_matches_js(classifier.predict(reference["crops"]), reference["probs"])


def test_batch_equals_single_runs(classifier: Member, reference: dict[str, np.ndarray]) -> None:
    crops = reference["crops"]
    batch = classifier.predict(crops)
    single = np.concatenate([classifier.predict(crops[i : i + 1]) for i in range(len(crops))])
    np.testing.assert_allclose(batch, single, rtol=0, atol=ATOL_BATCH)
    np.testing.assert_allclose(batch.sum(1), 1.0, rtol=0, atol=1e-5)


def test_converter_reproduces_the_committed_model(
    shared_faceapi_weights: Path,
    converter: ModuleType,
    entry: dict[str, Any],
    classifier: Member,
    reference: dict[str, np.ndarray],
) -> None:
    import onnx
    import onnxruntime as ort

    data = converter.convert(shared_faceapi_weights)
    rebuilt = onnx.load_from_string(data)
    committed = onnx.load(str(MODELS / entry["file"]))
    assert [n.SerializeToString() for n in rebuilt.graph.node] == [n.SerializeToString() for n in committed.graph.node]
    want = {t.name: onnx.numpy_helper.to_array(t) for t in committed.graph.initializer}
    got = {t.name: onnx.numpy_helper.to_array(t) for t in rebuilt.graph.initializer}
    assert got.keys() == want.keys()
    for name, array in got.items():
        np.testing.assert_array_equal(array, want[name], err_msg=name)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
    x = reference["crops"].astype(np.float32) * classifier.a + classifier.b
    (probs,) = sess.run(["probs"], {"input": np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    np.testing.assert_allclose(probs, classifier.predict(reference["crops"]), rtol=0, atol=ATOL_BATCH)


def test_every_add_can_fold_into_its_convolution(entry: dict[str, Any]) -> None:
    """Each Add sums a running total and a convolution's output that nothing else reads, so onnxruntime folds it
    into that Conv (its ``Sum`` input); face-api.js' right-to-left nesting left 20 Adds as passes of their own."""
    import onnx

    graph = onnx.load(str(MODELS / entry["file"])).graph
    producer = {out: n.op_type for n in graph.node for out in n.output}
    readers: dict[str, int] = {}
    for n in graph.node:
        for name in n.input:
            readers[name] = readers.get(name, 0) + 1
    adds = [n for n in graph.node if n.op_type == "Add"]
    assert len(adds) == 12  # three per dense block
    for n in adds:
        term = n.input[1]
        assert producer.get(term) == "Conv" and readers[term] == 1, f"{n.name}: {term} cannot fold into its Conv"
