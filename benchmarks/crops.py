"""Which crop each emotion model should get: balanced accuracy on faces CenterFace finds in labelled photos.

Why a study of its own: the crop geometry (margin, square, eye alignment, vertical shift) is a property of each model
(its manifest ``crop`` object) and must be chosen on faces a detector found, not on the data sets' own crops. The
detector runs once per image (the pipeline's ``make_detector`` at default options, largest face kept); every
geometry is then cut with the pipeline's ``crop_one`` and scored with the pipeline's classifier, so a grid of
geometries costs one detection pass. ``benchmarks/accuracy.py --config "detector=centerface ..."`` checks the chosen
geometry end to end through ``analyze``.

    python benchmarks/crops.py --set ../shared/data/expressions/muxspace-dev
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from accuracy import SHARED, score_labels  # noqa: E402

from fer_batch.analysis.classify import Classifier  # noqa: E402
from fer_batch.analysis.crop import CropSpec, crop_one  # noqa: E402
from fer_batch.analysis.detect import make_detector  # noqa: E402
from fer_batch.analysis.detect.scan_size import small_size  # noqa: E402
from fer_batch.media.probe import read_image  # noqa: E402
from fer_batch.media.reader import from_bgr  # noqa: E402
from fer_batch.options import Options  # noqa: E402
from fer_batch.types import Frames  # noqa: E402

MODELS = ("fer2013-minixception", "face-api-expression")


def detect_all(files: list[Path]) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray]:
    """Each photo (BGR, gray) with the largest face's box and landmarks (NaN where none was found)."""
    options = Options.of(device="cpu")
    detector = make_detector(options)
    bgrs, grays = [], []
    boxes = np.full((len(files), 4), np.nan, np.float32)
    marks = np.full((len(files), 5, 2), np.nan, np.float32)
    for i, f in enumerate(files):
        bgr = read_image(f)
        h, w = bgr.shape[:2]
        d = from_bgr(0, 0.0, bgr, small_size(w, h, options.detection.det_size, options.detection.min_face))
        faces = detector(Frames.from_decoded([d], colour=True))
        if len(faces):
            boxes[i], marks[i] = faces.boxes[0], faces.landmarks[0]
        bgrs.append(bgr)
        grays.append(d.gray)
    return bgrs, grays, boxes, marks


def geometries() -> list[CropSpec]:
    grid = [CropSpec(margin=m, square=False) for m in (0.0, 0.1, 0.2, 0.3)]  # the box stretched to the input
    margins, aligns, shifts = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3), (False, True), (0.0, 0.05, 0.1)
    grid += [CropSpec(margin=m, align=a, shift=s) for m, a, s in itertools.product(margins, aligns, shifts)]
    return grid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--set", type=Path, default=SHARED / "muxspace-dev", help="labelled folder ROOT/<label>/<image>")
    args = ap.parse_args(argv)
    files = sorted(p for p in args.set.glob("*/*") if p.is_file())
    t0 = time.perf_counter()
    bgrs, grays, boxes, marks = detect_all(files)
    found = np.flatnonzero(~np.isnan(boxes[:, 0]))
    truth = np.array([f.parent.name for f in files])[found]
    print(f"{args.set.name}: a face found in {len(found)} of {len(files)} photos [{time.perf_counter() - t0:.0f} s]")
    classifiers = {m: Classifier(Options.of(model=m, device="cpu")) for m in MODELS}
    print("| margin | square | align | shift | " + " | ".join(MODELS) + " | average of both |")
    print("|---|---|---|---|" + "---|" * (len(MODELS) + 1))
    for spec in geometries():
        probs = []
        for clf in classifiers.values():
            m = clf.single
            src = grays if m.color == "gray" else bgrs
            crops = np.stack([crop_one(src[i], boxes[i], marks[i], spec, (m.width, m.height)) for i in found])
            if m.color == "rgb":
                crops = np.ascontiguousarray(crops[..., ::-1])
            probs.append(clf.predict(crops))
        cells = [score_labels(p, clf.labels, truth) for p, clf in zip(probs, classifiers.values(), strict=True)]
        cells.append(score_labels(np.mean(probs, axis=0), clf.labels, truth))
        row = " | ".join(f"{c['balanced_accuracy']:.3f} ({c['accuracy']:.3f})" for c in cells)
        print(f"| {spec.margin} | {spec.square} | {spec.align} | {spec.shift} | {row} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
