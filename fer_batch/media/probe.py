"""What an input holds, read before any frame is decoded: its kind, size, rotation, length and frame rate.

Why apart from the reader: the folder planner, the segment planner, the report and the renderer all need to know
what a file is without decoding it; and refusing a frame larger than ``--max-pixels`` must happen from the header,
before anything that size is allocated.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import av
import cv2
import numpy as np

from fer_batch.errors import DecodeError, describe
from fer_batch.media.imagesize import image_size, is_known_image
from fer_batch.media.orientation import orientation

log = logging.getLogger(__name__)
# OpenCV's own warnings (e.g. about damaged files) would print past our one line per problem
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"})


VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts",
     ".m2ts", ".ogv", ".mxf", ".vob", ".dv", ".y4m", ".gif"}
)  # fmt: skip


MAX_BAD_PACKETS = 200  # packets in a row that fail to demux or decode before the rest of a stream is given up


@dataclass(frozen=True)
class VideoInfo:
    """What the table's metadata records about the source."""

    width: int  # displayed (after rotation)
    height: int
    rotation: int  # degrees counter-clockwise, as the display matrix says
    fps: float | None  # average frame rate the container reports
    duration_s: float | None
    frames: int | None  # frame count the container reports (0/None when unknown)
    is_image: bool = False
    mirror: bool = False  # the display matrix also mirrors the picture left-right (after ``rotation``)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """``av.open`` for a file on disk, also where its name is not valid UTF-8 (``bad\\xffname.mp4``).

    Why: PyAV passes names to FFmpeg as UTF-8 and fails on such a name, which Linux allows; the file is then
    handed to FFmpeg already open (FFmpeg reads and seeks it through Python).
    """
    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return av.open(open(name, "rb"), "r")  # noqa: SIM115 — the container owns it until it is closed
    return av.open(name)


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The video stream a player shows: FFmpeg's best (the default-disposition one first), never cover art.

    Why not ``streams.video[0]``: a file with several video streams (a thumbnail track, a second camera) marks
    the one to show as default, and that need not be the first.
    """
    videos = list(container.streams.video)
    if not videos:
        kinds: list[str] = sorted({str(s.type) for s in container.streams}) or ["nothing"]
        raise DecodeError(f"no video stream (contains {', '.join(kinds)})")
    pictures = [s for s in videos if s.disposition & av.stream.Disposition.attached_pic]
    best = container.streams.best("video")
    if isinstance(best, av.video.stream.VideoStream) and best not in pictures:
        return best
    return next((s for s in videos if s not in pictures), videos[0])


def check_size(width: int, height: int, max_pixels: int) -> None:
    """Refuse frames larger than ``--max-pixels`` before anything that size is allocated."""
    if width * height > max_pixels:
        raise DecodeError(f"frame {width}x{height} ({width * height / 1e6:.0f} Mpx) is larger than --max-pixels "
                          f"{max_pixels} ({max_pixels / 1e6:.0f} Mpx)")  # fmt: skip


def probe(path: Path, max_pixels: int | None = None) -> VideoInfo:
    """Open the file once for its metadata (images too); frames above ``max_pixels`` are refused from the header."""
    size = image_size(path)  # image headers (GIF too, which is decoded as video) before anything is decoded
    if size is not None and max_pixels is not None:
        check_size(*size, max_pixels)
    if is_image(path):
        return probe_image(path, max_pixels, size)[0]
    try:
        with open_input(path) as container:
            stream = video_stream(container)
            w, h = stream.codec_context.width, stream.codec_context.height
            if w <= 0 or h <= 0:
                raise DecodeError("video stream has no frame size")
            if max_pixels is not None:
                check_size(w, h, max_pixels)
            rotation, mirror = _stream_orientation(container, stream)
            if rotation % 180:
                w, h = h, w
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1e6
            fps = float(stream.average_rate) if stream.average_rate else None
            return VideoInfo(width=w, height=h, rotation=rotation, fps=fps, duration_s=duration,
                             frames=stream.frames or None, mirror=mirror)  # fmt: skip
    except av.error.FFmpegError as e:
        raise DecodeError(describe(e)) from None


def probe_image(path: Path, max_pixels: int | None = None,
                size: tuple[int, int] | None = None) -> tuple[VideoInfo, np.ndarray]:  # fmt: skip
    """A photo's metadata and its BGR image, decoded once (``probe`` keeps only the metadata; a batch of photos
    keeps the image, so it is not decoded a second time). ``size``: its header's, where already read."""
    if size is None:
        size = image_size(path)
        if size is not None and max_pixels is not None:
            check_size(*size, max_pixels)
    if size is None:  # OpenCV would decode it blind, whatever its size: refused before any decoding
        if os.path.getsize(path) == 0:
            raise DecodeError("empty file")
        known = "a damaged header" if is_known_image(path) else "not a format whose size can be read"
        raise DecodeError(f"not a readable image: its size cannot be read from the header ({known})")
    img = read_image(path)
    if max_pixels is not None:
        check_size(img.shape[1], img.shape[0], max_pixels)
    info = VideoInfo(width=img.shape[1], height=img.shape[0], rotation=0, fps=None, duration_s=0.0, frames=1,
                     is_image=True)  # fmt: skip
    return info, img


def _stream_orientation(container: av.container.InputContainer,
                        stream: av.video.stream.VideoStream) -> tuple[int, bool]:  # fmt: skip
    """Rotation and mirror from the first decodable frame's display matrix (PyAV exposes it per frame)."""
    try:
        for n, packet in enumerate(container.demux(stream)):
            if n >= MAX_BAD_PACKETS:
                break
            try:
                for frame in packet.decode():
                    return orientation(frame)
            except av.error.FFmpegError:
                continue  # a damaged first packet: the next may decode
    except av.error.FFmpegError:
        pass  # an undecodable stream is reported by the decoder itself
    return 0, False


def read_image(path: Path) -> np.ndarray:
    """A photo as BGR (EXIF orientation applied by OpenCV); a damaged one fails with the codec's own words."""
    data = np.fromfile(str(path), dtype=np.uint8)
    if not data.size:
        raise DecodeError("empty file")
    with _stderr_lines() as said:
        img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None:
        raise DecodeError("not a readable image" + (f" ({said[-1]})" if said else ""))
    if said:
        log.debug("%s: %s", path, "; ".join(said))
    return img


_stderr_lock = threading.Lock()
_stderr_file: tuple[int, IO[bytes]] | None = None  # (pid, file): one per process, emptied before each use


def _stderr_sink() -> IO[bytes]:
    """The empty file that catches stderr: created once per process, as a folder of photos decodes thousands of
    them (a temporary file each cost ≈ 0.1 ms); a forked child makes its own, the parent's offset being shared."""
    global _stderr_file
    if _stderr_file is None or _stderr_file[0] != os.getpid():
        _stderr_file = (os.getpid(), tempfile.TemporaryFile())
    sink = _stderr_file[1]
    sink.seek(0)
    sink.truncate()
    return sink


@contextmanager
def _stderr_lines() -> Iterator[list[str]]:
    """Catch what C libraries (libpng, libjpeg) print to the process's stderr, as lines, instead of showing it.

    Why: a damaged photo makes libpng print its own lines before OpenCV returns; the user should see one line
    per problem, naming the file. Only the short decode call is wrapped.
    """
    lines: list[str] = []
    with _stderr_lock:
        sink = _stderr_sink()
        try:
            sys.stderr.flush()
            saved = os.dup(2)
        except (OSError, ValueError):  # no real stderr (embedded interpreters): nothing to catch
            yield lines
            return
        os.dup2(sink.fileno(), 2)
        try:
            yield lines
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines += [ln.strip() for ln in sink.read().decode(errors="replace").splitlines() if ln.strip()]


class Untimed(Exception):
    """A stream whose packets have no timestamps, or whose decode timestamps go back: only a full decode knows the
    frames' times (``packet_times`` stops with this; its callers fall back to decoding)."""


def packet_times(container: av.container.InputContainer,
                 stream: av.video.stream.VideoStream) -> Iterator[tuple[int, int | None]]:  # fmt: skip
    """(pts, dts) of every packet of ``stream``, in decode order, from a demux-only pass.

    The one rule for trusting packet timestamps without decoding (the reader's --start seek plan and the segment
    planner both use it): empty packets are skipped; a packet without pts, or a dts that goes back, raises
    ``Untimed``.
    """
    last_dts = None
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if packet.pts is None or (packet.dts is not None and last_dts is not None and packet.dts < last_dts):
            raise Untimed
        last_dts = packet.dts if packet.dts is not None else last_dts
        yield packet.pts, packet.dts
