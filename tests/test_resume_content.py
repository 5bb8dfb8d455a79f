"""Issue 26 item 2: ``--resume`` keeps a table only when what made it is the same, by content, not by path."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import astronaut_face
from test_models import tiny_classifier

from fer_batch.options import Options
from fer_batch.outputs.metadata import META_KEY, read_metadata
from fer_batch.runs.runner import run_many

LABELS = ["a", "b", "c"]


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """A photo, a tiny custom model with its spec, and the folder of a first run with them."""
    photo = tmp_path / "in" / "face.png"
    photo.parent.mkdir()
    cv2.imwrite(str(photo), astronaut_face(64))
    model, spec = tmp_path / "m.onnx", tmp_path / "spec.json"
    tiny_classifier(model, len(LABELS), 3, 16)
    spec.write_text(json.dumps({"labels": LABELS, "input": {"layout": "NHWC", "height": 16, "width": 16,
                    "channels": 3, "color": "rgb", "scale": 1 / 255, "offset": 0.0, "mean": [0.5] * 3,
                    "std": [0.25] * 3}}))  # fmt: skip
    out = tmp_path / "out"
    assert _statuses(photo, out, model, spec) == ["ok"]
    return photo, out, model, spec


def _statuses(photo: Path, out: Path, model: Path, spec: Path) -> list[str]:
    opts = Options.of(detector="none", model=str(model), model_spec=str(spec))
    return [r.status for r in run_many([photo.parent], out, opts, quiet=True)]


def test_the_same_models_elsewhere_keep_the_table(setup, tmp_path: Path) -> None:
    photo, out, model, spec = setup
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.copy(model, moved / "renamed.onnx")
    shutil.copy(spec, moved / "renamed.json")
    assert _statuses(photo, out, moved / "renamed.onnx", moved / "renamed.json") == ["skipped"]


def test_a_model_replaced_at_the_same_path_is_redone(setup, caplog: pytest.LogCaptureFixture) -> None:
    photo, out, model, spec = setup
    before = pq.read_table(out / "face.parquet").select(LABELS).to_pylist()
    data = bytearray(model.read_bytes())
    model.write_bytes(data.replace(np.float32(-1).tobytes(), np.float32(-2).tobytes(), 1))  # another weight
    with caplog.at_level(logging.INFO):
        assert _statuses(photo, out, model, spec) == ["ok"]
    assert "another model file" in caplog.text
    assert pq.read_table(out / "face.parquet").select(LABELS).to_pylist() != before  # the new model's numbers


def test_a_spec_with_its_labels_reordered_is_redone(setup) -> None:
    photo, out, model, spec = setup
    entry = json.loads(spec.read_text())
    entry["labels"] = LABELS[::-1]
    spec.write_text(json.dumps(entry))
    assert _statuses(photo, out, model, spec) == ["ok"]
    assert pq.read_schema(out / "face.parquet").names[10:13] == LABELS[::-1]


def _rewrite_meta(table: Path, **changes: object) -> None:
    t = pq.read_table(table)
    meta = read_metadata(table)
    assert meta is not None
    meta.update(changes)
    pq.write_table(t.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), table)


@pytest.mark.parametrize("change", ["version", "detector", "model"])
def test_a_table_made_by_another_version_or_models_is_redone(setup, change: str,
                                                             caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    photo, out, model, spec = setup
    table = out / "face.parquet"
    meta = read_metadata(table)
    assert meta is not None
    if change == "version":
        _rewrite_meta(table, version="0.0.1")
    elif change == "detector":
        _rewrite_meta(table, detector={**meta["detector"], "sha256": "0" * 64})
    else:
        _rewrite_meta(table, model={**meta["model"], "sha256": "0" * 64})
    with caplog.at_level(logging.INFO):
        assert _statuses(photo, out, model, spec) == ["ok"]
    rec = next(r for r in caplog.records if "analysed again" in r.getMessage())
    line = rec.getMessage()
    assert rec.levelno == logging.WARNING  # said even under --quiet
    assert str(photo) in line and ("fer-batch 0.0.1" in line if change == "version" else change in line)
