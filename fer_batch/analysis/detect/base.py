"""What every face detector shares: the ``Detector`` contract, the scan images, box clean-up and NMS.

Why apart from ``fer_batch.analysis.detect``: the detectors import these helpers, and the package imports the detectors
(``make_detector``); with the helpers here, imports run one way.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from fer_batch.analysis.detect.scan_size import scan_size
from fer_batch.options import Options
from fer_batch.types import Faces, Frames


class Detector(Protocol):
    """Full-frame detection: ``detector(frames)`` finds the faces of every frame given."""

    id: str
    sha256: str

    def __call__(self, frames: Frames) -> Faces: ...


@runtime_checkable
class RegionDetector(Detector, Protocol):
    """A detector that can also look only around known faces (``boxes``) of frame ``j``, between full scans."""

    def regions(self, frames: Frames, j: int, boxes: np.ndarray) -> Faces: ...


def scan_images(frames: Frames, options: Options) -> list[np.ndarray]:
    """The downscaled RGB image of every frame, at the size ``--det-size`` and ``--min-face`` ask for."""
    if not len(frames):
        return []
    w, h = frames.size
    size = scan_size(options.detection, w, h)
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
