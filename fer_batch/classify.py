"""Emotion classification: all faces of a window cropped into one batch and scored in one onnxruntime call."""

from __future__ import annotations

import cv2
import numpy as np

from fer_batch import models
from fer_batch.options import Options
from fer_batch.types import Faces, Frames


class Classifier:
    """``Classifier(options)(frames, faces) -> faces`` with ``probs`` filled, one row per face."""

    def __init__(self, options: Options) -> None:
        self.spec = models.resolve(options.model, options.model_spec, task="emotion")
        self.id, self.sha256, self.labels = self.spec.id, self.spec.sha256, self.spec.labels
        inp = self.spec.input
        self.height, self.width = int(inp["height"]), int(inp["width"])
        self.color, self.layout = inp["color"], inp["layout"]
        self.a, self.b = self.spec.transform()
        self.margin = options.crop_margin
        self.logits = self.spec.entry.get("output") == "logits"  # optional spec key: "probs" (default) or "logits"
        self.session = models.session(self.spec.path, options.device, options.threads)
        self.input_name = self.session.get_inputs()[0].name

    @property
    def needs_color(self) -> bool:
        return self.color != "gray"

    def crops(self, frames: Frames, faces: Faces) -> np.ndarray:
        """uint8 crops (n, H, W[, 3]) of every face, each box widened by the margin and clipped to the frame."""
        pos = {int(f): j for j, f in enumerate(frames.index)}
        shape = (len(faces), self.height, self.width) + (() if self.color == "gray" else (3,))
        out = np.empty(shape, dtype=np.uint8)
        x1, y1, x2, y2 = faces.boxes.T.astype(np.float64)
        mx, my = (x2 - x1) * self.margin, (y2 - y1) * self.margin
        for i, f in enumerate(faces.frame):
            j = pos[int(f)]
            image = frames.gray[j] if self.color == "gray" else frames.bgr[j]  # type: ignore[index]
            h, w = image.shape[:2]
            a = int(max(0, np.floor(x1[i] - mx[i])))
            b = int(max(0, np.floor(y1[i] - my[i])))
            c = int(min(w, np.ceil(x2[i] + mx[i])))
            d = int(min(h, np.ceil(y2[i] + my[i])))
            crop = image[b : max(d, b + 1), a : max(c, a + 1)]
            out[i] = cv2.resize(crop, (self.width, self.height), interpolation=cv2.INTER_LINEAR)
        if self.color == "rgb":
            out = out[..., ::-1]
        return out

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities (n, labels) for uint8 crops, with the manifest's pixel transform."""
        x = crops.astype(np.float32)
        if x.ndim == 3:
            x = x[..., None]
        x = x * self.a + self.b
        if self.layout == "NCHW":
            x = x.transpose(0, 3, 1, 2)
        out = np.asarray(self.session.run(None, {self.input_name: np.ascontiguousarray(x)})[0], dtype=np.float32)
        out = out.reshape(len(crops), -1)
        if self.logits:  # e.g. the ONNX model zoo's FER+ ends without a softmax
            out = np.exp(out - out.max(axis=1, keepdims=True))
            out /= out.sum(axis=1, keepdims=True)
        return out

    def __call__(self, frames: Frames, faces: Faces) -> Faces:
        if not len(faces):
            return faces.replace(probs=np.zeros((0, len(self.labels)), dtype=np.float32))
        return faces.replace(probs=self.predict(self.crops(frames, faces)))
