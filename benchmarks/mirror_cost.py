"""What ``quality``'s mirrored pass costs: CPU seconds per 1,000 faces of each ensemble member, plain, and of the
members of ``quality.MIRRORED`` on the mirror images (the extra work a calibrated run does).

Why CPU time of the networks alone: on a shared machine a whole ``analyze`` run is too noisy to resolve a fraction
of a second per 1,000 faces (``crops_folder.py`` measures the whole process).

    python benchmarks/mirror_cost.py [--n 1000] [--repeat 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_batch.analysis import quality  # noqa: E402
from fer_batch.analysis.classify import Classifier  # noqa: E402
from fer_batch.options import Options  # noqa: E402


def cpu_of(run: object, crops: np.ndarray, repeat: int) -> float:
    """The least CPU seconds of ``repeat`` calls of ``run(crops)`` (after one warm-up call)."""
    run(crops[:64])  # type: ignore[operator]
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        run(crops)  # type: ignore[operator]
        best = min(best, time.process_time() - t)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    clf = Classifier(Options.of(device="cpu", threads=args.threads))
    rng = np.random.default_rng(0)
    plain = mirrored = 0.0
    for k, m in enumerate(clf.members):
        shape = (args.n, m.height, m.width) + (() if m.color == "gray" else (3,))
        crops = rng.integers(0, 256, shape, dtype=np.uint8)
        cost = cpu_of(lambda c, k=k: clf.predict_crops(k, c), crops, args.repeat) * 1000 / args.n
        extra = cpu_of(lambda c, k=k: clf.predict_mirrored(k, c), crops, args.repeat) * 1000 / args.n
        plain += cost
        mirrored += extra if k in quality.MIRRORED else 0.0
        print(f"{m.spec.id}: {cost:.2f} s CPU per 1,000 faces; mirrored pass {extra:.2f} s"
              f"{' (run for quality)' if k in quality.MIRRORED else ' (not run)'}")  # fmt: skip
    print(f"the members together: {plain:.2f} s; with quality's mirrored pass {plain + mirrored:.2f} s "
          f"(+{mirrored / plain:.0%} of the network work)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
