"""The gated quality model: the face's look measures the gate reads, the shipped model's data, the fitting's gate,
and the same ``quality`` in the pipeline and in the fitting script."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, astronaut_face

from fer_batch.analysis import quality

sys.path.insert(0, str(REPO / "benchmarks"))

import quality_fit  # noqa: E402

BOX = np.array([0, 0, 64, 64], np.float32)


def measures(img: np.ndarray) -> dict[str, float]:
    return dict(zip(quality.LOOK, quality.look_one(img, BOX), strict=True))


def test_look_measures_what_the_gate_reads() -> None:
    face = cv2.cvtColor(astronaut_face(64), cv2.COLOR_RGB2GRAY)
    mirrored = np.concatenate([face[:, :32], face[:, :32][:, ::-1]], axis=1)  # left-right symmetric
    assert measures(mirrored)["symmetry"] == pytest.approx(0.0, abs=1e-9)
    assert measures(face)["symmetry"] > 0.1
    assert measures(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8))["symmetry"] > 0.9
    ramp = np.tile(np.linspace(20, 235, 64).astype(np.uint8), (64, 1))
    flat = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))  # every gray level equally often: equalised
    assert measures(flat)["hist_entropy"] == pytest.approx(math.log(32), abs=1e-9)
    assert measures(np.full((64, 64), 128, np.uint8))["hist_entropy"] == 0.0
    assert measures(np.zeros((64, 64), np.uint8))["clipped"] == 1.0 and measures(ramp)["clipped"] < 0.1
    top_detail = np.full((64, 64), 128, np.uint8)
    top_detail[:32] = np.random.default_rng(1).integers(0, 256, (32, 64))
    assert measures(top_detail)["detail_balance"] > 2 and measures(top_detail[::-1])["detail_balance"] < -2


def test_shipped_model_is_gated_over_the_fitting_sets() -> None:
    cal = quality.shipped()
    assert cal is not None
    assert set(cal.kinds) == set(cal.fitted_on) == {"ckplus48", "fer2013-privatetest", "muxspace-dev"}
    g = np.random.default_rng(0).normal(size=(5, len(quality.GATE_FEATURES))) * cal.gate.scale + cal.gate.mean
    w = cal.weights(g)
    assert w.shape == (5, 3) and np.allclose(w.sum(axis=1), 1) and (w >= 0).all()
    x = np.random.default_rng(1).normal(size=(5, len(quality.FEATURES))) * cal.expert.scale + cal.expert.mean
    again = quality.Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(again.predict(x, g), cal.predict(x, g))


def test_a_model_of_the_wrong_shape_is_refused_with_the_reason() -> None:
    cal = quality.shipped()
    assert cal is not None
    d = cal.to_dict()
    d["expert"]["coef"] = d["expert"]["coef"][:2]
    with pytest.raises(ValueError, match=r"quality.json: shapes .* do not fit 3 kinds of 22 features"):
        quality.Calibration.from_dict(d)
    with pytest.raises(ValueError, match="quality.json: gate_features"):
        quality.Calibration.from_dict({**cal.to_dict(), "gate_features": ["log_size"]})


def kinds_that_differ(n: int = 4000) -> tuple[np.ndarray, ...]:
    """Two kinds of material the gate can tell apart (g), where the same confidence (x) is right far more often on
    the second kind than on the first: one logistic model is miscalibrated on both."""
    rng = np.random.default_rng(0)
    kind = rng.integers(0, 2, n)
    g = (np.where(kind == 1, 2.0, -2.0) + rng.normal(size=n))[:, None]
    x = rng.normal(size=(n, 1))
    right = (rng.random(n) < 1 / (1 + np.exp(-(x[:, 0] + np.where(kind == 1, 2.5, -1.0))))).astype(float)
    sets = np.array(["lab", "web"])[kind]
    return x, g, right, sets


def test_the_gate_calibrates_each_kind_of_material_on_its_own() -> None:
    x, g, right, sets = kinds_that_differ()
    kinds, gate, expert = quality_fit.fit(x, g, right, sets, np.zeros(len(x), bool), 1e-3)
    assert kinds == ("lab", "web")
    p = quality.mixed(quality.softmax(gate(g)), expert(x))
    single = quality.mixed(np.ones((len(x), 1)), quality_fit.fit_expert(x, np.ones((len(x), 1)), right,
                                                                           np.ones(len(x)), 1e-3)(x))  # fmt: skip
    for s in kinds:
        sel = sets == s
        assert abs(p[sel].mean() - right[sel].mean()) < 0.03  # calibrated within each kind
        assert abs(single[sel].mean() - right[sel].mean()) > 0.1  # one model for both is not


def test_inner_folds_keep_a_unit_together_and_choose_among_the_grid() -> None:
    units = [f"S{k % 40:03d}" for k in range(400)]
    inner = quality_fit.inner_folds(units)
    assert all(len(set(inner[[i for i, u in enumerate(units) if u == v]])) == 1 for v in set(units))
    assert 0.2 < inner.mean() < 0.8
    x, g, right, sets = kinds_that_differ(400)
    assert quality_fit.choose_l2(x, g, right, sets, np.zeros(400, bool), units) in quality_fit.L2S


@pytest.mark.slow
def test_pipeline_and_fitting_script_compute_the_same_quality(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``fit_quality.py --verify`` on a labelled set made in code: the script's features, gate features and model
    give the pipeline's ``quality`` column (sharp and blurred faces, small gray and large colour images)."""
    import fit_quality

    root = tmp_path / "data" / "ckplus48"
    for label, size, sigma in (("happy", 48, 0), ("sad", 48, 2), ("neutral", 160, 0), ("angry", 160, 5)):
        img = astronaut_face(size)[..., ::-1]
        img = cv2.GaussianBlur(img, (0, 0), sigma) if sigma else img
        (root / label).mkdir(parents=True)
        gray_if_small = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if size == 48 else img
        cv2.imwrite(str(root / label / f"S{size:03d}_{sigma:03d}.png"), gray_if_small)
    monkeypatch.setattr(fit_quality, "DATA", [tmp_path / "data"])
    cal = quality.shipped()
    assert cal is not None
    (tmp_path / "cache").mkdir()
    assert fit_quality.verify(tmp_path / "cache", 1, cal) < 1e-6


def test_mirror_features_say_how_much_an_answer_changes_on_the_mirrored_face() -> None:
    """``both`` (the first member's answer averaged with its mirrored face's, as ``--tta flip`` has it) gives back
    the mirror's probability of the answer and how far the member's probabilities moved."""
    plain = np.array([[0.1, 0.0, 0.0, 0.8, 0.0, 0.0, 0.1], [0.1, 0.0, 0.0, 0.8, 0.0, 0.0, 0.1]], np.float32)
    mirrored = np.array([[0.1, 0.0, 0.0, 0.8, 0.0, 0.0, 0.1], [0.7, 0.0, 0.0, 0.2, 0.0, 0.0, 0.1]], np.float32)
    both = (plain + mirrored) / 2
    boxes = np.array([[0, 0, 48, 48]] * 2, np.float32)
    look = quality.Look(*(np.ones(2, np.float32) for _ in quality.LOOK))
    assert quality.MIRRORED == (0,)
    x = quality.features(plain, [plain, plain], [both], boxes, np.full((2, 3), np.nan), look)
    col = {f: x[:, k] for k, f in enumerate(quality.FEATURES)}
    np.testing.assert_allclose(col["logit_m0_mirror"], [math.log(0.8 / 0.2), math.log(0.2 / 0.8)], atol=1e-5)
    np.testing.assert_allclose(col["mirror_change_m0"], [0.0, 0.6], atol=1e-5)
    np.testing.assert_allclose(col["logit_m0"], math.log(0.8 / 0.2), atol=1e-5)


def test_only_the_calibrated_classifier_pays_for_the_mirrored_pass(clip, monkeypatch: pytest.MonkeyPatch) -> None:
    import fer_batch
    from fer_batch.analysis.classify import Classifier

    calls: list[int] = []
    real = Classifier.predict_mirrored

    def counted(self: Classifier, member: int, crops: np.ndarray) -> np.ndarray:
        calls.append(member)
        return real(self, member, crops)

    monkeypatch.setattr(Classifier, "predict_mirrored", counted)
    path, _ = clip(size=(320, 240), n=2, faces=lambda i: [(100, 60, 120)])
    fer_batch.analyze_video(path, model="fer2013-minixception")
    assert calls == []  # uncalibrated: quality is the top probability, no mirror needed
    fer_batch.analyze_video(path)
    assert calls == [0] * len(calls) and calls  # the default ensemble: its first member again, on mirrored faces


@pytest.mark.slow
def test_mirror_cost_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import mirror_cost

    assert mirror_cost.main(["--n", "16", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert "fer2013-minixception" in out and "(run for quality)" in out and "of the network work" in out
