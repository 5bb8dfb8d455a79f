"""Per-stage cost of the fer_batch pipeline on one clip: where a frame's time goes.

Each stage is timed alone, in this one process, on real frames of the clip, as wall and CPU milliseconds per
frame (CPU time counts every thread, so it is the better measure on a busy machine). Each timing is the best
of ``--repeat``.

    python benchmarks/stages.py bench_out/face_720p_30s.mp4 --frames 240
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

from fer_batch.classify import Classifier  # noqa: E402
from fer_batch.decode import FrameReader, probe, small_size  # noqa: E402
from fer_batch.detect.centerface import CHUNK, CenterFace  # noqa: E402
from fer_batch.options import Options  # noqa: E402
from fer_batch.sink import ParquetSink, TableMeta, window_table  # noqa: E402
from fer_batch.track import Tracker  # noqa: E402
from fer_batch.types import Faces, Frames  # noqa: E402


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
        if w < best[0]:
            best = (w, c)
    return best


def frames_of(clip: str, limit: int) -> list[av.VideoFrame]:
    out = []
    with av.open(clip) as c:
        for f in c.decode(video=0):
            out.append(f)
            if len(out) >= limit:
                break
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip")
    ap.add_argument("--frames", type=int, default=240)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    clip, n, rep = a.clip, a.frames, a.repeat
    path = Path(clip)
    info = probe(path)
    rows: list[tuple[str, float, float, str]] = []

    def add(name: str, wc: tuple[float, float], unit: str = "frame") -> None:
        rows.append((name, wc[0], wc[1], unit))
        print(f"{name:<58} {wc[0]:8.2f} ms wall {wc[1]:8.2f} ms CPU per {unit}", file=sys.stderr, flush=True)

    def decode(threads: int) -> Callable[[], int]:
        def run() -> int:
            k = 0
            with av.open(clip) as c:
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
    frames = frames_of(clip, n)
    add("frame.to_ndarray(format='gray') (full-res luma)",
        timed(lambda: sum(1 for f in frames if f.to_ndarray(format="gray") is not None), rep))  # fmt: skip
    add("frame.to_ndarray(format='bgr24') (full-res colour)",
        timed(lambda: sum(1 for f in frames if f.to_ndarray(format="bgr24") is not None), rep))  # fmt: skip
    for det in (640, 480, 320, 256):
        sw, sh = small_size(info.width, info.height, det)

        def small(sw: int = sw, sh: int = sh) -> int:
            for f in frames:
                f.reformat(width=sw, height=sh, format="rgb24", interpolation="BILINEAR").to_ndarray()
            return len(frames)

        add(f"small image det {det} ({sw}x{sh}) reformat→rgb24", timed(small, rep))
    for det in (640, 320):  # min_face 0: the small image's size follows det_size alone
        opts = Options(det_size=det, min_face=0)

        def read(opts: Options = opts) -> int:
            return sum(1 for _ in zip(range(n), FrameReader(path, info, opts), strict=False))

        add(f"FrameReader thread total, det {det} (decode+gray+small+queue)", timed(read, rep))

    # detector: on real small images, CHUNK frames per call as the pipeline does
    for threads in (2, 1):
        for det in (640, 480, 320, 256):
            opts = Options(det_size=det, min_face=0, threads=threads, device="cpu")  # min_face 0: det_size alone
            reader = FrameReader(path, info, opts)
            items = [d for _, d in zip(range(min(n, 64)), reader, strict=False)]
            fr = Frames.from_decoded(items)
            cf = CenterFace(opts)
            cf(fr)  # warm-up
            add(f"CenterFace det {det} {fr.small[0].shape[1]}x{fr.small[0].shape[0]}, {threads} thread(s)",
                timed(lambda cf=cf, fr=fr: (cf(fr), len(fr))[1], rep))  # fmt: skip
            if det == 640 and threads == 2:
                batch = np.stack(fr.small[:CHUNK]).transpose(0, 3, 1, 2).astype(np.float32)

                def run_only(cf: CenterFace = cf, batch: np.ndarray = batch) -> int:
                    cf.session.run(cf.output_names, {cf.input_name: batch})
                    return CHUNK

                def prep(fr: Frames = fr) -> int:
                    np.stack(fr.small[:CHUNK]).transpose(0, 3, 1, 2).astype(np.float32)
                    return CHUNK

                add("  of which session.run alone (det 640, 2 threads)", timed(run_only, rep))
                add("  of which stack+transpose+astype (det 640)", timed(prep, rep))
                det_faces = cf(fr)
                gray_frames = fr
            if det == 640 and hasattr(cf, "regions"):  # detection around tracked faces between full scans
                per = [det_faces.of_frame(int(i)).boxes for i in fr.index]

                def regions(cf: CenterFace = cf, fr: Frames = fr, per: list = per) -> int:
                    for j in range(len(fr)):
                        cf.regions(fr, j, per[j])
                    return len(fr)

                add(f"CenterFace.regions around the tracked face, {threads} thread(s)", timed(regions, rep))
    # classifier
    for threads in (2, 1):
        clf = Classifier(Options(threads=threads, device="cpu"))
        crops = clf.crops(gray_frames, det_faces)
        many = np.concatenate([crops] * (64 // max(len(crops), 1) + 1))[:64]
        for batch in (1, 8, 32, 64):

            def pred(batch: int = batch, clf: Classifier = clf, many: np.ndarray = many) -> int:
                for lo in range(0, 64, batch):
                    clf.predict(many[lo : lo + batch])
                return 64

            pred()
            add(f"classifier predict, batch {batch}, {threads} thread(s)", timed(pred, rep), "face")
    add("classifier crops (per-face loop, crop+resize)",
        timed(lambda: (clf.crops(gray_frames, det_faces), len(det_faces))[1], rep), "face")  # fmt: skip

    # tracker and sink
    per_frame = [det_faces.of_frame(int(i)) for i in gray_frames.index]

    def track() -> int:
        t = Tracker()
        for f in per_frame:
            t.update(f)
        return len(per_frame)

    add("Tracker.update", timed(track, rep))
    probs = np.full((len(det_faces), 7), 1 / 7, dtype=np.float32)
    faces = det_faces.replace(probs=probs)
    labels = clf.labels

    def sink() -> int:
        with tempfile.TemporaryDirectory() as d:
            with ParquetSink(Path(d) / "t.parquet", labels, False) as s:
                for _ in range(10):
                    s.write(window_table("v", gray_frames.index, gray_frames.time_s, faces, labels))
                s.meta = TableMeta(version="bench", options={}, source={})
        return 10 * len(gray_frames)

    add("window_table + ParquetSink.write", timed(sink, rep))
    _ = Faces
    print("| stage | wall ms | CPU ms | per |\n|---|---|---|---|")
    for name, w, c, unit in rows:
        print(f"| {name} | {w:.2f} | {c:.2f} | {unit} |")


if __name__ == "__main__":
    main()
