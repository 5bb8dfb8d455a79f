"""CPU cost and size of libx264 presets on decoded frames of a clip: what rendering's encoder costs.

    python benchmarks/encoder.py /tmp/fer_batch_bench/face_720p_30s.mp4 [--frames 200]

Frames are decoded once, then encoded in memory at crf 23 with one x264 thread per preset; CPU time is the
process's, so other work on the machine barely moves it.
"""

from __future__ import annotations

import argparse
import io
import time

import av

PRESETS = [
    ("superfast", "mbtree=1:rc-lookahead=10"),  # what fer_batch.outputs.h264 uses for rendering
    ("ultrafast", None),
    ("ultrafast", "mbtree=1:rc-lookahead=10"),
    ("veryfast", None),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--frames", type=int, default=200)
    args = parser.parse_args()
    with av.open(args.clip) as c:
        frames = []
        for f in c.decode(video=0):
            frames.append(f.reformat(format="yuv420p").to_ndarray())
            if len(frames) == args.frames:
                break
    h, w = frames[0].shape[0] * 2 // 3, frames[0].shape[1]
    for preset, params in PRESETS:
        buf = io.BytesIO()
        out = av.open(buf, "w", format="mp4")
        options = {"crf": "23", "preset": preset} | ({"x264-params": params} if params else {})
        stream = out.add_stream("libx264", rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1
        t0 = time.process_time()
        for i, a in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(a, format="yuv420p")
            vf.pts = i
            out.mux(stream.encode(vf))
        out.mux(stream.encode())
        cpu = time.process_time() - t0
        out.close()
        print(f"{preset:<10} {params or '':<26} {cpu / len(frames) * 1000:6.2f} ms/frame CPU  "
              f"{len(buf.getvalue()) // 1024:6d} KiB")  # fmt: skip


if __name__ == "__main__":
    main()
