"""Per-stage cost of the fer_batch pipeline on one clip at the default options: where a frame's time goes.

Each stage is timed alone, in this one process, on real frames of the clip, as wall and CPU milliseconds per
frame or per face (CPU time counts every thread, so it is the better measure on a busy machine). Each timing is
the best of ``--repeat``. Models run with one intra-op thread (what ``models.StageThreads`` gives each session of a
two-core job) and, for comparison, two.

    python benchmarks/stages.py /tmp/fer_batch_bench/face_720p_30s.mp4 --frames 120 --repeat 3
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fer_batch.analysis import classify  # noqa: E402
from fer_batch.analysis.classify import RUN_FACES, Classifier, Member  # noqa: E402
from fer_batch.analysis.detect.base import scan_images  # noqa: E402
from fer_batch.analysis.detect.centerface import CenterFace  # noqa: E402
from fer_batch.analysis.detect.scan_size import small_size  # noqa: E402
from fer_batch.analysis.track import Tracker  # noqa: E402
from fer_batch.media.probe import probe  # noqa: E402
from fer_batch.media.reader import FrameReader, ReaderImages  # noqa: E402
from fer_batch.options import Options  # noqa: E402
from fer_batch.outputs.metadata import TableMeta  # noqa: E402
from fer_batch.outputs.table import ParquetSink, window_table  # noqa: E402
from fer_batch.planes import yuv_to_rgb  # noqa: E402
from fer_batch.types import Faces, Frames  # noqa: E402

Row = tuple[str, float, float, str]


def _cpu() -> float:
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime + u.ru_stime


def timed(fn: Callable[[], int], repeat: int) -> tuple[float, float]:
    """Best (wall ms, CPU ms) per unit over ``repeat`` calls; ``fn`` returns how many units it did."""
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), _cpu()
        n = fn()
        w, c = (time.perf_counter() - t0) / n * 1e3, (_cpu() - c0) / n * 1e3
        if c < best[1]:
            best = (w, c)
    return best


def decode_stages(clip: Path, n: int, rep: int, add: Callable[..., None]) -> None:
    """Bare decoding, and the reader thread as the pipeline runs it (decode, planes, queue)."""

    def decode(threads: int) -> Callable[[], int]:
        def run() -> int:
            k = 0
            with av.open(str(clip)) as c:
                s = c.streams.video[0]
                if threads == 1:
                    s.thread_type, s.codec_context.thread_count = "SLICE", 1
                else:
                    s.thread_type = "AUTO"
                for _ in c.decode(s):
                    k += 1
                    if k >= n:
                        break
            return k

        return run

    add("decode (PyAV, 1 thread, as the reader)", timed(decode(1), rep))
    add("decode (PyAV, auto threads)", timed(decode(0), rep))
    info = probe(clip)

    def read() -> int:
        reader = FrameReader(clip, info, Options(), images=ReaderImages.ANALYSED)
        return sum(1 for _ in zip(range(n), reader, strict=False))

    add("FrameReader thread total (decode + planes + queue)", timed(read, rep))


def with_threads(session: object, threads: int) -> object:
    """A new session of ``session``'s model with ``threads`` intra-op threads (the pipeline's own settings)."""
    from fer_batch.analysis import models

    path = Path(session._model_path)  # type: ignore[attr-defined]
    return models.session(path, "cpu", threads)


def detect_stages(frames: Frames, rep: int, add: Callable[..., None]) -> Faces:
    """Full scans at the default size and regions around the faces they find; returns the scans' faces."""
    opts = Options.of(threads=2, device="cpu")
    w, h = frames.size
    size = small_size(w, h, opts.detection.det_size, opts.detection.min_face)

    def small() -> int:
        for p in frames.yuv or []:
            assert p is not None
            yuv_to_rgb(*p, size)
        return len(frames)

    add(f"scan image {size[0]}x{size[1]} from the planes", timed(small, rep), "scan")
    cf = CenterFace(opts)
    faces = cf(frames)
    images = scan_images(frames, opts)
    batch = [im.transpose(2, 0, 1)[None].astype(np.float32) for im in images]
    per = [faces.of_frame(int(i)).boxes for i in frames.index]
    for threads in (1, 2):
        cf.session = cf.region_session = with_threads(cf.session, threads)

        def scan(cf: CenterFace = cf) -> int:
            for b in batch:
                cf.session.run(cf.output_names, {cf.input_name: b})
            return len(batch)

        def regions(cf: CenterFace = cf) -> int:
            for j in range(len(frames)):
                cf.regions(frames, j, per[j])
            return len(frames)

        scan()
        add(f"CenterFace full scan {size[0]}x{size[1]} (session.run), {threads} thread(s)", timed(scan, rep), "scan")
        add(f"CenterFace.regions around the faces found, {threads} thread(s)", timed(regions, rep))
    int8 = CenterFace(opts.replace(threads=1, detector="centerface-int8"), scan_model="centerface-int8")

    def scan_int8() -> int:
        for b in batch:
            int8.session.run(int8.output_names, {int8.input_name: b})
        return len(batch)

    scan_int8()
    add(f"centerface-int8 full scan {size[0]}x{size[1]} (session.run), 1 thread(s)", timed(scan_int8, rep), "scan")
    return faces


def classify_stages(frames: Frames, faces: Faces, rep: int, add: Callable[..., None]) -> Classifier:
    """Each member of the default classifier: its crops, and its network at several faces per call."""
    clf = Classifier(Options.of(threads=2, device="cpu"))
    for member in clf.members:
        add(f"{member.spec.id}: crops ({member.width}x{member.height} {member.color})",
            timed(lambda m=member: (m.crops(frames, faces), len(faces))[1], rep), "face")  # fmt: skip
        crops = member.crops(frames, faces)
        many = np.concatenate([crops] * (64 // max(len(crops), 1) + 1))[:64]
        for threads in (1, 2):
            member.session = with_threads(member.session, threads)
            for per_call in sorted({1, RUN_FACES, 64}):

                def pred(m: Member = member, per_call: int = per_call, many: np.ndarray = many) -> int:
                    classify.RUN_FACES = per_call  # faces per onnxruntime call inside Member.predict
                    try:
                        m.predict(many)
                    finally:
                        classify.RUN_FACES = RUN_FACES
                    return len(many)

                pred()
                add(f"{member.spec.id}: network, {per_call} face(s) a call, {threads} thread(s)", timed(pred, rep),
                    "face")  # fmt: skip
    return clf


def other_stages(frames: Frames, faces: Faces, clf: Classifier, rep: int, add: Callable[..., None]) -> None:
    """Tracker and table: small next to the models."""
    per_frame = [faces.of_frame(int(i)) for i in frames.index]

    def track() -> int:
        t = Tracker()
        for f in per_frame:
            t.update(f)
        return len(per_frame)

    add("Tracker.update", timed(track, rep))
    found = faces.replace(probs=np.full((len(faces), len(clf.labels)), 1 / len(clf.labels), dtype=np.float32))

    def sink() -> int:
        with tempfile.TemporaryDirectory() as d:
            with ParquetSink(Path(d) / "t.parquet", clf.labels, False) as s:
                for _ in range(10):
                    s.write(window_table("v", frames.index, frames.time_s, found, clf.labels))
                s.meta = TableMeta(version="bench", options={}, source={})
        return 10 * len(frames)

    add("window_table + ParquetSink.write", timed(sink, rep))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", type=Path)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    rows: list[Row] = []

    def add(name: str, wc: tuple[float, float], unit: str = "frame") -> None:
        rows.append((name, wc[0], wc[1], unit))
        print(f"{name:<78} {wc[0]:8.2f} ms wall {wc[1]:8.2f} ms CPU per {unit}", file=sys.stderr, flush=True)

    decode_stages(a.clip, a.frames, a.repeat, add)
    reader = FrameReader(a.clip, probe(a.clip), Options(), images=ReaderImages.ANALYSED)
    items = [d for _, d in zip(range(min(a.frames, 64)), reader, strict=False)]
    frames = Frames.from_decoded(items, colour=True)
    faces = detect_stages(frames, a.repeat, add)
    clf = classify_stages(frames, faces, a.repeat, add)
    other_stages(frames, faces, clf, a.repeat, add)
    print(f"Faces found by the scans: {len(faces)} on {len(frames)} frames.\n")
    print("| stage | wall ms | CPU ms | per |\n|---|---|---|---|")
    for name, w, c, unit in rows:
        print(f"| {name} | {w:.2f} | {c:.2f} | {unit} |")


if __name__ == "__main__":
    main()
