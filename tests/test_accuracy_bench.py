"""benchmarks/accuracy.py scores what ``analyze --detector none`` wrote, image by image (no accuracy asserted)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import astronaut_face

import fer_batch
from fer_batch.analysis.classify import FER7

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import accuracy  # noqa: E402


@pytest.fixture
def labelled(tmp_path: Path) -> Path:
    """Two classes of generated faces, and a class the model does not know."""
    root = tmp_path / "set"
    rng = np.random.default_rng(0)
    for label, n in (("happy", 3), ("sad", 2), ("contempt", 1)):
        (root / label).mkdir(parents=True)
        for i in range(n):
            face = astronaut_face(96 + 16 * i)[..., ::-1]
            face = np.clip(face * rng.uniform(0.5, 1.2) + rng.normal(0, 20, face.shape), 0, 255).astype(np.uint8)
            cv2.imwrite(str(root / label / f"{i}.png"), face if label != "sad" else face[:, ::-1])
    return root


@pytest.mark.slow
def test_scores_equal_a_count_by_hand(labelled: Path, tmp_path: Path) -> None:
    out = tmp_path / "acc.json"
    assert accuracy.main(["--set", str(labelled), "--config", "model=fer2013-minixception", "--json", str(out)]) == 0
    (row,) = json.loads(out.read_text())
    got = row["sets"]["set"]
    pred = {p.relative_to(labelled).as_posix(): FER7[int(np.argmax(
        fer_batch.analyze_video(p, detector="none", model="fer2013-minixception")[list(FER7)].to_numpy()[0]))]
        for p in sorted(labelled.glob("*/*.png"))}  # fmt: skip
    known = {k: v for k, v in pred.items() if not k.startswith("contempt")}
    assert got["images"] == 5 and got["left_out"] == 1 and got["no_face"] == 0
    assert got["accuracy"] == pytest.approx(np.mean([v == k.split("/")[0] for k, v in known.items()]))
    recall = [np.mean([v == c for k, v in known.items() if k.startswith(c)]) for c in ("happy", "sad")]
    assert got["balanced_accuracy"] == pytest.approx(np.mean(recall))
    assert np.asarray(got["confusion"]).sum() == 5


@pytest.mark.slow
def test_real_sets_smoke(shared_expressions: Path, tmp_path: Path) -> None:
    out = tmp_path / "acc.json"
    rc = accuracy.main(["--set", str(shared_expressions / "ckplus48"), "--limit", "2", "--json", str(out)])
    assert rc == 0
    (row,) = json.loads(out.read_text())
    ck = row["sets"]["ckplus48"]
    assert ck["images"] == 12 and ck["left_out"] == 2 and 0 <= ck["balanced_accuracy"] <= 1
