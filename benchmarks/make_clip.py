"""Benchmark clips made in code, so every run measures the same pixels and nothing is downloaded.

``face``: a 1280x720 H.264 clip (30 fps) with one real face (skimage's public-domain astronaut) moving and
changing size over a slowly panning textured background — the "one face, every frame" case of the issue.
``crowd``: many small astronaut faces (20-40 px) drifting over the same background, for detector recall.

    python benchmarks/make_clip.py face  bench_out/face_720p.mp4 --seconds 30
    python benchmarks/make_clip.py crowd bench_out/crowd_720p.mp4 --seconds 2
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import av
import cv2
import numpy as np


def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()  # 512x512 RGB


def head(size: int) -> np.ndarray:
    """The astronaut's head and shoulders, ``size`` px tall (RGB)."""
    img = _astronaut()[0:300, 110:370]
    h, w = img.shape[:2]
    return cv2.resize(img, (round(w * size / h), size), interpolation=cv2.INTER_AREA)


def face(size: int) -> np.ndarray:
    """The astronaut's face alone as a ``size``-px square (as the test fixtures paste it)."""
    return cv2.resize(np.ascontiguousarray(_astronaut()[20:220, 140:320]), (size, size), interpolation=cv2.INTER_AREA)


def background(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A smooth, textured RGB plane twice the frame's width, so panning over it gives real motion to encode."""
    rng = np.random.default_rng(seed)
    w2 = 2 * width
    low = rng.random((height // 40 + 2, w2 // 40 + 2, 3)).astype(np.float32)
    big = cv2.resize(low, (w2, height), interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.random((height, w2, 3)).astype(np.float32), (0, 0), 1.5)
    img = 50 + 150 * big + 40 * (fine - 0.5)
    return np.clip(img, 0, 255).astype(np.uint8)


def paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> None:
    """Paste ``patch`` with its top-left corner at (x, y), clipped to the frame."""
    h, w = frame.shape[:2]
    ph, pw = patch.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + pw, w), min(y + ph, h)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]


def _writer(path: Path, width: int, height: int, fps: int) -> tuple[av.container.OutputContainer, av.VideoStream]:
    path.parent.mkdir(parents=True, exist_ok=True)
    out = av.open(str(path), "w")
    stream = out.add_stream("libx264", rate=fps)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"crf": "23", "preset": "veryfast"}
    return out, stream


def _encode(out: av.container.OutputContainer, stream: av.VideoStream, rgb: np.ndarray) -> None:
    for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
        out.mux(packet)


def _finish(out: av.container.OutputContainer, stream: av.VideoStream) -> None:
    for packet in stream.encode():
        out.mux(packet)
    out.close()


def make_face_clip(path: Path, seconds: float = 30.0, size: tuple[int, int] = (1280, 720), fps: int = 30) -> int:
    """One face (head 200-300 px tall) moving on a Lissajous path; returns the number of frames."""
    width, height = size
    bg = background(width, height)
    heads = {s: head(s) for s in range(round(0.28 * height), round(0.42 * height) + 1, 4)}
    sizes = sorted(heads)
    n = round(seconds * fps)
    out, stream = _writer(path, width, height, fps)
    for i in range(n):
        t = i / fps
        off = int((width / 2) * (0.5 - 0.5 * math.cos(2 * math.pi * t / 20)))  # pan back and forth
        frame = np.ascontiguousarray(bg[:, off : off + width])
        s = sizes[int((0.5 + 0.5 * math.sin(2 * math.pi * t / 7)) * (len(sizes) - 1))]
        patch = heads[s]
        ph, pw = patch.shape[:2]
        cx = width / 2 + 0.35 * width * math.sin(2 * math.pi * t / 9)
        cy = height / 2 + 0.15 * height * math.sin(2 * math.pi * t / 5)
        paste(frame, patch, int(cx - pw / 2), int(cy - ph / 2))
        _encode(out, stream, frame)
    _finish(out, stream)
    return n


# where CenterFace puts the face inside a head() patch, as fractions of the patch (measured at full size on a
# 300 px patch): the true face box of the crowd clip
FACE_IN_HEAD = (0.27, 0.21, 0.61, 0.59)
CROWD_HEADS = (64, 76, 88, 100, 112, 128)  # patch heights: faces about 19-38 px wide, 24-49 px tall


def crowd_layout(width: int, height: int, rows: int = 5, cols: int = 8) -> list[tuple[int, int, int]]:
    """(x, y, patch height) of a grid of head patches whose faces are 20-40 px across."""
    cells = []
    for r in range(rows):
        for c in range(cols):
            side = CROWD_HEADS[(r * cols + c) % len(CROWD_HEADS)]
            x = int((c + 0.5) * width / cols - side * 0.43)
            y = int((r + 0.5) * height / rows - side / 2)
            cells.append((x, y, side))
    return cells


def crowd_truth(width: int, height: int, i: int) -> list[tuple[float, float, float, float]]:
    """True face boxes (x1, y1, x2, y2) in frame ``i`` of the crowd clip."""
    out = []
    for k, (x, y, side) in enumerate(crowd_layout(width, height)):
        dx, dy = _drift(i, k)
        pw, ph = head(side).shape[1], side
        a, b, c, d = FACE_IN_HEAD
        out.append((x + dx + a * pw, y + dy + b * ph, x + dx + c * pw, y + dy + d * ph))
    return out


def _drift(i: int, k: int) -> tuple[int, int]:
    return int(6 * math.sin(0.3 * i + k)), int(6 * math.cos(0.2 * i + k))


def make_crowd_clip(path: Path, seconds: float = 2.0, size: tuple[int, int] = (1280, 720), fps: int = 15) -> int:
    """A grid of 40 small faces (20-40 px) drifting a few pixels per frame; returns the number of frames."""
    width, height = size
    bg = background(width, height, seed=1)
    layout = crowd_layout(width, height)
    patches = {s: head(s) for s in {side for _, _, side in layout}}
    n = round(seconds * fps)
    out, stream = _writer(path, width, height, fps)
    for i in range(n):
        frame = np.ascontiguousarray(bg[:, i * 2 : i * 2 + width])
        for k, (x, y, side) in enumerate(layout):
            dx, dy = _drift(i, k)
            paste(frame, patches[side], x + dx, y + dy)
        _encode(out, stream, frame)
    _finish(out, stream)
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["face", "crowd"])
    ap.add_argument("path", type=Path)
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", type=int, default=None)
    a = ap.parse_args()
    size = (a.width, a.height)
    if a.kind == "face":
        n = make_face_clip(a.path, a.seconds or 30.0, size, a.fps or 30)
    else:
        n = make_crowd_clip(a.path, a.seconds or 2.0, size, a.fps or 15)
    print(f"{a.path}: {n} frames {a.width}x{a.height}")


if __name__ == "__main__":
    main()
