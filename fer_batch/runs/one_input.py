"""The per-video pipeline: decode → detect → track → classify → sink (→ render), one window at a time.

Why windows: the faces of ``batch_size`` analysed frames are classified in one onnxruntime call, which is where
batching pays; detection and tracking stay per frame so results never depend on the window size.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fer_batch._version import __version__
from fer_batch.analysis.classify import Classifier
from fer_batch.media.decode import Decoded, DecodeError, FrameReader, StreamBroken, VideoInfo, error_reason, probe
from fer_batch.analysis.detect import Detector, RegionDetector, make_detector, nms
from fer_batch.analysis.model_checks import ModelOutputError
from fer_batch.options import Options
from fer_batch.outputs.table import MemorySink, ParquetSink, TableMeta, window_table
from fer_batch.analysis.track import Smoother, Tracker
from fer_batch.types import Faces, Frames

log = logging.getLogger(__name__)

# what fails one input (nothing written, one line) rather than the run: its file, the disk, the model's outputs on it
INPUT_FAILURES = (DecodeError, OSError, ModelOutputError)
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
    # only the settings the models read make a new pair: a segment's own --start/--end must not reload them;
    # the files' content is part of the key, so a model or spec replaced at the same path is loaded again
    from fer_batch.analysis.classify import fingerprint, member_specs

    content = json.dumps(fingerprint(member_specs(options)), sort_keys=True)
    return _load_models(
        options.replace(fps=None, every=None, start=None, end=None, detect_every=1, smooth=None,
                        scan_interval=Options.scan_interval, batch_size=Options.batch_size), content  # fmt: skip
    )


@lru_cache(maxsize=4)
def _load_models(options: Options, content: str) -> tuple[Detector, Classifier]:
    return make_detector(options), Classifier(options)


@dataclass(frozen=True)
class Analysis:
    """What ``Analyzer.process`` found in one window: its analysed frames, their faces, smoothed probabilities."""

    frames: Frames
    faces: Faces
    smoothed: np.ndarray | None  # (faces, labels) when --smooth is on


@dataclass(frozen=True)
class Planned:
    """A window whose detector actions are decided and whose full scans may still be running in another thread."""

    frames: Frames
    plan: list[str]  # per analysed frame: "scan", "regions" or "carry"
    scans: Future[Faces]  # the faces of the frames planned "scan"


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
        """Faces of the analysed items (in order) with track ids and probabilities, and smoothed probabilities."""
        return self.classify(self.detect(items))

    def detect(self, items: list[Decoded]) -> Analysis:
        """The analysed frames of ``items`` and their faces with track ids, not yet classified."""
        return self.track(self.plan(items))

    def plan(self, items: list[Decoded], scan_pool: Executor | None = None) -> Planned:
        """The analysed frames of ``items`` and what the detector does on each; full scans start here.

        Per analysed frame, in order: a full-frame scan (the first frame, then at least every ``scan_interval``
        seconds), or detection in regions around the faces found since the last scan (the other detector frames),
        or boxes carried by the tracker (frames skipped by ``--detect-every``). The schedule depends only on the
        stream, never on how frames fall into windows, so results do not depend on the batch size. A scan needs
        nothing but its frame, so with ``scan_pool`` it runs there while the previous window is tracked.
        """
        frames = Frames.from_decoded(items, colour=self.classifier.needs_color)
        assert frames.yuv is not None
        plan = [self.schedule.next(float(t), p is not None) for t, p in zip(frames.time_s, frames.yuv, strict=True)]
        scan_pos = np.array([j for j, p in enumerate(plan) if p == "scan"], dtype=np.int64)
        scans: Future[Faces] = Future()
        if not len(scan_pos):
            scans.set_result(Faces())
        elif scan_pool is not None:
            scans = scan_pool.submit(self.detector, frames.subset(scan_pos))
        else:
            scans.set_result(self.detector(frames.subset(scan_pos)))
        return Planned(frames, plan, scans)

    def track(self, planned: Planned) -> Analysis:
        """Faces of a planned window with track ids: its scans' faces, regions between them, the tracker's boxes."""
        frames, plan = planned.frames, planned.plan
        if not len(frames):
            return Analysis(frames, Faces(), None)
        scans = planned.scans.result()
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
        return Analysis(frames, Faces.concat(per_frame), None)

    def classify(self, detected: Analysis) -> Analysis:
        """``detected`` with probabilities (and smoothed probabilities under ``--smooth``).

        Why apart from ``detect``: classification needs nothing from the next window and the next window's
        detection nothing from it, so ``run_video`` runs the two on different cores; windows reach this method in
        order, which the smoother's state along each track relies on.
        """
        if not len(detected.frames):
            return detected
        faces = self.classifier(detected.frames, detected.faces)
        smoothed = self.smoother(faces) if self.smoother is not None else None
        return Analysis(detected.frames, faces, smoothed)

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


def metadata(path: Path, options: Options, info: VideoInfo, analyzer: Analyzer, result: VideoResult,
             source: os.stat_result, annotated: Path | None = None) -> TableMeta:  # fmt: skip
    """What the table's Parquet metadata records: enough to reproduce the run and to resume safely.

    ``source`` is the file as it was when reading began; ``annotated`` the annotated video written with this table,
    whose size and mtime tie it to the table (``--resume`` takes neither without the other).
    """
    video = None
    if annotated is not None:
        st = annotated.stat()
        video = {"path": annotated.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    return TableMeta(
        version=__version__,
        options=options.as_dict(),
        source={"path": str(path), "size": source.st_size, "mtime": source.st_mtime},
        model=analyzer.classifier.describe(),
        detector={"id": analyzer.detector.id, "sha256": analyzer.detector.sha256},
        provider=analyzer.classifier.session.get_providers()[0],
        width=info.width, height=info.height, rotation=info.rotation, fps=info.fps, duration_s=info.duration_s,
        frames_decoded=result.frames_decoded, frames_analysed=result.frames_analysed, faces=result.faces,
        status=result.status, error=result.error, annotated=video,
    )  # fmt: skip


def same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """The same file with the same content as far as the file system says: identity, size and mtime."""
    return (a.st_dev, a.st_ino, a.st_size, a.st_mtime_ns) == (b.st_dev, b.st_ino, b.st_size, b.st_mtime_ns)


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
    before the damage are in the table, which records the reason). A source replaced or changed while it was
    read fails, with nothing written: its table would describe neither file.
    """
    t0 = time.perf_counter()
    result = VideoResult(path=str(path), status="ok")
    try:
        source = os.stat(path)
        info = probe(path, options.max_pixels)
    except (DecodeError, OSError) as e:
        result.status, result.error = "failed", _oneline(e)
        result.wall_s = time.perf_counter() - t0
        return result, None
    result.duration_s = info.duration_s
    analyzer = Analyzer(options)
    need_bgr = "render" if annotate_path is not None else ("analysed" if analyzer.classifier.needs_color else "none")
    sizes = window_sizes(info, options.batch_size, annotate_path is not None)
    reader = FrameReader(path, info, options, need_bgr=need_bgr, queue_size=sizes.queue, decode_threads=1)
    smooth = options.smooth is not None
    sink: ParquetSink | MemorySink = (
        ParquetSink(table_path, analyzer.labels, smooth) if table_path else MemorySink(analyzer.labels, smooth)
    )
    try:
        with sink:
            with _renderer(path, annotate_path, info, analyzer.labels, options) as rend:
                _analyse(reader, analyzer, sizes, _Finish(analyzer, video_name, sink, rend, result, progress))
                if result.frames_decoded == 0:
                    raise DecodeError(result.error or "no frame could be decoded")
                if result.frames_analysed == 0:
                    raise DecodeError(_empty_range(options, info))
                if not same_file(source, os.stat(path)):  # checked before anything gets its final name
                    raise DecodeError("the file changed while it was read (replaced or rewritten); run again")
            sink.meta = metadata(path, options, info, analyzer, result, source, annotate_path)
    except Exception as e:
        if not isinstance(e, INPUT_FAILURES) and not out_of_memory(e):
            raise
        _failed(result, e, info)
        result.frames_decoded, result.frames_analysed = reader.decoded, reader.analysed
    result.wall_s = time.perf_counter() - t0
    if result.status != "failed" and table_path is not None:
        result.table = str(table_path)
    return result, (sink if isinstance(sink, MemorySink) and result.status != "failed" else None)


class _Finish:
    """What happens to a window once its faces are found: classify, write the table's rows, render, report."""

    def __init__(self, analyzer: Analyzer, video_name: str, sink: ParquetSink | MemorySink, rend: Any,
                 result: VideoResult, progress: Callable[[int], None] | None) -> None:  # fmt: skip
        self.analyzer, self.video_name, self.sink, self.rend = analyzer, video_name, sink, rend
        self.result, self.progress = result, progress

    def __call__(self, window: list[Decoded], detected: Analysis) -> None:
        found = self.analyzer.classify(detected)
        if len(found.frames):
            self.sink.write(window_table(self.video_name, found.frames.index, found.frames.time_s, found.faces,
                                         self.analyzer.labels, found.smoothed))  # fmt: skip
            self.result.faces += len(found.faces)
        if self.rend is not None:
            self.rend.write(window, found.faces)
        if self.progress is not None:
            self.progress(len(window))


def _analyse(reader: FrameReader, analyzer: Analyzer, sizes: WindowSizes, finish: _Finish) -> None:
    """Decode → scan → track → classify → table rows (→ annotated frames); a stream that breaks is partial."""
    result = finish.result
    try:
        _overlapped(reader, analyzer, sizes, finish)
    except StreamBroken as e:
        result.status, result.error = "partial", str(e)
    result.frames_decoded, result.frames_analysed = reader.decoded, reader.analysed


def _overlapped(reader: FrameReader, analyzer: Analyzer, sizes: WindowSizes, finish: _Finish) -> None:
    """Decode, scan, track and classify in four threads, a window apart, so that on two cores the stages overlap.

    Why this shape: a full scan needs only its frame, so the next window's scans run while this one is tracked;
    tracking a window needs its scans and the previous window's faces; the classifier (with the table and the
    renderer behind it) needs nothing from the next window. Windows are tracked and finished in order, one at a time,
    so the results are those of doing it all in one thread, and at most one window waits at each hand-over: memory
    holds ``WINDOWS_IN_FLIGHT`` windows besides the reader's queue. An error in another thread is raised here.
    """
    with ThreadPoolExecutor(1, "scan") as scan_pool, ThreadPoolExecutor(1, "classify") as finish_pool:
        handed = _Handover(analyzer, finish, finish_pool)
        ahead: tuple[list[Decoded], Planned] | None = None
        try:
            for window in _windows(reader, sizes.batch, sizes.hold):
                planned = (window, analyzer.plan(window, scan_pool))
                if ahead is not None:
                    handed(*ahead)
                ahead = planned
        except StreamBroken:
            if ahead is not None:  # the frames before the damage are finished before the damage is reported
                handed(*ahead)
            raise
        finally:
            handed.wait()
        if ahead is not None:
            handed(*ahead)
            handed.wait()


class _Handover:
    """Tracks a planned window in this thread and finishes it in the finishing thread, after the previous one."""

    def __init__(self, analyzer: Analyzer, finish: _Finish, pool: Executor) -> None:
        self.analyzer, self.finish, self.pool = analyzer, finish, pool
        self.pending: Future[None] | None = None

    def __call__(self, window: list[Decoded], planned: Planned) -> None:
        detected = self.analyzer.track(planned)
        self.wait()
        self.pending = self.pool.submit(self.finish, window, detected)

    def wait(self) -> None:
        """Until the window handed over last is finished; its error, if any, is raised here."""
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


WINDOW_BYTES = 256 << 20  # decoded images the windows in flight may hold; the reader's queue at most as much again
WINDOWS_IN_FLIGHT = 3  # being scanned, tracked and finished (``_overlapped``)


@dataclass(frozen=True)
class WindowSizes:
    """How many frames a window analyses (``batch``) and holds (``hold``), and the reader queues (``queue``)."""

    batch: int
    hold: int
    queue: int


def window_sizes(info: VideoInfo, batch_size: int, render: bool) -> WindowSizes:
    """Windows sized by bytes, not frames, so memory stays within a budget at 4K and 8K.

    Why: a window of 32 analysed 8K frames holds 32 x 50 MB of planes; the results do not depend on the window size
    (see ``Analyzer.process``), so large frames simply get fewer per window. Three windows are in flight at once
    (``_overlapped``), so each gets a third of the budget.
    """
    pixels = max(1, info.width * info.height)
    # 4:2:0 planes: gray and colour crops are cut from them (a BGR image only for photos, one frame a window)
    analysed = pixels * 1.5
    held = pixels * 1.5 if render else 64  # frames kept only for rendering carry their planes
    per_window = WINDOW_BYTES // WINDOWS_IN_FLIGHT
    batch = int(max(1, min(batch_size, per_window // analysed)))
    hold = int(max(batch, min(max(batch_size, 64), per_window // held))) if render else 100 * batch_size
    queue = int(max(2, min(batch_size, WINDOW_BYTES // max(analysed, held))))
    return WindowSizes(batch=batch, hold=hold, queue=queue)


def _renderer(path: Path, annotate_path: Path | None, info: VideoInfo, labels: list[str], options: Options) -> Any:
    """The annotated video's writer, or a context that does nothing."""
    if annotate_path is None:
        return nullcontext()
    from fer_batch.outputs.render import Renderer

    queue = int(max(1, min(8, (WINDOW_BYTES // 2) // max(1, info.width * info.height * 1.5))))  # frames, by bytes
    return Renderer(path, annotate_path, info, labels, start=options.start, end=options.end, queue_size=queue)


def _failed(result: VideoResult, e: Exception, info: VideoInfo) -> None:
    """Record an input's failure; after an allocation failure, free what the failed input left behind."""
    result.status, result.error = "failed", _oneline(e)
    if not isinstance(e, INPUT_FAILURES):  # out of memory (see out_of_memory)
        release_memory()  # so the inputs after this one start from a clean slate
        result.error = f"out of memory ({info.width}x{info.height}): {_oneline(e)}"


def _windows(items: Iterable[Decoded], batch_size: int, hold_limit: int) -> Iterable[list[Decoded]]:
    """Group decoded frames into windows of ``batch_size`` analysed frames (or ``hold_limit`` frames held).

    A stream that breaks still has its last, partly filled window analysed before the break is raised: those
    frames were decoded before the damage and belong in the table.
    """
    window: list[Decoded] = []
    analysed = 0
    try:
        for item in items:
            window.append(item)
            analysed += item.analyse
            if analysed >= batch_size or len(window) >= hold_limit:
                yield window
                window, analysed = [], 0
    except StreamBroken:
        if window:
            yield window
        raise
    if window:
        yield window


def _oneline(e: BaseException) -> str:
    """An error on one line: an OS error's own words (``No space left on device``), else its message."""
    if isinstance(e, OSError):
        shown = e.filename and ".tmp-" not in str(e.filename)  # a temporary file's name says nothing to the user
        return error_reason(e) + (f": {e.filename}" if shown else "")
    return " ".join(str(e).split()) or type(e).__name__


def _empty_range(options: Options, info: VideoInfo) -> str:
    ends = f" (the video ends at {info.duration_s:.2f} s)" if info.duration_s else ""
    if options.end is not None:
        return f"no frame between --start {options.start or 0:g} s and --end {options.end:g} s{ends}"
    return f"no frame at or after --start {options.start or 0:g} s{ends}"


OOM_WORDS = ("bad_alloc", "insufficient memory", "failed to allocate", "out of memory", "cannot allocate memory")


def out_of_memory(e: BaseException) -> bool:
    """An allocation failure, whatever library raised it (numpy, OpenCV's std::bad_alloc, onnxruntime)."""
    return isinstance(e, MemoryError) or any(w in str(e).lower() for w in OOM_WORDS)


def release_memory() -> None:
    """After an allocation failure: drop the cached models (onnxruntime's arena keeps what it grew to) and give
    freed memory back to the system, so one huge input does not make the next normal ones fail too."""
    import ctypes
    import gc

    _load_models.cache_clear()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
