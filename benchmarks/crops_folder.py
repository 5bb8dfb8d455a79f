"""A folder of small face crops: ``fer-batch analyze DIR --detector none`` against a bare read-and-classify loop.

Why: with ``--detector none`` the networks are the only real work, so whatever the whole process costs beyond a bare
loop that reads the same images and runs both ensemble members in batches is per-image overhead (issue 24, item 2:
at most 3x). The loop is the reference: ``cv2.imdecode`` of each file, each member's crop of the whole image, the
members' sessions in ``RUN_FACES`` calls. ``analyze`` runs as a child process (imports included, as a user pays
them); both sides report wall and CPU seconds, CPU being the fairer measure on a shared machine.

    python benchmarks/crops_folder.py                 # 1000 crops (48-160 px) made from a public-domain photo
    python benchmarks/crops_folder.py --n 200 --jobs 2 --threads 1
    python benchmarks/crops_folder.py --repo /tmp/older-checkout     # the same folder through another commit
    python benchmarks/crops_folder.py --pairs 5       # five (bare loop, analyze) pairs in turn: the median ratio
    python benchmarks/crops_folder.py --set ../shared/data/expressions/fer2013-privatetest   # measuring only
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from cli_timing import timed_cli  # noqa: E402

from fer_batch.analysis.classify import Classifier  # noqa: E402
from fer_batch.analysis.crop import crop_one  # noqa: E402
from fer_batch.options import Options  # noqa: E402

MODEL = Options().classification.model


def make_crops(folder: Path, n: int) -> list[Path]:
    """``n`` small face crops (PNG and JPEG, 48-160 px, varied brightness and mirroring) of the astronaut's head."""
    from skimage import data

    head = cv2.cvtColor(np.ascontiguousarray(data.astronaut()[20:220, 140:320]), cv2.COLOR_RGB2BGR)
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        side = int(rng.integers(48, 161))
        img = cv2.resize(head, (side, side), interpolation=cv2.INTER_AREA)
        img = cv2.convertScaleAbs(img, alpha=float(rng.uniform(0.7, 1.3)), beta=float(rng.uniform(-20, 20)))
        if i % 2:
            img = img[:, ::-1]
        path = folder / f"{i // 100:02d}" / f"face{i:05d}.{'png' if i % 3 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(path), img)
        files.append(path)
    return files


def cpu_self() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def crops_of(files: list[Path], clf: Classifier) -> list[np.ndarray]:
    """Each member's uint8 crops of every file (whole image), in the channel order it reads."""
    nan = np.full((5, 2), np.nan, np.float32)
    out: list[list[np.ndarray]] = [[] for _ in clf.members]
    for f in files:
        bgr = cv2.imdecode(np.fromfile(str(f), np.uint8), cv2.IMREAD_COLOR)
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        box = np.array([0, 0, bgr.shape[1], bgr.shape[0]], np.float32)
        for k, m in enumerate(clf.members):
            out[k].append(crop_one(gray if m.color == "gray" else bgr, box, nan, m.crop, (m.width, m.height)))
    return [np.stack(c)[..., ::-1] if m.color == "rgb" else np.stack(c)
            for m, c in zip(clf.members, out, strict=True)]  # fmt: skip


def reference(files: list[Path], threads: int | None) -> tuple[float, float, np.ndarray]:
    """The bare loop: (wall s, CPU s, probabilities). Model loading included, imports not."""
    t0, c0 = time.perf_counter(), cpu_self()
    clf = Classifier(Options.of(model=MODEL, detector="none", device="cpu", threads=threads))
    stacks = crops_of(files, clf)
    probs = sum(clf.predict_crops(k, s) for k, s in enumerate(stacks)) / len(clf.members)
    return time.perf_counter() - t0, cpu_self() - c0, np.asarray(probs)


def analyze(folder: Path, out: Path, jobs: int | None, threads: int | None, repo: Path = REPO) -> tuple[float, float]:
    """``fer-batch analyze folder --detector none`` in a child: (wall s, CPU s of the child and its workers)."""
    args = ["analyze", str(folder), "--out", str(out), "--detector", "none", "--quiet"]
    args += (["--jobs", str(jobs)] if jobs else []) + (["--threads", str(threads)] if threads else [])
    return timed_cli(repo, args)


def check_same(out: Path, files: list[Path], probs: np.ndarray) -> float:
    """The largest difference between the tables' probabilities and the reference's (they must agree)."""
    sys.path.insert(0, str(REPO))
    from fer_batch import load

    df = load(out)
    labels = list(Classifier(Options.of(model=MODEL, detector="none", device="cpu")).labels)
    got = {Path(str(v)).name: row for v, row in zip(df["video"], df[labels].to_numpy(), strict=True)}
    return float(max(np.abs(got[f.name] - p).max() for f, p in zip(files, probs, strict=True)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1000, help="crops to make (without --set)")
    ap.add_argument("--set", type=Path, help="an existing folder of crops (searched recursively) instead")
    ap.add_argument("--jobs", type=int, default=None, help="analyze --jobs (default: not given, as a user runs it)")
    ap.add_argument("--threads", type=int, default=None, help="onnxruntime threads on both sides (default: all)")
    ap.add_argument("--repo", type=Path, default=REPO, help="the checkout whose analyze runs (an older commit)")
    ap.add_argument("--pairs", type=int, default=1,
                    help="bare loop then analyze, this many times in turn (a virtual machine's speed drifts)")
    args = ap.parse_args(argv)
    jobs = f" --jobs {args.jobs}" if args.jobs else ""
    ratios = []
    with tempfile.TemporaryDirectory() as tmp:
        if args.set is not None:
            folder = args.set
            files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        else:
            folder = Path(tmp) / "crops"
            files = make_crops(folder, args.n)
        print(f"{len(files)} crops, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for k in range(args.pairs):
            ref_wall, ref_cpu, probs = reference(files, args.threads)
            out = Path(tmp) / f"out{k}"
            wall, cpu = analyze(folder, out, args.jobs, args.threads, args.repo)
            diff = check_same(out, files, probs)
            ratios.append(wall / ref_wall)
            print(f"bare loop (read, crop, both networks in batches): {ref_wall:6.2f} s wall  {ref_cpu:6.2f} s CPU")
            print(f"fer-batch analyze --detector none{jobs} ({args.repo.name}): "
                  f"{wall:6.2f} s wall  {cpu:6.2f} s CPU")  # fmt: skip
            print(f"ratio: {wall / ref_wall:.2f}x wall, {cpu / ref_cpu:.2f}x CPU (target <= 3x); "
                  f"largest probability difference {diff:.2g}")  # fmt: skip
    if args.pairs > 1:
        print(f"wall ratios: {' '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
