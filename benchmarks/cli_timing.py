"""One ``fer-batch`` command of a checkout, run in a child process and timed: the benchmarks' shared measurement.

Why a child: the whole process is what a user waits for (start-up included), and ``wait4`` gives the CPU time of
the child and of every process it waited for (the workers of ``--jobs``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def timed_cli(repo: Path, args: list[str]) -> tuple[float, float]:
    """(wall s, CPU s) of ``python -m fer_batch.cli ARGS`` run from ``repo`` (its own package first on the path)."""
    cmd = [sys.executable, "-m", "fer_batch.cli", *args]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=repo)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args[0]} failed: {' '.join(cmd)}")
    return wall, usage.ru_utime + usage.ru_stime
