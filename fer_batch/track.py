"""Online face tracking: track ids that follow a face across frames, boxes carried between detections,
and an optional exponential moving average of the probabilities along each track.

Why online: tables are written as the video streams, so ids must be assigned frame by frame, never after
the fact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_batch.types import Faces


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a (n, 4) and b (m, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    iw = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    ih = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass
class _Track:
    id: int
    box: np.ndarray  # last box, xyxy
    velocity: np.ndarray  # per analysed frame, xyxy
    score: float
    landmarks: np.ndarray
    last_seen: int  # analysed-frame counter
    hits: int = 1
    missed: int = 0  # detection rounds in a row without a match


class Tracker:
    """Greedy IoU association with constant-velocity prediction.

    A track survives ``max_missed`` analysed frames without a detection (so one or two misses keep the id);
    matches are made best-IoU-first, each detection and track used once, which keeps two faces passing
    close from swapping as long as their predicted boxes overlap their own detections more.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: list[_Track] = []
        self.next_id = 0
        self.step = 0

    def _predicted(self) -> np.ndarray:
        if not self.tracks:
            return np.zeros((0, 4), dtype=np.float32)
        return np.stack([t.box + t.velocity * (self.step - t.last_seen) for t in self.tracks]).astype(np.float32)

    def update(self, faces: Faces) -> Faces:
        """Assign ids to one frame's detections (all faces share one frame index)."""
        self.step += 1
        ids = np.full(len(faces), -1, dtype=np.int64)
        iou = iou_matrix(self._predicted(), faces.boxes)
        pairs = np.argwhere(iou >= self.iou_threshold)
        pairs = pairs[np.argsort(-iou[pairs[:, 0], pairs[:, 1]], kind="stable")] if len(pairs) else pairs
        used_t: set[int] = set()
        for ti, di in pairs:
            if ti in used_t or ids[di] >= 0:
                continue
            used_t.add(int(ti))
            t = self.tracks[ti]
            gap = max(self.step - t.last_seen, 1)
            new_v = (faces.boxes[di] - t.box) / gap
            t.velocity = 0.5 * t.velocity + 0.5 * new_v if t.hits > 1 else new_v
            t.box, t.score, t.landmarks = faces.boxes[di].copy(), float(faces.scores[di]), faces.landmarks[di]
            t.last_seen, t.hits, t.missed = self.step, t.hits + 1, 0
            ids[di] = t.id
        for ti, t in enumerate(self.tracks):
            if ti not in used_t:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for di in np.nonzero(ids < 0)[0]:
            track = _Track(self.next_id, faces.boxes[di].copy(), np.zeros(4, np.float32), float(faces.scores[di]),
                           faces.landmarks[di], self.step)  # fmt: skip
            self.tracks.append(track)
            ids[di] = track.id
            self.next_id += 1
        return faces.replace(track_id=ids)

    def predict(self, frame_index: int, width: int, height: int) -> Faces:
        """Boxes of the tracks seen at the last detection, moved by their velocity (for ``--detect-every``)."""
        self.step += 1
        live = [t for t in self.tracks if t.missed == 0]
        if not live:
            return Faces()
        boxes = np.stack([t.box + t.velocity * (self.step - t.last_seen) for t in live]).astype(np.float32)
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        n = len(live)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-area, kind="stable")
        return Faces(
            frame=np.full(n, frame_index, dtype=np.int64),
            boxes=boxes,
            scores=np.array([t.score for t in live], dtype=np.float32),
            landmarks=np.stack([t.landmarks for t in live]).astype(np.float32),
            track_id=np.array([t.id for t in live], dtype=np.int64),
        ).take(order)


class Smoother:
    """Exponential moving average of probabilities along each track; raw probabilities are left untouched."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.state: dict[int, np.ndarray] = {}

    def __call__(self, faces: Faces) -> np.ndarray:
        assert faces.probs is not None
        out = faces.probs.copy()
        for i, tid in enumerate(faces.track_id):
            if tid < 0:
                continue
            prev = self.state.get(int(tid))
            if prev is not None:
                out[i] = self.alpha * faces.probs[i] + (1 - self.alpha) * prev
            self.state[int(tid)] = out[i]
        return out
