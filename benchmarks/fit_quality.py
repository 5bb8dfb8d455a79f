"""Fit and measure ``quality``: a gated logistic model of "the default ensemble's ``emotion`` is right", on labelled
faces (the model and why it is gated: ``quality_fit``).

Data: only the labelled sets of ``../shared/data/expressions`` (fer2013-privatetest, ckplus48, muxspace-dev).
fer2013-train is left out: ``fer2013-minixception`` was trained on it, so its answers there are memorised and say
nothing about new faces. Every image goes through the real ``analyze`` path (``--detector none``: the image is the
face) once per ensemble member, and again with ``--tta flip`` for the members of ``quality.MIRRORED`` (the
answer averaged with the mirrored face's, as the pipeline computes it for ``quality``), so each face's features are
exactly those the pipeline computes
(``fer_batch.analysis.quality.features``: the ensemble's top probability and margin, the members' disagreement,
face size, sharpness, pose; the gate's image statistics, ``quality.gate_features``); the ensemble's probabilities
are the members' mean, as in ``Classifier``. The images
have no landmarks under ``--detector none``; a run of the default detector (CenterFace, int8 full scans) on each
image gives the pose of the faces it finds
(most of muxspace-dev), which fits the pose terms; faces without landmarks get the fitting data's mean pose.

Held out two ways, per set: (a) 2-fold by subject/file (fit on one half of every set, score the other half; CK+
split by subject so near-duplicate frames never straddle folds); (b) leave one set out (fit on the other sets).
Each fit chooses its L2 strength by a 2-fold split of its own fitting rows (``quality_fit.choose_l2``).
Reported beside the raw top probability: ECE (10 equal-width bins), AUROC (right above wrong), and accuracy kept
versus rows kept at a few thresholds. The shipped model (``models/quality.json``) is fitted on all rows.

    python benchmarks/fit_quality.py --jobs 1 --write models/quality.json [--data ../shared/data/expressions]
    python benchmarks/fit_quality.py --verify   # the pipeline's quality column == this script's, on one set

After a change to ``quality.FEATURES`` or ``GATE_FEATURES`` the shipped ``models/quality.json`` no longer loads, and
every run refuses to start: move it aside before fitting (the tables the fit reads do not depend on it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from accuracy import SHARED, label_columns  # noqa: E402
from quality_fit import BLUR_WEIGHT, choose_l2, fit  # noqa: E402

import fer_batch  # noqa: E402
from fer_batch.analysis import quality  # noqa: E402
from fer_batch.media.probe import read_image  # noqa: E402
from fer_batch.options import Options  # noqa: E402

SETS = ("fer2013-privatetest", "ckplus48", "muxspace-dev")
MEMBERS = tuple(Options().classification.model.split("+"))
THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
BLUR_SIGMA = 1 / 40  # of the image's side: a 48-px face loses its fine detail, a 350-px one looks out of focus


def run(root: Path, cache: Path, **config: Any) -> pd.DataFrame:
    """The table of every image of ``root`` under ``config`` (cached as Parquet: the runs take minutes)."""
    key = hashlib.sha256(json.dumps([str(root), config, fer_batch.__version__], sort_keys=True).encode()).hexdigest()
    path = cache / f"{root.name}-{key[:12]}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    with tempfile.TemporaryDirectory(prefix="fer-quality-") as tmp:
        fer_batch.analyze_many([root], Path(tmp) / "out", **config)
        df = fer_batch.load(Path(tmp) / "out")
    df.to_parquet(path)
    return df


DATA = [SHARED]  # --data replaces it


def blurred_copies(name: str, cache: Path) -> Path:
    """The set's images blurred (Gaussian, sigma = ``BLUR_SIGMA`` x the image's side), made once in ``cache``.

    Why: a blurred face is where a user most needs a warning, and the labelled sets hold few; the copies show how
    often the ensemble is still right on them (measured, not assumed), so ``quality`` learns what blur costs.
    """
    root = cache / "blurred" / name
    done = root / ".complete"
    if not done.is_file():
        for f in sorted((DATA[0] / name).glob("*/*")):
            img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            out = root / f.parent.name / f.name
            out.parent.mkdir(parents=True, exist_ok=True)
            jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95] if f.suffix.lower() in (".jpg", ".jpeg") else []
            cv2.imwrite(str(out), cv2.GaussianBlur(img, (0, 0), max(img.shape[:2]) * BLUR_SIGMA), jpeg)
        done.touch()
    return root


def set_rows(name: str, cache: Path, jobs: int, pose: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per image: label, members' probabilities, size, sharpness, and pose where CenterFace found a face.

    With ``pose`` (the original set's rows), the set's blurred copies, which keep their original's pose.
    """
    root = DATA[0] / name if pose is None else blurred_copies(name, cache)
    tables = [run(root, cache, model=m, detector="none", jobs=jobs).sort_values("video") for m in MEMBERS]
    # with ``--tta flip``: the probabilities averaged with the mirrored face's, of the members quality reads so
    both = [run(root, cache, model=MEMBERS[k], detector="none", jobs=jobs, tta="flip").sort_values("video")
            for k in quality.MIRRORED]  # fmt: skip
    labels = label_columns(tables[0])
    base = tables[0].reset_index(drop=True)
    out = pd.DataFrame({"set": name, "video": base["video"], "truth": base["video"].str.split("/").str[0],
                        "w": base["w"], "h": base["h"], "sharpness": base["sharpness"]})  # fmt: skip
    for prefix, runs in (("m", dict(enumerate(tables))), ("b", dict(zip(quality.MIRRORED, both, strict=True)))):
        for k, t in runs.items():
            assert (t["video"].to_numpy() == base["video"].to_numpy()).all()
            for c in labels:
                out[f"{prefix}{k}_{c}"] = t[c].to_numpy(np.float64)
    # the look but sharpness is no table column: measured here as the pipeline does (the photo decoded as
    # ``media.reader`` decodes it, its gray image, the face's box = the whole image); sharpness must agree
    looks = np.array([looks_of(root / v) for v in out["video"]], np.float64).reshape(-1, len(quality.LOOK))
    assert np.allclose(looks[:, 0], out["sharpness"], rtol=1e-4), "sharpness measured here differs from the table's"
    for k, name in enumerate(quality.LOOK[1:], start=1):
        out[name] = looks[:, k]
    if pose is None:
        # the default detector's pose (int8 full scans): what a default run's pose terms will read
        det = run(root, cache, model=MEMBERS[0], detector=Options().detection.detector, jobs=jobs)
        det = det[det["face"] == 0].set_index("video")[["yaw", "pitch"]]
    else:
        det = pose.set_index("video")[["yaw", "pitch"]]
    out = out.join(det, on="video").assign(blurred=pose is not None)
    out.attrs["labels"] = labels
    return out[out["truth"].isin(labels)].reset_index(drop=True)


def looks_of(path: Path) -> tuple[float, ...]:
    gray = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2GRAY)
    return quality.look_one(gray, np.array([0, 0, gray.shape[1], gray.shape[0]], np.float32))


def design(df: pd.DataFrame, labels: list[str], fill: tuple[float, float]) -> tuple[np.ndarray, ...]:
    """Features and gate features (as the pipeline computes them), whether the ensemble is right, its top
    probability."""
    members = [df[[f"m{k}_{c}" for c in labels]].to_numpy(np.float64) for k in range(len(MEMBERS))]
    probs = (sum(m.astype(np.float32) for m in members) / len(members)).astype(np.float32)
    boxes = np.stack([np.zeros(len(df)), np.zeros(len(df)), df["w"], df["h"]], axis=1)
    angles = np.stack([df["yaw"], df["pitch"], np.full(len(df), np.nan)], axis=1)
    look = quality.Look(*(df[c].to_numpy(np.float32) for c in quality.LOOK))
    both = [df[[f"b{k}_{c}" for c in labels]].to_numpy(np.float32) for k in quality.MIRRORED]
    x = quality.features(probs, [m.astype(np.float32) for m in members], both, boxes, angles, look, fill)
    right = np.asarray(labels)[probs.argmax(axis=1)] == df["truth"].to_numpy()
    return x, quality.gate_features(boxes, look), right.astype(float), probs.max(axis=1).astype(np.float64)


def fitted(df: pd.DataFrame, labels: list[str], fitted_on: list[str]) -> tuple[quality.Calibration, float]:
    """The model fitted on ``df``'s rows (L2 chosen inside them), and that L2."""
    fill = fill_of(df)
    x, g, y, _ = design(df, labels, fill)
    sets, blurred = df["set"].to_numpy(), df["blurred"].to_numpy()
    l2 = choose_l2(x, g, y, sets, blurred, units(df))
    kinds, gate, expert = fit(x, g, y, sets, blurred, l2)
    classifier = Options().classification.model
    return quality.Calibration(classifier, None, kinds, gate, expert, fill, tuple(fitted_on)), l2


def fill_of(df: pd.DataFrame) -> tuple[float, float]:
    """The mean |yaw|, |pitch| (tens of degrees) of the faces with a pose: what a face without landmarks gets."""
    return (float(np.nanmean(np.abs(df["yaw"]))) / 10, float(np.nanmean(np.abs(df["pitch"]))) / 10)


def ece(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error over ``bins`` equal-width bins of confidence."""
    k = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(right[k == b].mean() - conf[k == b].mean()) * (k == b).sum() for b in range(bins)
                     if (k == b).any()) / len(conf))  # fmt: skip


def auroc(score: np.ndarray, right: np.ndarray) -> float:
    """Probability that a right answer scores above a wrong one (ties count half)."""
    ranks = pd.Series(score).rank().to_numpy()
    pos = right.astype(bool)
    n1, n0 = pos.sum(), (~pos).sum()
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)) if n1 and n0 else float("nan")


def kept(score: np.ndarray, right: np.ndarray) -> list[tuple[float, float, float]]:
    """(threshold, share of rows kept, accuracy of the rows kept) at each of ``THRESHOLDS``."""
    out = []
    for t in THRESHOLDS:
        sel = score >= t
        out.append((t, float(sel.mean()), float(right[sel].mean()) if sel.any() else float("nan")))
    return out


def units(df: pd.DataFrame) -> list[str]:
    """What never straddles two folds: the subject (CK+: ``S010`` of ``S010_006_...``) or the file name (a blurred
    copy has its original's)."""
    names = df["video"].str.split("/").str[-1]
    return [str(u) for u in np.where(df["set"] == "ckplus48", names.str.split("_").str[0], names)]


def folds(df: pd.DataFrame) -> np.ndarray:
    """0/1 per row, by a hash of its unit (``units``)."""
    return np.array([hashlib.sha256(u.encode()).digest()[0] & 1 for u in units(df)])


def held_out(df: pd.DataFrame, labels: list[str]) -> dict[str, np.ndarray]:
    """Out-of-fold ``quality`` of every row under both protocols; "no landmarks": the 2-fold model on the test
    faces without their pose, as ``--detector none`` (and so the checks on whole labelled images) sees them."""
    out = {"2-fold": np.zeros(len(df)), "2-fold, no landmarks": np.zeros(len(df)), "leave-set-out": np.zeros(len(df))}
    for protocol, groups in (("2-fold", folds(df)), ("leave-set-out", df["set"].to_numpy())):
        for part in np.unique(groups):
            train, test = groups != part, groups == part
            cal, l2 = fitted(df[train], labels, [])
            print(f"{protocol}, scoring {part}: L2 {l2:g}")
            out[protocol][test] = cal.predict(*design(df[test], labels, cal.fill_pose)[:2])
            if protocol == "2-fold":
                bare = df[test].assign(yaw=np.nan, pitch=np.nan)
                out["2-fold, no landmarks"][test] = cal.predict(*design(bare, labels, cal.fill_pose)[:2])
    return out


def report(df: pd.DataFrame, labels: list[str], scores: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per set and score: rows, accuracy, ECE, AUROC and the kept table; printed as Markdown."""
    _, _, right, top = design(df, labels, (0.0, 0.0))
    result: dict[str, Any] = {}
    heads = " | ".join(f"≥{t}: kept / acc" for t in THRESHOLDS)
    print(f"| set | score | rows | accuracy | ECE | AUROC | {heads} |")
    print("|---" * (6 + len(THRESHOLDS)) + "|")
    for name, blurred in ((n, b) for n in SETS for b in (False, True)):
        sel = ((df["set"] == name) & (df["blurred"] == blurred)).to_numpy()
        shown = scores if not blurred else {k: v for k, v in scores.items() if k == "2-fold, no landmarks"}
        label_of = (lambda k: k) if not blurred else (lambda k: f"{k}, blurred copies")  # noqa: E731
        for label, s in ((label_of("top probability"), top), *((f"quality ({label_of(k)})", v) for k, v in
                                                                  shown.items())):  # fmt: skip
            row = {"rows": int(sel.sum()), "accuracy": float(right[sel].mean()), "ece": ece(s[sel], right[sel]),
                   "auroc": auroc(s[sel], right[sel]), "kept": kept(s[sel], right[sel])}  # fmt: skip
            result.setdefault(name, {})[label] = row
            cells = " | ".join(f"{k:.0%} / {a:.0%}" for _, k, a in row["kept"])
            print(f"| {name} | {label} | {row['rows']} | {row['accuracy']:.3f} | {row['ece']:.3f} | "
                  f"{row['auroc']:.3f} | {cells} |")  # fmt: skip
    return result


def verify(cache: Path, jobs: int, calibration: quality.Calibration) -> float:
    """The largest difference between the pipeline's ``quality`` column and this script's computation for the
    shipped model (ckplus48)."""
    df = set_rows("ckplus48", cache, jobs)
    with tempfile.TemporaryDirectory(prefix="fer-quality-") as tmp:
        fer_batch.analyze_many([DATA[0] / "ckplus48"], Path(tmp) / "out", detector="none", jobs=jobs)
        real = fer_batch.load(Path(tmp) / "out").set_index("video")["quality"]
    df = df.assign(yaw=np.nan, pitch=np.nan)  # the pipeline has no landmarks under --detector none
    x, g, _, _ = design(df, df.attrs["labels"], calibration.fill_pose)
    mine = calibration.predict(x, g)
    diff = np.abs(real.loc[df["video"]].to_numpy() - mine)
    print(f"verify: max |pipeline - script| = {diff.max():.2e} over {len(diff)} faces")
    return float(diff.max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "fer-quality-cache")
    ap.add_argument("--write", type=Path, help="write the model fitted on all rows here (models/quality.json)")
    ap.add_argument("--json", type=Path, help="also write the numbers here")
    ap.add_argument("--verify", action="store_true")
    ap.add_argument("--data", type=Path, default=SHARED, help="the labelled sets' folder (../shared/data/expressions)")
    args = ap.parse_args(argv)
    DATA[0] = args.data
    logging.basicConfig(level=logging.WARNING)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.verify:
        cal = quality.shipped()
        assert cal is not None, "no models/quality.json"
        verify(args.cache, args.jobs, cal)
        return 0
    parts = [set_rows(name, args.cache, args.jobs) for name in SETS]
    parts += [set_rows(name, args.cache, args.jobs, pose=part) for name, part in zip(SETS, parts, strict=True)]
    labels = parts[0].attrs["labels"]
    df = pd.concat(parts, ignore_index=True)
    print(f"faces with a CenterFace pose: {df['yaw'].notna().mean():.0%}; blurred copies weigh {BLUR_WEIGHT}")
    numbers = report(df, labels, held_out(df, labels))
    if args.write:
        cal, l2 = fitted(df, labels, list(SETS))
        entry = {**cal.to_dict(), "l2": l2, "script": "benchmarks/fit_quality.py"}
        args.write.write_text(json.dumps(entry, indent=1) + "\n")
        print(f"wrote {args.write} (L2 {l2:g}); kinds {list(cal.kinds)}")
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
