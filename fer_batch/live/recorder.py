"""The session's recording: every captured frame encoded once at its capture time, with the latest faces drawn.
"""

from __future__ import annotations

import logging
import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from fer_batch.errors import describe
from fer_batch.live.sources import (
    Captured,
)
from fer_batch.outputs.draw import Painter
from fer_batch.outputs.h264 import H264Writer
from fer_batch.types import Faces

log = logging.getLogger(__name__)


TIME_BASE = Fraction(1, 1000)  # recording PTS unit: capture times are kept to the millisecond


class Overlay:
    """The latest analysis (faces of the newest analysed frame) shared by the analysis loop and the recorder."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faces = Faces()
        self._caption = ""

    def set(self, faces: Faces, caption: str) -> None:
        with self._lock:
            self._faces, self._caption = faces, caption

    def get(self) -> tuple[Faces, str]:
        with self._lock:
            return self._faces, self._caption


def draw(bgr: np.ndarray, faces: Faces, painter: Painter, caption: str = "") -> np.ndarray:
    """A copy of the frame with boxes, labels, per-face probability bars and a caption (the current fps).

    The caption takes the first corner (bottom left, bottom right, top left, top right) where it covers no face,
    and is left out where every corner would: like the labels, it never hides a face.
    """
    img = bgr.copy()
    painter.draw(img, faces)
    if caption:
        s = painter.style
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, s.font, s.thick)
        spot = caption_spot(img.shape[1], img.shape[0], (tw + 2 * s.pad, th + base + 2 * s.pad), faces.boxes)
        if spot is not None:
            x, y = spot
            cv2.rectangle(img, (x, y), (x + tw + 2 * s.pad, y + th + base + 2 * s.pad), (0, 0, 0), -1)
            cv2.putText(img, caption, (x + s.pad, y + s.pad + th), cv2.FONT_HERSHEY_SIMPLEX, s.font, (255, 255, 255),
                        s.thick, cv2.LINE_AA)  # fmt: skip
    out: np.ndarray = img
    return out


def caption_spot(width: int, height: int, size: tuple[int, int], boxes: np.ndarray) -> tuple[int, int] | None:
    """The top-left corner of the first frame corner where a ``size`` caption overlaps no face box, or None."""
    cw, ch = size
    for x, y in ((0, height - ch), (width - cw, height - ch), (0, 0), (width - cw, 0)):
        x, y = max(0, x), max(0, y)
        if not any(x < bx2 and bx1 < x + cw and y < by2 and by1 < y + ch for bx1, by1, bx2, by2 in boxes.tolist()):
            return x, y
    return None


# --- recorder --------------------------------------------------------------------------------------------------
class Recorder:
    """Encodes every captured frame (``h264.H264Writer``) with the latest analysis drawn, in its own thread.

    The queue is unbounded on purpose: the capture thread must never wait on the encoder, or frames would be lost
    at the camera. Written under a temporary name and renamed by ``close``; a recorder that failed logs why and
    leaves no file, and the table is still written.
    """

    def __init__(self, path: Path, labels: list[str], overlay: Overlay, fps_hint: float | None) -> None:
        self.path = path
        self.labels = labels
        self.overlay = overlay
        self.rate = max(1, round(fps_hint or 30))
        self.error: BaseException | None = None
        self._queue: queue.Queue[Captured | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="webcam-recorder", daemon=True)
        self._writer: H264Writer | None = None  # opened at the first frame, whose size it takes
        self._warned_backlog = False

    def start(self) -> None:
        self._thread.start()

    def put(self, item: Captured) -> None:
        self._queue.put(item)
        backlog = self._queue.qsize()
        if backlog > 4 * self.rate and not self._warned_backlog:
            self._warned_backlog = True
            log.warning("recording is %d frames behind the camera; memory use grows until it catches up", backlog)

    def close(self, timeout: float | None = None) -> Path | None:
        """Encode what is queued, finish the file and give it its final name; the path, or None if it failed."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.error = TimeoutError("the encoder did not finish in time")
        writer = self._writer
        if writer is not None and self.error is None and writer.frames:
            try:
                return writer.commit()
            except (av.error.FFmpegError, OSError) as e:
                self.error = e
        if writer is not None:
            writer.discard()
        if self.error is not None:
            log.error("recording failed: %s", describe(self.error))
        return None

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            if self.error is not None:
                continue  # keep draining so memory is freed; the failure is reported by close()
            try:
                self._encode(item)
            except (av.error.FFmpegError, OSError, ValueError, cv2.error) as e:
                self.error = e
        try:
            if self._writer is not None and self.error is None:
                self._writer.finish()
        except (av.error.FFmpegError, OSError, ValueError) as e:
            self.error = e

    def _encode(self, item: Captured) -> None:
        if self._writer is None:
            h, w = item.bgr.shape[:2]
            self.painter = Painter(self.labels, w, h)
            self._writer = H264Writer(self.path, w, h, time_base=TIME_BASE, rate=self.rate, preset="veryfast")
        img = item.bgr
        size = (self._writer.width, self._writer.height)
        if (img.shape[1], img.shape[0]) != size:  # a camera that changed mode mid-run
            img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
        faces, caption = self.overlay.get()
        self._writer.write_bgr(draw(img, faces, self.painter, caption), item.time_s)
