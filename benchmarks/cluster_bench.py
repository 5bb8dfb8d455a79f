"""Cluster throughput on a ``distributed.LocalCluster``: inputs per minute with 1 and 2 workers, the scheduler's
overhead per task, one long video with and without ``--segment-seconds``, and a projection to 100 machines.

Workers are single-threaded processes (``dask worker ADDRESS --nthreads 1 --nworkers N``), as the README advises.
Clips are made in code (``make_clip.py``), nothing is downloaded.

    python benchmarks/cluster_bench.py                                  # 8 x 10 s inputs, a 600 s video
    python benchmarks/cluster_bench.py --inputs 4 --long-seconds 120    # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from make_clip import make_face_clip  # noqa: E402

from fer_batch.options import Options  # noqa: E402
from fer_batch.runs.runner import run_many  # noqa: E402


def _noop(x: int) -> int:
    return x


def timed_run(inputs: list[Path], out: Path, client: object, segment_seconds: float | None = None) -> float:
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    res = run_many(inputs, out, Options(), executor=client.get_executor(), quiet=True,  # type: ignore[attr-defined]
                   segment_seconds=segment_seconds)  # fmt: skip
    wall = time.perf_counter() - t0
    bad = [r for r in res if r.status != "ok"]
    if bad:
        raise SystemExit(f"run failed: {bad[0].path}: {bad[0].error}")
    return wall


def overhead_per_task(client: object, n: int = 500) -> float:
    """Seconds per task of submitting a no-op through the executor and waiting for all results."""
    from concurrent.futures import wait

    ex = client.get_executor()  # type: ignore[attr-defined]
    wait([ex.submit(_noop, i) for i in range(20)])  # warm
    t0 = time.perf_counter()
    wait([ex.submit(_noop, i) for i in range(n)])
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inputs", type=int, default=8, help="short inputs for the inputs-per-minute rows")
    ap.add_argument("--input-seconds", type=float, default=10.0)
    ap.add_argument("--long-seconds", type=float, default=600.0, help="the long video (10 minutes)")
    ap.add_argument("--segment-seconds", type=float, default=60.0)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    import distributed

    work = args.workdir or Path(tempfile.mkdtemp(prefix="fer_cluster_bench_"))
    src = work / "in"
    src.mkdir(parents=True, exist_ok=True)
    size = (args.width, args.height)
    inputs = []
    for k in range(args.inputs):
        p = src / f"short{k}.mp4"
        if not p.exists():
            make_face_clip(p, seconds=args.input_seconds, size=size, fps=args.fps)
        inputs.append(p)
    long_clip = work / "long.mp4"
    if not long_clip.exists():
        make_face_clip(long_clip, seconds=args.long_seconds, size=size, fps=args.fps)

    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    rows: dict[str, object] = {"machine": machine, "clip": f"{size[0]}x{size[1]} {args.fps} fps"}
    for workers in (1, 2):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=40)  # fmt: skip
        with cluster as lc, distributed.Client(lc) as c:
            timed_run(inputs[:1], work / "warm", c)  # workers load the models once
            wall = timed_run(inputs, work / f"out{workers}", c)
            rows[f"inputs_per_min_{workers}w"] = round(len(inputs) / wall * 60, 2)
            rows[f"video_s_per_s_{workers}w"] = round(len(inputs) * args.input_seconds / wall, 2)
            if workers == 1:
                rows["overhead_ms_per_task"] = round(overhead_per_task(c) * 1000, 2)
            else:
                rows["long_whole_s"] = round(timed_run([long_clip], work / "long_whole", c), 1)
                rows["long_segmented_s"] = round(timed_run([long_clip], work / "long_seg", c, args.segment_seconds), 1)
    # projection: each machine runs as many single-thread workers as it has cores; tasks are independent, so the
    # limits are the per-task overhead (negligible next to a task of seconds) and the shared storage's bandwidth
    per_worker = float(rows["inputs_per_min_1w"])  # type: ignore[arg-type]
    eff = float(rows["inputs_per_min_2w"]) / (2 * per_worker)  # type: ignore[arg-type]
    rows["scaling_2w"] = round(eff, 2)
    rows["projection_100_machines_16_workers_inputs_per_min"] = round(per_worker * 16 * 100 * eff)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
