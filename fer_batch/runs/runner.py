"""Folder runs: inputs → units of work → an Executor → ``manifest.parquet``.

Why an Executor: the unit of work (``analyze_one``) is a plain picklable function of (input, options), so the
local process pool behind ``--jobs`` and a Dask cluster's executor run exactly the same code. Only the driver
writes the manifest, as results arrive.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fer_batch._atomic import remove_stale
from fer_batch._progress import Display, Progress, Silent, progress
from fer_batch.analysis.models import cores
from fer_batch.errors import ManifestError, UsageError, describe
from fer_batch.options import AUTO, Options, Scale, check_run, check_scale
from fer_batch.runs.cluster import prepare_executor
from fer_batch.runs.jobs import Job, expand_inputs, plan_jobs, to_do
from fer_batch.runs.one_input import run_video
from fer_batch.runs.outdir import OutputLock, out_path, prepare_out
from fer_batch.runs.photos import analyze_photos, batchable, photo_batches, preload
from fer_batch.runs.result import InputResult, ManifestWriter
from fer_batch.runs.segments import Segment, clean_all_leftovers, finished_part, join_segments, plan_segments
from fer_batch.runs.workers import HelpedPool, WorkerPool, completed
from fer_batch.types import Status

log = logging.getLogger(__name__)


def analyze_one(job: Job, options: Options, display: Display = Display.SILENT) -> InputResult:
    """The unit of work: one input → its table (and annotated video) → a result record.

    Catches everything an input can cause, so one bad file never stops a folder run. ``display``: how this input's
    frames are shown as they go (its end is the driver's to announce).
    """
    for final in (job.table, job.annotated):
        if final is not None:
            remove_stale(final)  # left by a killed run
    frames = progress(display, str(job.source), "frame", final=False)  # named as its end line names it
    try:
        result, _ = run_video(job.source, options, video_name=job.name, table_path=job.table,
                              annotate_path=job.annotated, annotate_scale=job.annotate_scale,
                              progress=frames)  # fmt: skip
    except Exception as e:  # noqa: BLE001 — any failure of one input is reported, the run goes on
        log.debug("%s failed", job.source, exc_info=True)
        result = InputResult.failed(job.source, describe(e))
    finally:
        frames.close()
    result = result.replace(path=str(job.source))
    return result


def local_executor(jobs: int) -> WorkerPool:
    """A pool of ``jobs`` worker processes that survives one of them dying (see ``fer_batch.runs.workers``)."""
    return WorkerPool(jobs)


class InlineExecutor(Executor):
    """Runs each task in this process as it is submitted: the one-job case goes through the same loop as pools."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return completed(fn, *args, **kwargs)


HELPED_FROM = 256  # photos a helper process pays for its start with (~1 s of imports and models; ~5 ms a photo)


def _helpers(jobs: int | None, todo: list[Job], segment_seconds: float | None) -> int:
    """Helper processes for a run left to choose (``jobs`` None): one for every ``HELPED_FROM`` photos to do, at
    most one per further core; none for videos, which keep every core busy with their own threads. Why not simply
    one per core: each holds its own models (a few hundred MB), and a helper with too few photos never catches up
    with its start (measured: 128 photos took 2.2 s helped against 1.5 s in one process; 256 broke even)."""
    if jobs is not None or segment_seconds is not None:
        return 0
    return max(0, min(cores() - 1, sum(1 for job in todo if batchable(job)) // HELPED_FROM))


def _own_executor(jobs: int | None, todo: list[Job], segment_seconds: float | None,
                  options: Options) -> tuple[Executor, Options]:  # fmt: skip
    """Where a run without an executor of its own sends its tasks, and the options each task runs with (its share
    of the cores as ``threads``, unless given): helpers beside this process, a local pool, or this process."""
    helpers = _helpers(jobs, todo, segment_seconds)
    asked = jobs or 1
    inputs = len(todo) if segment_seconds is None else asked  # a segmented video is several tasks
    processes = helpers + 1 if helpers else max(1, min(asked, cores(), inputs))  # no more than inputs, cores use
    job_options = options if options.runtime.threads else options.replace(threads=max(1, cores() // processes))
    if helpers:
        pool = HelpedPool(helpers)
        pool.prepare(preload, job_options)
        return pool, job_options
    return (InlineExecutor() if processes == 1 else local_executor(processes)), job_options


def run_many(
    paths: Iterable[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    options: Options,
    *,
    jobs: int | None = None,
    executor: Executor | None = None,
    resume: bool = True,
    quiet: bool = False,
    display: Display | None = None,
    on_result: Callable[[InputResult], None] | None = None,
    segment_seconds: float | None = None,
    annotate: bool = False,
    annotate_scale: Scale = AUTO,
) -> list[InputResult]:
    """Analyse every input; returns one result per input (also written to ``out/manifest.parquet``).

    Every unit of work goes to ``executor``; where there is none, to ``jobs`` local worker processes, or with
    ``jobs`` 1 to this process. Left to choose (``jobs`` None), this process runs them, helped by a worker for every
    ``HELPED_FROM`` photos, up to one per further core (``HelpedPool``). A Dask client's executor is checked
    first (same version, models, inputs and ``out`` on every worker) and nothing is written if the check fails.
    With ``segment_seconds``, each video longer than that is split into time ranges run as separate tasks, then
    joined (``fer_batch.runs.segments``). ``annotate`` also writes each input's ``.annotated.mp4``, at
    ``annotate_scale`` (``auto``: small videos enlarged). ``display``: where progress goes (default: bars on a
    terminal, else lines, nothing when ``quiet``). Bad arguments, an unusable ``out`` and an ``out`` another run
    is writing to raise ``UsageError`` before any work.
    """
    check_run(jobs, segment_seconds)
    annotate_scale = check_scale("annotate_scale", annotate_scale)
    out = out_path(out)
    check_model(options)
    files, failures = expand_inputs(paths, out)
    if executor is not None and type(executor).__module__.startswith("distributed"):
        executor = prepare_executor(executor, [f for f, _ in files], out, options)  # raises before anything is written
    prepare_out(out)
    with OutputLock(out):
        planned = plan_jobs(files, out, annotate, annotate_scale)
        todo = to_do(planned, options, resume)
        own = executor is None
        if executor is None:
            executor, job_options = _own_executor(jobs, todo, segment_seconds, options)
        else:  # someone else's executor: each task takes its own machine's cores (a Dask task its worker's share)
            job_options = options
        if display is None:
            display = Display.for_stream(quiet=quiet)
        run = FolderRun(out, executor, job_options, display=display, on_result=on_result)
        waiting = set(todo)
        for result in failures + [_skipped(job) for job in planned if job not in waiting]:
            run.done(result)
        try:
            run.plan_segments(todo, segment_seconds, planned, resume)
            run.execute(todo, resume)
        except KeyboardInterrupt:
            if own and isinstance(executor, WorkerPool):
                executor.stop()
            raise
        finally:
            if own:
                executor.shutdown(wait=True, cancel_futures=True)
            run.manifest.write()
    if run.manifest.error is not None:
        cause = run.manifest.error
        raise ManifestError(cause.errno, f"{run.manifest.path}: not written ({describe(cause)})", run.results)
    return run.results


def _skipped(job: Job) -> InputResult:
    return InputResult(path=str(job.source), status=Status.SKIPPED, table=str(job.table))


@dataclass
class Task:
    """One unit of work as submitted, so it can be submitted again after its worker died."""

    tag: tuple[str, Job, int]  # kind (whole | part | join), job, segment index
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    retried: bool = False
    batch: list[Job] | None = None  # the photos of a ``photos`` task, whose result is one per photo
    announced: bool = False  # a photo of a batch whose retry its batch's one line announced


class FolderRun:
    """The driver's side of a folder run: tasks out on the executor, results to the manifest as they arrive.

    A task is a whole input, a segment of a long video, or the join of a video's segments (submitted once all of
    its segments are in). Only the driver writes the manifest. With a local ``WorkerPool``, a worker that dies
    costs only the task it held: the pool is rebuilt, tasks that had not started go on, and the task that had
    is retried once, alone, then marked failed (``WORKER_DIED``).
    """

    def __init__(self, out: Path, executor: Executor, options: Options, *, display: Display,
                 on_result: Callable[[InputResult], None] | None) -> None:  # fmt: skip
        self.executor, self.options, self.display, self.on_result = executor, options, display, on_result
        self.inline = isinstance(executor, InlineExecutor)
        self.helped = isinstance(executor, HelpedPool)  # runs tasks here too: results come in as it submits
        # an input's own progress: a bar only in this process (bars from several workers would overwrite each
        # other; the driver's bar counts tasks), lines from wherever the input runs (a worker shares our stderr)
        self.task_display = display if self.inline or display is Display.LINES else Display.SILENT
        self.pool = executor if isinstance(executor, WorkerPool) else None
        self.manifest = ManifestWriter(out)
        self.results: list[InputResult] = []
        self.segments: dict[Job, list[Segment]] = {}
        self.pending: dict[Future[InputResult], Task] = {}
        self.part_results: dict[Job, dict[int, InputResult]] = {}
        self.bar: Progress = Silent()  # progress over tasks, as a bar (lines say each input's start and end)

    def done(self, result: InputResult) -> None:
        """One input's final result: to the list, the manifest and the caller."""
        self.results.append(result)
        self.manifest.add(result)
        if self.on_result is not None:
            self.on_result(result)

    def plan_segments(self, todo: list[Job], seconds: float | None, planned: list[Job], resume: bool) -> None:
        for job in todo:  # an annotated video is rendered in one pass; without seconds nothing is split
            parts = plan_segments(job, self.options, seconds) if seconds and job.annotated is None else None
            if parts:
                self.segments[job] = parts
        clean_all_leftovers(planned, self.segments, resume)  # what a killed run left that this one will not use

    def execute(self, todo: list[Job], resume: bool) -> None:
        """Submit every task, harvesting results already in as it goes, then wait for the rest."""
        total = sum(len(self.segments.get(j, [None])) for j in todo)
        if self.display.is_bar:
            self.bar = progress(self.display, "inputs+segments" if self.segments else "inputs", "task", leave=True)
        bar = self.bar
        bar.start(total)
        try:
            for unit in self._units(todo):
                if isinstance(unit, list):
                    self._submit(Task(("photos", unit[0], 0), analyze_photos,
                                      (unit, self.options, self.task_display, analyze_one), batch=unit))  # fmt: skip
                else:
                    self._start(unit, resume)
                if self.inline or self.helped or len(self.pending) % 32 == 0:  # results reach the manifest as they come
                    self._harvest(block=False)
            while self.pending:
                self._harvest(block=True)
        except KeyboardInterrupt:
            for fut in self.pending:
                fut.cancel()
            raise
        finally:
            bar.close()

    def _units(self, todo: list[Job]) -> list[Job | list[Job]]:
        """The jobs in order, runs of consecutive photos gathered into batches (``runs.photos``), at least one batch
        per worker where there are enough photos."""
        workers = self.pool.jobs + (1 if self.helped else 0) if self.pool is not None else 1 if self.inline else cores()
        units: list[Job | list[Job]] = []
        run: list[Job] = []
        ended: list[Job | None] = [*todo, None]  # None ends the last run
        for job in ended:
            if job is not None and job not in self.segments and batchable(job):
                run.append(job)
                continue
            units += photo_batches(run, workers) if len(run) > 1 else run
            run = []
            if job is not None:
                units.append(job)
        return units

    def _start(self, job: Job, resume: bool) -> None:
        if job not in self.segments:
            self._submit(Task(("whole", job, 0), analyze_one, (job, self.options, self.task_display)))
            return
        for i, seg in enumerate(self.segments[job]):
            res = finished_part(seg) if resume else None
            if res is not None:  # a finished part of a stopped run
                fut: Future[InputResult] = Future()
                fut.set_result(res)
                self.pending[fut] = Task(("part", job, i), analyze_one, (seg.job, seg.options, self.task_display))
            else:
                self._submit(Task(("part", job, i), analyze_one, (seg.job, seg.options, self.task_display)))

    def _submit(self, task: Task) -> None:
        self.pending[self.executor.submit(task.fn, *task.args)] = task

    def _harvest(self, block: bool) -> None:
        if not self.pending:
            return
        ready, _ = wait(list(self.pending), timeout=None if block else 0, return_when=FIRST_COMPLETED)
        broken: list[tuple[Future[InputResult], Task]] = []
        for fut in ready:
            task = self.pending.pop(fut)
            if self.pool is not None and isinstance(fut.exception(), BrokenProcessPool):
                broken.append((fut, task))
            else:
                self._deliver(task, _result_of(fut, task))
        if broken:
            self._recover(broken)

    def _recover(self, broken: list[tuple[Future[InputResult], Task]]) -> None:
        """A worker died and broke the pool: every task still out fails at once. Rebuild, retry the tasks that
        had started (one at a time, alone, so a second death names its input), then resubmit the others."""
        assert self.pool is not None
        rest, _ = wait(list(self.pending))
        for fut in rest:
            task = self.pending.pop(fut)
            if isinstance(fut.exception(), BrokenProcessPool):
                broken.append((fut, task))
            else:
                self._deliver(task, _result_of(fut, task))
        started = [alone for fut, task in broken if self.pool.started(fut) for alone in self._singles(task)]
        queued = [task for fut, task in broken if not self.pool.started(fut)]
        self.pool.rebuild()
        for task in started:
            self._deliver(task, self._retry_alone(task))
        for task in queued:
            self._submit(task)

    def _singles(self, task: Task) -> list[Task]:
        """A task as tasks of one input each: a batch of photos whose worker died is retried photo by photo, so
        only the photo that kills its worker is marked failed."""
        if task.batch is None:
            return [task]
        log.warning("%s and %d more photos: their worker died (killed or out of memory); trying each again on its "
                    "own", task.batch[0].source, len(task.batch) - 1)  # fmt: skip
        return [Task(("whole", j, 0), analyze_one, (j, self.options, self.task_display), announced=True)
                for j in task.batch]  # fmt: skip

    def _retry_alone(self, task: Task) -> InputResult:
        assert self.pool is not None
        job = task.tag[1]
        if task.retried:
            return InputResult.failed(job.source, WORKER_DIED)
        task.retried = True
        if not task.announced:  # one line per batch, not one per photo
            log.warning("%s: its worker died (killed or out of memory); trying it again on its own", job.source)
        fut = self.pool.in_worker(task.fn, *task.args)  # never in this process: it may kill what it runs in
        wait([fut])
        if isinstance(fut.exception(), BrokenProcessPool):
            self.pool.rebuild()
            return InputResult.failed(job.source, WORKER_DIED)
        return _result_of(fut, task)

    def _deliver(self, task: Task, res: InputResult | list[InputResult]) -> None:
        if task.batch is not None:
            each = res if isinstance(res, list) else [_failed_as(res, j) for j in task.batch]
            for j, r in zip(task.batch, each, strict=True):
                self._deliver(Task(("whole", j, 0), analyze_one, ()), r)
            return
        assert isinstance(res, InputResult)
        kind, job, k = task.tag
        if kind != "join":
            self.bar.advance()
        if kind == "part":
            self._part_done(job, k, res)
            return
        self.done(res.replace(path=str(job.source)))

    def _part_done(self, job: Job, k: int, res: InputResult) -> None:
        """Record one segment's result; the last one in submits the join of the video's table."""
        got = self.part_results.setdefault(job, {})
        got[k] = res
        if res.status is Status.FAILED:
            log.warning("%s: segment %d failed: %s", job.source, k, res.error)
        parts = self.segments[job]
        if len(got) == len(parts):
            ordered = [got[i] for i in range(len(parts))]
            self._submit(Task(("join", job, 0), join_segments, (job, parts, ordered, self.options)))


WORKER_DIED = "worker died (killed or out of memory)"


def _failed_as(res: InputResult, job: Job) -> InputResult:
    """A batch's failure (its worker failed it) as one of its photos' results."""
    return InputResult(path=str(job.source), status=res.status, error=res.error)


def _result_of(fut: Future[InputResult], task: Task) -> InputResult:
    """The task's result, or its failure as a result (a remote worker that died every time, an error in transit)."""
    try:
        return fut.result()
    except Exception as e:  # noqa: BLE001 — one task's failure is its input's failure, the run goes on
        return InputResult.failed(task.tag[1].source, f"worker failed: {describe(e)}")


def check_model(options: Options) -> None:
    """A custom classifier that cannot run, or disagrees with its labels: one usage error before any work."""
    from fer_batch.analysis.classify import member_ids
    from fer_batch.analysis.models import check_classifier
    from fer_batch.errors import ModelError

    ids = member_ids(options.classification.model)
    try:
        for m in ids:
            check_classifier(m, options.classification.model_spec if len(ids) == 1 else None)
    except ModelError as e:
        raise UsageError(str(e)) from None
