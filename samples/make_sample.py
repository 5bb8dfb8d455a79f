"""Make ``samples/astronaut.mp4``: a 4-second clip with a real face, for the README's first command.

The face is scikit-image's ``astronaut`` (Eileen Collins, NASA photo, public domain). The camera pans and
zooms slowly so boxes move, and a quiet tone is muxed as AAC so rendering can show the audio is kept.
Run: ``python samples/make_sample.py`` (needs scikit-image; the result is committed).
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

OUT = Path(__file__).resolve().parent / "astronaut.mp4"
W, H, FPS, SECONDS = 480, 360, 15, 4


def frames() -> list[np.ndarray]:
    """RGB frames: a slow zoom and pan over the photo."""
    img = data.astronaut()  # 512x512 RGB
    out = []
    n = FPS * SECONDS
    for i in range(n):
        s = 1.0 + 0.25 * i / n  # zoom in
        cx, cy = 256 + 20 * np.sin(i / n * np.pi), 200.0
        m = np.array([[s, 0, W / 2 - s * cx], [0, s, H / 2 - s * cy]], dtype=np.float32)
        out.append(cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    return out


def main() -> None:
    with av.open(str(OUT), "w", options={"movflags": "+faststart"}) as container:
        video = container.add_stream("libx264", rate=FPS, options={"crf": "28", "preset": "slow"})
        video.width, video.height, video.pix_fmt = W, H, "yuv420p"
        audio = container.add_stream("aac", rate=22050)
        audio.layout = "mono"
        for i, rgb in enumerate(frames()):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame))
        container.mux(video.encode())
        t = np.arange(22050 * SECONDS) / 22050
        tone = (0.05 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]
        for k in range(0, tone.shape[1], 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k : k + 1024]), format="fltp", layout="mono")
            af.sample_rate, af.pts = 22050, k
            container.mux(audio.encode(af))
        container.mux(audio.encode())
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
