"""How fast the CLI answers when nothing is analysed: ``--help`` and an option error.

    python benchmarks/startup.py [--runs 10] [--fer-batch .venv/bin/fer-batch]

Each command runs ``--runs`` times in a fresh process; wall and CPU (user + sys of the child) times are given as
median and minimum. CPU time moves less than wall time on a busy machine. Also prints which heavy modules a
``--help`` loads (none expected: the API is imported lazily).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = [
    ("fer-batch --help", ["--help"]),
    ("fer-batch analyze x.mp4 -o out --fps 0 (option error)", ["analyze", "x.mp4", "-o", "out", "--fps", "0"]),
]
HEAVY = ("av", "cv2", "pandas", "pyarrow", "onnxruntime")


def measure(cmd: list[str], runs: int) -> tuple[list[float], list[float]]:
    walls, cpus = [], []
    for _ in range(runs):
        before = os.times()
        t0 = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        walls.append(time.perf_counter() - t0)
        after = os.times()
        cpus.append((after.children_user - before.children_user) + (after.children_system - before.children_system))
    return walls, cpus


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--fer-batch", default=shutil.which("fer-batch") or "fer-batch", help="the console script")
    args = parser.parse_args()
    print(f"Command: python benchmarks/startup.py --runs {args.runs} --fer-batch {args.fer_batch}")
    print(f"Machine: {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| command | wall median (s) | wall min (s) | CPU median (s) | CPU min (s) |")
    print("|---|---|---|---|---|")
    for label, extra in COMMANDS:
        walls, cpus = measure([args.fer_batch, *extra], args.runs)
        print(f"| {label} | {statistics.median(walls):.3f} | {min(walls):.3f} | {statistics.median(cpus):.3f} | "
              f"{min(cpus):.3f} |")  # fmt: skip
    probe = ("import sys\nfrom typer.testing import CliRunner\nfrom fer_batch.cli import app\n"
             "CliRunner().invoke(app, ['--help'])\n"
             f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules) or 'none')")  # fmt: skip
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    print(f"heavy modules loaded by --help: {loaded}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
