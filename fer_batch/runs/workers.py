"""Local worker processes for ``--jobs``: a pool that outlives one of its workers dying, and workers that do not
outlive their driver.

Why: ``concurrent.futures.ProcessPoolExecutor`` marks every pending task failed (``BrokenProcessPool``) when one
worker dies, as the kernel's OOM killer makes it die, and keeps its workers running after the driver is killed
(writing tables nobody records). Here each task reports its start, so the driver can tell the task a dead worker
held from those merely queued, rebuild the pool and go on; and each worker stops when its driver goes away.
"""

from __future__ import annotations

import atexit
import ctypes
import itertools
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from typing import Any

from fer_batch._text import numeric_warnings_to_debug
from fer_batch.analysis.models import cores

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # linux/prctl.h
_started: Any = None  # in a worker: where the ids of the tasks it starts are reported
_status = 0  # in a worker: the exit status it leaves with (128 + the signal that stopped it)


def worker_init(threads: int, started: Any) -> None:
    """Set up one worker process: thread count, start reports, signals, and death with the driver."""
    global _started
    _started = started
    atexit.register(_exit_without_teardown)  # after whatever registered before: multiprocessing's already ran
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    numeric_warnings_to_debug()  # a worker's stderr is the console too
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's to handle: it stops the workers
    signal.signal(signal.SIGTERM, _stop)
    parent = os.getppid()
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    # also polled: other platforms, and a driver gone before prctl took effect
    threading.Thread(target=_watch_parent, args=(parent,), name="watch-driver", daemon=True).start()


def _stop(signum: int, frame: Any) -> None:
    """SIGTERM: unwind the task in progress, so its temporary files are removed on the way out. Once: a second
    SIGTERM (the pool tearing itself down) must not interrupt that clean-up."""
    global _status
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _status = 128 + signum
    raise SystemExit(_status)


def _exit_without_teardown() -> None:
    """A worker's last step: its streams flushed, it exits without tearing the interpreter down (onnxruntime's
    thread pools, PyAV, pandas: ~0.2 s that the run waited for at its end). Its tasks are over by then, their
    files committed or removed, as the console script's own quick exit (``cli.main``)."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(_status)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)


def tracked(task_id: int, fn: Callable[..., Any], *args: Any) -> Any:
    """Run one task in a worker, having reported that it started."""
    if _started is not None:
        _started.put(task_id)
    try:
        return fn(*args)
    except SystemExit:  # stopped (driver gone or stopping the run): the task has cleaned up while unwinding
        os._exit(143)


def make_pool(jobs: int, started: Any, processes: int | None = None) -> ProcessPoolExecutor:
    """A pool of ``jobs`` spawned workers (no thread state forked), each with its share of the cores among
    ``processes`` working processes (default: the workers)."""
    threads = max(1, cores() // (processes or jobs))
    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=worker_init,
                               initargs=(threads, started))  # fmt: skip


class WorkerPool(Executor):
    """A process pool whose tasks report their start, and which can be rebuilt after a worker died.

    ``pool_factory(jobs, started)`` makes each pool (default ``make_pool``); tests pass one whose workers misbehave.
    """

    def __init__(self, jobs: int, pool_factory: Callable[[int, Any], ProcessPoolExecutor] | None = None) -> None:
        self.jobs = jobs
        self._make_pool = pool_factory or make_pool
        self._queue = get_context("spawn").SimpleQueue()
        self._ids = itertools.count()
        self._id_of: dict[Future[Any], int] = {}
        self._seen: set[int] = set()
        self._lock = threading.Lock()  # one reader of the start reports at a time
        self._closed = False
        self.pool = self._make_pool(jobs, self._queue)
        # the reports are read as they come: unread, they fill the pipe (64 KiB, some 3 500 ids) and every worker
        # blocks on its next report, so a run of a few thousand inputs used to hang for good
        threading.Thread(target=self._read_reports, name="task-starts", daemon=True).start()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        return self.in_worker(fn, *args, **kwargs)

    def in_worker(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """The task, in a worker process whatever ``submit`` does (a task retried after its worker died)."""
        task_id = next(self._ids)
        fut = self.pool.submit(tracked, task_id, fn, *args, **kwargs)
        self._id_of[fut] = task_id
        return fut

    def started(self, fut: Future[Any]) -> bool:
        """Whether a worker had begun the task of ``fut`` (every report sent so far is read first)."""
        self._drain()
        return self._id_of.get(fut) in self._seen

    def _drain(self) -> None:
        with self._lock:
            while not self._queue.empty():
                self._seen.add(self._queue.get())

    def _read_reports(self) -> None:
        while not self._closed:
            self._drain()
            time.sleep(0.05)

    def rebuild(self) -> None:
        """A fresh pool in place of a broken one (its workers are gone already)."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.started(Future())  # drain the reports of the old pool's tasks
        self._id_of.clear()
        self.pool = self._make_pool(self.jobs, self._queue)

    def stop(self) -> None:
        """Stop at once (Ctrl-C): each worker unwinds its task, removing its temporary files, and exits."""
        terminate = getattr(self.pool, "terminate_workers", None)  # Python 3.14
        if terminate is not None:
            terminate()
        else:
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=cancel_futures)
        self._closed = True


def completed(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
    """The task run here and now, as a future that holds its result or its exception (as a pool's would)."""
    fut: Future[Any] = Future()
    try:
        fut.set_result(fn(*args, **kwargs))
    except Exception as e:  # noqa: BLE001 — handed to the caller through the future, as a pool would
        fut.set_exception(e)
    return fut


class HelpedPool(WorkerPool):
    """This process works too, helped by ``jobs`` worker processes: a task goes to a helper when one is idle, and
    otherwise runs here, at once.

    Why: a folder of photos is Python glue around small network calls (decoding, a table per photo), which the GIL
    keeps to one core whatever the threads (measured: a writer thread beside the networks gained nothing), so only
    processes use the other cores. A helper costs a process start (imports, models: about a second), during which
    this process has already worked; later each helper takes the next task as it finishes one, so the load
    balances itself. Retries after a helper died still go to a helper (``in_worker``), never here.
    """

    def __init__(self, jobs: int, pool_factory: Callable[[int, Any], ProcessPoolExecutor] | None = None) -> None:
        super().__init__(jobs, pool_factory or (lambda n, started: make_pool(n, started, processes=n + 1)))
        self._away: set[Future[Any]] = set()
        self._starting: list[Future[Any]] = []  # the helpers' ``prepare`` tasks: no work goes out before they end

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self._away = {f for f in self._away if not f.done()}
        ready = all(f.done() for f in self._starting)  # a task given to a helper still starting would wait there
        if ready and len(self._away) < 2 * self.jobs:  # one running, one waiting: a helper never idles between tasks
            try:
                fut = self.in_worker(fn, *args, **kwargs)
            except BrokenProcessPool:  # a helper died; the run rebuilds the pool when it collects that task
                return completed(fn, *args, **kwargs)
            self._away.add(fut)
            return fut
        return completed(fn, *args, **kwargs)

    def prepare(self, fn: Callable[..., Any], /, *args: Any) -> None:
        """Start each helper on ``fn`` (its imports, its models) at once, while this process plans the run: a
        helper's start then overlaps this process's work, and tasks go to the helpers only once it has ended (until
        then this process runs them), so a small run never waits for a helper that is still starting. Its outcome is
        not collected: a failure shows again in the first real task."""
        self._starting = [self.in_worker(fn, *args) for _ in range(self.jobs)]

    def rebuild(self) -> None:
        super().rebuild()
        self._away.clear()
        self._starting = []
