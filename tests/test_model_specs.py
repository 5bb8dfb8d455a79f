"""Issue 26 items 3 and 5: a custom model's spec is checked value by value before any work, and its outputs are
checked always (declared probabilities or logits, finite)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import pyarrow.parquet as pq
import pytest
from conftest import write_clip
from onnx import TensorProto, helper
from typer.testing import CliRunner

from fer_batch.analysis import models
from fer_batch.cli import app
from fer_batch.options import Options
from fer_batch.runs.runner import run_many

LABELS = ["a", "b", "c"]
INPUT = {"layout": "NHWC", "height": 16, "width": 16, "channels": 3, "color": "rgb", "scale": 1 / 255,
         "offset": 0.0, "mean": [0.5] * 3, "std": [0.25] * 3}  # fmt: skip
cli = CliRunner()


def linear_model(path: Path, *, softmax: bool, batch: int | str = "N", scale: float = 1.0) -> None:
    """Mean colour → a fixed linear map (→ softmax); ``batch`` fixes the input's first dimension."""
    w = (scale * np.linspace(-1, 1, 3 * len(LABELS))).astype(np.float32).reshape(3, len(LABELS))
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["z" if softmax else "p"])]  # fmt: skip
    if softmax:
        nodes.append(helper.make_node("Softmax", ["z"], ["p"], axis=1))
    graph = helper.make_graph(nodes, "lin", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 16, 16, 3])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, [batch, len(LABELS)])],
                              [helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.flatten())])  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "v.mp4"
    path.parent.mkdir()
    write_clip(path, n=12, size=(64, 48), faces=lambda i: [(0, 0, 48)])
    return path


def _spec(tmp_path: Path, **changes: object) -> Path:
    entry: dict[str, object] = {"labels": LABELS, "input": dict(INPUT)}
    for key, value in changes.items():
        if key.startswith("input_"):
            entry["input"][key[6:]] = value  # type: ignore[index]
        else:
            entry[key] = value
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(entry))
    return path


def _analyze(video: Path, out: Path, model: Path, spec: Path | str) -> object:
    return cli.invoke(app, ["analyze", str(video), "--out", str(out), "-q", "--detector", "none",
                            "--model", str(model), "--model-spec", str(spec)])  # fmt: skip


def _one_error(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


BAD_SPECS = {
    "duplicate label": ({"labels": ["a", "b", "a"]}, "more than once"),
    "label named like a column": ({"labels": ["a", "x", "c"]}, "table column"),
    "label beside its smoothed name": ({"labels": ["a", "a_smooth", "c"]}, "smoothed"),
    "numeric label": ({"labels": ["a", 1, "c"]}, "string"),
    "crop margin out of range": ({"crop": {"margin": 5}}, "crop.margin"),
    "crop margin not a number": ({"crop": {"margin": "wide"}}, "crop.margin"),
    "crop square not a flag": ({"crop": {"square": "yes"}}, "crop.square"),
    "mean not numbers": ({"input_mean": ["a", "b", "c"]}, "input.mean"),
    "scale a string": ({"input_scale": "1"}, "input.scale"),
    "std zero": ({"input_std": [0.25, 0, 0.25]}, "input.std"),
    "unknown output kind": ({"output": "probs"}, "output"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_every_spec_value_is_checked_before_any_work(video: Path, tmp_path: Path, case: str) -> None:
    changes, words = BAD_SPECS[case]
    model = tmp_path / "m.onnx"
    linear_model(model, softmax=True)
    out = tmp_path / "out"
    r = _analyze(video, out, model, _spec(tmp_path, **changes))
    assert r.exit_code == 2, r.output
    assert words in _one_error(r.output) and "spec.json" in _one_error(r.output)
    assert not out.exists()


@pytest.mark.parametrize("kind", ["dev_zero", "fifo"])
def test_a_spec_that_is_not_a_regular_file_is_refused_without_hanging(video: Path, tmp_path: Path, kind: str) -> None:
    model = tmp_path / "m.onnx"
    linear_model(model, softmax=True)
    spec = "/dev/zero"
    if kind == "fifo":
        spec = str(tmp_path / "spec.fifo")
        os.mkfifo(spec)
    with pytest.raises(models.ModelError, match="not a regular file"):  # it returns: nothing blocks or reads forever
        models.resolve(str(model), spec)
    r = _analyze(video, tmp_path / "out", model, spec)
    assert r.exit_code == 2 and "not a regular file" in _one_error(r.output)


def test_outputs_that_are_not_probabilities_are_refused_unless_declared_logits(video: Path, tmp_path: Path) -> None:
    model = tmp_path / "logits.onnx"
    linear_model(model, softmax=False, scale=5.0)
    out = tmp_path / "out"
    r = _analyze(video, out, model, _spec(tmp_path))
    assert r.exit_code == 2 and '"output": "logits"' in _one_error(r.output)
    assert not out.exists()
    r = _analyze(video, out, model, _spec(tmp_path, output="logits"))
    assert r.exit_code == 0, r.output
    probs = pq.read_table(out / "v.parquet").select(LABELS).to_pandas().to_numpy(float)
    assert len(probs) == 12 and np.allclose(probs.sum(axis=1), 1, atol=1e-5)


def test_a_model_fixed_to_batches_of_one_runs(video: Path, tmp_path: Path) -> None:
    fixed, free = tmp_path / "fixed.onnx", tmp_path / "free.onnx"
    linear_model(fixed, softmax=True, batch=1)
    linear_model(free, softmax=True)
    spec = _spec(tmp_path)
    for model in (fixed, free):
        r = _analyze(video, tmp_path / model.stem, model, spec)
        assert r.exit_code == 0, r.output
    a, b = (pq.read_table(tmp_path / m / "v.parquet").select(LABELS) for m in ("fixed", "free"))
    assert a.num_rows == 12
    np.testing.assert_allclose(a.to_pandas().to_numpy(float), b.to_pandas().to_numpy(float), atol=1e-6)


def test_non_finite_outputs_on_real_faces_fail_that_input(video: Path, tmp_path: Path, monkeypatch) -> None:
    model = tmp_path / "m.onnx"
    linear_model(model, softmax=True)
    spec = _spec(tmp_path)
    real = models.run_batched

    def nan_on_faces(sess, x, fixed=None):  # finite on the pre-run check's faces, NaN on the video's
        out = real(sess, x, fixed)
        return out if len(x) == 2 else np.full_like(out, np.nan)

    monkeypatch.setattr(models, "run_batched", nan_on_faces)
    out = tmp_path / "out"
    res = run_many([video], out, Options.of(detector="none", model=str(model), model_spec=str(spec)), quiet=True)
    assert [r.status for r in res] == ["failed"]
    assert "non-finite" in res[0].error and "\n" not in res[0].error
    assert not list(out.rglob("*.parquet*")) or [p.name for p in out.rglob("*.parquet*")] == ["manifest.parquet"]


def test_the_reserved_names_are_the_tables_own_columns() -> None:
    from fer_batch.analysis.model_checks import TABLE_COLUMNS
    from fer_batch.outputs.table import schema

    assert set(TABLE_COLUMNS) == set(schema([]).names)
