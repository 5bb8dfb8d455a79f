"""Emotion accuracy end to end: labelled folders ``ROOT/<label>/<image>`` through the real ``analyze`` path.

Why through ``analyze``: the number a user gets depends on decoding, cropping, the pixel transform and the model
together; scoring a copy of the classifier would hide any of them. Each configuration runs
``fer_batch.analyze_many(SET, tmp, detector="none", ...)`` (every image is one face that fills it), reads the tables
back with ``fer_batch.load`` and scores the argmax against the folder's label. A config may name a detector
(``detector=centerface``) to measure crops cut around detected faces: then the largest face of each image is
scored, and an image where none is found counts as wrong.

Reported per set: images, accuracy, balanced accuracy (mean per-class recall over the classes the set has and the
model knows; the sets are imbalanced), per-class recall and the confusion matrix. Images of a class the model does
not know (``contempt`` for 7-class models) are left out and counted. Steadiness (``--steadiness``): the mean L1
change of a face's raw probabilities from one frame to the next, (a) along the consecutive frames of each CK+
sequence (real faces moving, one video frame apart) and (b) along the track of the bundled sample clip (a still
photo panned and zoomed: every change is noise).

    python benchmarks/accuracy.py --set ../shared/data/expressions/fer2013-privatetest \\
        --set ../shared/data/expressions/ckplus48 --set ../shared/data/expressions/muxspace-dev \\
        --config model=fer2013-minixception --config "model=face-api-expression tta=flip" --jobs 2 --steadiness
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fer_batch  # noqa: E402
from fer_batch.options import Options  # noqa: E402
from fer_batch.outputs.table import SIGNAL_COLUMNS  # noqa: E402

SHARED = REPO.parent / "shared" / "data" / "expressions"
DEFAULT_SETS = ("fer2013-privatetest", "ckplus48", "muxspace-dev")


def parse_config(text: str) -> dict[str, Any]:
    """``"model=a+b tta=flip crop_margin=0.2"`` → Options keywords (numbers parsed, ``none`` → None)."""
    out: dict[str, Any] = {}
    for part in text.split():
        key, _, value = part.partition("=")
        parsed: Any = value
        if value.lower() == "none" and key != "detector":
            parsed = None
        else:
            try:
                parsed = float(value) if "." in value else int(value)
            except ValueError:
                pass
        out[key] = parsed
    return out


def subset(root: Path, limit: int, into: Path) -> Path:
    """The first ``limit`` images of each class (sorted names), copied to keep the ``<label>/<image>`` layout."""
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        (into / label_dir.name).mkdir(parents=True)
        for f in sorted(label_dir.iterdir())[:limit]:
            shutil.copy2(f, into / label_dir.name / f.name)
    return into


def predictions(root: Path, config: dict[str, Any], jobs: int) -> tuple[pd.DataFrame, list[str], float]:
    """The table of every image of ``root`` under ``config``, its label columns and the wall time of the run."""
    with tempfile.TemporaryDirectory(prefix="fer-acc-") as tmp:
        t0 = time.perf_counter()
        config = {"detector": "none", **config}
        results = fer_batch.analyze_many([root], Path(tmp) / "out", jobs=jobs, **config)
        wall = time.perf_counter() - t0
        bad = [r for r in results if r.status != "ok"]
        if bad:
            raise SystemExit(f"{len(bad)} images failed, e.g. {bad[0].path}: {bad[0].error}")
        df = fer_batch.load(Path(tmp) / "out")
    labels = label_columns(df)
    return df, labels, wall


def label_columns(df: pd.DataFrame) -> list[str]:
    """The probability columns of a table: those after ``det_score`` that are neither derived nor trust signals."""
    return [c for c in df.columns[10:] if c != "emotion" and not c.endswith("_smooth") and c not in SIGNAL_COLUMNS]


def score_labels(
    probs: np.ndarray, labels: list[str], truth: np.ndarray, found: np.ndarray | None = None
) -> dict[str, Any]:
    """Accuracy, balanced accuracy, per-class recall and confusion matrix of probabilities against true labels.

    Images whose true class the model does not know are left out (and counted); ``found`` marks the images where a
    face was found (the others count as wrong).
    """
    truth = np.asarray(truth)
    known = np.isin(truth, labels)
    found = np.ones(len(truth), bool) if found is None else np.asarray(found)
    probs, truth, found = probs[known], truth[known], found[known]
    pred = np.where(found, np.asarray(labels)[np.nan_to_num(probs).argmax(axis=1)], "no face")
    classes = [c for c in labels if (truth == c).any()]
    recall = {c: float((pred[truth == c] == c).mean()) for c in classes}
    confusion = pd.crosstab(pd.Categorical(truth, classes), pd.Categorical(pred, [*labels, "no face"]), dropna=False)
    return {
        "images": int(len(truth)),
        "left_out": int((~known).sum()),
        "no_face": int((~found).sum()),  # counted as wrong
        "accuracy": float((pred == truth).mean()),
        "balanced_accuracy": float(np.mean(list(recall.values()))),
        "recall": recall,
        "confusion": confusion,
    }


def score(df: pd.DataFrame, labels: list[str]) -> dict[str, Any]:
    """``score_labels`` of one set's table: the label is the image's folder; with a detector, the largest face."""
    df = df[df["face"].isna() | (df["face"] == 0)]
    truth = df["video"].str.split("/").str[0].to_numpy()
    return score_labels(df[labels].to_numpy(np.float64), labels, truth, df["face"].notna().to_numpy())


def steadiness_ck(df: pd.DataFrame, labels: list[str]) -> float:
    """Mean L1 change between consecutive frames of each CK+ sequence (file names ``S010_004_00000017.png``)."""
    names = df["video"].str.split("/").str[-1]
    parts = names.str.extract(r"^(S\d+_\d+)_(\d+)\.", expand=True)
    d = pd.DataFrame({"seq": parts[0], "n": parts[1].astype(float)}).join(df[labels])
    d = d.dropna(subset=["seq"]).sort_values(["seq", "n"])
    diffs = []
    for _, g in d.groupby("seq"):
        consecutive = np.diff(g["n"].to_numpy()) == 1
        step = np.abs(np.diff(g[labels].to_numpy(np.float64), axis=0)).sum(axis=1)
        diffs.append(step[consecutive])
    return float(np.concatenate(diffs).mean()) if diffs else float("nan")


def steadiness_clip(config: dict[str, Any]) -> float:
    """Mean L1 change along the longest track of the bundled sample clip, at default detector settings."""
    df = fer_batch.analyze_video(REPO / "samples" / "astronaut.mp4", **config).dropna(subset=["track_id"])
    labels = label_columns(df)
    track = df["track_id"].value_counts().idxmax()
    p = df[df["track_id"] == track].sort_values("frame")[labels].to_numpy(np.float64)
    return float(np.abs(np.diff(p, axis=0)).sum(axis=1).mean())


def fmt_set(name: str, s: dict[str, Any]) -> str:
    rec = " ".join(f"{c}={v:.2f}" for c, v in s["recall"].items())
    return (f"  {name:<22} n={s['images']:<5} acc={s['accuracy']:.3f}  bal_acc={s['balanced_accuracy']:.3f}"
            f"  recall: {rec}" + (f"  (left out: {s['left_out']})" if s["left_out"] else "")
            + (f"  (no face found: {s['no_face']})" if s["no_face"] else ""))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", action="append", type=Path, help="labelled folder ROOT/<label>/<image> (repeatable)")
    ap.add_argument("--config", action="append", help='Options, e.g. "model=face-api-expression tta=flip"')
    ap.add_argument("--limit", type=int, default=0, help="only the first N images per class (quick runs)")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--steadiness", action="store_true")
    ap.add_argument("--confusion", action="store_true", help="print the confusion matrices")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sets = args.set or [SHARED / s for s in DEFAULT_SETS]
    configs = [parse_config(c) for c in (args.config or [f"model={Options().classification.model}"])]
    report: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fer-acc-sets-") as tmp:
        roots = [subset(s, args.limit, Path(tmp) / s.name) if args.limit else s for s in sets]
        for config in configs:
            name = " ".join(f"{k}={v}" for k, v in config.items())
            print(f"{name}:", flush=True)
            row: dict[str, Any] = {"config": config, "sets": {}}
            for root, s in zip(roots, sets, strict=True):
                df, labels, wall = predictions(root, config, args.jobs)
                scored = score(df, labels)
                print(fmt_set(s.name, scored) + f"  [{wall:.0f} s]", flush=True)
                if args.confusion:
                    print(re.sub("^", "    ", scored["confusion"].to_string(), flags=re.M))
                row["sets"][s.name] = {k: v for k, v in scored.items() if k != "confusion"}
                row["sets"][s.name]["confusion"] = scored["confusion"].to_numpy().tolist()
                if args.steadiness and s.name.startswith("ck"):
                    row["steadiness_ck"] = steadiness_ck(df, labels)
            bal = [v["balanced_accuracy"] for v in row["sets"].values()]
            row["mean_balanced_accuracy"] = float(np.mean(bal))
            line = f"  mean balanced accuracy over {len(bal)} sets: {row['mean_balanced_accuracy']:.3f}"
            if args.steadiness:
                row["steadiness_clip"] = steadiness_clip(config)
                line += f"; steadiness (mean L1 per frame): CK+ sequences {row.get('steadiness_ck', float('nan')):.3f}"
                line += f", sample clip {row['steadiness_clip']:.3f}"
            print(line, flush=True)
            report.append(row)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
