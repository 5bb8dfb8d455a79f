"""Helpers that run inside spawned pool workers (importable there because tests/ is on their sys.path)."""

from __future__ import annotations

import os
import signal
import sys
from typing import Any


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


def cli_reporting_ready() -> None:
    """Run the command line (``sys.argv[1]``: a FIFO; the rest: its arguments) with ``--jobs`` workers that each
    write their pid to the FIFO once they have a table half written: a readiness signal, so a test acts on a run
    whose workers are busy without polling for their temporary files."""
    from functools import partial

    import fer_batch.runs.workers as workers
    from fer_batch.cli import main

    fifo, *args = sys.argv[1:]
    workers.make_pool = partial(pool_reporting_ready, fifo)
    sys.argv = ["fer-batch", *args]
    main()


def pool_reporting_ready(fifo: str, jobs: int, started: Any) -> Any:
    """``workers.make_pool`` whose workers report (``init_reporting_ready``)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from fer_batch.analysis.models import cores

    return ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn"), initializer=init_reporting_ready,
                               initargs=(fifo, max(1, cores() // jobs), started))  # fmt: skip


def init_reporting_ready(fifo: str, threads: int, started: Any) -> None:
    """Pool initializer: the real one, then the worker's first window written to a table reports its pid."""
    import fer_batch.runs.workers as workers
    from fer_batch.outputs.table import ParquetSink

    workers.worker_init(threads, started)
    real = ParquetSink.write

    def write(self: Any, table: Any) -> None:
        real(self, table)
        ParquetSink.write = real  # once per worker (a worker writes from one thread at a time)
        fd = os.open(fifo, os.O_WRONLY)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    ParquetSink.write = write
