"""Side-by-side throughput and peak memory: PyAV decode, ``fer-batch analyze`` variants and fer 25.10.3.

Every measured configuration runs in its own subprocess (peak memory is that child's ``ru_maxrss``, read with
``os.wait4``), ``--repeat`` times; the table shows the fastest run, because other work on a shared machine
only ever slows a run down. fps is frames *of the video* per second of wall time spent analysing (imports
and, for fer, TensorFlow's start-up excluded; model loading included). "Whole process" is a separate
``python -m fer_batch analyze CLIP`` per repeat, timed from start to exit, as a person runs the command.

    python benchmarks/bench.py                      # 30 s 720p clip made by make_clip.py, fer included
    python benchmarks/bench.py --no-fer --repeat 1  # fer_batch only
    python benchmarks/bench.py --clip my.mp4 --write BENCHMARKS.md

fer runs in its own throwaway virtual environment (``--fer-venv``, created when missing), because it needs
TensorFlow, which fer_batch does not.

This file imports only the standard library at the top: the fer child runs it under the fer venv's Python.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FER_PACKAGES = ["tensorflow-cpu", "pandas", "opencv-contrib-python", "moviepy<2", "tqdm", "requests", "matplotlib",
                "Pillow", "ffmpeg-python"]  # fmt: skip

# (label, kind, arguments): the rows of the table, in order
FER_BATCH_CONFIGS: list[tuple[str, list[str]]] = [
    ("fer-batch analyze (defaults)", []),
    ("fer-batch analyze --fps 5", ["--fps", "5"]),
    ("fer-batch analyze --detect-every 3", ["--detect-every", "3"]),
    ("fer-batch analyze --annotate (render the MP4 too)", ["--annotate"]),
    ("fer-batch analyze --fps 5 --annotate", ["--fps", "5", "--annotate"]),
    ("fer-batch analyze --min-face 32 (scans at det-size 640)", ["--min-face", "32"]),
    ("fer-batch analyze --det-size 320 --min-face 64", ["--det-size", "320", "--min-face", "64"]),
    ("fer-batch analyze --scan-interval 0 (full scan every frame)", ["--scan-interval", "0"]),
    ("fer-batch analyze --detector centerface-int8 (int8 full scans)", ["--detector", "centerface-int8"]),
    ("fer-batch analyze --threads 1", ["--threads", "1"]),
    ("fer-batch analyze --threads 4 (scans on 2 onnxruntime threads)", ["--threads", "4"]),
]


# --- children: each prints one JSON line ------------------------------------------------------------------------
def _cpu() -> float:
    """CPU seconds of this process so far, all threads (robust to other work on the machine, unlike wall time)."""
    import resource

    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def child_decode(clip: str, threads: str) -> dict:
    """Decode every frame and nothing else: the floor of any CPU pipeline."""
    import av

    t0, c0 = time.perf_counter(), _cpu()
    n = 0
    with av.open(clip) as c:
        s = c.streams.video[0]
        if threads == "1":
            s.thread_type, s.codec_context.thread_count = "SLICE", 1  # as fer_batch's reader thread
        else:
            s.thread_type = "AUTO"
        for _ in c.decode(s):
            n += 1
    return {"frames": n, "seconds": time.perf_counter() - t0, "cpu_s": _cpu() - c0}


def child_reader(clip: str, det_size: str) -> dict:
    """fer_batch's FrameReader alone: decode plus the gray and detector-sized images of every frame."""
    from fer_batch.media.probe import probe
    from fer_batch.media.reader import FrameReader
    from fer_batch.options import Options

    path = Path(clip)
    t0, c0 = time.perf_counter(), _cpu()
    reader = FrameReader(path, probe(path), Options.of(det_size=int(det_size)))
    n = sum(1 for _ in reader)
    return {"frames": n, "seconds": time.perf_counter() - t0, "cpu_s": _cpu() - c0}


def child_fer_batch(clip: str, args_json: str) -> dict:
    """``fer-batch analyze CLIP`` in-process (imports done before the clock starts), counts from the manifest."""
    import onnxruntime  # noqa: F401
    import pyarrow.parquet as pq

    import fer_batch.runs.one_input  # noqa: F401
    import fer_batch.runs.runner  # noqa: F401
    from fer_batch.cli import app

    extra = json.loads(args_json)
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), _cpu()
        try:
            app(["analyze", clip, "--out", out, "--overwrite", "--quiet", *extra], standalone_mode=False)
        except SystemExit as e:  # typer.Exit may surface as SystemExit
            if e.code:
                raise
        seconds, cpu_s = time.perf_counter() - t0, _cpu() - c0
        m = pq.read_table(Path(out) / "manifest.parquet").to_pylist()[0]
    if m["status"] != "ok":
        raise RuntimeError(f"fer-batch: {m['status']}: {m['error']}")
    return {
        "frames": m["frames_decoded"],
        "analysed": m["frames_analysed"],
        "faces": m["faces"],
        "seconds": seconds,
        "cpu_s": cpu_s,
        "wall_s": m["wall_s"],  # the analysis time the manifest records
    }


def child_fer(clip: str) -> dict:
    """fer 25.10.3 ``Video.analyze`` at its defaults (Haar cascade, every frame), writing nothing."""
    import logging

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.disable(logging.WARNING)
    from fer.classes import Video
    from fer.fer import FER

    detector = FER()
    with tempfile.TemporaryDirectory() as out:
        t0, c0 = time.perf_counter(), _cpu()
        video = Video(clip, outdir=out)
        df = video.analyze(detector, display=False, save_frames=False, save_video=False, annotate_frames=False,
                           zip_images=False, output="pandas")  # fmt: skip
        seconds, cpu_s = time.perf_counter() - t0, _cpu() - c0
    import cv2

    cap = cv2.VideoCapture(clip)
    n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    return {"frames": n, "analysed": n, "faces": int(len(df)), "seconds": seconds, "cpu_s": cpu_s}


def child_classify(threads: str) -> dict:
    """Each model of the default classifier alone on fixed crops: faces per second, one face and 64 faces a call
    (``Member.predict`` runs 64 in calls of ``RUN_FACES``), with ``threads`` intra-op threads."""
    import numpy as np

    from fer_batch.analysis import models
    from fer_batch.analysis.classify import Classifier
    from fer_batch.options import Options

    clf = Classifier(Options.of(device="cpu"))
    rng = np.random.default_rng(0)
    out = {}
    for m in clf.members:
        m.session = models.session(m.spec.path, "cpu", int(threads))
        shape = (64, m.height, m.width) + (() if m.color == "gray" else (3,))
        crops = rng.integers(0, 255, shape, dtype=np.uint8)
        for batch in (1, 64):
            m.predict(crops[:batch])  # warm-up
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 2.0:
                for lo in range(0, 64, batch):
                    m.predict(crops[lo : lo + batch])
                n += 64
            out[f"{m.spec.id} batch{batch}"] = n / (time.perf_counter() - t0)
    for batch in (1, 64):  # the ensemble: every face through each member
        out[f"{clf.id} batch{batch}"] = 1 / sum(1 / out[f"{m.spec.id} batch{batch}"] for m in clf.members)
    return out


CHILDREN = {"decode": child_decode, "reader": child_reader, "fer_batch": child_fer_batch, "fer": child_fer,
            "classify": child_classify}  # fmt: skip


# --- parent -----------------------------------------------------------------------------------------------------
def run_child(python: str, kind: str, *args: str, env: dict[str, str] | None = None,
              script: Path | None = None) -> dict:  # fmt: skip
    """Run one configuration in a fresh process; adds its peak RSS (MiB) and process wall time.

    ``script``: another checkout's bench.py (``--baseline``), whose children run that checkout's code.
    """
    cmd = [python, str(script or Path(__file__).resolve()), "_child", kind, *args]
    t0 = time.perf_counter()
    with tempfile.TemporaryFile() as so, tempfile.TemporaryFile() as se:
        proc = subprocess.Popen(cmd, stdout=so, stderr=se, cwd=str(REPO), env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        so.seek(0)
        se.seek(0)
        out, err = so.read().decode(errors="replace"), se.read().decode(errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} {' '.join(args)} failed ({proc.returncode}):\n{err[-3000:]}")
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    result = json.loads(lines[-1])
    result["peak_mib"] = usage.ru_maxrss / 1024  # kB on Linux
    result["process_s"] = time.perf_counter() - t0
    return result


def cli_process(python: str, clip: str, args_json: str, root: Path) -> float:
    """Seconds of one ``python -m fer_batch analyze CLIP`` process, start to exit, as a person runs it (the
    console script's own exit included), with the code of the checkout at ``root``."""
    with tempfile.TemporaryDirectory() as out:
        cmd = [python, "-m", "fer_batch", "analyze", clip, "--out", out, "--quiet", *json.loads(args_json)]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=str(root), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def best_of(repeat: int, python: str, kind: str, *args: str, env: dict[str, str] | None = None,
            script: Path | None = None) -> dict:  # fmt: skip
    runs = [run_child(python, kind, *args, env=env, script=script) for _ in range(repeat)]
    if kind == "fer_batch":  # the whole process: the command itself, not the in-process child
        root = script.parent.parent if script is not None else REPO
        for r in runs:
            r["process_s"] = cli_process(python, *args, root=root)
    key = "seconds" if "seconds" in runs[0] else None
    best = min(runs, key=lambda r: r[key]) if key else max(runs, key=lambda r: sum(r.values()))
    best["runs"] = len(runs)
    if kind == "fer_batch":
        best["process_s"] = min(r["process_s"] for r in runs)
    if key:
        best["all_fps"] = [r["frames"] / r[key] for r in runs]
    return best


def ensure_fer_venv(venv: Path) -> str:
    """The fer venv's Python, creating the venv with the pip commands of the issue when it is missing."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "fer==25.10.3", "--no-deps"], check=True)
        subprocess.run([*pip, *FER_PACKAGES], check=True)
    return str(python)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}, {n} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def versions() -> str:
    import av
    import cv2
    import onnxruntime

    import fer_batch

    return (
        f"fer_batch {fer_batch.__version__}, onnxruntime {onnxruntime.__version__}, PyAV {av.__version__}, "
        f"OpenCV {cv2.__version__}"
    )


def clip_info(clip: str) -> str:
    from fer_batch.media.probe import probe

    info = probe(Path(clip))
    dur = f"{info.duration_s:.1f} s" if info.duration_s else "?"
    return f"{Path(clip).name}: {info.width}x{info.height}, {info.fps or 0:.0f} fps, {dur}, {info.frames} frames"


def row(label: str, r: dict | None, ref: dict | None, decode: dict | None, note: str = "") -> list[str]:
    """One line of the table: rates, ratios to fer (analysis, CPU, whole process) and to a bare decode."""
    if r is None:
        return [label, "—", "—", "—", "—", "—", "—", "—", "—", "—", note]
    fps = r["frames"] / r["seconds"]
    cpu_fps = r["frames"] / r["cpu_s"]
    spread = ", ".join(f"{x:.1f}" for x in r.get("all_fps", []))
    vs = f"{fps / (ref['frames'] / ref['seconds']):.1f}×" if ref else "—"
    cvs = f"{cpu_fps / (ref['frames'] / ref['cpu_s']):.1f}×" if ref else "—"
    # the whole ``python -m fer_batch analyze`` process (interpreter start, imports, models, analysis, exit), fastest
    # of the repeats, against fer's analyze alone
    pvs = f"{ref['seconds'] / r['process_s']:.1f}×" if ref and "wall_s" in r else "—"
    dec = f"{r['wall_s'] / decode['seconds']:.1f}×" if decode and "wall_s" in r else "—"
    note = note or (f"fps of each run: {spread}" if r.get("runs", 1) > 1 else "")
    return [label, f"{fps:.1f}", vs, f"{cpu_fps:.1f}", cvs, pvs, dec, f"{r['peak_mib']:.0f}",
            str(r.get("analysed", "")), str(r.get("faces", "")), note]  # fmt: skip


def markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_child":
        sys.path.insert(0, str(REPO))  # fer_batch from this checkout, whether installed or not
        print(json.dumps(CHILDREN[argv[1]](*argv[2:])), flush=True)
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=None, help="video to measure (default: make a 30 s 1280x720 clip)")
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the generated clip")
    ap.add_argument(
        "--work",
        type=Path,
        default=Path(tempfile.gettempdir()) / "fer_batch_bench",
        help="folder for the generated clip",
    )
    ap.add_argument("--repeat", type=int, default=3, help="runs per configuration; the fastest is shown")
    ap.add_argument("--fer-venv", type=Path, default=Path("/work/fervenv"))
    ap.add_argument("--no-fer", action="store_true", help="skip fer (no TensorFlow needed)")
    ap.add_argument("--only", default=None, help="comma-separated row numbers of FER_BATCH_CONFIGS to run")
    ap.add_argument("--no-classify", action="store_true", help="skip the classifier-alone rows")
    ap.add_argument("--write", type=Path, default=None, help="append the table to this Markdown file")
    ap.add_argument("--baseline", type=Path, default=None,
                    help="another checkout (e.g. git worktree add /tmp/base main): its defaults measured as a row too")
    a = ap.parse_args(argv)

    sys.path.insert(0, str(REPO))
    clip = a.clip
    if clip is None:
        sys.path.insert(0, str(HERE))
        from make_clip import make_face_clip

        path = a.work / f"face_720p_{a.seconds:g}s.mp4"
        if not path.exists():
            make_face_clip(path, a.seconds)
        clip = str(path)
    clip = str(Path(clip).resolve())
    py = sys.executable
    command = "python " + " ".join(shlex.quote(x) for x in ["benchmarks/bench.py", *argv])
    header = ["configuration", "fps", "× fer", "frames per CPU-s", "× fer (CPU)", "× fer (whole process)",
              "wall_s ÷ decode", "peak MiB", "frames analysed", "face rows", "note"]  # fmt: skip
    results: list[tuple[str, dict | None, str]] = []

    def measure(label: str, python: str, kind: str, *args: str, script: Path | None = None) -> dict | None:
        print(f"… {label}", file=sys.stderr, flush=True)
        try:
            r = best_of(a.repeat, python, kind, *args, script=script)
        except RuntimeError as e:
            print(f"{label}: {e}", file=sys.stderr)
            results.append((label, None, "failed"))
            return None
        results.append((label, r, ""))
        print(f"  {r['frames'] / r['seconds']:.1f} fps, {r['peak_mib']:.0f} MiB", file=sys.stderr, flush=True)
        return r

    fer_r = None
    if a.no_fer:
        results.append(("fer 25.10.3 Video.analyze (defaults)", None, "skipped (--no-fer)"))
    else:
        fer_r = measure("fer 25.10.3 Video.analyze (defaults)", ensure_fer_venv(a.fer_venv), "fer", clip)
    measure("PyAV decode only, 1 thread", py, "decode", clip, "1")
    decode_r = measure("PyAV decode only, auto threads", py, "decode", clip, "auto")
    measure("FrameReader (decode + gray + small, det 640)", py, "reader", clip, "640")
    chosen = FER_BATCH_CONFIGS
    if a.only:
        chosen = [FER_BATCH_CONFIGS[int(i)] for i in a.only.split(",")]
    if a.baseline is not None:
        commit = subprocess.run(["git", "-C", str(a.baseline), "log", "-1", "--format=%h"], capture_output=True,
                                text=True).stdout.strip() or a.baseline.name  # fmt: skip
        measure(f"fer-batch analyze (defaults), code before (`{commit}`)", py, "fer_batch", clip, "[]",
                script=a.baseline.resolve() / "benchmarks" / "bench.py")  # fmt: skip
    for label, extra in chosen:
        measure(label, py, "fer_batch", clip, json.dumps(extra))

    rows = [row(label, r, fer_r, decode_r, note) for label, r, note in results]
    table = markdown(header, rows)
    cls_table = ""
    if not a.no_classify:
        runs = {t: best_of(a.repeat, py, "classify", t) for t in ("1", "2")}
        cls_rows = [[name.rsplit(" ", 1)[0], t, f"{c[name]:.0f}", f"{c[name.replace('batch1', 'batch64')]:.0f}"]
                    for t, c in runs.items() for name in c if name.endswith("batch1")]  # fmt: skip
        cls_table = markdown(["model", "onnxruntime threads", "faces/s, 1 a call", "faces/s, 64 (in calls of 8)"],
                             cls_rows)  # fmt: skip

    report = [f"Command: `{command}`", "", f"Machine: {machine()}", "", f"Software: {versions()}", "",
              f"Clip: {clip_info(clip)}", "", f"Best of {a.repeat} run(s) per row.", "", table]  # fmt: skip
    if cls_table:
        report += ["", "Classifier alone (each model of the default on random crops of its input size; the "
                   "ensemble's rate is one face through both):", "", cls_table]
    text = "\n".join(report) + "\n"
    print(text)
    if a.write is not None:
        with open(a.write, "a", encoding="utf-8") as f:
            f.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
