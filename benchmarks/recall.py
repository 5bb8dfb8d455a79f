"""Detector recall at each ``--det-size``: the share of a full-size pass's faces (det_size=0) still found.

``--detector centerface-int8`` measures the int8 model's passes against the same reference (the float model at
full size): the bar a cheaper detector must clear.

A face counts as found when a box of the smaller pass overlaps it with IoU >= 0.3 (greedy one-to-one matching).
On the generated small-face clip the true boxes are known too, so recall against them is shown as well.
Every frame gets a full-frame pass (no tracking, no regions), so this measures the detector input size alone.

    python benchmarks/recall.py --photo ../shared/media/photos/selfie.jpg --clip bench_out/crowd_720p.mp4
    python benchmarks/recall.py --photo ../shared/media/photos/selfie.jpg --clip bench_out/crowd_720p.mp4 \
        --detector centerface-int8 --sizes 0,-1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from fer_batch.analysis.detect.centerface import CenterFace  # noqa: E402
from fer_batch.analysis.detect.scan_size import small_size  # noqa: E402
from fer_batch.analysis.track import iou_matrix  # noqa: E402
from fer_batch.media.probe import probe, read_image  # noqa: E402
from fer_batch.media.reader import FrameReader, from_bgr  # noqa: E402
from fer_batch.options import Options  # noqa: E402
from fer_batch.types import Frames  # noqa: E402

SIZES = (0, -1, 1280, 960, 640, 480, 320)  # -1: the defaults, det_size 640 raised so a min_face face spans 16 px


def matched(ref: np.ndarray, found: np.ndarray, threshold: float = 0.3) -> int:
    """How many ``ref`` boxes have a partner in ``found`` (greedy, best IoU first, each box used once)."""
    iou = iou_matrix(ref.astype(np.float32), found.astype(np.float32))
    pairs = np.argwhere(iou >= threshold)
    if not len(pairs):
        return 0
    pairs = pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")]
    used_r: set[int] = set()
    used_f: set[int] = set()
    for r, f in pairs:
        if r not in used_r and f not in used_f:
            used_r.add(int(r))
            used_f.add(int(f))
    return len(used_r)


def detect_photo(bgr: np.ndarray, det_size: int, min_face: int, det: CenterFace | None = None) -> np.ndarray:
    """Boxes of one full-frame pass on a photo at ``det_size`` (the photo path of FrameReader).

    ``det``: a CenterFace to use instead of the bundled one (benchmarks/quantize_centerface.py passes another model).
    """
    h, w = bgr.shape[:2]
    sw, sh = small_size(w, h, det_size) if det_size >= 0 else small_size(w, h, Options().detection.det_size, min_face)
    frames = Frames.from_decoded([from_bgr(0, 0.0, bgr, (sw, sh), keep_bgr=False)])
    return (det or CenterFace(Options.of(min_face=min_face)))(frames).boxes


def detect_clip(clip: Path, det_size: int, min_face: int, det: CenterFace | None = None) -> list[np.ndarray]:
    """Boxes of a full-frame pass on every frame of a clip, through FrameReader as the pipeline decodes it."""
    det = det or CenterFace(Options.of(min_face=min_face))
    info = probe(clip)
    # an explicit det_size is measured as it is (not raised by min_face); the detector's own options would raise it
    size = small_size(info.width, info.height, det_size) if det_size >= 0 else small_size(
        info.width, info.height, Options().detection.det_size, min_face)  # fmt: skip
    out = []
    for d in FrameReader(clip, info, Options.of(min_face=min_face)):
        frames = Frames.from_decoded([d])
        frames.small_image(0, size)  # made here, at this size; the detector then scans it
        out.append(det(frames).boxes)
    return out


def truth_boxes(clip: Path, n: int) -> list[np.ndarray]:
    """The pasted faces' boxes of make_clip's crowd clip (the same layout and drift)."""
    from make_clip import crowd_truth

    info = probe(clip)
    return [np.array(crowd_truth(info.width, info.height, i), dtype=np.float32) for i in range(n)]


def label(s: int, w: int, h: int, min_face: int) -> str:
    """How a size shows in the table: the default names the scan size it comes to."""
    if s >= 0:
        return str(s)
    sw, sh = small_size(w, h, Options().detection.det_size, min_face)
    return f"default ({Options().detection.det_size}, raised by min_face: {sw}x{sh})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photo", type=Path, default=None)
    ap.add_argument("--clip", type=Path, default=None, help="a clip made by make_clip.py crowd")
    ap.add_argument("--min-face", type=int, default=Options().detection.min_face)
    ap.add_argument("--sizes", default=",".join(str(s) for s in SIZES))
    ap.add_argument("--detector", default="centerface", choices=["centerface", "centerface-int8"],
                    help="the model of the passes measured; the reference is always the float model at full size")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    det = CenterFace(Options.of(min_face=a.min_face, detector=a.detector), scan_model=a.detector)
    same = a.detector == "centerface"  # the reference pass is then also the det_size 0 row
    lines = [
        f"detector {a.detector}, min_face = {a.min_face} px; a face is found when IoU >= 0.3 with a box of the pass; "
        "the reference is a full-size pass of the float model (centerface).",
        "",
        "| input | det_size | faces found | recall vs a full-size pass of centerface | recall vs truth |",
        "|---|---|---|---|---|",
    ]
    if a.photo is not None:
        bgr = read_image(a.photo)
        ref = detect_photo(bgr, 0, a.min_face)
        for s in sizes:
            found = ref if s == 0 and same else detect_photo(bgr, s, a.min_face, det)
            lines.append(
                f"| photo {a.photo.name} ({bgr.shape[1]}x{bgr.shape[0]}) | "
                f"{label(s, bgr.shape[1], bgr.shape[0], a.min_face)} | {len(found)} | "
                f"{matched(ref, found)}/{len(ref)} = {matched(ref, found) / max(len(ref), 1):.1%} | — |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    if a.clip is not None:
        ref = detect_clip(a.clip, 0, a.min_face)
        truth = truth_boxes(a.clip, len(ref))
        n_ref, n_truth = sum(len(r) for r in ref), sum(len(t) for t in truth)
        for s in sizes:
            found = ref if s == 0 and same else detect_clip(a.clip, s, a.min_face, det)
            m_ref = sum(matched(r, f) for r, f in zip(ref, found, strict=True))
            m_truth = sum(matched(t, f) for t, f in zip(truth, found, strict=True))
            info = probe(a.clip)
            lines.append(
                f"| clip {a.clip.name} ({len(ref)} frames) | {label(s, info.width, info.height, a.min_face)} | "
                f"{sum(len(f) for f in found)} | "
                f"{m_ref}/{n_ref} = {m_ref / max(n_ref, 1):.1%} | "
                f"{m_truth}/{n_truth} = {m_truth / max(n_truth, 1):.1%} |"
            )
            print(lines[-1], file=sys.stderr, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
