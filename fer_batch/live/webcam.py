"""Live analysis of a camera: every frame captured and recorded, the newest one analysed.

Why three threads: a camera delivers frames at its own pace whatever we do. The capture thread only reads and
stamps frames (so nothing is lost at the source), the recorder encodes every frame it is handed, and the analysis
loop always takes the newest frame from a one-slot mailbox. When the machine is slower than the camera, analysis
jumps ahead instead of falling behind; the table's ``frame`` column (the capture index) then has gaps, and the
table's metadata records ``frames_captured`` and ``frames_analysed``.

``time_s`` is the capture time in seconds since the run started, on the monotonic clock; the recording carries the
same times as its PTS (1/1000 s time base). The capture source is an interface (``CaptureSource``): a real camera
(``OpenCVCamera``) or a video file played at real-time pace (``RealtimeFile``), which stands in for a camera in
tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path
from types import FrameType
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

import av
import cv2
import numpy as np

from fer_batch._version import __version__
from fer_batch.media.decode import error_reason, from_bgr, orientation, rotate, small_size, video_stream
from fer_batch.options import Options, number
from fer_batch.outputs.draw import Painter
from fer_batch.outputs.h264 import H264Writer
from fer_batch.outputs.table import ParquetSink, TableMeta, window_table
from fer_batch.runs.one_input import Analyzer
from fer_batch.types import Faces

log = logging.getLogger(__name__)

TIME_BASE = Fraction(1, 1000)  # recording PTS unit: capture times are kept to the millisecond
STOP_GRACE_S = 5.0  # how long a stop waits for a camera read that hangs (a stalled network stream)
WINDOW_TITLE = "fer-batch webcam (q to stop)"


class CameraError(RuntimeError):
    """The capture source cannot be opened; the message is one line saying what was tried and why it failed."""


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

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.description = f"{self.path} (file at real-time pace)"
        try:
            self._container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise CameraError(f"cannot open camera {self.path} (tried it as a video file): {error_reason(e)}") from None
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
            return False, None, time.monotonic()
        except av.error.FFmpegError as e:
            log.warning("%s: decoding stopped: %s", self.path, error_reason(e))
            return False, None, time.monotonic()
        if frame.pts is not None and frame.time_base is not None:
            t = float(frame.pts * frame.time_base)
        else:
            t = self._last_t + self._dt
        self._last_t = t
        image = rotate(frame.to_ndarray(format="bgr24"), *orientation(frame))
        now = time.monotonic()
        if self._start is None or self._first_t is None:
            self._start, self._first_t = now, t
        delay = self._start + (t - self._first_t) - now
        if delay > 0:
            time.sleep(delay)
        return True, image, time.monotonic()

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

    The caption sits at the bottom left, where it rarely covers a face's label (drawn above the box).
    """
    img = bgr.copy()
    painter.draw(img, faces)
    if caption:
        s = painter.style
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, s.font, s.thick)
        top = max(0, img.shape[0] - (th + base + 2 * s.pad))
        cv2.rectangle(img, (0, top), (tw + 2 * s.pad, img.shape[0]), (0, 0, 0), -1)
        cv2.putText(img, caption, (s.pad, top + s.pad + th), cv2.FONT_HERSHEY_SIMPLEX, s.font, (255, 255, 255),
                    s.thick, cv2.LINE_AA)  # fmt: skip
    return img


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

    @property
    def frames(self) -> int:
        return self._writer.frames if self._writer is not None else 0

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
            log.error("recording failed: %s", error_reason(self.error))
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
            log.error("camera stopped: %s", error_reason(e))
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


# --- the run ---------------------------------------------------------------------------------------------------
@dataclass
class WebcamResult:
    """What a webcam run produced."""

    table: Path
    recording: Path | None
    frames_captured: int
    frames_analysed: int
    faces: int
    duration_s: float
    stopped_by: str  # seconds | source | interrupt | terminate | preview | error
    error: str | None = None


def output_paths(out: Path, annotate: bool, now: datetime | None = None) -> tuple[Path, Path | None]:
    """``OUT/webcam-YYYYmmdd-HHMMSS.parquet`` (and ``.annotated.mp4``), with a counter if that name is taken.

    The name is claimed by creating ``.<stem>.claim`` exclusively, so two sessions started in the same second
    never write the same file (their tables appear only when they stop); ``release`` drops the claim.
    """
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    for k in range(1000):
        stem = f"webcam-{stamp}" + (f"-{k}" if k else "")
        table, rec = out / f"{stem}.parquet", out / f"{stem}.annotated.mp4"
        if table.exists() or rec.exists():
            continue
        try:
            fd = os.open(_claim(table), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:  # another session has it
            continue
        os.write(fd, f"{os.getpid()}\n".encode())
        os.close(fd)
        return table, rec if annotate else None
    raise FileExistsError(f"too many webcam runs named webcam-{stamp}* in {out}")


def _claim(table: Path) -> Path:
    return table.with_name(f".{table.stem}.claim")


@contextlib.contextmanager
def release(table: Path) -> Iterator[None]:
    """Drop the claim on ``table``'s name once the session's files are in place (or it failed)."""
    try:
        yield
    finally:
        _claim(table).unlink(missing_ok=True)


def run_webcam(
    source: CaptureSource,
    out: Path,
    options: Options,
    *,
    seconds: float | None = None,
    annotate: bool = False,
    preview: bool = False,
    name: str = "webcam",
) -> WebcamResult:
    """Capture from ``source`` until ``seconds``, the source ends, Ctrl-C/SIGTERM or ``q`` in the preview.

    Every way of stopping finishes the table (and recording) under its final name. ``name`` fills the table's
    ``video`` column. The source is closed when the run ends.
    """
    number(0, lo_open=True, optional=True)("seconds", seconds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now()
    table_path, rec_path = output_paths(out, annotate, started_at)
    with release(table_path):
        return _session(source, options, table_path, rec_path, seconds=seconds, preview=preview, name=name,
                        started_at=started_at)  # fmt: skip


def _session(source: CaptureSource, options: Options, table_path: Path, rec_path: Path | None, *,
             seconds: float | None, preview: bool, name: str, started_at: datetime) -> WebcamResult:  # fmt: skip
    """One capture session into names already claimed (see ``run_webcam``)."""
    try:
        analyzer = Analyzer(options)
    except BaseException:
        source.close()
        raise
    live = LiveAnalysis(analyzer, options, name, Preview.create() if preview else None)
    recorder = Recorder(rec_path, analyzer.labels, live.overlay, source.fps) if rec_path is not None else None
    stop, mailbox = threading.Event(), LatestFrame()
    capture = Capture(source, live.t0, mailbox, recorder, stop, seconds)
    sink = ParquetSink(table_path, analyzer.labels, options.smooth is not None)
    log.info("webcam: capturing from %s into %s", source.description, table_path)
    recording: Path | None = None
    with StopSignals(stop) as signals, sink:
        if recorder is not None:
            recorder.start()
        capture.start()
        try:
            stopped_by = live.loop(sink, capture, signals, seconds)
        except KeyboardInterrupt:  # raised outside the signal handler's reach (e.g. from within a library call)
            stopped_by = "interrupt"
        finally:
            recording = _stop_all(capture, recorder, live.window)
        if stopped_by is None or (stopped_by == "seconds" and capture.ended == "source"):
            stopped_by = "error" if capture.error is not None else (capture.ended or "source")
        duration = capture.last_t or 0.0
        sink.meta = _metadata(options, analyzer, source, name, capture, started_at, duration, stopped_by,
                              recording).replace(frames_analysed=live.analysed, faces=live.faces)  # fmt: skip
    log.info("webcam: stopped (%s) after %.1f s: %d frames captured, %d analysed, %d faces", stopped_by, duration,
             capture.count, live.analysed, live.faces)  # fmt: skip
    return WebcamResult(table=table_path, recording=recording, frames_captured=capture.count,
                        frames_analysed=live.analysed, faces=live.faces, duration_s=duration, stopped_by=stopped_by,
                        error=error_reason(capture.error) if capture.error is not None else None)  # fmt: skip


class LiveAnalysis:
    """The analysis loop: always the newest captured frame, its rows to the table, its faces to the overlay that
    the recorder draws and to the preview."""

    def __init__(self, analyzer: Analyzer, options: Options, name: str, window: Preview | None) -> None:
        self.analyzer, self.options, self.name, self.window = analyzer, options, name, window
        self.overlay = Overlay()
        self.rate = Rate()
        self.analysed = self.faces = 0
        self.t0 = time.monotonic()  # the run's clock: capture times are seconds since this
        self._painter: Painter | None = None
        self._small_sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def loop(self, sink: ParquetSink, capture: Capture, signals: StopSignals, seconds: float | None) -> str | None:
        """Analyse until a stop; returns what stopped it ("seconds", a signal, "preview"), or None if the capture
        ended by itself."""
        stopped_by: str | None = None
        stop_at: float | None = None  # monotonic time of a stop that still drains the last frame
        while True:
            now = time.monotonic()
            if signals.reason is not None:
                return signals.reason
            if seconds is not None and now - self.t0 >= seconds and stop_at is None:
                stopped_by, stop_at = "seconds", now
                capture.stop.set()  # the capture ends after the read in progress; its last frame is still analysed
            if stop_at is not None and now - stop_at > STOP_GRACE_S:
                log.warning("the camera did not stop within %.0f s; finishing without it", STOP_GRACE_S)
                return stopped_by
            item = capture.mailbox.take(timeout=0.05)
            if item is not None:
                self.analyse(item, sink, capture.rate.fps)
            elif capture.mailbox.closed:
                return stopped_by
            if self.window is not None and self.window.wants_stop():
                return "preview"

    def analyse(self, item: Captured, sink: ParquetSink, camera_fps: float) -> None:
        """One frame: analysed, its rows written, the overlay and the preview updated."""
        h, w = item.bgr.shape[:2]
        opts = self.options
        small_wh = self._small_sizes.setdefault((w, h), small_size(w, h, opts.det_size, opts.min_face))
        found = self.analyzer.process([from_bgr(item.index, item.time_s, item.bgr, small_wh)])
        labels = self.analyzer.labels
        sink.write(window_table(self.name, found.frames.index, found.frames.time_s, found.faces, labels,
                                found.smoothed))  # fmt: skip
        self.analysed += 1
        self.faces += len(found.faces)
        self.rate.tick(time.monotonic() - self.t0)
        caption = f"camera {camera_fps:4.1f} fps  analysis {self.rate.fps:4.1f} fps"
        self.overlay.set(found.faces, caption)
        if self.window is not None:
            if self._painter is None or (self._painter.width, self._painter.height) != (w, h):
                self._painter = Painter(labels, w, h)
            self.window.show(draw(item.bgr, found.faces, self._painter, caption))


def _stop_all(capture: Capture, recorder: Recorder | None, window: Preview | None) -> Path | None:
    """Stop the capture, finish the recording (its path, or None) and close the preview."""
    capture.stop.set()
    capture.join(STOP_GRACE_S)
    if capture.is_alive():
        log.warning("the camera read did not return; its thread is left behind")
    recording = recorder.close() if recorder is not None else None
    if window is not None:
        window.close()
    return recording


def _metadata(options: Options, analyzer: Analyzer, source: CaptureSource, name: str, capture: Capture,
              started_at: datetime, duration: float, stopped_by: str,
              recording: Path | None) -> TableMeta:  # fmt: skip
    """The table's metadata: like ``analyze``'s, with the camera instead of a source file."""
    width, height = capture.size or (None, None)
    measured = None
    if capture.count > 1 and capture.last_t is not None and capture.first_t is not None:
        span = capture.last_t - capture.first_t
        measured = (capture.count - 1) / span if span > 0 else None
    return TableMeta(
        version=__version__,
        options=options.as_dict(),
        source={"camera": name, "description": source.description, "nominal_fps": source.fps},
        model=analyzer.classifier.describe(),
        detector={"id": analyzer.detector.id, "sha256": analyzer.detector.sha256},
        provider=analyzer.classifier.session.get_providers()[0],
        width=width,
        height=height,
        rotation=0,
        fps=measured,
        duration_s=duration,
        frames_captured=capture.count,
        frames_decoded=capture.count,
        clock="time_s: seconds since the run started, time.monotonic",
        started_at=started_at.isoformat(timespec="seconds"),
        stopped_by=stopped_by,
        status="ok",
        error=error_reason(capture.error) if capture.error is not None else None,
        recording=str(recording) if recording is not None else None,
    )
