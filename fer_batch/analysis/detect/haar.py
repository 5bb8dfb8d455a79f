"""OpenCV's Haar cascade (the original notebook's detector), through ``cv2.data`` — nothing downloaded."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from fer_batch.analysis.detect.base import finish, scan_images
from fer_batch.analysis.models import file_sha256
from fer_batch.options import Options
from fer_batch.types import Faces, Frames

CASCADE = "haarcascade_frontalface_default.xml"
CASCADE_PATH = Path(cv2.data.haarcascades) / CASCADE  # type: ignore[attr-defined]  # OpenCV stubs lack cv2.data


def cascade_sha256() -> str:
    """The checksum of OpenCV's cascade file, which a table records (it changes with OpenCV's data)."""
    return file_sha256(CASCADE_PATH.resolve())


class HaarDetector:
    """Viola-Jones frontal faces on the downscaled frame; scores are 1 (the cascade gives none)."""

    id = "haar-frontalface-default"

    def __init__(self, options: Options) -> None:
        path = CASCADE_PATH
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise RuntimeError(f"{path}: OpenCV could not load its Haar cascade")
        self.sha256 = cascade_sha256()
        self.scale_factor = options.detection.haar_scale_factor
        self.min_neighbors = options.detection.haar_min_neighbors
        self.min_face = options.detection.min_face
        self.options = options

    def __call__(self, frames: Frames) -> Faces:
        parts = []
        full_w, full_h = frames.size
        for j, small in enumerate(scan_images(frames, self.options)):
            gray = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
            fx, fy = full_w / small.shape[1], full_h / small.shape[0]
            min_px = max(int(self.min_face / max(fx, fy)), 8)
            rects = self.cascade.detectMultiScale(
                gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_px, min_px)
            )
            if len(rects) == 0:
                continue
            r = np.asarray(rects, dtype=np.float32)
            boxes = np.stack([r[:, 0] * fx, r[:, 1] * fy, (r[:, 0] + r[:, 2]) * fx, (r[:, 1] + r[:, 3]) * fy], axis=1)
            n = len(r)
            parts.append(
                Faces(
                    frame=np.full(n, frames.index[j], dtype=np.int64),
                    boxes=boxes,
                    scores=np.ones(n, dtype=np.float32),
                    landmarks=np.full((n, 5, 2), np.nan, dtype=np.float32),
                    track_id=np.full(n, -1, dtype=np.int64),
                )
            )
        return finish(Faces.concat(parts), frames, self.min_face)
