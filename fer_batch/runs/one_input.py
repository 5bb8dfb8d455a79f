"""One input end to end: probe → reader thread → analysis engine → table (→ annotated video), one window at a time.

Why apart from the engine: this is where a file's life is decided — its outcome, its table's metadata, what a
damaged stream or a lack of memory costs — while ``analysis.engine`` only turns frames into faces.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_batch._progress import Progress
from fer_batch.analysis.detect.scan_size import scan_size
from fer_batch.analysis.engine import Analysis, Analyzer, Models, Planned, unload_models
from fer_batch.errors import DecodeError, ModelOutputError, StreamBroken, describe
from fer_batch.media.probe import VideoInfo, probe
from fer_batch.media.reader import FrameReader, ReaderImages
from fer_batch.options import AUTO, Options, Scale
from fer_batch.outputs.metadata import AnnotatedVideo, FileSource, TableMeta
from fer_batch.outputs.table import MemorySink, ParquetSink, window_table
from fer_batch.runs.result import InputResult, Tally
from fer_batch.types import Decoded, Status

log = logging.getLogger(__name__)

# what fails one input (nothing written, one line) rather than the run: its file, the disk, the model's outputs on it
INPUT_FAILURES = (DecodeError, OSError, ModelOutputError)


def metadata(path: Path, options: Options, info: VideoInfo, analyzer: Analyzer, result: Tally,
             source: os.stat_result, annotated: Path | None = None, scale: Scale = AUTO) -> TableMeta:  # fmt: skip
    """What the table's Parquet metadata records: enough to reproduce the run and to resume safely.

    ``source`` is the file as it was when reading began; ``annotated`` the annotated video written with this table,
    whose size and mtime tie it to the table (``--resume`` takes neither without the other).
    """
    video = None
    if annotated is not None:
        st = annotated.stat()
        video = AnnotatedVideo(path=annotated.name, size=st.st_size, mtime_ns=st.st_mtime_ns, scale=scale)
    return TableMeta.made_by(
        analyzer,
        options,
        # absolute: the report and render find the source from any folder they are run in
        FileSource(path=str(Path(path).absolute()), size=source.st_size, mtime=source.st_mtime),
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
    annotate_scale: Scale = AUTO,
    progress: Progress | None = None,
    models: Models | None = None,
) -> tuple[InputResult, MemorySink | None]:
    """Analyse one input; write its table (and annotated video, at ``annotate_scale``) or collect it in memory.

    Decoding errors never escape: the result says ``failed`` (nothing written) or ``partial`` (the frames
    before the damage are in the table, which records the reason). A source replaced or changed while it was
    read fails, with nothing written: its table would describe neither file. ``models`` replace the ones
    ``options`` name (tests pass fakes).
    """
    t0 = time.perf_counter()
    result = Tally()
    try:
        source = os.stat(path)
        info = probe(path, options.limits.max_pixels)
    except (DecodeError, OSError) as e:
        return InputResult.failed(path, describe(e, with_file=True), wall_s=time.perf_counter() - t0), None
    result.duration_s = info.duration_s
    if progress is not None:
        progress.start(expected_frames(info, options))
    analyzer = Analyzer(options, models)
    images = ReaderImages.ANALYSED if analyzer.classifier.needs_color else ReaderImages.NONE
    sizes = window_sizes(info, options.limits.batch_size, annotate_path is not None)
    reader = FrameReader(path, info, options, images=ReaderImages.RENDER if annotate_path is not None else images,
                         scan_size=scan_size(options.detection, info.width, info.height),
                         queue_size=sizes.queue, decode_threads=1)  # fmt: skip
    smooth = options.tracking.smooth is not None
    sink: ParquetSink | MemorySink = (
        ParquetSink(table_path, analyzer.labels, smooth) if table_path else MemorySink(analyzer.labels, smooth)
    )
    try:
        with sink:
            with _renderer(path, annotate_path, info, analyzer.labels, options, annotate_scale) as rend:
                _analyse(reader, sizes, WindowStages(analyzer, video_name, sink, rend, result, progress))
                if result.frames_decoded == 0:
                    raise DecodeError(result.error or "no frame could be decoded")
                if result.frames_analysed == 0:
                    raise DecodeError(_empty_range(options, info))
                if not same_file(source, os.stat(path)):  # checked before anything gets its final name
                    raise DecodeError("the file changed while it was read (replaced or rewritten); run again")
            sink.meta = metadata(path, options, info, analyzer, result, source, annotate_path, annotate_scale)
    except Exception as e:
        if not isinstance(e, INPUT_FAILURES) and not out_of_memory(e):
            raise
        _failed(result, e, info)
        result.frames_decoded, result.frames_analysed = reader.decoded, reader.analysed
    done = result.result(path, time.perf_counter() - t0, table_path)
    return done, (sink if isinstance(sink, MemorySink) and done.status is not Status.FAILED else None)


def expected_frames(info: VideoInfo, options: Options) -> int | None:
    """About how many frames the reader will decode (a progress bar's total), or None when the header cannot say."""
    if info.is_image:
        return 1
    if not (info.fps and info.duration_s):
        return info.frames or None
    if options.sampling.start is None and options.sampling.end is None:
        return info.frames or round(info.duration_s * info.fps)
    end = min(options.sampling.end if options.sampling.end is not None else info.duration_s, info.duration_s)
    return max(0, round((end - (options.sampling.start or 0.0)) * info.fps))


class WindowStages:
    """The stages a video's windows pass through, each in a thread of its own, and the hand-offs between them.

    ::

        reader thread     this thread (run)          scan thread            finish thread
        ─────────────     ─────────────────          ───────────            ─────────────
        Decoded ─queue─►  window k+1: plan ────────► full scans of k+1
                          window k:   track ◄─────── (scans of k, done)
                                        │  needs window k-1's tracks
                                        └──────────────────────────────────► window k: classify → table rows
                                                                             → annotated frames → progress

    Why this shape: a full scan needs only its frame, so the next window's scans run while this one is tracked;
    tracking a window needs its scans and the previous window's faces; the classifier (with the table and the
    renderer behind it) needs nothing from the next window. Windows are tracked and finished in order, one at a
    time, so the results are those of doing it all in one thread, and at most one window waits at each hand-off:
    memory holds ``WINDOWS_IN_FLIGHT`` windows besides the reader's queue. An error in another thread is raised in
    this one.
    """

    def __init__(self, analyzer: Analyzer, video_name: str, sink: ParquetSink | MemorySink, rend: Any,
                 result: Tally, progress: Progress | None) -> None:  # fmt: skip
        self.analyzer, self.video_name, self.sink, self.rend = analyzer, video_name, sink, rend
        self.result, self.progress = result, progress
        self._finishing: Future[None] | None = None

    def run(self, windows: Iterable[list[Decoded]]) -> None:
        """Every window through plan → track → finish; a stream that breaks still finishes what came before."""
        with ThreadPoolExecutor(1, "scan") as scan_pool, ThreadPoolExecutor(1, "classify") as finish_pool:
            ahead: tuple[list[Decoded], Planned] | None = None
            try:
                for window in windows:
                    planned = (window, self.analyzer.plan(window, scan_pool))
                    if ahead is not None:
                        self.track(*ahead, finish_pool)
                    ahead = planned
            except StreamBroken:
                if ahead is not None:  # the frames before the damage are finished before the damage is reported
                    self.track(*ahead, finish_pool)
                raise
            finally:
                self.wait()
            if ahead is not None:
                self.track(*ahead, finish_pool)
                self.wait()

    def track(self, window: list[Decoded], planned: Planned, finish_pool: Executor) -> None:
        """Track a planned window here, then hand it to the finishing thread once the previous one is finished."""
        detected = self.analyzer.track(planned)
        self.wait()
        self._finishing = finish_pool.submit(self.finish, window, detected)

    def finish(self, window: list[Decoded], detected: Analysis) -> None:
        """Classify a tracked window, write its table rows, render its frames, report progress."""
        found = self.analyzer.classify(detected)
        if len(found.frames):
            faces, smoothed = found.faces, found.smoothed
            if (
                self.analyzer.options.classification.min_quality > 0 and faces.quality is not None
            ):  # --min-quality: rows left out
                keep = faces.quality >= self.analyzer.options.classification.min_quality
                faces, smoothed = faces.take(keep), None if smoothed is None else smoothed[keep]
            self.sink.write(window_table(self.video_name, found.frames.index, found.frames.time_s, faces,
                                         self.analyzer.labels, smoothed))  # fmt: skip
            self.result.faces += len(faces)
        if self.rend is not None:
            self.rend.write(window, found.faces)
        if self.progress is not None:
            self.progress.advance(len(window))

    def wait(self) -> None:
        """Until the window handed off last is finished; its error, if any, is raised here."""
        pending, self._finishing = self._finishing, None
        if pending is not None:
            pending.result()


def _analyse(reader: FrameReader, sizes: WindowSizes, stages: WindowStages) -> None:
    """Decode → scan → track → classify → table rows (→ annotated frames); a stream that breaks is partial."""
    result = stages.result
    try:
        stages.run(_windows(reader, sizes.batch, sizes.hold))
    except StreamBroken as e:
        result.set(Status.PARTIAL, str(e))
    result.frames_decoded, result.frames_analysed = reader.decoded, reader.analysed


WINDOW_BYTES = 256 << 20  # decoded images the windows in flight may hold; the reader's queue at most as much again
WINDOWS_IN_FLIGHT = 3  # being scanned, tracked and finished (``WindowStages``)


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
    (``WindowStages``), so each gets a third of the budget.
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


def _renderer(path: Path, annotate_path: Path | None, info: VideoInfo, labels: list[str], options: Options,
              scale: Scale) -> Any:  # fmt: skip
    """The annotated video's writer, or a context that does nothing."""
    if annotate_path is None:
        return nullcontext()
    from fer_batch.outputs.render import Renderer

    queue = int(max(1, min(8, (WINDOW_BYTES // 2) // max(1, info.width * info.height * 1.5))))  # frames, by bytes
    span = options.sampling
    return Renderer(path, annotate_path, info, labels, scale=scale, start=span.start, end=span.end,
                    queue_size=queue)  # fmt: skip


def _failed(result: Tally, e: Exception, info: VideoInfo) -> None:
    """Record an input's failure; after an allocation failure, free what the failed input left behind."""
    result.set(Status.FAILED, describe(e, with_file=True))
    if not isinstance(e, INPUT_FAILURES):  # out of memory (see out_of_memory)
        release_memory()  # so the inputs after this one start from a clean slate
        result.error = f"out of memory ({info.width}x{info.height}): {describe(e, with_file=True)}"


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


def _empty_range(options: Options, info: VideoInfo) -> str:
    ends = f" (the video ends at {info.duration_s:.2f} s)" if info.duration_s else ""
    if options.sampling.end is not None:
        return f"no frame between --start {options.sampling.start or 0:g} s and --end {options.sampling.end:g} s{ends}"
    return f"no frame at or after --start {options.sampling.start or 0:g} s{ends}"


OOM_WORDS = ("bad_alloc", "insufficient memory", "failed to allocate", "out of memory", "cannot allocate memory")


def out_of_memory(e: BaseException) -> bool:
    """An allocation failure, whatever library raised it (numpy, OpenCV's std::bad_alloc, onnxruntime)."""
    return isinstance(e, MemoryError) or any(w in str(e).lower() for w in OOM_WORDS)


def release_memory() -> None:
    """After an allocation failure: drop the cached models (onnxruntime's arena keeps what it grew to) and give
    freed memory back to the system, so one huge input does not make the next normal ones fail too."""
    import ctypes
    import gc

    unload_models()
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
