"""Streaming decode with exact presentation times, rotation applied, frames sampled by time.

Why PyAV rather than cv2.VideoCapture: it gives each frame's PTS (right for variable frame rate), the display
matrix (phone clips), and lets one ``reformat`` call scale and convert to the detector's small RGB image.
A reader thread decodes ahead into a bounded queue, so memory stays flat however long the video is.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import re
import sys
import tempfile
import threading
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from fer_batch.media.imagesize import image_size
from fer_batch.options import Options
from fer_batch.planes import LIMITED_TO_FULL as LIMITED_TO_FULL  # re-exported: the decoder's image helpers
from fer_batch.planes import Luma
from fer_batch.planes import yuv_to_rgb as yuv_to_rgb
from fer_batch.types import Decoded as Decoded  # re-exported: what the reader yields

log = logging.getLogger(__name__)
# OpenCV's own warnings (e.g. about damaged files) would print past our one line per problem
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts",
     ".m2ts", ".ogv", ".mxf", ".vob", ".dv", ".y4m", ".gif"}
)  # fmt: skip


class DecodeError(RuntimeError):
    """The input cannot be opened or decoded; the message is the reason, without the path."""


class StreamBroken(DecodeError):
    """Decoding stopped part-way; the frames before the damage were delivered."""


class StreamDamaged(StreamBroken):
    """Some packets could not be decoded and were skipped; every other frame was delivered."""


MAX_BAD_PACKETS = 200  # packets in a row that fail to demux or decode before the rest of a stream is given up


class Clock:
    """Presentation times in seconds, made to go forward.

    Why: concatenated transport streams (and cameras restarted mid-file) restart their timestamps; taken as they
    are, the second part would overlap the first and sampling by time (``--fps``) would skip it. A jump back
    continues the time line one frame step after the last frame; frames without any timestamp do the same.
    """

    def __init__(self, time_base: Fraction | None, dt: float) -> None:
        self.time_base, self.dt = time_base, dt
        self.offset = 0.0
        self.last: float | None = None
        self.jumps = 0

    def time(self, pts: int | None) -> float:
        if pts is None or self.time_base is None:
            t = 0.0 if self.last is None else self.last + self.dt
        else:
            t = float(pts * self.time_base) + self.offset
            if self.last is not None and t < self.last - 1e-9:
                self.offset += self.last + self.dt - t
                t = self.last + self.dt
                self.jumps += 1
        self.last = t
        return t


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


# Smallest face side (px, at the detector's input) that CenterFace finds reliably: on the crowd photo, scanning at
# 1280 px wide (faces >= 26 px shrunk to >= 16 px) kept 93% of a full-size pass's faces, at 1024 px only 81%.
DETECTABLE_PX = 16
# ...but --min-face raises a full scan's input to at most this many pixels (what a 4K frame gets for the default
# --min-face 24): CenterFace's activations take hundreds of bytes per input pixel, and an 8K frame scanned at 2/3
# scale took gigabytes per call (benchmarks/memory_large.py). Beyond 4K the smallest face found grows instead.
MAX_SCAN_PIXELS = 2560 * 1440
SCAN_PIXELS_LIMIT = 16_000_000  # any full scan, --det-size 0 ("full size") included: 4000x4000, about 5 GB


def small_size(width: int, height: int, det_size: int, min_face: int = 0) -> tuple[int, int]:
    """Detector input size: longest side ``det_size``, never upscaled, both sides multiples of 32.

    ``min_face`` raises the scale so a face of that size still spans ``DETECTABLE_PX`` at the detector's input:
    small faces vanish first when the input shrinks, and a user who asks for them must not lose them. The raise
    stops at ``MAX_SCAN_PIXELS``, so memory stays bounded on 8K frames and huge photos.
    """
    s = 1.0 if det_size <= 0 else min(1.0, det_size / max(width, height))
    if min_face > 0:
        raised = min(DETECTABLE_PX / min_face, math.sqrt(MAX_SCAN_PIXELS / max(1, width * height)))
        s = min(1.0, max(s, raised))
    s = min(s, math.sqrt(SCAN_PIXELS_LIMIT / max(1, width * height)))  # even where --det-size asks for more
    return max(32, math.ceil(width * s / 32) * 32), max(32, math.ceil(height * s / 32) * 32)


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


class Sampler:
    """Decides which frames are analysed: all, every N-th, or the one nearest each multiple of 1/fps seconds.

    The fps rule needs one frame of look-ahead (the nearest frame to a target may be the next one), so
    ``push`` returns the previous frame's decision and ``flush`` the last one's.
    """

    def __init__(self, options: Options) -> None:
        self.fps, self.every = options.fps, options.every
        self._pending: tuple[int, float] | None = None
        self._last_dt: float | None = None  # the last frame's duration, to know where the video ends
        self._pending_mark = False
        self._k: int | None = None  # next target is k / fps
        self._count = 0

    def push(self, index: int, t: float) -> list[tuple[int, bool]]:
        if self.fps is None:
            n, self._count = self._count, self._count + 1
            return [(index, self.every is None or n % self.every == 0)]
        period = 1.0 / self.fps
        if self._k is None:  # targets from half a period before the first frame: they map to it
            self._k = math.ceil((t - 0.5 * period) * self.fps - 1e-9)
        mark_cur = False
        last = self._last_target(t, period)
        if last >= self._k:  # targets k..last fall in (previous frame, this frame]: each goes to the nearer one
            # nearer to the previous frame means before the midpoint, so the first and last target decide it all
            # (O(1) per frame, whatever the rate: --fps 1e4 on an hour-long video would be 36 million targets)
            first_t, last_t = self._k * period, last * period
            pending = self._pending
            if pending is not None and abs(first_t - pending[1]) <= abs(t - first_t):
                self._pending_mark = True
            if pending is None or abs(last_t - pending[1]) > abs(t - last_t):
                mark_cur = True
            self._k = last + 1
        out = [] if self._pending is None else [(self._pending[0], self._pending_mark)]
        if self._pending is not None:
            self._last_dt = t - self._pending[1]
        self._pending, self._pending_mark = (index, t), mark_cur
        return out

    def _last_target(self, t: float, period: float) -> int:
        """The largest k with ``k * period <= t`` (within 1e-9 s), exactly as a loop over k would find it."""
        k = math.floor((t + 1e-9) / period)
        while (k + 1) * period <= t + 1e-9:
            k += 1
        while k * period > t + 1e-9:
            k -= 1
        return k

    def flush(self) -> list[tuple[int, bool]]:
        if self.fps is None or self._pending is None:
            return []
        index, t = self._pending
        assert self._k is not None
        shown_until = t + (self._last_dt or 0.0)  # the last frame stays on screen for one more frame step
        if self._k / self.fps < min(shown_until, t + 0.5 / self.fps) - 1e-9:  # a target the last frame shows
            self._pending_mark = True
        out = [(index, self._pending_mark)]
        self._pending = None
        return out


def yuv_planes(frame: av.VideoFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """Zero-copy views of a 4:2:0 frame's planes (other formats are converted once) and whether it is full range.

    Why: converting a whole 720p frame to RGB or gray with swscale costs more than decoding it; the detector
    needs only a small RGB image and the classifier only gray crops, both cheap to make from the planes.
    """
    if frame.format.name not in ("yuv420p", "yuvj420p"):
        frame = frame.reformat(format="yuv420p")
    w, h = frame.width, frame.height
    cw, ch = (w + 1) // 2, (h + 1) // 2

    def plane(i: int, pw: int, ph: int) -> np.ndarray:
        p = frame.planes[i]
        return np.frombuffer(p, np.uint8).reshape(-1, p.line_size)[:ph, :pw]

    full = frame.format.name == "yuvj420p" or int(frame.color_range or 0) == 2
    return plane(0, w, h), plane(1, cw, ch), plane(2, cw, ch), full


def from_bgr(index: int, t: float, bgr: np.ndarray, small_wh: tuple[int, int], keep_bgr: bool = True) -> Decoded:
    """An analysed frame from a BGR image (a photo, a camera frame), which has no planes to cut regions from."""
    small = cv2.cvtColor(cv2.resize(bgr, small_wh, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return Decoded(index=index, time_s=t, analyse=True, gray=cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), small=small,
                   bgr=bgr if keep_bgr else None)  # fmt: skip


def rotate(image: np.ndarray, rotation: int, mirror: bool = False) -> np.ndarray:
    """Apply a counter-clockwise display rotation (multiples of 90 degrees), then a left-right mirror."""
    k = (round(rotation / 90)) % 4
    if not k and not mirror:
        return image
    out = np.rot90(image, k) if k else image
    return np.ascontiguousarray(out[:, ::-1] if mirror else out)


def _matrix_view(image: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``image`` as the display matrix ``m`` shows it (FFmpeg: displayed (x', y') = (a x + c y, b x + d y))."""
    a, b, c, d = np.sign(m[0]), np.sign(m[1]), np.sign(m[3]), np.sign(m[4])
    if a == 0 and d == 0:  # axes swapped: rotation by 90 or 270, possibly mirrored
        out = np.swapaxes(image, 0, 1)
        return out[:: -1 if b < 0 else 1, :: -1 if c < 0 else 1]
    return image[:: -1 if d < 0 else 1, :: -1 if a < 0 else 1]


def orientation(frame: av.VideoFrame) -> tuple[int, bool]:
    """(counter-clockwise rotation, mirror) that turn a decoded frame into the displayed one.

    Why not ``frame.rotation`` alone: it is the rotation part of the display matrix, so a mirrored clip (front
    cameras, some editors) would be shown turned by 180 degrees instead of mirrored. The matrix is matched
    against the eight ways of turning and mirroring a picture.
    """
    rotation = int(frame.rotation or 0)
    matrix = next((sd for sd in frame.side_data if str(getattr(sd, "type", "")).endswith("DISPLAYMATRIX")), None)
    if matrix is None:
        return rotation, False
    m = np.frombuffer(bytes(matrix)[:36], dtype="<i4").astype(np.int64)
    probe_img = np.arange(6).reshape(2, 3)
    shown = _matrix_view(probe_img, m)
    for mirror in (False, True):
        for k in range(4):
            if np.array_equal(rotate(probe_img, 90 * k, mirror), shown):
                return (rotation if not mirror and k == round(rotation / 90) % 4 else 90 * k), mirror
    return rotation, False  # a matrix that is not a quarter turn: keep FFmpeg's rotation


def open_input(path: str | os.PathLike[str]) -> av.container.InputContainer:
    """``av.open`` for a file on disk, also where its name is not valid UTF-8 (``bad\\xffname.mp4``).

    Why: PyAV passes names to FFmpeg as UTF-8 and fails on such a name, which Linux allows; the file is then
    handed to FFmpeg already open (FFmpeg reads and seeks it through Python).
    """
    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return av.open(open(name, "rb"))  # noqa: SIM115 — the container owns it until it is closed
    return av.open(name)


def video_stream(container: av.container.InputContainer) -> av.video.stream.VideoStream:
    """The video stream a player shows: FFmpeg's best (the default-disposition one first), never cover art.

    Why not ``streams.video[0]``: a file with several video streams (a thumbnail track, a second camera) marks
    the one to show as default, and that need not be the first.
    """
    videos = list(container.streams.video)
    if not videos:
        kinds = sorted({s.type for s in container.streams}) or ["nothing"]
        raise DecodeError(f"no video stream (contains {', '.join(kinds)})")
    pictures = [s for s in videos if s.disposition & av.stream.Disposition.attached_pic]
    best = container.streams.best("video")
    if best is not None and best not in pictures:
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
        img = read_image(path)
        if max_pixels is not None:
            check_size(img.shape[1], img.shape[0], max_pixels)
        return VideoInfo(width=img.shape[1], height=img.shape[0], rotation=0, fps=None, duration_s=0.0, frames=1,
                         is_image=True)  # fmt: skip
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
        raise DecodeError(error_reason(e)) from None


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


def error_reason(e: BaseException) -> str:
    """An OS or FFmpeg error's own words on one line (the path is named by whoever reports it).

    pyarrow's I/O errors carry no ``strerror`` but end in "[errno N] ..."; they read as the system's words too
    ("No space left on device"), not as "Error writing bytes to file. Detail: ...".
    """
    msg = str(getattr(e, "strerror", None) or e)
    found = re.search(r"\[errno (\d+)\]", msg) if isinstance(e, OSError) else None
    return os.strerror(int(found.group(1))) if found else " ".join(msg.split())


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


@contextmanager
def _stderr_lines() -> Iterator[list[str]]:
    """Catch what C libraries (libpng, libjpeg) print to the process's stderr, as lines, instead of showing it.

    Why: a damaged photo makes libpng print its own lines before OpenCV returns; the user should see one line
    per problem, naming the file. Only the short decode call is wrapped.
    """
    lines: list[str] = []
    with _stderr_lock, tempfile.TemporaryFile() as sink:
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


class FrameReader:
    """Iterates ``Decoded`` frames of one input, decoding in a background thread into a bounded queue.

    ``need_bgr`` is "none", "analysed" (a colour classifier: photos keep their BGR, video frames give their planes),
    "all" (BGR for every frame) or "render" (every frame's 4:2:0 planes, and BGR only where the renderer cannot use
    the planes: odd sizes, full range, photos).
    Counters ``decoded`` and ``analysed`` are final once iteration ends; a stream that breaks midway raises
    ``StreamBroken`` after the frames before the damage.
    """

    def __init__(self, path: Path, info: VideoInfo, options: Options, need_bgr: str = "none",
                 queue_size: int = 64, decode_threads: int = 1) -> None:  # fmt: skip
        self.path, self.info, self.options = path, info, options
        self.need_bgr = need_bgr
        self.small_wh = small_size(info.width, info.height, options.det_size, options.min_face)
        self.decode_threads = decode_threads
        self.decoded = 0
        self.analysed = 0
        self.damaged = 0  # packets that could not be demuxed or decoded, skipped
        self._damage_reason = ""
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(2, queue_size))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- producer side -------------------------------------------------------------------------------------
    def _convert(self, index: int, t: float, analyse: bool, frame: av.VideoFrame | np.ndarray) -> Decoded:
        # video frames give colour classifiers their planes; only photos (no planes) keep their BGR for them
        want_bgr = self.need_bgr == "all" or (isinstance(frame, np.ndarray) and self.need_bgr in ("analysed", "render"))
        rot, mirror = self.info.rotation, self.info.mirror
        item = Decoded(index=index, time_s=t, analyse=analyse)
        if isinstance(frame, np.ndarray):  # a photo, already BGR
            if analyse:
                return from_bgr(index, t, frame, self.small_wh, keep_bgr=want_bgr)
            item.bgr = frame if want_bgr else None
            return item
        if analyse or self.need_bgr == "render":
            y, u, v, full_range = yuv_planes(frame)
            y, u, v = rotate(y, rot, mirror), rotate(u, rot, mirror), rotate(v, rot, mirror)
            item.yuv = (y, u, v)  # the detector's small image is made from these only for frames it scans
            if analyse:
                item.gray = Luma(y, limited=not full_range)  # mapped to full range only where a crop reads it
            if self.need_bgr == "render" and (full_range or y.shape[0] % 2 or y.shape[1] % 2):
                want_bgr = True  # the renderer passes 4:2:0 planes straight to the encoder only where it can
        if want_bgr:
            item.bgr = rotate(frame.to_ndarray(format="bgr24"), rot, mirror)
        return item

    def _frames(self) -> Iterator[tuple[int, float, av.VideoFrame | np.ndarray]]:
        """(index, time_s, frame) in presentation order, within --start/--end.

        With a --start, the reader seeks: a demux-only pass counts the video packets before the start (cheap, no
        decoding), so ``index`` stays the frame's decode index in the whole video, then it seeks to the keyframe
        before the start and decodes from there. Where that cannot be trusted (packets without timestamps or
        going back, a seek that lands after the first wanted frame) it decodes from the beginning instead.
        Damaged packets are skipped and counted; a stream with any raises ``StreamDamaged`` at its end.
        """
        if self.info.is_image:
            image = read_image(self.path)
            self.decoded = 1
            yield 0, 0.0, image
            return
        seek = self.options.start is not None and self.options.start > 0
        while True:  # at most twice: seeking, then (if the seek cannot be trusted) from the beginning
            self.damaged, self._damage_reason = 0, ""
            try:
                container = open_input(self.path)
            except av.error.FFmpegError as e:
                raise DecodeError(error_reason(e)) from None
            with container:
                trusted = yield from self._decode_pass(container, seek)
            if trusted:
                break
            log.debug("%s: seek to %.3f s not exact, decoding from the beginning", self.path, self.options.start)
            seek = False
        if self.damaged:
            expected = f" of {self.info.frames}" if self.info.frames else ""
            raise StreamDamaged(f"{self.damaged} damaged packet(s) skipped ({self._damage_reason}); "
                                f"{self.decoded}{expected} frames decoded")  # fmt: skip

    def _decode_pass(self, container: av.container.InputContainer,
                     seek: bool) -> Generator[tuple[int, float, av.VideoFrame], None, bool]:  # fmt: skip
        """One decoding pass (seeking to --start if asked); returns False where a seek turned out untrustworthy."""
        start, end = self.options.start, self.options.end
        stream = video_stream(container)
        stream.thread_type = "AUTO" if self.decode_threads > 1 else "SLICE"
        stream.codec_context.thread_count = self.decode_threads
        clock = Clock(stream.time_base, 1.0 / float(stream.average_rate) if stream.average_rate else 1 / 30)
        index, expect = 0, None  # expect: pts of the first frame to keep after a seek
        if seek:
            plan = self._seek_plan(container, stream)
            if plan is None:
                return False
            index, expect, clock.last = plan
            self.decoded = index
            if expect is None:  # nothing at or after --start
                if end is None:
                    self._check_complete(container, stream, index, clock)
                return True
        yielded = False
        for frame in self._tolerant_frames(container, stream):
            if expect is not None and not yielded:  # after a seek: drop frames before the first wanted
                if frame.pts is None or frame.pts > expect:
                    return False  # the seek cannot be trusted: decode from the beginning
                if frame.pts < expect:
                    clock.last = float(frame.pts * stream.time_base)
                    continue
            t = clock.time(frame.pts)
            i, index = index, index + 1
            self.decoded = index
            if start is not None and t < start - 1e-9:
                continue
            if end is not None and t >= end - 1e-9:
                return True
            yielded = True
            yield i, t, frame
            if self._stop.is_set():
                return True
        if clock.jumps:
            log.info("%s: timestamps jumped back %d time(s); the time line continues across them", self.path,
                     clock.jumps)  # fmt: skip
        if end is None:
            self._check_complete(container, stream, index, clock)
        return True

    def _tolerant_frames(self, container: av.container.InputContainer,
                         stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:  # fmt: skip
        """Decoded frames, skipping packets that fail to demux or decode (counted in ``damaged``).

        Why: one corrupt packet in a long recording must cost the frames it holds, not the rest of the file
        (players and ffmpeg go on too). ``MAX_BAD_PACKETS`` failures in a row end the stream as broken.
        """
        packets = container.demux(stream)
        in_a_row = 0
        while True:
            try:
                packet = next(packets)
            except StopIteration:
                return
            except av.error.FFmpegError as e:
                in_a_row += 1
                self._damage(e, in_a_row)
                packets = container.demux(stream)  # a demuxer error ends its iterator: read on after it
                continue
            try:
                frames = packet.decode()
            except av.error.FFmpegError as e:
                in_a_row += 1
                self._damage(e, in_a_row)
                continue
            if frames:
                in_a_row = 0
            for frame in frames:
                self._check_size(frame)
                yield frame

    def _check_size(self, frame: av.VideoFrame) -> None:
        """Every frame has the size the header announced: a stream that changes size mid-way (or whose header
        understates a huge one) ends there, as ``partial``, before boxes are mapped with the wrong scale."""
        w, h = (self.info.height, self.info.width) if self.info.rotation % 180 else (self.info.width, self.info.height)
        if (frame.width, frame.height) != (w, h):
            raise StreamBroken(f"frame size changed from {w}x{h} to {frame.width}x{frame.height} after "
                               f"{self.decoded} frames")  # fmt: skip

    def _damage(self, e: av.error.FFmpegError, in_a_row: int) -> None:
        self.damaged += 1
        self._damage_reason = self._damage_reason or error_reason(e)
        if in_a_row >= MAX_BAD_PACKETS:
            raise StreamBroken(f"stream broken after {self.decoded} frames: {error_reason(e)}")

    def _seek_plan(self, container: av.container.InputContainer,
                   stream: av.video.stream.VideoStream) -> tuple[int, int | None, float | None] | None:  # fmt: skip
        """Count the packets before --start and seek to the keyframe before it; None where that cannot be trusted.

        Returns (packets with pts < start, pts of the first packet at/after start, last time before it).
        """
        start, tb = self.options.start, stream.time_base
        assert start is not None
        if tb is None:
            return None
        count, first, last_before, last_dts = 0, None, None, None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None or (packet.dts is not None and last_dts is not None and packet.dts < last_dts):
                    return None  # no timestamps, or timestamps that go back: only a full decode knows the times
                last_dts = packet.dts if packet.dts is not None else last_dts
                if float(packet.pts * tb) < start - 1e-9:
                    count += 1
                    t_before = float(packet.pts * tb)
                    last_before = t_before if last_before is None else max(last_before, t_before)
                elif first is None or packet.pts < first:
                    first = packet.pts
                # packets come in decode order and pts >= dts: once dts passes the first wanted pts, nothing later
                # can be earlier
                if first is not None and packet.dts is not None and packet.dts >= first:
                    break
            if first is not None:
                container.seek(first, stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            return None
        return count, first, last_before

    def _check_complete(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                        count: int, clock: Clock) -> None:  # fmt: skip
        """Catch files cut short without a decoder error: fewer frames, or less time, than the header says."""
        if self.damaged:
            return  # the damage is the reason, reported by the caller
        expected = self.info.frames
        if expected and count < expected:
            raise StreamBroken(f"stream ended after {count} of {expected} frames")
        if stream.duration and stream.time_base:  # the video stream's own length, where the header has one
            begin, total = float((stream.start_time or 0) * stream.time_base), float(stream.duration * stream.time_base)
        elif container.duration and len(container.streams) == 1:  # otherwise audio may rightly run longer
            begin, total = (container.start_time or 0) / 1e6, container.duration / 1e6
        else:
            return
        last_t, dt = clock.last, clock.dt
        if last_t is not None and last_t - begin + dt < total - max(0.5, 3 * dt):
            raise StreamBroken(f"stream ended at {last_t - begin:.2f} s of {total:.2f} s")

    def _produce(self) -> None:
        sampler = Sampler(self.options)
        held: dict[int, tuple[float, av.VideoFrame | np.ndarray]] = {}

        def emit(decisions: list[tuple[int, bool]]) -> None:
            for idx, analyse in decisions:
                t, frame = held.pop(idx)
                self.analysed += analyse
                if self.need_bgr in ("all", "render") or analyse:
                    self._put(self._convert(idx, t, analyse, frame))
                else:
                    self._put(Decoded(index=idx, time_s=t, analyse=False))

        try:
            for i, t, frame in self._frames():
                held[i] = (t, frame)
                emit(sampler.push(i, t))
            emit(sampler.flush())
        except BaseException as e:  # noqa: BLE001 — handed to the consumer, which re-raises it in its thread
            if isinstance(e, StreamBroken):
                emit(sampler.flush())  # the frames before the damage are still delivered
            self._put(e)
        self._put(None)

    def _put(self, item: object) -> None:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # --- consumer side -------------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Decoded]:
        self._thread = threading.Thread(target=self._produce, name=f"decode:{self.path.name}", daemon=True)
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item  # type: ignore[misc]
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
