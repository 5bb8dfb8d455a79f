"""Helpers that run inside spawned pool workers (importable there because tests/ is on their sys.path), and the
test's side of their readiness reports (``DRIVER``, ``ready_fifo``, ``ready_pids``)."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

# ``python -c DRIVER FIFO go|hold ARGS...``: the command line, with reports through FIFO (``cli_reporting_ready``)
DRIVER = (f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r}); import worker_hooks; "
          "worker_hooks.cli_reporting_ready()")  # fmt: skip


def ready_fifo(tmp_path: Path) -> tuple[str, int]:
    """A FIFO for the reports, held open here for reading and writing (so a read never sees an end)."""
    path = str(tmp_path / "ready")
    os.mkfifo(path)
    return path, os.open(path, os.O_RDWR | os.O_NONBLOCK)


def ready_pids(ready: int, proc: subprocess.Popen, n: int, timeout: float = 120) -> list[int]:
    """The pids of the first ``n`` processes of ``proc``'s run to report a table half written, as they arrive
    (``timeout`` only ends a run that went wrong)."""
    pids: list[int] = []
    buf = b""
    deadline = time.monotonic() + timeout
    while len(pids) < n:
        if time.monotonic() > deadline or proc.poll() is not None:
            raise AssertionError(f"the run never had {n} processes writing a table (reports: {pids})")
        if select.select([ready], [], [], 1.0)[0]:
            buf += os.read(ready, 4096)
            *lines, buf = buf.split(b"\n")
            pids += [p for p in map(int, lines) if p not in pids]
    return pids[:n]


def init_with_killer(victim: str, real_init: Any, *args: Any) -> None:
    """Pool initializer: the real one, then make ``analyze_one`` kill its own process for the input ``victim``.

    Pickle resolves ``fer_batch.runs.runner.analyze_one`` by name in the worker, so patching the module attribute here
    changes what the driver's tasks run, as an input that always exhausts memory would.
    """
    real_init(*args)
    import fer_batch.runs.runner as runner

    real = runner.analyze_one

    def analyze_one(job: Any, *rest: Any, **kwargs: Any) -> Any:
        if job.source.name == victim:
            os.kill(os.getpid(), signal.SIGKILL)  # what the kernel's OOM killer does
        return real(job, *rest, **kwargs)

    runner.analyze_one = analyze_one
    import fer_batch.runs.photos as photos  # a photo in a batch is read here, not through analyze_one

    real_read = photos._read

    def _read(job: Any, *rest: Any, **kwargs: Any) -> Any:
        if job.source.name == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_read(job, *rest, **kwargs)

    photos._read = _read


def cli_reporting_ready() -> None:
    """Run the command line (``sys.argv[1]``: a FIFO; ``sys.argv[2]``: ``go`` or ``hold``; the rest: its arguments)
    so that each process that writes tables (``--jobs`` workers, or the driver itself with one job) writes its pid
    to the FIFO once it has a table half written: a readiness signal, so a test acts on a busy run without polling
    for temporary files. With ``hold`` that process then stops there for good (until it is killed)."""
    from functools import partial

    import fer_batch.runs.workers as workers
    from fer_batch.cli import main

    fifo, mode, *args = sys.argv[1:]
    workers.make_pool = partial(pool_reporting_ready, fifo, mode == "hold")
    report_first_write(fifo, mode == "hold")  # tables written in this process (one job)
    sys.argv = ["fer-batch", *args]
    main()


def pool_reporting_ready(fifo: str, hold: bool, jobs: int, started: Any) -> Any:
    """``workers.make_pool`` whose workers report (``init_reporting_ready``)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from fer_batch.analysis.models import cores

    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=init_reporting_ready,
                               initargs=(fifo, hold, max(1, cores() // jobs), started))  # fmt: skip


def init_reporting_ready(fifo: str, hold: bool, threads: int, started: Any) -> None:
    """Pool initializer: the real one, then ``report_first_write``."""
    import fer_batch.runs.workers as workers

    workers.worker_init(threads, started)
    report_first_write(fifo, hold)


def report_first_write(fifo: str, hold: bool) -> None:
    """The first window this process writes to a table reports its pid to ``fifo`` (and with ``hold``, waits)."""
    import threading

    from fer_batch.outputs.table import ParquetSink

    real = ParquetSink.write

    def write(self: Any, table: Any) -> None:
        real(self, table)
        ParquetSink.write = real  # once per process (a process writes from one thread at a time)
        try:  # without blocking: a test that stopped listening (closed the FIFO) gets no report
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                os.write(fd, f"{os.getpid()}\n".encode())
            finally:
                os.close(fd)
        if hold:
            threading.Event().wait()

    ParquetSink.write = write


def pid_after(seconds: float) -> int:
    """A task for pool tests: the pid of the process that ran it, after ``seconds``."""
    time.sleep(seconds)
    return os.getpid()


def fails() -> None:
    """A task for pool tests that raises."""
    raise ValueError("this task fails")
