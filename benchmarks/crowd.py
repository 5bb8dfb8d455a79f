"""Per-face cost in a crowd: ``fer-batch analyze`` on a 720p clip with 40 faces in every frame, in ms per face.

Why: a crowd is where classification (40 crops a frame through both networks), tracking and the table's rows, not
decoding, set the pace; issue 24 asks that it never regresses. The clip is made in code (``make_clip.py crowd``).
``analyze`` runs as a child process; CPU seconds (the child and its threads) are the number to compare on a shared
machine, wall seconds are shown too. ``--repo`` measures another checkout (an older commit) on the same clip.

    python benchmarks/crowd.py                          # 3 s at 15 fps: 45 frames, 1 800 faces
    python benchmarks/crowd.py --repo /tmp/old-checkout --repeat 3
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from cli_timing import timed_cli  # noqa: E402
from make_clip import make_crowd_clip  # noqa: E402


def measure(repo: Path, clip: Path, out: Path, extra: list[str]) -> tuple[float, float, int]:
    """(wall s, CPU s, face rows) of one ``analyze`` run from ``repo``."""
    wall, cpu = timed_cli(repo, ["analyze", str(clip), "--out", str(out), "--quiet", *extra])
    import pyarrow.parquet as pq

    table = pq.read_table(next(p for p in out.glob("*.parquet") if p.name != "manifest.parquet"), columns=["face"])
    faces = len(table) - table.column("face").null_count
    return wall, cpu, faces


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--repo", type=Path, default=HERE.parent, help="the checkout whose fer_batch runs")
    ap.add_argument("--repeat", type=int, default=1, help="runs; the one with the least CPU is shown")
    ap.add_argument("args", nargs="*", help="more analyze options (after --)")
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "crowd_720p.mp4"
        frames = make_crowd_clip(clip, a.seconds)
        runs = [measure(a.repo, clip, Path(tmp) / f"out{k}", a.args) for k in range(a.repeat)]
    wall, cpu, faces = min(runs, key=lambda r: r[1])
    print(f"{a.repo}: {frames} frames of 1280x720, {faces} faces; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")  # fmt: skip
    print(f"whole process: {wall:.2f} s wall, {cpu:.2f} s CPU -> {1000 * wall / max(1, faces):.2f} ms wall, "
          f"{1000 * cpu / max(1, faces):.2f} ms CPU per face")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
