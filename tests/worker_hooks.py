"""Helpers that run inside spawned pool workers (importable there because tests/ is on their sys.path)."""

from __future__ import annotations

import os
import signal
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
    import fer_batch.runs.photos as photos  # a photo in a batch is read here, not through analyze_one

    real_read = photos._read

    def _read(job: Any, *rest: Any, **kwargs: Any) -> Any:
        if job.source.name == victim:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_read(job, *rest, **kwargs)

    photos._read = _read
