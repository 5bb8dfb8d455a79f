"""Peak memory of ``fer-batch analyze`` on large frames: 1080p, 4K and 8K clips (4K and 8K also with ``--annotate``)
and a 16000x16000 PNG.

Each run is its own process; its peak resident memory is the child's ``ru_maxrss`` (``os.wait4``). The clips
(45 frames, 30 fps, a moving blocky texture, H.264 ultrafast) and the PNG (250 KB of zlib-compressed black
pixels) are made in code. Defaults only; ``--max-pixels`` is raised for the PNG row marked "(admitted)".

    python benchmarks/memory_large.py [--workdir /tmp/fer_batch_mem_large] [--frames 45]
"""

from __future__ import annotations

import argparse
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

SIZES = {"1080p": (1920, 1080), "4K": (3840, 2160), "8K": (7680, 4320)}


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    import av
    import numpy as np

    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (height // 8, width // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=30, options={"preset": "ultrafast"})
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(np.roll(base, 8 * i, axis=1), format="rgb24")
            f.pts = i
            out.mux(s.encode(f))
        out.mux(s.encode())


def make_png(path: Path, width: int, height: int) -> None:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    body = b"".join(z.compress(b"\x00" * (width + 1)) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def peak(cmd: list[str]) -> tuple[float, float, int]:
    """(peak RSS MiB, wall s, exit code) of one command in a fresh child process.

    Linux counts the parent's size at fork in a child's ``ru_maxrss``: this process stays small (clips are made in
    a child of their own), so the number is the command's.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss / 1024, time.perf_counter() - t0, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/fer_batch_mem_large"))
    parser.add_argument("--frames", type=int, default=45)
    parser.add_argument("--skip-admitted", action="store_true", help="do not run the PNG with --max-pixels raised")
    parser.add_argument("--make-clip", nargs=4, metavar=("PATH", "W", "H", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make_clip:
        path, w, h, n = args.make_clip
        make_clip(Path(path), int(w), int(h), int(n))
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "fer_batch.cli", "analyze", "--overwrite", "-q"]
    rows = []
    for name, (w, h) in SIZES.items():
        clip = args.workdir / f"{name}_{args.frames}.mp4"
        if not clip.exists():
            subprocess.run([sys.executable, __file__, "--make-clip", str(clip), str(w), str(h), str(args.frames)],
                           check=True)  # fmt: skip
        rows.append((f"{name} clip, {args.frames} frames", *peak([*cli, str(clip), "--out", str(args.workdir / name)])))
        if name != "1080p":
            rows.append((f"{name} clip, {args.frames} frames, --annotate",
                         *peak([*cli, str(clip), "--out", str(args.workdir / f"{name}_a"), "--annotate"])))  # fmt: skip
    png = args.workdir / "bomb_16000.png"
    if not png.exists():
        make_png(png, 16000, 16000)
    rows.append(("16000x16000 PNG (refused)", *peak([*cli, str(png), "--out", str(args.workdir / "png")])))
    if not args.skip_admitted:
        rows.append(("16000x16000 PNG (admitted)", *peak([*cli, str(png), "--out", str(args.workdir / "png2"),
                                                          "--max-pixels", "300000000"])))  # fmt: skip
    print("| input | peak RSS | wall | exit |\n|---|---|---|---|")
    for label, mib, wall, code in rows:
        print(f"| {label} | {mib:,.0f} MiB | {wall:.1f} s | {code} |", flush=True)


if __name__ == "__main__":
    main()
