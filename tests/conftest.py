"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def shared() -> Path:
    """``../shared`` beside the repo: real material that is never committed (unlicensed photos, research data sets,
    original model weights). The one way tests reach it: they are skipped where it is absent (a bare clone, an sdist).
    """
    folder = REPO.parent / "shared"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    return folder


def _shared_part(shared: Path, relative: str, marker: str) -> Path:
    folder = shared / relative
    if not (folder / marker).exists():
        pytest.skip(f"{folder / marker} is absent")
    return folder


@pytest.fixture(scope="session")
def shared_media(shared: Path) -> Path:
    """``../shared/media``: a crowd photo and a two-person photo (testing only)."""
    return _shared_part(shared, "media", "photos")


@pytest.fixture(scope="session")
def shared_faceapi_weights(shared: Path) -> Path:
    """``../shared/models/face-api-expression``: face-api.js' original TF.js weights."""
    return _shared_part(shared, "models/face-api-expression", "face_expression_model-shard1")


@pytest.fixture(scope="session")
def shared_expressions(shared: Path) -> Path:
    """``../shared/data/expressions``: labelled faces (FER2013, CK+, real-world crops), for measuring only."""
    return _shared_part(shared, "data/expressions", "ckplus48")


# --- clips made in code ---------------------------------------------------------------------------------------

import fractions  # noqa: E402
from collections.abc import Callable, Sequence  # noqa: E402

import av  # noqa: E402
import numpy as np  # noqa: E402


def astronaut_face(size: int) -> np.ndarray:
    """The astronaut's head (public-domain NASA photo in scikit-image) as a ``size``-px square RGB image."""
    import cv2
    from skimage import data

    img = data.astronaut()
    return cv2.resize(np.ascontiguousarray(img[20:220, 140:320]), (size, size), interpolation=cv2.INTER_AREA)


def write_clip(
    path: Path,
    *,
    size: tuple[int, int] = (320, 240),
    times: Sequence[float] | None = None,
    n: int = 20,
    fps: int = 10,
    faces: Callable[[int], list[tuple[int, int, int]]] | None = None,
    audio: bool = False,
    rotation: int = 0,
    pix_fmt: str = "yuv420p",
    codec: str = "libx264",
) -> list[float]:
    """Write a test clip and return its presentation times (seconds).

    ``times`` gives variable frame rate (a 1/1000 time base); ``faces(i)`` returns (x, y, side) squares where
    the astronaut's face is pasted in frame i; ``rotation`` sets the display matrix (counter-clockwise degrees).
    """
    w, h = size
    if times is None:
        times = [i / fps for i in range(n)]
    tb = fractions.Fraction(1, 1000)
    rng = np.random.default_rng(0)
    background = (rng.integers(60, 200, (h, w, 3))).astype(np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.time_base = tb
        stream.codec_context.time_base = tb
        if rotation:
            stream.set_display_rotation(rotation)
        if audio:
            astream = out.add_stream("aac", rate=16000)
            astream.layout = "mono"
        for i, t in enumerate(times):
            img = background.copy()
            for x, y, side in faces(i) if faces else []:
                face = astronaut_face(side)
                x2, y2 = min(x + side, w), min(y + side, h)
                if x2 <= x or y2 <= y:
                    continue
                img[y:y2, x:x2] = face[: y2 - y, : x2 - x]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pix_fmt != "yuv420p":
                frame = frame.reformat(format=pix_fmt)
            frame.pts = round(t / tb)
            frame.time_base = tb
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
        if audio:
            duration = times[-1] + 1 / fps
            samples = (0.1 * np.sin(np.arange(int(16000 * duration)) * 0.2)).astype(np.float32)
            for k in range(0, len(samples), 1024):
                chunk = np.ascontiguousarray(samples[None, k : k + 1024])
                af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
                af.sample_rate, af.pts = 16000, k
                out.mux(astream.encode(af))
            out.mux(astream.encode())
    with av.open(str(path)) as c:  # what the file really holds, as the decoder will see it
        vs = c.streams.video[0]
        return [float(f.pts * vs.time_base) for f in c.decode(vs)]


@pytest.fixture
def clip(tmp_path: Path) -> Callable[..., tuple[Path, list[float]]]:
    """Factory: ``clip(name, **write_clip kwargs) -> (path, pts seconds)`` in a fresh temporary folder."""

    def make(name: str = "clip.mp4", **kwargs: object) -> tuple[Path, list[float]]:
        path = tmp_path / "in" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path, write_clip(path, **kwargs)  # type: ignore[arg-type]

    return make


def one_face(i: int) -> list[tuple[int, int, int]]:
    """A 90-px face drifting right."""
    return [(40 + 3 * i, 50, 90)]


def interrupted_run(tmp_path: Path, signum: int, frames: int, size: tuple[int, int],
                    settle_s: float = 0.0) -> tuple[int, str, str, Path]:  # fmt: skip
    """``analyze`` on three clips, stopped by ``signum`` once the first is done (after ``settle_s``, into the next
    one's work): (exit code, stderr before the signal, stderr after, the input folder)."""
    import subprocess
    import time

    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "a0.mp4", n=3)
    for k in range(1, 3):
        write_clip(src / f"a{k}.mp4", n=frames, size=size)
    cmd = [sys.executable, "-m", "fer_batch.cli", "analyze", str(src), "--out", str(tmp_path / "out")]
    proc = subprocess.Popen(cmd, cwd=REPO, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    assert proc.stderr is not None
    seen = []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        seen.append(line)
        if "a0.mp4: ok" in line or not line:
            break
    time.sleep(settle_s)
    proc.send_signal(signum)
    rest = proc.stderr.read()
    return proc.wait(timeout=60), "".join(seen), rest, src
