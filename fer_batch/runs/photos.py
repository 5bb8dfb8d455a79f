"""Many photos as one unit of work: each decoded once, their faces classified in shared network calls, one table each.

Why: a photo through ``run_video`` pays for a second decode (the probe decodes it, then the reader), a reader thread,
two stage threads and network calls of one face; on a folder of small face crops that overhead, not the networks,
set the pace (issue 24). Here a batch of photos shares one ``Analyzer`` (reset between photos, so tracks and
smoothing never cross them) and one classifier call per member, while each photo keeps its own table, metadata,
manifest row and resume check, exactly as one-photo-at-a-time writes them (tests/test_photo_batches.py).

A photo this path does not take (one to annotate, one the sampler does not analyse) or a batch whose shared step
fails goes through ``run_video`` alone, so its outcome and its error message are the single-photo ones.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from fer_batch._atomic import AtomicPath, commit_many, remove_stale, stale_folders
from fer_batch._progress import Display
from fer_batch.analysis.detect.scan_size import scan_size
from fer_batch.analysis.engine import Analysis, Analyzer, models_for
from fer_batch.errors import DecodeError, describe
from fer_batch.media.probe import VideoInfo, is_image, probe_image
from fer_batch.media.reader import from_bgr
from fer_batch.media.sampling import Sampler
from fer_batch.options import Options
from fer_batch.outputs.table import ParquetSink, window_table
from fer_batch.runs.jobs import Job
from fer_batch.runs.one_input import INPUT_FAILURES, metadata, same_file
from fer_batch.runs.result import InputResult, Tally
from fer_batch.types import Faces, Status

log = logging.getLogger(__name__)

PHOTOS_PER_TASK = 32  # photos a unit of work takes at most: enough to fill network calls, few enough to spread


def preload(options: Options) -> None:
    """A helper process's first step (``HelpedPool.prepare``): its imports and its models loaded for ``options``
    (about a second) while the driver is still planning, before any photo reaches it."""
    models_for(options)


def batchable(job: Job) -> bool:
    """Whether a job can go into a batch of photos: a photo (not a GIF or a video) without an annotated video."""
    return job.annotated is None and is_image(job.source)


def photo_batches(jobs: list[Job], workers: int) -> list[list[Job]]:
    """Jobs in batches of at most ``PHOTOS_PER_TASK``, and at least one batch per worker where there are enough."""
    if not jobs:
        return []
    per = max(1, min(PHOTOS_PER_TASK, -(-len(jobs) // max(1, workers))))
    return [jobs[i : i + per] for i in range(0, len(jobs), per)]


@dataclass
class _Photo:
    """One photo of a batch between reading and writing."""

    job: Job
    t0: float
    source: os.stat_result
    info: VideoInfo
    detected: Analysis
    seconds: float  # its own time so far (reading, detection); its share of the shared call is added later


Single = Callable[[Job, Options, Display], InputResult]


def analyze_photos(jobs: list[Job], options: Options, display: Display, single: Single) -> list[InputResult]:
    """The unit of work for a batch of photos: one result per job, in order; the photos this path leaves to the
    one-input unit of work (``single``: ``runner.analyze_one``, passed in, as imports run runner → photos) go there."""
    results: dict[int, InputResult] = {}
    photos: dict[int, _Photo] = {}
    analyzer = Analyzer(options)
    stale = stale_folders([job.table for job in jobs])
    for k, job in enumerate(jobs):
        if job.table.parent in stale:
            remove_stale(job.table)  # left by a killed run
        try:
            got = _read(job, options, analyzer)
        except Exception:  # noqa: BLE001 — not an input failure (memory, a bug): the one-photo path says what
            got = None
        if isinstance(got, InputResult):
            results[k] = got
        elif got is None:
            results[k] = single(job, options, display)
        else:
            photos[k] = got
    try:
        t0 = time.perf_counter()
        found = analyzer.classifier.many([(p.detected.frames, p.detected.faces) for p in photos.values()])
        share = (time.perf_counter() - t0) / max(1, len(photos))
    except Exception as e:  # noqa: BLE001 — the shared step failed: each photo alone says what its own outcome is
        log.debug("a batch of %d photos failed together (%s); each goes alone", len(photos), describe(e))
        found, share = [], 0.0
        for k in photos:
            results[k] = single(jobs[k], options, display)
        photos = {}
    pending: dict[int, AtomicPath] = {}  # tables written, to be committed together
    try:
        for (k, photo), faces in zip(photos.items(), found, strict=True):
            try:
                results[k], target = _write(photo, faces, analyzer, options, share)
            except Exception:  # noqa: BLE001 — as above: the one-photo path gives its outcome and message
                results[k], target = single(jobs[k], options, display), None
            if target is not None:
                pending[k] = target
    except BaseException:  # stopped: no temporary table outlives the batch
        for target in pending.values():
            target.discard()
        raise
    _commit(pending, results)
    return [results[k] for k in range(len(jobs))]


def _commit(pending: dict[int, AtomicPath], results: dict[int, InputResult]) -> None:
    """The batch's tables under their final names, durable, before any is reported; one that fails fails its photo."""
    for (k, _), e in zip(pending.items(), commit_many(list(pending.values())), strict=True):
        if e is not None:
            results[k] = results[k].replace(status=Status.FAILED, error=describe(e, with_file=True), table=None)


def _read(job: Job, options: Options, analyzer: Analyzer) -> _Photo | InputResult | None:
    """A photo decoded and its faces detected; its failed result where it cannot be read; None where the batch
    path does not take it."""
    t0 = time.perf_counter()
    sampler = Sampler(options)
    if not any(analyse for _, analyse in sampler.push(0, 0.0) + sampler.flush()):
        return None
    try:
        source = os.stat(job.source)
        info, bgr = probe_image(job.source, options.limits.max_pixels)
    except INPUT_FAILURES as e:
        return InputResult.failed(job.source, describe(e, with_file=True), wall_s=time.perf_counter() - t0)
    colour = analyzer.classifier.needs_color
    decoded = from_bgr(0, 0.0, bgr, scan_size(options.detection, info.width, info.height),
                       keep_bgr=colour)  # fmt: skip
    analyzer.reset()
    detected = analyzer.detect([decoded])
    return _Photo(job, t0, source, info, detected, time.perf_counter() - t0)


def _write(photo: _Photo, faces: Faces, analyzer: Analyzer, options: Options,
           share: float) -> tuple[InputResult, AtomicPath | None]:  # fmt: skip
    """A classified photo's table under its temporary name (None where it failed), with the metadata and result a
    one-photo run gives it. No progress of its own: the run's bar counts photos, and its log line ends each one (a
    bar or a "started" line per one-frame photo only slowed a folder down)."""
    t1 = time.perf_counter()
    job, frames = photo.job, photo.detected.frames
    result = Tally(duration_s=photo.info.duration_s, frames_decoded=1, frames_analysed=1)
    analyzer.reset()
    smoothed = analyzer.smoother(faces) if analyzer.smoother is not None else None
    if (
        options.classification.min_quality > 0 and faces.quality is not None
    ):  # as ``WindowStages.finish`` leaves rows out
        keep = faces.quality >= options.classification.min_quality
        faces, smoothed = faces.take(keep), None if smoothed is None else smoothed[keep]
    try:
        with ParquetSink(job.table, analyzer.labels, options.tracking.smooth is not None, commit=False,
                         small=True) as sink:  # fmt: skip
            sink.write(window_table(job.name, frames.index, frames.time_s, faces, analyzer.labels, smoothed))
            result.faces = len(faces)
            if not same_file(photo.source, os.stat(job.source)):
                raise DecodeError("the file changed while it was read (replaced or rewritten); run again")
            sink.meta = metadata(job.source, options, photo.info, analyzer, result, photo.source)
        target: AtomicPath | None = sink.target
    except INPUT_FAILURES as e:  # as ``run_video`` records them
        result.set(Status.FAILED, describe(e, with_file=True))
        target = None
    return result.result(job.source, photo.seconds + share + (time.perf_counter() - t1), job.table), target
