"""Issue 24 item 1's candidates, each measured by CPU time (the machine is shared, so wall time is noise):

    python benchmarks/video_candidates.py graph OLD.onnx NEW.onnx        # two face-api graphs: CPU a face, op profile
    python benchmarks/video_candidates.py levels                        # onnxruntime optimisation levels, flush-to-zero
    python benchmarks/video_candidates.py input                         # classifier input: three passes vs one
    python benchmarks/video_candidates.py members                       # ensemble members in turn vs in two threads
    python benchmarks/video_candidates.py argmax OLD.onnx NEW.onnx --set DIR ...   # labelled images, old vs new
    python benchmarks/video_candidates.py pipeline CHECKOUT... --clip C --runs 5   # whole analyze, CPU, interleaved
        [--variants '[]' '["--detector", "centerface-int8"]']                      # ... and with other options
    python benchmarks/video_candidates.py threads --clip C                          # one analyze: CPU s by thread
    python benchmarks/video_candidates.py compare A.parquet B.parquet               # two tables of one video
    python benchmarks/video_candidates.py tracked CROWD.mp4 A.parquet B.parquet...  # crowd tables vs true faces
    python benchmarks/video_candidates.py detected SET --detectors A B              # labelled photos, paired

``graph``, ``levels`` and ``input`` time one thread (``RUSAGE_THREAD``); ``members`` and ``pipeline`` the process.
``pipeline`` runs each checkout's own ``benchmarks/bench.py`` child (``git archive SHA | tar -x -C DIR`` makes one).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
MODELS = REPO / "models"
FACE_API_TO_FER7 = [3, 5, 4, 1, 2, 6, 0]  # face-api's label order -> FER2013's


def thread_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_THREAD)
    return u.ru_utime + u.ru_stime


def process_cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def session(path: Path | str, level: object = None, ftz: bool = False, profile: bool = False) -> object:
    """A one-thread session set up as fer_batch's (no spinning), optionally at another optimisation level."""
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads, o.inter_op_num_threads = 1, 1
    o.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if level is not None:
        o.graph_optimization_level = level
    if ftz:
        o.add_session_config_entry("session.set_denormal_as_zero", "1")
    if profile:
        o.enable_profiling = True
        o.profile_file_prefix = "/tmp/fer_batch_video_candidates"
    return ort.InferenceSession(str(path), o, providers=["CPUExecutionProvider"])


def per_unit(fn: Callable[[], object], units: int, rounds: int, clock: Callable[[], float] = thread_cpu) -> list[float]:
    """ms of ``clock`` per unit, one figure per round."""
    fn()
    out = []
    for _ in range(rounds):
        c0 = clock()
        fn()
        out.append((clock() - c0) / units * 1e3)
    return out


def face_batch(n: int, seed: int = 0) -> np.ndarray:
    """Face-api input (n, 3, 112, 112): uint8 noise through its manifest transform."""
    x = np.random.default_rng(seed).integers(0, 256, (n, 3, 112, 112)).astype(np.float32)
    return ((x - np.array([122.782, 117.001, 104.298], np.float32)[:, None, None]) / 255).astype(np.float32)


def op_profile(path: Path, x: np.ndarray, runs: int = 50) -> dict[str, float]:
    """Kernel ms per run by operator type (onnxruntime's profiler; its own overhead included)."""
    s = session(path, profile=True)
    name = s.get_inputs()[0].name  # type: ignore[attr-defined]
    for _ in range(runs):
        s.run(None, {name: x})  # type: ignore[attr-defined]
    events = json.loads(Path(s.end_profiling()).read_text())  # type: ignore[attr-defined]
    by_op: collections.Counter[str] = collections.Counter()
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]] += e["dur"] / runs / 1000
    return dict(by_op.most_common())


def cmd_graph(a: argparse.Namespace) -> None:
    """Two face-api graphs, interleaved: CPU ms a face per batch size, outputs' largest difference, op profile."""
    sessions = [session(p) for p in a.graphs]
    for batch in (1, 8):
        x = face_batch(batch)
        calls = max(1, 80 // batch)
        times: list[list[float]] = [[] for _ in sessions]
        for _ in range(a.rounds):
            for i, s in enumerate(sessions):
                run = lambda s=s, x=x, n=calls: [s.run(None, {"input": x}) for _ in range(n)]  # type: ignore  # noqa: E731
                times[i] += per_unit(run, calls * batch, 1)
        for path, t in zip(a.graphs, times, strict=True):
            print(f"batch {batch}: {path}: min {min(t):.3f} median {np.median(t):.3f} ms CPU a face")
    x = face_batch(256, seed=1)
    outs = [s.run(None, {"input": x})[0] for s in sessions]  # type: ignore[attr-defined]
    print(f"256 noise faces: max |difference| {np.abs(outs[0] - outs[1]).max():.2g}, "
          f"argmax equal {(outs[0].argmax(1) == outs[1].argmax(1)).mean():.3f}")  # fmt: skip
    for path in a.graphs:
        prof = op_profile(Path(path), face_batch(1))
        print(f"{path} (profiled, ms a run):", ", ".join(f"{k} {v:.2f}" for k, v in prof.items()))


def cmd_levels(a: argparse.Namespace) -> None:
    """Each bundled model at each optimisation level, and with denormals flushed to zero: CPU ms a call."""
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    cases = [("centerface.onnx", "input.1", rng.random((1, 3, 480, 864), dtype=np.float32) * 255, "scan 864x480"),
             ("centerface_int8.onnx", "input.1", rng.random((1, 3, 480, 864), dtype=np.float32) * 255,
              "int8 scan 864x480"),
             ("centerface.onnx", "input.1", rng.random((1, 3, 96, 96), dtype=np.float32) * 255, "region 96x96"),
             ("centerface_int8.onnx", "input.1", rng.random((1, 3, 96, 96), dtype=np.float32) * 255, "int8 region"),
             ("face_api_expression.onnx", "input", face_batch(8), "face-api, 8 faces"),
             ("fer2013_minixception.onnx", "input", rng.standard_normal((8, 1, 64, 64), dtype=np.float32) * 0.5,
              "mini-Xception, 8 faces")]  # fmt: skip
    level = ort.GraphOptimizationLevel
    settings = [("all (default)", {}), ("extended", {"level": level.ORT_ENABLE_EXTENDED}),
                ("basic", {"level": level.ORT_ENABLE_BASIC}), ("all + flush-to-zero", {"ftz": True})]  # fmt: skip
    for label, kw in settings:
        row = []
        for file, name, x, what in cases:
            s = session(MODELS / file, **kw)  # type: ignore[arg-type]
            calls = 3 if "scan" in what else 30
            run = lambda s=s, x=x, name=name, n=calls: [s.run(None, {name: x}) for _ in range(n)]  # type: ignore  # noqa: E731
            t = per_unit(run, calls, a.rounds)
            row.append(f"{what} {min(t):.2f}")
        print(f"{label}: " + "; ".join(row) + " (ms CPU a call, best of rounds)")


def cmd_input(a: argparse.Namespace) -> None:
    """The classifier's input for 8 RGB 112x112 crops (channel-reversed view): before and after a274db6."""
    from fer_batch.analysis.classify import Classifier
    from fer_batch.options import Options

    member = [m for m in Classifier(Options.of()).members if m.color == "rgb"][0]
    crops = np.random.default_rng(0).integers(0, 256, (8, 112, 112, 3), dtype=np.uint8)[..., ::-1]

    def before() -> np.ndarray:
        x = crops.astype(np.float32) * member.a + member.b
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

    if not np.array_equal(before(), member.network_input(crops)):
        raise SystemExit("the one-pass input differs from the three-pass one")
    for label, fn in (("three passes (astype, transform, transposed copy)", before),
                      ("one pass (Member.network_input)", lambda: member.network_input(crops))):  # fmt: skip
        t = per_unit(lambda fn=fn: [fn() for _ in range(50)], 400, a.rounds)  # type: ignore[misc]
        print(f"{label}: min {min(t):.3f} median {np.median(t):.3f} ms CPU a face")


def cmd_members(a: argparse.Namespace) -> None:
    """Both members of the default ensemble on 32 faces, in turn vs in two threads: process CPU and wall a face."""
    from fer_batch.analysis.classify import Classifier
    from fer_batch.options import Options

    clf = Classifier(Options.of(threads=2))
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (32, m.height, m.width) + (() if m.color == "gray" else (3,)), dtype=np.uint8)
             for m in clf.members]  # fmt: skip
    with ThreadPoolExecutor(2) as pool:
        runs = {"in turn": lambda: [clf.predict_crops(k, c) for k, c in enumerate(crops)],
                "two threads": lambda: [f.result() for f in [pool.submit(clf.predict_crops, k, c)
                                                            for k, c in enumerate(crops)]]}  # fmt: skip
        got: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in runs}
        for _ in range(a.rounds):
            for label, fn in runs.items():
                t0, c0 = time.perf_counter(), process_cpu()
                for _ in range(5):
                    fn()
                got[label][0].append((time.perf_counter() - t0) / 160 * 1e3)
                got[label][1].append((process_cpu() - c0) / 160 * 1e3)
    for label, (wall, cpu) in got.items():
        print(f"{label}: wall median {np.median(wall):.3f} min {min(wall):.3f}; "
              f"CPU median {np.median(cpu):.3f} min {min(cpu):.3f} ms a face")  # fmt: skip


def cmd_argmax(a: argparse.Namespace) -> None:
    """Two face-api graphs on every image of the labelled sets (resized whole): probabilities and argmax."""
    import cv2

    old, new, fer = session(a.graphs[0]), session(a.graphs[1]), session(MODELS / "fer2013_minixception.onnx")
    files = sorted(p for d in a.set for p in Path(d).glob("*/*") if p.is_file())
    total = member_equal = ensemble_equal = 0
    worst = 0.0
    for lo in range(0, len(files), 64):
        images = [im for f in files[lo : lo + 64] if (im := cv2.imread(str(f), cv2.IMREAD_COLOR)) is not None]
        rgb = np.array([cv2.resize(im, (112, 112))[..., ::-1] for im in images], np.float32)
        gray = np.array([cv2.resize(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), (64, 64)) for im in images], np.float32)
        x = np.ascontiguousarray(((rgb - [122.782, 117.001, 104.298]) / 255).astype(np.float32).transpose(0, 3, 1, 2))
        p_old, p_new = (s.run(None, {"input": x})[0] for s in (old, new))  # type: ignore[attr-defined]
        p_fer = fer.run(None, {"input": (gray[:, None] * (2 / 255) - 1).astype(np.float32)})[0]  # type: ignore
        worst = max(worst, float(np.abs(p_old - p_new).max()))
        member_equal += int((p_old.argmax(1) == p_new.argmax(1)).sum())
        e_old, e_new = ((p[:, FACE_API_TO_FER7] + p_fer) / 2 for p in (p_old, p_new))
        ensemble_equal += int((e_old.argmax(1) == e_new.argmax(1)).sum())
        total += len(images)
    print(f"{total} images: max |difference| {worst:.2g}; argmax equal: face-api {member_equal}/{total}, "
          f"ensemble with fer2013-minixception {ensemble_equal}/{total}")  # fmt: skip


def cmd_pipeline(a: argparse.Namespace) -> None:
    """``fer-batch analyze CLIP`` by each checkout with each ``--variants`` argument list (JSON), interleaved
    ``--runs`` times: CPU s of the child."""
    cases = [(c, v) for c in a.checkouts for v in a.variants]
    cpu: dict[tuple[str, str], list[float]] = {k: [] for k in cases}
    for _ in range(a.runs):
        for checkout, variant in cases:
            bench = Path(checkout) / "benchmarks" / "bench.py"
            out = subprocess.run([sys.executable, str(bench), "_child", "fer_batch", str(a.clip), variant],
                                 cwd=checkout, capture_output=True, text=True, check=True).stdout  # fmt: skip
            r = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
            cpu[(checkout, variant)].append(r["cpu_s"])
            print(f"{checkout} {variant}: cpu_s {r['cpu_s']:.2f} wall_s {r['wall_s']:.2f} "
                  f"(load {os.getloadavg()[0]:.1f})")  # fmt: skip
    for (checkout, variant), v in cpu.items():
        print(f"{checkout} {variant}: median cpu_s {np.median(v):.2f} over {len(v)} runs")


def cmd_threads(a: argparse.Namespace) -> None:
    """One ``fer-batch analyze CLIP`` at defaults in this process: CPU seconds of each of its threads, by name
    (read from ``/proc/self/task`` every 50 ms, so a thread's last 50 ms may be missed)."""
    import tempfile
    import threading

    from fer_batch.cli import app

    tick = os.sysconf("SC_CLK_TCK")
    seen: dict[str, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            names = {t.native_id: t.name.split("_")[0] for t in threading.enumerate()}
            for tid in os.listdir("/proc/self/task"):
                try:
                    fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                name = names.get(int(tid)) or seen.get(tid, ("onnxruntime/native", 0.0))[0]
                seen[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, name="sampler", daemon=True)
    sampler.start()
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), process_cpu()
        app(["analyze", str(a.clip), "--out", out, "--overwrite", "--quiet"], standalone_mode=False)
        wall, cpu = time.perf_counter() - t0, process_cpu() - c0
    done.set()
    sampler.join()
    by_name: collections.Counter[str] = collections.Counter()
    for name, seconds in seen.values():
        by_name[name] += seconds
    print(f"analyze: {wall:.2f} s wall, {cpu:.2f} s CPU (load {os.getloadavg()[0]:.1f}); CPU s by thread: "
          + ", ".join(f"{k} {v:.2f}" for k, v in by_name.most_common() if k != "sampler"))  # fmt: skip


def cmd_compare(a: argparse.Namespace) -> None:
    """Two tables of the same video, row by row (frame, face): box IoU, probability differences, emotion."""
    import pyarrow.parquet as pq

    from fer_batch.analysis.classify import FER7

    ta, tb = (pq.read_table(t).to_pandas() for t in a.tables)
    m = ta.merge(tb, on=["frame", "face"], suffixes=("_a", "_b"))
    xa, ya, wa, ha = (m[c + "_a"].to_numpy(float) for c in "xywh")
    xb, yb, wb, hb = (m[c + "_b"].to_numpy(float) for c in "xywh")
    iw = np.clip(np.minimum(xa + wa, xb + wb) - np.maximum(xa, xb), 0, None)
    ih = np.clip(np.minimum(ya + ha, yb + hb) - np.maximum(ya, yb), 0, None)
    iou = iw * ih / (wa * ha + wb * hb - iw * ih)
    diff = np.abs(m[[f"{k}_a" for k in FER7]].to_numpy() - m[[f"{k}_b" for k in FER7]].to_numpy())
    print(f"rows {len(ta)} / {len(tb)}, matched {len(m)}; box IoU median {np.median(iou):.3f} min {iou.min():.3f}; "
          f"probabilities max |difference| {diff.max():.3g}, mean {diff.mean():.2g}; "
          f"emotion equal {(m['emotion_a'] == m['emotion_b']).sum()}/{len(m)}")  # fmt: skip
    if "quality_a" in m:  # the trust signals that follow from the boxes and landmarks
        pose = [np.abs(m[f"{c}_a"] - m[f"{c}_b"]).dropna() for c in ("yaw", "pitch")]
        dq = np.abs(m["quality_a"] - m["quality_b"])
        same = ((m["quality_a"] >= a.reliable) == (m["quality_b"] >= a.reliable)).sum()
        print(f"  yaw/pitch |difference| median {pose[0].median():.2g}/{pose[1].median():.2g}, max "
              f"{pose[0].max():.3g}/{pose[1].max():.3g} deg; quality max {dq.max():.3g}, 95th percentile "
              f"{dq.quantile(0.95):.3g}; same side of quality {a.reliable}: {same}/{len(m)}")  # fmt: skip


def cmd_tracked(a: argparse.Namespace) -> None:
    """Tables of ``make_clip.py crowd``'s clip from whole runs (tracking and regions included): the true faces each
    finds (IoU >= 0.3, one to one, per frame), and the first table's faces each finds."""
    import pyarrow.parquet as pq

    sys.path.insert(0, str(REPO / "benchmarks"))
    from make_clip import crowd_truth
    from recall import matched

    from fer_batch.media.probe import probe

    info = probe(a.clip)
    boxes = []
    for t in a.tables:
        df = pq.read_table(t, columns=["frame", "x", "y", "w", "h"]).to_pandas()
        xyxy = np.stack([df.x, df.y, df.x + df.w, df.y + df.h], axis=1).astype(np.float32)
        boxes.append({int(f): xyxy[df.frame.to_numpy() == f] for f in df.frame.unique()})
    frames = sorted(set().union(*boxes))
    truth = {f: np.array(crowd_truth(info.width, info.height, f), np.float32) for f in frames}
    n_truth, n_ref = sum(len(v) for v in truth.values()), sum(len(v) for v in boxes[0].values())
    empty = np.zeros((0, 4), np.float32)
    for t, b in zip(a.tables, boxes, strict=True):
        m_truth = sum(matched(truth[f], b.get(f, empty)) for f in frames)
        m_ref = sum(matched(boxes[0].get(f, empty), b.get(f, empty)) for f in frames)
        print(f"{t}: {sum(len(v) for v in b.values())} rows on {len(frames)} frames; true faces found "
              f"{m_truth}/{n_truth} = {m_truth / n_truth:.1%}; first table's faces found {m_ref}/{n_ref}")  # fmt: skip


def cmd_detected(a: argparse.Namespace) -> None:
    """A labelled set through two detectors (largest face of each image, as ``accuracy.py``): balanced accuracy of
    each, the images whose verdict changed, and a paired bootstrap of the difference (images resampled together)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from accuracy import predictions, score

    verdicts, got = [], []
    for det in a.detectors:
        df, labels, _ = predictions(a.set, {"detector": det}, a.jobs)
        df = df[df["face"].isna() | (df["face"] == 0)].sort_values("video")
        s = score(df, labels)
        truth = df["video"].str.split("/").str[0].to_numpy()
        pred = np.where(df["face"].notna(), np.asarray(labels)[np.nan_to_num(df[labels].to_numpy()).argmax(1)], "")
        verdicts.append((df["video"].to_numpy(), truth, pred == truth))
        got.append(s["balanced_accuracy"])
        print(f"{det}: balanced {s['balanced_accuracy']:.4f}, accuracy {s['accuracy']:.4f}, no face {s['no_face']}")
    (va, truth, ok_a), (vb, _, ok_b) = verdicts
    assert (va == vb).all(), "the two runs did not score the same images"
    known = np.isin(truth, labels)  # contempt: a class the 7-class models cannot say, left out as accuracy.py does
    truth, ok_a, ok_b = truth[known], ok_a[known], ok_b[known]
    classes, rng, diffs = np.unique(truth), np.random.default_rng(0), []
    for _ in range(a.boot):
        idx = rng.integers(0, len(truth), len(truth))
        t = truth[idx]
        per = [(ok_b[idx][t == c].mean() - ok_a[idx][t == c].mean()) for c in classes if (t == c).any()]
        diffs.append(np.mean(per))
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    print(f"{a.detectors[1]} - {a.detectors[0]}: balanced {got[1] - got[0]:+.4f} (paired bootstrap 95 % "
          f"{lo:+.4f} .. {hi:+.4f}, {a.boot} resamples); right only with {a.detectors[0]}: "
          f"{int((ok_a & ~ok_b).sum())}, only with {a.detectors[1]}: {int((ok_b & ~ok_a).sum())}; by class: "
          + ", ".join(f"{c} {int((ok_b & ~ok_a)[truth == c].sum()) - int((ok_a & ~ok_b)[truth == c].sum()):+d}/"
                      f"{int((truth == c).sum())}" for c in classes))  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("graph", "argmax"):
        p = sub.add_parser(name)
        p.add_argument("graphs", nargs=2)
        p.add_argument("--set", nargs="*", default=[])
    sub.add_parser("levels")
    sub.add_parser("input")
    sub.add_parser("members")
    p = sub.add_parser("pipeline")
    p.add_argument("checkouts", nargs="+")
    p.add_argument("--clip", type=Path, required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--variants", nargs="+", default=["[]"], help="fer-batch arguments as JSON lists")
    p = sub.add_parser("compare")
    p.add_argument("tables", nargs=2, type=Path)
    p.add_argument("--reliable", type=float, default=0.5, help="the quality that marks a row as reliable")
    p = sub.add_parser("tracked")
    p.add_argument("clip", type=Path)
    p.add_argument("tables", nargs="+", type=Path)
    p = sub.add_parser("detected")
    p.add_argument("set", type=Path)
    p.add_argument("--detectors", nargs=2, default=["centerface", "centerface-int8"])
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--boot", type=int, default=2000)
    p = sub.add_parser("threads")
    p.add_argument("--clip", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=12)
    a = ap.parse_args(argv)
    {"graph": cmd_graph, "levels": cmd_levels, "input": cmd_input, "members": cmd_members, "argmax": cmd_argmax,
     "pipeline": cmd_pipeline, "threads": cmd_threads,
     "compare": cmd_compare, "tracked": cmd_tracked, "detected": cmd_detected}[a.cmd](a)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
