"""Peak memory of ``fer-batch analyze`` on a 1-minute and a 10-minute clip: it must not grow with video length.

Each run is its own process; peak resident memory is read from ``resource.getrusage(RUSAGE_CHILDREN)``.
The clips (640x360, 30 fps, one moving face) are made in code by ``make_clip.py``.

    python benchmarks/memory.py [--workdir /tmp/fer_batch_mem]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def peak_mib(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS MiB, wall s) of one command run in a fresh child process."""
    t0 = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if after <= before:  # ru_maxrss of children is the max over all of them: run the bigger one last
        after = before
    return after / 1024, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fer_batch_mem"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for minutes in (1, 10):  # ascending, so each child's peak is the maximum so far
        clip = args.workdir / f"face_360p_{minutes}min.mp4"
        if not clip.exists():
            subprocess.run([sys.executable, str(HERE / "make_clip.py"), "face", str(clip), "--seconds",
                            str(60 * minutes), "--width", "640", "--height", "360"], check=True)  # fmt: skip
        out = args.workdir / f"out_{minutes}"
        cmd = [sys.executable, "-m", "fer_batch.cli", "analyze", str(clip), "--out", str(out), "--overwrite", "-q"]
        mib, wall = peak_mib(cmd)
        rows.append((minutes, mib, wall))
        print(f"{minutes:>2} min clip: peak RSS {mib:.0f} MiB, {wall:.1f} s", flush=True)
    (m1, p1, _), (m10, p10, _) = rows
    print(f"10-min / 1-min peak memory: {p10 / p1:.3f}")


if __name__ == "__main__":
    main()
