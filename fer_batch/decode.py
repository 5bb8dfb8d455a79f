"""Streaming decode with exact presentation times, rotation applied, frames sampled by time.

Why PyAV rather than cv2.VideoCapture: it gives each frame's PTS (right for variable frame rate), the display
matrix (phone clips), and lets one ``reformat`` call scale and convert to the detector's small RGB image.
A reader thread decodes ahead into a bounded queue, so memory stays flat however long the video is.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np

from fer_batch.options import Options
from fer_batch.planes import yuv_to_rgb as yuv_to_rgb  # re-exported: the decoder's image helpers
from fer_batch.types import Decoded as Decoded  # re-exported: what the reader yields

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".jp2", ".pgm", ".ppm"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ts", ".mts",
     ".m2ts", ".ogv", ".mxf", ".vob", ".dv", ".y4m", ".gif"}
)  # fmt: skip


class DecodeError(RuntimeError):
    """The input cannot be opened or decoded; the message is the reason, without the path."""


class StreamBroken(DecodeError):
    """Decoding stopped part-way; the frames before the damage were delivered."""


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


# Smallest face side (px, at the detector's input) that CenterFace finds reliably: on the crowd photo, scanning at
# 1280 px wide (faces >= 26 px shrunk to >= 16 px) kept 93% of a full-size pass's faces, at 1024 px only 81%.
DETECTABLE_PX = 16


def small_size(width: int, height: int, det_size: int, min_face: int = 0) -> tuple[int, int]:
    """Detector input size: longest side ``det_size``, never upscaled, both sides multiples of 32.

    ``min_face`` raises the scale so a face of that size still spans ``DETECTABLE_PX`` at the detector's input:
    small faces vanish first when the input shrinks, and a user who asks for them must not lose them.
    """
    s = 1.0 if det_size <= 0 else min(1.0, det_size / max(width, height))
    if min_face > 0:
        s = min(1.0, max(s, DETECTABLE_PX / min_face))
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
        while self._k * period <= t + 1e-9:
            target = self._k * period
            if self._pending is not None and abs(target - self._pending[1]) <= abs(t - target):
                self._pending_mark = True
            else:
                mark_cur = True
            self._k += 1
        out = [] if self._pending is None else [(self._pending[0], self._pending_mark)]
        if self._pending is not None:
            self._last_dt = t - self._pending[1]
        self._pending, self._pending_mark = (index, t), mark_cur
        return out

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


# limited ("MPEG") range luma 16..235 to full-range gray 0..255, as OpenCV's BGR2GRAY of swscale's BGR gives
LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)


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


def rotate(image: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counter-clockwise display rotation (multiples of 90 degrees)."""
    k = (round(rotation / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def probe(path: Path) -> VideoInfo:
    """Open the file once for its metadata (images too)."""
    if is_image(path):
        img = read_image(path)
        return VideoInfo(width=img.shape[1], height=img.shape[0], rotation=0, fps=None, duration_s=0.0, frames=1,
                         is_image=True)  # fmt: skip
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                kinds = sorted({s.type for s in container.streams}) or ["nothing"]
                raise DecodeError(f"no video stream (contains {', '.join(kinds)})")
            stream = container.streams.video[0]
            rotation = _stream_rotation(container)
            w, h = stream.codec_context.width, stream.codec_context.height
            if w <= 0 or h <= 0:
                raise DecodeError("video stream has no frame size")
            if rotation % 180:
                w, h = h, w
            duration = None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / 1e6
            fps = float(stream.average_rate) if stream.average_rate else None
            return VideoInfo(width=w, height=h, rotation=rotation, fps=fps, duration_s=duration,
                             frames=stream.frames or None)  # fmt: skip
    except av.error.FFmpegError as e:
        raise DecodeError(error_reason(e)) from None


def _stream_rotation(container: av.container.InputContainer) -> int:
    """Rotation from the first frame's display matrix (PyAV exposes it per frame)."""
    try:
        for frame in container.decode(video=0):
            return int(frame.rotation or 0)
    except av.error.FFmpegError:
        return 0  # an undecodable first frame is reported by the decoder itself
    return 0


def error_reason(e: BaseException) -> str:
    """An OS or FFmpeg error's own words on one line (the path is named by whoever reports it)."""
    msg = getattr(e, "strerror", None) or str(e)
    return " ".join(str(msg).split())


def read_image(path: Path) -> np.ndarray:
    """A photo as BGR (EXIF orientation applied by OpenCV)."""
    data = np.fromfile(str(path), dtype=np.uint8)
    img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if img is None:
        raise DecodeError("not a readable image" if data.size else "empty file")
    return img


@dataclass
class _Cursor:
    """Where a decoding pass is: the next frame's decode index and the latest frame's time."""

    index: int = 0
    last_t: float | None = None


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
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(2, queue_size))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- producer side -------------------------------------------------------------------------------------
    def _convert(self, index: int, t: float, analyse: bool, frame: av.VideoFrame | np.ndarray) -> Decoded:
        # video frames give colour classifiers their planes; only photos (no planes) keep their BGR for them
        want_bgr = self.need_bgr == "all" or (isinstance(frame, np.ndarray) and self.need_bgr in ("analysed", "render"))
        rot = self.info.rotation
        item = Decoded(index=index, time_s=t, analyse=analyse)
        if isinstance(frame, np.ndarray):  # a photo, already BGR
            if analyse:
                return from_bgr(index, t, frame, self.small_wh, keep_bgr=want_bgr)
            item.bgr = frame if want_bgr else None
            return item
        if analyse or self.need_bgr == "render":
            y, u, v, full_range = yuv_planes(frame)
            y, u, v = rotate(y, rot), rotate(u, rot), rotate(v, rot)
            item.yuv = (y, u, v)  # the detector's small image is made from these only for frames it scans
            if analyse:
                item.gray = np.ascontiguousarray(y) if full_range else cv2.LUT(y, LIMITED_TO_FULL)
            if self.need_bgr == "render" and (full_range or y.shape[0] % 2 or y.shape[1] % 2):
                want_bgr = True  # the renderer passes 4:2:0 planes straight to the encoder only where it can
        if want_bgr:
            item.bgr = rotate(frame.to_ndarray(format="bgr24"), rot)
        return item

    def _frames(self) -> Iterator[tuple[int, float, av.VideoFrame | np.ndarray]]:
        """(index, time_s, frame) in presentation order, within --start/--end.

        With a --start, the reader seeks: a demux-only pass counts the video packets before the start (cheap, no
        decoding), so ``index`` stays the frame's decode index in the whole video, then it seeks to the keyframe
        before the start and decodes from there. Where that cannot be trusted (packets without timestamps, a seek
        that lands after the first wanted frame) it decodes from the beginning instead, as without a --start.
        """
        if self.info.is_image:
            image = read_image(self.path)
            self.decoded = 1
            yield 0, 0.0, image
            return
        start = self.options.start
        if start is not None and start > 0:
            trusted = yield from self._decode(seek_to=start)
            if trusted:
                return
            log.debug("%s: seek to %.3f s not exact, decoding from the beginning", self.path, start)
        yield from self._decode(seek_to=None)

    def _decode(self, seek_to: float | None) -> Generator[tuple[int, float, av.VideoFrame], None, bool]:
        """One pass over the file, from its beginning or from the keyframe before ``seek_to``.

        Returns False, having yielded nothing, when a seek cannot be trusted; True once the pass is complete.
        """
        end = self.options.end
        try:
            container = av.open(str(self.path))
        except av.error.FFmpegError as e:
            raise DecodeError(error_reason(e)) from None
        with container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO" if self.decode_threads > 1 else "SLICE"
            stream.codec_context.thread_count = self.decode_threads
            fallback_dt = 1.0 / float(stream.average_rate) if stream.average_rate else 1 / 30
            cursor = _Cursor()
            expect: int | None = None  # pts of the first frame to keep after a seek
            if seek_to is not None:
                plan = self._seek(container, stream, seek_to)
                if plan is None:
                    return False
                cursor.index, expect, cursor.last_t = plan
                self.decoded = cursor.index
                if expect is None:  # nothing at or after --start
                    if end is None:
                        self._check_complete(container, cursor.index, cursor.last_t, fallback_dt)
                    return True
            try:
                outcome = yield from self._decoded_frames(container, stream, cursor, expect, fallback_dt)
                if outcome == "end" and end is None:
                    self._check_complete(container, cursor.index, cursor.last_t, fallback_dt)
            except av.error.FFmpegError as e:
                raise StreamBroken(f"stream broken after {cursor.index} frames: {error_reason(e)}") from None
            return outcome != "untrusted"

    def _decoded_frames(
        self, container: av.container.InputContainer, stream: av.VideoStream, cursor: _Cursor, expect: int | None,
        fallback_dt: float,
    ) -> Generator[tuple[int, float, av.VideoFrame], None, str]:
        """Decode and number the frames; returns "end" (end of stream), "stop" (--end or close) or "untrusted"
        (after a seek, the first frame decoded is later than the first one wanted, or has no timestamp)."""
        start, end, tb = self.options.start, self.options.end, stream.time_base
        yielded = False
        for packet in container.demux(stream):
            for frame in packet.decode():
                if expect is not None and not yielded:  # after a seek: drop frames before the first wanted
                    if frame.pts is None or frame.pts > expect:
                        return "untrusted"
                    if frame.pts < expect:
                        cursor.last_t = float(frame.pts * tb)
                        continue
                if frame.pts is not None and tb is not None:
                    t = float(frame.pts * tb)
                else:  # no timestamp at all (raw streams): continue from the previous one
                    t = 0.0 if cursor.last_t is None else cursor.last_t + fallback_dt
                cursor.last_t = t
                i, cursor.index = cursor.index, cursor.index + 1
                self.decoded = cursor.index
                if start is not None and t < start - 1e-9:
                    continue
                if end is not None and t >= end - 1e-9:
                    return "stop"
                yielded = True
                yield i, t, frame
                if self._stop.is_set():
                    return "stop"
        return "end"

    def _seek(self, container: av.container.InputContainer, stream: av.VideoStream,
              start: float) -> tuple[int, int | None, float | None] | None:  # fmt: skip
        """Seek to the keyframe before ``start``: (frames before it, pts of the first wanted, time of the last one
        before), or None where the packets cannot tell (no timestamps) or the seek fails."""
        if stream.time_base is None:
            return None
        try:
            plan = self._count_before(container, stream, start)
            if plan is not None and plan[1] is not None:
                container.seek(plan[1], stream=stream, backward=True, any_frame=False)
        except av.error.FFmpegError:
            return None
        return plan

    @staticmethod
    def _count_before(container: av.container.InputContainer, stream: av.VideoStream,
                      start: float) -> tuple[int, int | None, float | None] | None:  # fmt: skip
        """(packets with pts < start, pts of the first packet at/after start, last pts before) or None."""
        assert stream.time_base is not None
        tb = stream.time_base
        count, first, last_before = 0, None, None
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.pts is None:
                return None
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
        return count, first, last_before

    def _check_complete(self, container: av.container.InputContainer, count: int, last_t: float | None,
                        dt: float) -> None:  # fmt: skip
        """Catch files cut short without a decoder error: fewer frames, or less time, than the header says."""
        expected = self.info.frames
        if expected and count < expected:
            raise StreamBroken(f"stream ended after {count} of {expected} frames")
        stream = container.streams.video[0]
        if stream.duration and stream.time_base:  # the video stream's own length, where the header has one
            begin, total = float((stream.start_time or 0) * stream.time_base), float(stream.duration * stream.time_base)
        elif container.duration and len(container.streams) == 1:  # otherwise audio may rightly run longer
            begin, total = (container.start_time or 0) / 1e6, container.duration / 1e6
        else:
            return
        if last_t is not None:
            if last_t - begin + dt < total - max(0.5, 3 * dt):
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
