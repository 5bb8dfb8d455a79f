"""Face detectors: ``detector(frames) -> Faces`` with boxes in pixels of the displayed frame.

Both scan ``Frames.small_image`` (the downscaled detector image, made on demand) and map boxes back to full
resolution.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from fer_batch.options import Options
from fer_batch.types import Faces, Frames


class Detector(Protocol):
    id: str
    sha256: str

    def __call__(self, frames: Frames) -> Faces: ...


def make_detector(options: Options) -> Detector:
    """The detector that ``options.detector`` names."""
    if options.detector == "none":
        from fer_batch.detect.whole import WholeFrame

        return WholeFrame(options)
    if options.detector == "haar":
        from fer_batch.detect.haar import HaarDetector

        return HaarDetector(options)
    from fer_batch.detect.centerface import CenterFace

    return CenterFace(options)


def scan_images(frames: Frames, options: Options) -> list[np.ndarray]:
    """The downscaled RGB image of every frame, at the size ``--det-size`` and ``--min-face`` ask for."""
    from fer_batch.decode import small_size

    if not len(frames):
        return []
    w, h = frames.size
    size = small_size(w, h, options.det_size, options.min_face)
    return [frames.small_image(j, size) for j in range(len(frames))]


def finish(faces: Faces, frames: Frames, min_face: int) -> Faces:
    """Clip boxes to the frame, drop faces under ``min_face`` px and order each frame's faces largest first."""
    if not len(faces):
        return faces
    w, h = frames.size
    boxes = faces.boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h)
    bw, bh = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    faces = faces.replace(boxes=boxes)
    keep = (np.minimum(bw, bh) >= max(min_face, 1)) & (bw > 0) & (bh > 0)
    faces = faces.take(keep)
    area = (faces.boxes[:, 2] - faces.boxes[:, 0]) * (faces.boxes[:, 3] - faces.boxes[:, 1])
    # frame ascending, then area descending; lexsort is stable so equal areas keep detector order
    return faces.take(np.lexsort((-area, faces.frame)))


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; returns kept indices, best score first."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        iw = (np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest])).clip(0)
        ih = (np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest])).clip(0)
        inter = iw * ih
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou < iou_threshold]
    return np.asarray(keep, dtype=np.int64)
