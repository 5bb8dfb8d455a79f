"""Folder runs: inputs → units of work → an Executor → ``manifest.parquet``.

Why an Executor: the unit of work (``analyze_one``) is a plain picklable function of (input, options), so the
local process pool behind ``--jobs`` and a Dask cluster's executor run exactly the same code. Only the driver
writes the manifest, as results arrive.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from fer_batch.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from fer_batch.options import Options
from fer_batch.pipeline import VideoResult, cores, run_video
from fer_batch.sink import TMP_MARK, read_metadata

log = logging.getLogger(__name__)

MANIFEST = "manifest.parquet"
RESERVED = {MANIFEST, "summary.parquet"}
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS
MANIFEST_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("frames_decoded", pa.int64()),
        ("frames_analysed", pa.int64()),
        ("faces", pa.int64()),
        ("duration_s", pa.float64()),
        ("wall_s", pa.float64()),
        ("table", pa.string()),
    ]
)


class UsageError(ValueError):
    """Bad arguments (exit code 2), as opposed to a bad input file (exit code 1)."""


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go: everything a worker needs, picklable."""

    source: Path
    name: str  # path relative to its input root, as the table's ``video`` column shows it
    table: Path
    annotated: Path | None


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[Path, Path]], list[VideoResult]]:
    """(file, root) pairs for every media file the arguments name, and failures for those that name nothing.

    Folders are searched recursively for known extensions (any case); globs are expanded; an explicit file is
    taken whatever its extension (the decoder decides whether it is media).
    """
    found: list[tuple[Path, Path]] = []
    missing: list[VideoResult] = []
    for raw in paths:
        arg = str(raw)
        matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))] if glob.has_magic(arg) else [Path(arg)]
        if not matches:
            missing.append(VideoResult(path=arg, status="failed", error="no file matches this pattern"))
        for p in matches:
            if p.is_dir():
                files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS)
                if not files:
                    missing.append(VideoResult(path=str(p), status="failed", error="folder holds no video or image"))
                found += [(f, p) for f in files]
            elif p.is_file():
                found.append((p, p.parent))
            elif p.exists():
                missing.append(VideoResult(path=str(p), status="failed", error="not a regular file"))
            else:
                missing.append(VideoResult(path=str(p), status="failed", error="no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for f, root in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, root))
    return unique, missing


def plan_jobs(files: list[tuple[Path, Path]], out: Path, annotate: bool) -> list[Job]:
    """Output paths under ``out`` mirroring each file's path below its root; they can never leave ``out``."""
    out = out.resolve()
    jobs, taken = [], set()
    for f, root in files:
        rel = f.relative_to(root) if f.is_relative_to(root) else Path(f.name)
        rel = Path(*[part for part in rel.parts if part not in ("..", ".", "")])  # belt and braces
        table = out / rel.with_suffix(".parquet")
        if table in taken or table.name in RESERVED:  # a.mp4 and a.mov in one folder: keep both tables
            table = out / rel.with_name(rel.name + ".parquet")
        taken.add(table)
        if not table.resolve().is_relative_to(out):
            raise UsageError(f"{f}: output {table} would leave {out}")
        annotated = table.with_name(table.name[: -len(".parquet")] + ".annotated.mp4") if annotate else None
        jobs.append(Job(source=f, name=rel.as_posix(), table=table, annotated=annotated))
    return jobs


def is_complete(job: Job, options: Options) -> bool:
    """True when the job's table exists, came from the same source (size, mtime) and the same options."""
    meta = read_metadata(job.table)
    if meta is None or meta.get("status") not in ("ok", "partial"):
        return False
    st = job.source.stat()
    src = meta.get("source", {})
    same_source = src.get("size") == st.st_size and src.get("mtime") == st.st_mtime
    try:
        same_options = Options(**meta["options"]).result_key() == options.result_key()
    except (KeyError, TypeError, ValueError):  # written by another version: redo it
        same_options = False
    if job.annotated is not None and not job.annotated.exists():
        return False
    return same_source and same_options


def analyze_one(job: Job, options: Options, show_progress: bool = False) -> VideoResult:
    """The unit of work: one input → its table (and annotated video) → a result record.

    Catches everything an input can cause, so one bad file never stops a folder run.
    """
    for final in (job.table, job.annotated):
        if final is not None:
            for stale in final.parent.glob(f"{glob.escape(final.name)}{TMP_MARK}*"):
                stale.unlink(missing_ok=True)  # left by a killed run
    bar = None
    try:
        if show_progress:
            bar = tqdm(desc=job.name, unit="frame", leave=False, dynamic_ncols=True)
        result, _ = run_video(job.source, options, video_name=job.name, table_path=job.table,
                              annotate_path=job.annotated, progress=bar.update if bar else None)  # fmt: skip
    except Exception as e:  # noqa: BLE001 — any failure of one input is reported, the run goes on
        log.debug("%s failed", job.source, exc_info=True)
        result = VideoResult(path=str(job.source), status="failed", error=f"{type(e).__name__}: {e}")
    finally:
        if bar is not None:
            bar.close()
    result.path = str(job.source)
    return result


def _worker_init(threads: int) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


def local_executor(jobs: int) -> Executor:
    """A process pool of ``jobs`` workers (spawned, so no thread state is forked)."""
    threads = max(1, cores() // jobs)
    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=_worker_init,
                               initargs=(threads,))  # fmt: skip


class ManifestWriter:
    """Rewrites ``manifest.parquet`` atomically as results arrive, so a crash leaves the rows so far."""

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST
        self.rows: dict[str, VideoResult] = {}

    def add(self, result: VideoResult) -> None:
        self.rows[result.path] = result
        cols = {name: [asdict(r)[name] for r in self.rows.values()] for name in MANIFEST_SCHEMA.names}
        table = pa.table(cols, schema=MANIFEST_SCHEMA)
        tmp = self.path.with_name(f"{MANIFEST}{TMP_MARK}{os.getpid()}")
        pq.write_table(table, tmp)
        os.replace(tmp, self.path)


class InlineExecutor(Executor):
    """Runs each task in this process as it is submitted: the one-job case goes through the same loop as pools."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut: Future[Any] = Future()
        try:
            fut.set_result(fn(*args, **kwargs))
        except Exception as e:  # noqa: BLE001 — handed to the caller through the future, as a pool would
            fut.set_exception(e)
        return fut


def run_many(
    paths: Iterable[str | os.PathLike[str]],
    out: Path,
    options: Options,
    *,
    jobs: int = 1,
    executor: Executor | None = None,
    resume: bool = True,
    quiet: bool = False,
    on_result: Callable[[VideoResult], None] | None = None,
    segment_seconds: float | None = None,
) -> list[VideoResult]:
    """Analyse every input; returns one result per input (also written to ``out/manifest.parquet``).

    Every unit of work goes to ``executor`` (in this process when there is none and ``jobs`` is 1, else a local
    process pool); a Dask client's executor is checked first (same version, models, inputs and ``out`` on every
    worker) and nothing is written if the check fails. With ``segment_seconds``, each video longer than that is
    split into time ranges run as separate tasks, then joined (``fer_batch.cluster``).
    """
    files, failures = expand_inputs(paths)
    out = Path(out)
    if segment_seconds is not None and segment_seconds <= 0:
        raise UsageError("--segment-seconds must be positive")
    if executor is not None and type(executor).__module__.startswith("distributed"):
        from fer_batch.cluster import prepare_executor

        executor = prepare_executor(executor, [f for f, _ in files], out, options)  # raises before anything is written
    out.mkdir(parents=True, exist_ok=True)
    planned = plan_jobs(files, out, options.annotate)
    manifest = ManifestWriter(out)
    results: list[VideoResult] = []
    interactive = sys.stderr.isatty() and not quiet

    def done(result: VideoResult) -> None:
        results.append(result)
        manifest.add(result)
        if on_result is not None:
            on_result(result)

    for failure in failures:
        done(failure)
    todo = []
    for job in planned:
        if resume and is_complete(job, options):
            done(VideoResult(path=str(job.source), status="skipped", error=None, table=str(job.table)))
        else:
            todo.append(job)
    own_executor = executor is None and jobs > 1
    if executor is None:
        job_options = options if options.threads else options.replace(threads=max(1, cores() // jobs))
        executor = InlineExecutor() if jobs == 1 else local_executor(jobs)
    else:  # someone else's executor: each task takes its own machine's cores (a Dask task its worker's share)
        job_options = options
    inline = isinstance(executor, InlineExecutor)
    # the tasks: whole inputs, or the segments of a long video (joined by one more task once all are in)
    segments: dict[Job, list[Any]] = {}
    if segment_seconds is not None:
        from fer_batch.cluster import finished_part, plan_segments

        for job in todo:
            if job.annotated is None:  # an annotated video is rendered in one pass
                parts = plan_segments(job, job_options, segment_seconds)
                if parts:
                    segments[job] = parts
    total = sum(len(segments.get(j, [None])) for j in todo)
    overall = tqdm(total=total, desc="inputs" if not segments else "inputs+segments", unit="task",
                   disable=not interactive, dynamic_ncols=True)  # fmt: skip
    pending: dict[Future[VideoResult], tuple[str, Job, int]] = {}  # kind: whole | part | join
    part_results: dict[Job, dict[int, VideoResult]] = {}

    def harvest(block: bool) -> None:
        if not pending:
            return
        ready, _ = wait(list(pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        for fut in ready:
            kind, job, k = pending.pop(fut)
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 — a worker that died (every time) is this input's failure
                res = VideoResult(path=str(job.source), status="failed", error=f"worker failed: {_oneline(e)}")
            if kind == "part":
                overall.update()
                got = part_results.setdefault(job, {})
                got[k] = res
                if res.status == "failed":
                    log.warning("%s: segment %d failed: %s", job.source, k, res.error)
                if len(got) == len(segments[job]):
                    from fer_batch.cluster import join_segments

                    ordered = [got[i] for i in range(len(segments[job]))]
                    submit(("join", job, 0), join_segments, job, segments[job], ordered, job_options)
                continue
            if kind == "whole":
                overall.update()
            res.path = str(job.source)
            done(res)

    def submit(tag: tuple[str, Job, int], fn: Callable[..., VideoResult], *args: Any) -> None:
        pending[executor.submit(fn, *args)] = tag

    try:
        for job in todo:
            if job in segments:
                for i, seg in enumerate(segments[job]):
                    res = finished_part(seg) if resume else None
                    if res is not None:  # a finished part of a stopped run
                        fut: Future[VideoResult] = Future()
                        fut.set_result(res)
                        pending[fut] = ("part", job, i)
                    else:
                        submit(("part", job, i), analyze_one, seg.job, seg.options)
            else:
                args = (job, job_options, True) if inline and interactive else (job, job_options)
                submit(("whole", job, 0), analyze_one, *args)
            if inline or len(pending) % 32 == 0:  # results already in reach the manifest while the rest is submitted
                harvest(block=False)
        while pending:
            harvest(block=True)
    except KeyboardInterrupt:
        for fut in pending:
            fut.cancel()
        raise
    finally:
        overall.close()
        if own_executor:
            executor.shutdown(wait=True, cancel_futures=True)
    return results


def _oneline(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())

