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
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from fer_batch._progress import Progress, Silent
from fer_batch.analysis.detect.scan_size import scan_size
from fer_batch.analysis.engine import Analyzer, Models
from fer_batch.errors import describe
from fer_batch.live.capture import (
    STOP_GRACE_S,
    Capture,
    LatestFrame,
    Preview,
    Rate,
    StopSignals,
)
from fer_batch.live.recorder import Overlay, Recorder, draw
from fer_batch.live.sources import (
    Captured,
    CaptureSource,
)
from fer_batch.media.reader import from_bgr
from fer_batch.options import Options, number
from fer_batch.outputs.draw import Painter
from fer_batch.outputs.metadata import CameraSource, TableMeta, annotated_path
from fer_batch.outputs.table import ParquetSink, window_table
from fer_batch.types import SYSTEM_CLOCK, Clock, Status

log = logging.getLogger(__name__)


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
        table = out / f"{stem}.parquet"
        rec = annotated_path(table)
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
    progress: Progress | None = None,
    clock: Clock = SYSTEM_CLOCK,
    models: Models | None = None,
) -> WebcamResult:
    """Capture from ``source`` until ``seconds``, the source ends, Ctrl-C/SIGTERM or ``q`` in the preview.

    Every way of stopping finishes the table (and recording) under its final name. ``name`` fills the table's
    ``video`` column. The source is closed when the run ends. ``progress`` counts the analysed frames (its caller
    closes it). ``clock`` is the run's clock (the source's should be the same); ``models`` replace the ones
    ``options`` name (tests pass fakes).
    """
    number(0, lo_open=True, optional=True)("seconds", seconds)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now()
    table_path, rec_path = output_paths(out, annotate, started_at)
    with release(table_path):
        return _session(source, options, table_path, rec_path, seconds=seconds, preview=preview, name=name,
                        started_at=started_at, progress=progress or Silent(), clock=clock,
                        models=models)  # fmt: skip


def _session(source: CaptureSource, options: Options, table_path: Path, rec_path: Path | None, *,
             seconds: float | None, preview: bool, name: str, started_at: datetime,
             progress: Progress, clock: Clock, models: Models | None) -> WebcamResult:  # fmt: skip
    """One capture session into names already claimed (see ``run_webcam``)."""
    try:
        analyzer = Analyzer(options, models)
    except BaseException:
        source.close()
        raise
    live = LiveAnalysis(analyzer, options, name, Preview.create() if preview else None, progress, clock)
    recorder = Recorder(rec_path, analyzer.labels, live.overlay, source.fps) if rec_path is not None else None
    stop, mailbox = threading.Event(), LatestFrame()
    capture = Capture(source, live.t0, mailbox, recorder, stop, seconds)
    sink = ParquetSink(table_path, analyzer.labels, options.tracking.smooth is not None)
    log.info("webcam: capturing from %s into %s", source.description, table_path)
    recording: Path | None = None
    with StopSignals(stop) as signals, sink:
        if recorder is not None:
            recorder.start()
        capture.start()
        progress.start()
        try:
            stopped_by = live.loop(sink, capture, signals, seconds)
        except KeyboardInterrupt:  # raised outside the signal handler's reach (e.g. from within a library call)
            stopped_by = "interrupt"
        finally:
            progress.close()  # before the lines that say how it ended
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
                        error=describe(capture.error) if capture.error is not None else None)  # fmt: skip


class LiveAnalysis:
    """The analysis loop: always the newest captured frame, its rows to the table, its faces to the overlay that
    the recorder draws and to the preview."""

    def __init__(self, analyzer: Analyzer, options: Options, name: str, window: Preview | None,
                 progress: Progress | None = None, clock: Clock = SYSTEM_CLOCK) -> None:  # fmt: skip
        self.analyzer, self.options, self.name, self.window = analyzer, options, name, window
        self.clock = clock
        self.progress = progress or Silent()
        self.overlay = Overlay()
        self.rate = Rate()
        self.analysed = self.faces = 0
        self.t0 = clock.monotonic()  # the run's clock: capture times are seconds since this
        self._painter: Painter | None = None
        self._small_sizes: dict[tuple[int, int], tuple[int, int]] = {}

    def loop(self, sink: ParquetSink, capture: Capture, signals: StopSignals, seconds: float | None) -> str | None:
        """Analyse until a stop; returns what stopped it ("seconds", a signal, "preview"), or None if the capture
        ended by itself."""
        stopped_by: str | None = None
        stop_at: float | None = None  # monotonic time of a stop that still drains the last frame
        while True:
            now = self.clock.monotonic()
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
        small_wh = self._small_sizes.setdefault((w, h), scan_size(opts.detection, w, h))
        found = self.analyzer.process([from_bgr(item.index, item.time_s, item.bgr, small_wh)])
        labels = self.analyzer.labels
        sink.write(window_table(self.name, found.frames.index, found.frames.time_s, found.faces, labels,
                                found.smoothed))  # fmt: skip
        self.analysed += 1
        self.progress.advance()
        self.faces += len(found.faces)
        self.rate.tick(self.clock.monotonic() - self.t0)
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
    return TableMeta.made_by(
        analyzer,
        options,
        CameraSource(camera=name, description=source.description, nominal_fps=source.fps),
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
        status=Status.OK,
        error=describe(capture.error) if capture.error is not None else None,
        recording=str(recording) if recording is not None else None,
    )
