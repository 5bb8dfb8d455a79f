"""``--detector none``: each image or frame is one face that fills it.

Why: users who already have face crops (from OpenFace, a lab's own cropper, a data set) and accuracy benchmarks
need the classifier's view of exactly that image, not of a face a detector finds inside it.
"""

from __future__ import annotations

import numpy as np

from fer_batch.options import Options
from fer_batch.types import Faces, Frames


class WholeFrame:
    """One face per frame, its box the whole frame; no detector score (null in the table), no landmarks."""

    id = "none"
    sha256 = ""

    def __init__(self, options: Options) -> None:
        self.options = options

    def __call__(self, frames: Frames) -> Faces:
        n = len(frames)
        w, h = frames.size if n else (0, 0)
        return Faces(
            frame=np.asarray(frames.index, dtype=np.int64),
            boxes=np.tile(np.array([0, 0, w, h], dtype=np.float32), (n, 1)),
            scores=np.full(n, np.nan, dtype=np.float32),
            landmarks=np.full((n, 5, 2), np.nan, dtype=np.float32),
            track_id=np.full(n, -1, dtype=np.int64),
        )
