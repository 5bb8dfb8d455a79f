"""Does fitting help? A linear head over the frozen models' features, trained on FER2013's training split.

The question the accuracy work had to answer before shipping anything fitted: a softmax regression over face-api's
256 penultimate features (and, optionally, fer's 128 pooled features), class-balanced, trained on FER2013-train
(28,709 faces, mirrored copies added), judged on the three dev sets beside the bundled models' own heads. It also
fits only a per-class bias (7 numbers) on the default ensemble's log-probabilities — the cheapest correction of
class priors. Whole images, as ``--detector none`` feeds them; features come from the bundled ONNX files with an
extra graph output, crops from the pipeline's own ``Member.crops``.

    python benchmarks/fit_head.py            # ~15 min on 2 cores: features of ~35,000 images, both models

Result (BENCHMARKS.md, "Accuracy"): the heads gain on FER2013's own test split and lose more on CK+ and the
real-world crops, so nothing fitted ships.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from scipy.optimize import minimize

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from accuracy import DEFAULT_SETS, SHARED, score_labels  # noqa: E402

from fer_batch.analysis.classify import FER7, Classifier  # noqa: E402
from fer_batch.analysis.detect.whole import WholeFrame  # noqa: E402
from fer_batch.media.probe import read_image  # noqa: E402
from fer_batch.media.reader import from_bgr  # noqa: E402
from fer_batch.options import Options  # noqa: E402
from fer_batch.types import Frames  # noqa: E402

FEATURES = {"face-api-expression": "flatten", "fer2013-minixception": "add_4"}  # the tensor before each head
FEATURES_ORDER = ("fer2013-minixception", "face-api-expression")


def features(model: str, root: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(probs, features) for each image and its mirror, and the labels, through the model's own crop and transform."""
    options = Options.of(detector="none", model=model, device="cpu")
    clf = Classifier(options)
    (m,) = clf.members
    graph = onnx.load(str(m.spec.path))
    graph.graph.output.append(onnx.helper.make_empty_tensor_value_info(FEATURES[model]))
    sess = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    files = sorted(p for p in root.glob("*/*") if p.is_file())
    whole = WholeFrame(options)
    out: list[list[np.ndarray]] = [[], [], [], []]
    for lo in range(0, len(files), 256):
        crops = []
        for f in files[lo : lo + 256]:
            bgr = read_image(f)
            frames = Frames.from_decoded([from_bgr(0, 0.0, bgr, (32, 32))], colour=True)
            crops.append(m.crops(frames, whole(frames))[0])
        batch = np.stack(crops)
        for k, c in enumerate((batch, np.ascontiguousarray(batch[:, :, ::-1]))):
            x = c.astype(np.float32)[..., None] if c.ndim == 3 else c.astype(np.float32)
            p, feat = sess.run(None, {m.input_name: np.ascontiguousarray((x * m.a + m.b).transpose(0, 3, 1, 2))})
            out[k].append(p[:, clf._order[0]])
            out[2 + k].append(feat.mean(axis=(2, 3)) if feat.ndim == 4 else feat)
    p, pf, f, ff = (np.concatenate(x) for x in out)
    return (p + pf) / 2, f, ff, np.array([f.parent.name for f in files])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def fit(x: np.ndarray, y: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced softmax regression with an L2 penalty on the weights (L-BFGS)."""
    n, d = x.shape
    yi = np.array([FER7.index(c) for c in y])
    onehot = np.eye(7)[yi]
    w = (n / (7 * np.bincount(yi, minlength=7)))[yi]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        wt, b = theta[: d * 7].reshape(d, 7), theta[d * 7 :]
        p = softmax(x @ wt + b)
        g = (p - onehot) * w[:, None] / n
        value = -(w * np.log(p[np.arange(n), yi] + 1e-12)).sum() / n + lam * (wt**2).sum()
        return value, np.concatenate([(x.T @ g + 2 * lam * wt).ravel(), g.sum(axis=0)])

    r = minimize(loss, np.zeros(d * 7 + 7), jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return r.x[: d * 7].reshape(d, 7), r.x[d * 7 :]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--train", type=Path, default=SHARED / "fer2013-train")
    ap.add_argument("--lam", type=float, default=1e-3)
    args = ap.parse_args(argv)
    sets = {"train": args.train, **{s: SHARED / s for s in DEFAULT_SETS}}
    data = {(m, s): features(m, root) for m in FEATURES for s, root in sets.items()}
    rows: dict[str, list[float]] = {}
    for m in FEATURES:  # the bundled heads, mirrored crop averaged in
        rows[f"{m} (its own head)"] = [score_labels(data[m, s][0], FER7, data[m, s][3])["balanced_accuracy"]
                                       for s in DEFAULT_SETS]  # fmt: skip
    default = {s: (data[FEATURES_ORDER[0], s][0] + data[FEATURES_ORDER[1], s][0]) / 2 for s in sets}
    rows["default ensemble (average of both)"] = [score_labels(default[s], FER7, data["face-api-expression", s][3])
                                                  ["balanced_accuracy"] for s in DEFAULT_SETS]  # fmt: skip
    for members in (["face-api-expression"], ["face-api-expression", "fer2013-minixception"]):
        train = np.concatenate([np.concatenate([data[m, "train"][k] for m in members], axis=1) for k in (1, 2)])
        mu, sd = train.mean(axis=0), train.std(axis=0) + 1e-6
        wt, b = fit((train - mu) / sd, np.concatenate([data[members[0], "train"][3]] * 2), args.lam)
        scores = []
        for s in DEFAULT_SETS:
            p = sum(softmax((np.concatenate([data[m, s][k] for m in members], axis=1) - mu) / sd @ wt + b)
                    for k in (1, 2)) / 2  # fmt: skip
            scores.append(score_labels(p, FER7, data[members[0], s][3])["balanced_accuracy"])
        rows[f"linear head on {' + '.join(members)} features, FER2013-train"] = scores
    bias = fit_bias(np.log(default["train"] + 1e-6), data["face-api-expression", "train"][3])
    rows["default ensemble + per-class bias fitted on FER2013-train"] = [
        score_labels(np.log(default[s] + 1e-6) + bias, FER7, data["face-api-expression", s][3])["balanced_accuracy"]
        for s in DEFAULT_SETS
    ]
    print("| balanced accuracy | " + " | ".join(DEFAULT_SETS) + " | mean |")
    print("|---|" + "---|" * (len(DEFAULT_SETS) + 1))
    for name, scores in rows.items():
        print(f"| {name} | " + " | ".join(f"{x:.3f}" for x in scores) + f" | {np.mean(scores):.3f} |")
    return 0


def fit_bias(logp: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Seven per-class offsets to the log-probabilities, class-balanced log-loss on the training split."""
    yi = np.array([FER7.index(c) for c in y])
    w = (len(yi) / (7 * np.bincount(yi, minlength=7)))[yi]

    def loss(b: np.ndarray) -> float:
        return float(-(w * np.log(softmax(logp + b)[np.arange(len(yi)), yi] + 1e-12)).mean())

    return minimize(loss, np.zeros(7), method="Powell").x


if __name__ == "__main__":
    raise SystemExit(main())
