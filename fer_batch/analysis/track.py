"""Online face tracking: track ids that follow a face across frames, boxes carried between detections,
and an optional exponential moving average of the probabilities along each track.

Why online: tables are written as the video streams, so ids must be assigned frame by frame, never after
the fact. Why an exact assignment: when two faces pass close, a greedy best-pair-first match can hand one
face's detection to the other's track; minimising the total cost over all pairs (with each track's position
predicted from its velocity) keeps both ids where they belong. Frames hold few faces, so a small Hungarian
solver written here is plenty (scipy is not a dependency).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fer_batch.types import Faces

_FORBIDDEN = 1e6  # cost of a pair outside the gates; any such pair in the solution is dropped


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes a (n, 4) and b (m, 4)."""
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), dtype=np.float32)
    iw = (np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])).clip(0)
    ih = (np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])).clip(0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    iou: np.ndarray = inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)
    return iou


def linear_assignment(cost: np.ndarray) -> list[tuple[int, int]]:
    """Row/column pairs of a minimum-cost assignment of an (n, m) cost matrix (Hungarian method, O(k^3)).

    Every row is assigned when n <= m, every column when n > m; callers drop pairs whose cost marks them
    as forbidden. Written here because scipy's ``linear_sum_assignment`` is not a dependency.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return []
    transposed = n > m
    c = np.asarray(cost.T if transposed else cost, dtype=np.float64)
    n, m = c.shape  # now n <= m
    # potentials u (rows), v (columns); p[j] = row matched to column j (1-based, 0 = free); way = augmenting path
    u, v = np.zeros(n + 1), np.zeros(m + 1)
    p, way = np.zeros(m + 1, dtype=np.int64), np.zeros(m + 1, dtype=np.int64)
    for i in range(1, n + 1):
        p[0], j0 = i, 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = p[j0]
            free = ~used[1:]
            cur = c[i0 - 1] - u[i0] - v[1:]
            better = free & (cur < minv[1:])
            minv[1:][better] = cur[better]
            way[1:][better] = j0
            cand = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(cand)) + 1
            delta = cand[j1 - 1]
            u[p[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if p[j0] == 0:
                break
        while j0:  # flip the augmenting path
            j1 = way[j0]
            p[j0] = p[j1]
            j0 = j1
    pairs = [(int(p[j]) - 1, j - 1) for j in range(1, m + 1) if p[j] > 0]
    if transposed:
        pairs = [(j, i) for i, j in pairs]
    return sorted(pairs)


def _centres_sizes(boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    wh = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
    return (boxes[:, :2] + boxes[:, 2:]) / 2, wh


@dataclass
class _Track:
    id: int
    box: np.ndarray  # last matched detection, xyxy
    centre: np.ndarray  # centre of that detection
    size: np.ndarray  # width, height: average of the recent detections (one partly hidden face does not shrink it)
    velocity: np.ndarray  # centre displacement per analysed frame, averaged
    score: float
    landmarks: np.ndarray
    last_seen: int  # analysed-frame counter at the last match
    hits: int = 1
    missed: int = 0  # detection rounds in a row without a match


def _new_track(track_id: int, faces: Faces, i: int, step: int) -> _Track:
    box = faces.boxes[i].astype(np.float32)
    centre, size = _centres_sizes(box[None])
    return _Track(track_id, box, centre[0], size[0], np.zeros(2, np.float32), float(faces.scores[i]),
                  faces.landmarks[i], step)  # fmt: skip


class Tracker:
    """Assigns track ids: constant-velocity prediction, IoU with a centre-distance fallback, exact assignment.

    A detection may join a track when its box overlaps the track's predicted box (IoU >= ``iou_threshold``)
    or, where they do not overlap (fast motion, a low ``--fps``, a face back after a miss), when the centres lie
    within ``max_distance`` box sides (a gate that widens by a quarter per missed round) and the sizes differ by
    less than ``max_scale``. The pairing minimises ``(1 - IoU) + distance`` over the frame. A track that goes
    unmatched survives ``max_missed`` detection rounds (so one or two missed detections keep the id) and is then
    dropped; ids are never reused and count from 0 per tracker, i.e. per video.
    """

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_missed: int = 5,
        max_distance: float = 1.0,
        max_scale: float = 1.6,
        velocity_weight: float = 0.5,
    ) -> None:
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.max_distance = max_distance
        self.max_scale = max_scale
        self.velocity_weight = velocity_weight  # weight of the newest displacement in the velocity average
        self.tracks: list[_Track] = []
        self.next_id = 0
        self.step = 0  # analysed frames seen (detected or carried)

    def _predict_box(self, t: _Track) -> np.ndarray:
        centre = t.centre + t.velocity * (self.step - t.last_seen)
        return np.concatenate([centre - t.size / 2, centre + t.size / 2]).astype(np.float32)

    def cost_matrix(self, predicted: np.ndarray, boxes: np.ndarray, missed: np.ndarray | None = None) -> np.ndarray:
        """Cost of pairing each predicted track box with each detection; ``_FORBIDDEN`` outside the gates."""
        iou = iou_matrix(predicted, boxes)
        if iou.size == 0:
            return iou.astype(np.float64)
        (pc, pwh), (dc, dwh) = _centres_sizes(predicted), _centres_sizes(boxes)
        side_p, side_d = np.sqrt(pwh.prod(1))[:, None], np.sqrt(dwh.prod(1))[None, :]  # geometric-mean box sides
        # centre distance in units of the pair's box side, so the gate means the same for near and far faces
        dist = np.linalg.norm(pc[:, None, :] - dc[None, :, :], axis=2) / np.sqrt(side_p * side_d)
        ratio = np.maximum(side_p / side_d, side_d / side_p)
        gate = self.max_distance * (1 + 0.25 * (np.zeros(len(predicted)) if missed is None else missed))[:, None]
        ok = (iou >= self.iou_threshold) | ((dist <= gate) & (ratio <= self.max_scale))
        return np.where(ok, (1.0 - iou) + dist, _FORBIDDEN)

    def update(self, faces: Faces) -> Faces:
        """Assign ids to one frame's detections (all faces share one frame index)."""
        self.step += 1
        ids = np.full(len(faces), -1, dtype=np.int64)
        predicted = (
            np.stack([self._predict_box(t) for t in self.tracks]) if self.tracks else np.zeros((0, 4), np.float32)
        )
        missed = np.array([t.missed for t in self.tracks], dtype=np.float64)
        cost = self.cost_matrix(predicted, faces.boxes.astype(np.float32), missed)
        matched: set[int] = set()
        for ti, di in linear_assignment(cost):
            if cost[ti, di] >= _FORBIDDEN:
                continue
            matched.add(ti)
            t = self.tracks[ti]
            box = faces.boxes[di].astype(np.float32)
            centre, size = (c[0] for c in _centres_sizes(box[None]))
            new_v = (centre - t.centre) / max(self.step - t.last_seen, 1)
            w = self.velocity_weight
            t.velocity = (w * new_v + (1 - w) * t.velocity if t.hits > 1 else new_v).astype(np.float32)
            t.size = (0.5 * size + 0.5 * t.size).astype(np.float32)
            t.box, t.centre = box, centre
            t.score, t.landmarks = float(faces.scores[di]), faces.landmarks[di]
            t.last_seen, t.hits, t.missed = self.step, t.hits + 1, 0
            ids[di] = t.id
        for ti, t in enumerate(self.tracks):
            if ti not in matched:
                t.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for new in np.nonzero(ids < 0)[0]:
            di = int(new)
            self.tracks.append(_new_track(self.next_id, faces, di, self.step))
            ids[di] = self.next_id
            self.next_id += 1
        return faces.replace(track_id=ids)

    def predict(self, frame_index: int, width: int, height: int) -> Faces:
        """Boxes of the tracks matched at the last detection, moved by their velocity (for ``--detect-every``).

        Largest first, like the detector's output, so the sink's per-frame ``face`` rank means the same thing.
        """
        self.step += 1
        live = [t for t in self.tracks if t.missed == 0]
        if not live:
            return Faces()
        boxes = np.stack([self._predict_box(t) for t in live])
        boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
        boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        keep = np.nonzero((boxes[:, 2] - boxes[:, 0] >= 1) & (boxes[:, 3] - boxes[:, 1] >= 1))[0]  # not moved out
        if not len(keep):
            return Faces()
        live, boxes = [live[k] for k in keep], boxes[keep]
        shift = np.stack([self._predict_box(t)[:2] - t.box[:2] for t in live])[:, None, :]
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        order = np.argsort(-area, kind="stable")
        return Faces(
            frame=np.full(len(live), frame_index, dtype=np.int64),
            boxes=boxes,
            scores=np.array([t.score for t in live], dtype=np.float32),
            landmarks=(np.stack([t.landmarks for t in live]) + shift).astype(np.float32),
            track_id=np.array([t.id for t in live], dtype=np.int64),
        ).take(order)


class Smoother:
    """Exponential moving average of probabilities along each track; raw probabilities are left untouched.

    ``alpha`` is the weight of the newest frame (1 = no smoothing). Faces without a track keep their raw values.
    """

    def __init__(self, alpha: float) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("--smooth must be in (0, 1]")
        self.alpha = alpha
        self.state: dict[int, np.ndarray] = {}

    def __call__(self, faces: Faces) -> np.ndarray:
        assert faces.probs is not None
        out = faces.probs.astype(np.float32, copy=True)
        for i, tid in enumerate(faces.track_id):
            if tid < 0:
                continue
            prev = self.state.get(int(tid))
            if prev is not None:
                out[i] = self.alpha * faces.probs[i] + (1 - self.alpha) * prev
            self.state[int(tid)] = out[i]
        return out
