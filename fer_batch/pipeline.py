"""The per-video pipeline: decode → detect → track → classify → sink (→ render), one window at a time.

Why windows: the faces of ``batch_size`` analysed frames are classified in one onnxruntime call, which is where
batching pays; detection and tracking stay per frame so results never depend on the window size.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fer_batch._version import __version__
from fer_batch.classify import Classifier
from fer_batch.decode import Decoded, DecodeError, FrameReader, StreamBroken, VideoInfo, probe
from fer_batch.detect import Detector, RegionDetector, make_detector, nms
from fer_batch.options import Options
from fer_batch.sink import MemorySink, ParquetSink, TableMeta, window_table
from fer_batch.track import Smoother, Tracker
from fer_batch.types import Faces, Frames

log = logging.getLogger(__name__)

REGION_MEMORY = 3  # detector frames whose faces are looked for again in regions


@dataclass
class VideoResult:
    """One input's outcome: the row it gets in ``manifest.parquet``."""

    path: str
    status: str  # ok | partial | failed | skipped
    error: str | None = None
    frames_decoded: int = 0
    frames_analysed: int = 0
    faces: int = 0
    duration_s: float | None = None
    wall_s: float = 0.0
    table: str | None = None


def cores() -> int:
    """The cores this process may use (respects affinity masks set by a scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def models_for(options: Options) -> tuple[Detector, Classifier]:
    """Detector and classifier for these options, loaded once per process (folder runs and segments reuse them)."""
    # only the settings the models read make a new pair: a segment's own --start/--end must not reload them
    return _load_models(
        options.replace(fps=None, every=None, start=None, end=None, detect_every=1, smooth=None,
                        scan_interval=Options.scan_interval, batch_size=Options.batch_size)  # fmt: skip
    )


@lru_cache(maxsize=4)
def _load_models(options: Options) -> tuple[Detector, Classifier]:
    return make_detector(options), Classifier(options)


@dataclass(frozen=True)
class Analysis:
    """What ``Analyzer.process`` found in one window: its analysed frames, their faces, smoothed probabilities."""

    frames: Frames
    faces: Faces
    smoothed: np.ndarray | None  # (faces, labels) when --smooth is on


class ScanSchedule:
    """What the detector does on each analysed frame: "scan" the full frame, look in "regions", or "carry".

    Why a class of its own: the schedule depends only on the stream (analysed-frame count and times), never on
    how frames fall into windows, and the segment planner replays it to start each segment on a frame where the
    whole-video run scans, so both must use this one rule.
    """

    def __init__(self, detect_every: int, scan_interval: float, regions: bool) -> None:
        self.detect_every, self.scan_interval, self.regions = detect_every, scan_interval, regions
        self.analysed = 0  # analysed frames so far, to pick the ones the detector runs on
        self.last_scan: float | None = None  # time of the last full-frame scan

    def next(self, t: float, has_planes: bool) -> str:
        """The action for the next analysed frame, at ``t`` seconds.

        Regions are cut from the decoded planes; frames without them (photos, camera frames) are scanned whole, as
        is every detector frame of a detector that cannot look in regions.
        """
        n, self.analysed = self.analysed, self.analysed + 1
        if n % self.detect_every:
            return "carry"
        due = self.last_scan is None or t - self.last_scan >= self.scan_interval - 1e-9
        if due or not has_planes or not self.regions:
            self.last_scan = t
            return "scan"
        return "regions"


class Analyzer:
    """Runs detect → track → classify on windows of decoded frames of one video (or camera)."""

    def __init__(self, options: Options) -> None:
        if options.threads is None:
            options = options.replace(threads=cores())
        self.options = options
        self.detector, self.classifier = models_for(options)
        self.labels = self.classifier.labels
        self.tracker = Tracker()
        self.smoother = Smoother(options.smooth) if options.smooth else None
        self.region_detector = self.detector if isinstance(self.detector, RegionDetector) else None
        self.schedule = ScanSchedule(options.detect_every, options.scan_interval, self.region_detector is not None)
        self._recent: list[np.ndarray] = []  # boxes found on the latest detector frames, newest first

    def process(self, items: list[Decoded]) -> Analysis:
        """Faces of the analysed items (in order) with track ids and probabilities, and smoothed probabilities.

        Per analysed frame, in order: a full-frame scan (the first frame, then at least every ``scan_interval``
        seconds), or detection in regions around the faces found since the last scan (the other detector frames),
        or boxes carried by the tracker (frames skipped by ``--detect-every``). The schedule depends only on the
        stream, never on how frames fall into windows, so results do not depend on the batch size.
        """
        frames = Frames.from_decoded(items, colour=self.classifier.needs_color)
        if not len(frames):
            return Analysis(frames, Faces(), None)
        assert frames.yuv is not None
        plan = [self.schedule.next(float(t), p is not None) for t, p in zip(frames.time_s, frames.yuv, strict=True)]
        scan_pos = np.array([j for j, p in enumerate(plan) if p == "scan"], dtype=np.int64)
        scans = self.detector(frames.subset(scan_pos)) if len(scan_pos) else Faces()
        w, h = frames.size
        per_frame = []
        for j, idx in enumerate(frames.index):
            if plan[j] == "scan":
                found = scans.of_frame(int(idx))
                self._recent = [found.boxes]
                per_frame.append(self.tracker.update(found))
            elif plan[j] == "regions" and self.region_detector is not None:
                found = self.region_detector.regions(frames, j, self._regions())
                self._recent = [found.boxes, *self._recent][:REGION_MEMORY]
                per_frame.append(self.tracker.update(found))
            else:
                per_frame.append(self.tracker.predict(int(idx), w, h))
        faces = self.classifier(frames, Faces.concat(per_frame))
        smoothed = self.smoother(faces) if self.smoother is not None else None
        return Analysis(frames, faces, smoothed)

    def _regions(self) -> np.ndarray:
        """Boxes to look around: the faces found on the last few detector frames since the last full scan.

        Why not the tracker's predictions: they depend on the whole history of the video, while these depend only
        on the frames since the last scan, so a video split into segments that start at a scan frame gives the
        same boxes and probabilities as the unsplit run. A face missed in one region is looked for again where
        it was last seen (``REGION_MEMORY`` frames), and re-found by the next scan at the latest.
        """
        boxes = np.concatenate(self._recent) if self._recent else np.zeros((0, 4), np.float32)
        if len(boxes) > 1:  # the newest box of each face comes first and wins
            boxes = boxes[nms(boxes, -np.arange(len(boxes), dtype=np.float32), 0.3)]
        return boxes


def metadata(path: Path, options: Options, info: VideoInfo, analyzer: Analyzer, result: VideoResult) -> TableMeta:
    """What the table's Parquet metadata records: enough to reproduce the run and to resume safely."""
    st = path.stat()
    return TableMeta(
        version=__version__,
        options=options.as_dict(),
        source={"path": str(path), "size": st.st_size, "mtime": st.st_mtime},
        model=analyzer.classifier.describe(),
        detector={"id": analyzer.detector.id, "sha256": analyzer.detector.sha256},
        provider=analyzer.classifier.session.get_providers()[0],
        width=info.width, height=info.height, rotation=info.rotation, fps=info.fps, duration_s=info.duration_s,
        frames_decoded=result.frames_decoded, frames_analysed=result.frames_analysed, faces=result.faces,
        status=result.status, error=result.error,
    )  # fmt: skip


def run_video(
    path: Path,
    options: Options,
    *,
    video_name: str,
    table_path: Path | None = None,
    annotate_path: Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[VideoResult, MemorySink | None]:
    """Analyse one input; write its table (and annotated video) or collect it in memory.

    Decoding errors never escape: the result says ``failed`` (nothing written) or ``partial`` (the frames
    before the damage are in the table, which records the reason).
    """
    t0 = time.perf_counter()
    result = VideoResult(path=str(path), status="ok")
    try:
        info = probe(path)
    except (DecodeError, OSError) as e:
        result.status, result.error = "failed", _oneline(e)
        result.wall_s = time.perf_counter() - t0
        return result, None
    result.duration_s = info.duration_s
    analyzer = Analyzer(options)
    need_bgr = "render" if annotate_path is not None else ("analysed" if analyzer.classifier.needs_color else "none")
    reader = FrameReader(path, info, options, need_bgr=need_bgr, queue_size=options.batch_size,
                         decode_threads=1)  # fmt: skip
    smooth = options.smooth is not None
    sink: ParquetSink | MemorySink = (
        ParquetSink(table_path, analyzer.labels, smooth) if table_path else MemorySink(analyzer.labels, smooth)
    )
    renderer: Any = nullcontext()
    if annotate_path is not None:
        from fer_batch.render import Renderer

        renderer = Renderer(path, annotate_path, info, analyzer.labels, start=options.start, end=options.end)
    try:
        with sink, renderer as rend:
            try:
                # frames held for rendering carry a full decoded image: bound them; otherwise held frames are tiny
                hold_limit = max(options.batch_size, 64) if annotate_path is not None else 100 * options.batch_size
                for window in _windows(reader, options.batch_size, hold_limit):
                    found = analyzer.process(window)
                    if len(found.frames):
                        sink.write(window_table(video_name, found.frames.index, found.frames.time_s, found.faces,
                                                analyzer.labels, found.smoothed))  # fmt: skip
                        result.faces += len(found.faces)
                    if rend is not None:
                        rend.write(window, found.faces)
                    if progress is not None:
                        progress(len(window))
            except StreamBroken as e:
                result.status, result.error = "partial", str(e)
            result.frames_decoded, result.frames_analysed = reader.decoded, reader.analysed
            if result.frames_decoded == 0:
                raise DecodeError(result.error or "no frame could be decoded")
            sink.meta = metadata(path, options, info, analyzer, result)
    except (DecodeError, OSError) as e:
        result.status, result.error = "failed", _oneline(e)
        result.frames_decoded, result.frames_analysed = reader.decoded, reader.analysed
    result.wall_s = time.perf_counter() - t0
    if result.status != "failed" and table_path is not None:
        result.table = str(table_path)
    return result, (sink if isinstance(sink, MemorySink) and result.status != "failed" else None)


def _windows(items: Iterable[Decoded], batch_size: int, hold_limit: int) -> Iterable[list[Decoded]]:
    """Group decoded frames into windows of ``batch_size`` analysed frames (or ``hold_limit`` frames held)."""
    window: list[Decoded] = []
    analysed = 0
    for item in items:
        window.append(item)
        analysed += item.analyse
        if analysed >= batch_size or len(window) >= hold_limit:
            yield window
            window, analysed = [], 0
    if window:
        yield window


def _oneline(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
