"""The capture thread and the controls around it: frames read and stamped at the camera's pace, the newest kept in a
one-slot mailbox for analysis, the preview window and the signals that stop a session.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections import deque
from types import FrameType
from typing import Any

import cv2
import numpy as np

from fer_batch.errors import describe
from fer_batch.live.recorder import Recorder
from fer_batch.live.sources import (
    Captured,
    CaptureSource,
)

log = logging.getLogger(__name__)


STOP_GRACE_S = 5.0  # how long a stop waits for a camera read that hangs (a stalled network stream)


WINDOW_TITLE = "fer-batch webcam (q to stop)"


class LatestFrame:
    """A one-slot mailbox: ``put`` replaces what the reader has not taken yet, so the reader always gets the newest."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: Captured | None = None
        self.closed = False

    def put(self, item: Captured) -> None:
        with self._cond:
            self._item = item
            self._cond.notify()

    def take(self, timeout: float) -> Captured | None:
        with self._cond:
            self._cond.wait_for(lambda: self._item is not None or self.closed, timeout=timeout)
            item, self._item = self._item, None
            return item

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


class Rate:
    """Frames per second over the last couple of seconds (for the preview and the recording's caption)."""

    def __init__(self, span_s: float = 2.0) -> None:
        self.span = span_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, t: float) -> None:
        with self._lock:
            self._times.append(t)
            while self._times and self._times[0] < t - self.span:
                self._times.popleft()

    @property
    def fps(self) -> float:
        with self._lock:
            if len(self._times) < 2 or self._times[-1] <= self._times[0]:
                return 0.0
            return (len(self._times) - 1) / (self._times[-1] - self._times[0])


# --- capture thread --------------------------------------------------------------------------------------------
class Capture(threading.Thread):
    """Reads the source as fast as it delivers, numbers and stamps every frame, hands it to recorder and mailbox.

    It owns the source: it alone reads it and closes it when it stops.
    """

    def __init__(self, source: CaptureSource, t0: float, mailbox: LatestFrame, recorder: Recorder | None,
                 stop: threading.Event, seconds: float | None) -> None:  # fmt: skip
        super().__init__(name="webcam-capture", daemon=True)
        self.source, self.t0, self.mailbox, self.recorder = source, t0, mailbox, recorder
        self.stop, self.seconds = stop, seconds
        self.count = 0
        self.first_t: float | None = None
        self.last_t: float | None = None
        self.size: tuple[int, int] | None = None
        self.rate = Rate()
        self.ended: str | None = None  # "seconds" or "source" when the capture stopped by itself
        self.error: BaseException | None = None

    def run(self) -> None:
        last = -1.0
        try:
            while not self.stop.is_set():
                ok, bgr, t_cap = self.source.read()
                if not ok or bgr is None:
                    self.ended = "source"
                    break
                t = max(t_cap - self.t0, last + 1e-6)  # strictly increasing, whatever the source's clock does
                if self.seconds is not None and t >= self.seconds:
                    self.ended = "seconds"
                    break
                if self.stop.is_set():  # stopped while this frame was being read: it is after the stop
                    break
                last = t
                item = Captured(self.count, t, bgr)
                self.count += 1
                if self.first_t is None:
                    self.first_t, self.size = t, (bgr.shape[1], bgr.shape[0])
                self.last_t = t
                self.rate.tick(t)
                if self.recorder is not None:
                    self.recorder.put(item)
                self.mailbox.put(item)
        except Exception as e:  # noqa: BLE001 — a camera failing mid-run ends the capture; the table is kept
            self.error = e
            log.error("camera stopped: %s", describe(e))
        finally:
            self.mailbox.close()
            try:
                self.source.close()
            except Exception as e:  # noqa: BLE001 — closing a broken device must not lose the table
                log.debug("closing the source failed: %s", e)


# --- preview ---------------------------------------------------------------------------------------------------
def has_display() -> bool:
    """Whether a window could be shown at all (X11/Wayland on Linux; assumed elsewhere)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


class Preview:
    """An OpenCV highgui window showing each analysed frame; ``q``/Esc or closing the window asks to stop."""

    def __init__(self) -> None:
        self.open = True

    @staticmethod
    def create() -> Preview | None:
        """A window, or None with one notice saying why there is none."""
        if not has_display():
            log.info("no display (DISPLAY/WAYLAND_DISPLAY unset): running without a preview window")
            return None
        try:
            cv2.namedWindow(WINDOW_TITLE, cv2.WINDOW_NORMAL)
        except cv2.error:
            log.info("this OpenCV build has no GUI (opencv-python-headless): running without a preview window")
            return None
        return Preview()

    def show(self, image: np.ndarray) -> None:
        cv2.imshow(WINDOW_TITLE, image)

    def wants_stop(self) -> bool:
        """Pump the window's events; True on q, Q, Esc, or when the user closed the window."""
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            return True
        try:
            return cv2.getWindowProperty(WINDOW_TITLE, cv2.WND_PROP_VISIBLE) < 1
        except cv2.error:
            return True

    def close(self) -> None:
        with contextlib.suppress(cv2.error):
            cv2.destroyWindow(WINDOW_TITLE)
            cv2.waitKey(1)


# --- stopping --------------------------------------------------------------------------------------------------
class StopSignals:
    """SIGINT and SIGTERM ask the run to stop instead of killing it, so the table and recording get finished.

    A third Ctrl-C during the finishing abandons it (KeyboardInterrupt), for a user who really wants out.
    Installed only in the main thread (Python allows signal handlers nowhere else).
    """

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.reason: str | None = None
        self.count = 0
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        if self.reason is None:
            self.reason = "interrupt" if signum == signal.SIGINT else "terminate"
        if self.count == 2:
            log.warning("finishing the table and the recording; Ctrl-C once more abandons them")
        elif self.count > 2 and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop.set()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
