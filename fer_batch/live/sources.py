"""Where live frames come from: a camera (``OpenCVCamera``) or a video file played at real-time pace (``RealtimeFile``),
behind one small interface (``CaptureSource``) so sessions are tested without a camera.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit, urlunsplit

import av
import cv2
import numpy as np

from fer_batch.errors import CameraError, describe
from fer_batch.media.orientation import orientation, rotate
from fer_batch.media.probe import video_stream
from fer_batch.types import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)


class CaptureSource(Protocol):
    """Where frames come from. ``read`` blocks until the next frame and returns (ok, BGR image, capture time on
    ``time.monotonic``); ``ok`` False means the source has ended or stopped delivering. Only the capture thread
    calls ``read`` and ``close``."""

    description: str  # what the table's metadata and the log say about the source
    fps: float | None  # nominal frame rate, when the source reports one

    def read(self) -> tuple[bool, np.ndarray | None, float]: ...

    def close(self) -> None: ...


# --- sources ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    """OpenCV prints its own warnings when a device is missing; the CLI says it in one line instead."""
    logging_mod = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging_mod is None:
        yield
        return
    previous = logging_mod.getLogLevel()
    logging_mod.setLogLevel(logging_mod.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        logging_mod.setLogLevel(previous)


def redact(spec: str) -> str:
    """A camera spec fit for logs and tables: a URL loses its user and password."""
    if "://" not in spec:
        return spec
    parts = urlsplit(spec)
    if parts.username is None and parts.password is None:
        return spec
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


class OpenCVCamera:
    """A camera or stream through ``cv2.VideoCapture``: an index, a ``/dev/videoN`` device (V4L2) or a URL (FFmpeg).

    Opening reads one frame, so a device that opens but delivers nothing fails here with a clear message rather
    than producing an empty table.
    """

    def __init__(self, spec: str) -> None:
        target: int | str
        if spec.isdigit():
            target = int(spec)
            linux = sys.platform.startswith("linux")
            api = cv2.CAP_V4L2 if linux else cv2.CAP_ANY
            tried = f"/dev/video{target} via V4L2" if linux else f"index {target} via the default backend"
            device: str | None = f"/dev/video{target}" if linux else None
        elif "://" in spec:
            target, api, tried, device = spec, cv2.CAP_FFMPEG, f"{redact(spec)} via FFmpeg", None
        else:
            target, api, tried, device = spec, cv2.CAP_V4L2, f"{spec} via V4L2", spec
        self.description = f"{redact(spec)} ({tried.split(' via ')[-1]})"
        with _quiet_opencv():
            cap = cv2.VideoCapture(target, api)
            ok = bool(cap.isOpened())
            ok = ok and bool(cap.read()[0])  # the probe frame is dropped: it predates the run's clock
        if not ok:
            cap.release()
            raise CameraError(f"cannot open camera {redact(spec)} (tried {tried}): {_why(device, spec)}")
        self._cap = cap
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps = fps if 0 < fps < 1000 else None

    def read(self) -> tuple[bool, np.ndarray | None, float]:
        ok, frame = self._cap.read()
        return bool(ok), frame if ok else None, time.monotonic()

    def close(self) -> None:
        self._cap.release()


def _why(device: str | None, spec: str) -> str:
    """The likely reason a device did not open, from what the file system says about it."""
    if device is None:
        return "the stream is unreachable or not a video stream"
    if not os.path.exists(device):
        return "no such device"
    if not os.access(device, os.R_OK | os.W_OK):
        return "permission denied (is this user in the 'video' group?)"
    return "the device is busy or is not a video capture device"


class RealtimeFile:
    """A video file played at real-time pace: each frame is released when its PTS is due, none is dropped.

    It stands in for a camera (tests, replaying a recorded session): a reader that falls behind releases the late
    frames at once, as a camera's driver buffer would.
    """

    def __init__(self, path: str | os.PathLike[str], clock: Clock = SYSTEM_CLOCK) -> None:
        self.path, self.clock = Path(path), clock
        self.description = f"{self.path} (file at real-time pace)"
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise CameraError(f"cannot open camera {self.path} (tried it as a video file): {describe(e)}") from None
        if not self._container.streams.video:
            self._container.close()
            raise CameraError(f"cannot open camera {self.path} (tried it as a video file): no video stream")
        stream = video_stream(self._container)
        self.fps = float(stream.average_rate) if stream.average_rate else None
        self._frames = self._container.decode(stream)
        self._start: float | None = None  # monotonic time at which PTS 0 (the first frame) is due
        self._first_t: float | None = None
        self._last_t = 0.0
        self._dt = 1.0 / (self.fps or 30.0)

    def read(self) -> tuple[bool, np.ndarray | None, float]:
        try:
            frame = next(self._frames)
        except StopIteration:
            return False, None, self.clock.monotonic()
        except av.error.FFmpegError as e:
            log.warning("%s: decoding stopped: %s", self.path, describe(e))
            return False, None, self.clock.monotonic()
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base)
        else:
            t = self._last_t + self._dt
        self._last_t = t
        image = rotate(frame.to_ndarray(format="bgr24"), *orientation(frame))
        now = self.clock.monotonic()
        if self._start is None or self._first_t is None:
            self._start, self._first_t = now, t
        delay = self._start + (t - self._first_t) - now
        if delay > 0:
            self.clock.sleep(delay)
        return True, image, self.clock.monotonic()

    def close(self) -> None:
        self._container.close()


def open_source(spec: str) -> CaptureSource:
    """The capture source a ``--camera`` value names: index, ``/dev/videoN``, URL, or a video file."""
    spec = spec.strip()
    if spec.isdigit() or spec.startswith("/dev/") or "://" in spec:
        return OpenCVCamera(spec)
    if Path(spec).is_file():
        return RealtimeFile(spec)
    hint = "a camera is an index, /dev/videoN or a URL"
    raise CameraError(f"cannot open camera {spec} (tried it as a video file: no such file; {hint})")


# --- plumbing between the threads ------------------------------------------------------------------------------
@dataclass
class Captured:
    """One captured frame: capture index, seconds since the run's start, BGR image."""

    index: int
    time_s: float
    bgr: np.ndarray
