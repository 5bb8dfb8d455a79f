"""Streaming decode with exact presentation times, rotation applied, frames sampled by time.

Why PyAV rather than cv2.VideoCapture: it gives each frame's PTS (right for variable frame rate), the display
matrix (phone clips), and zero-copy views of the 4:2:0 planes the detector and classifier read from.
A reader thread decodes ahead into a bounded queue, so memory stays flat however long the video is.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Generator, Iterator
from pathlib import Path

import av
import cv2
import numpy as np

from fer_batch.errors import DecodeError, StreamBroken, StreamDamaged, describe
from fer_batch.media.orientation import rotate
from fer_batch.media.probe import (
    MAX_BAD_PACKETS,
    Untimed,
    VideoInfo,
    open_input,
    packet_times,
    read_image,
    video_stream,
)
from fer_batch.media.sampling import Clock, Sampler
from fer_batch.options import Options
from fer_batch.planes import Luma
from fer_batch.types import Decoded

log = logging.getLogger(__name__)

# a stream is complete when its last frame ends within this many frame steps (or seconds) of its stated length
END_SLACK_FRAMES = 2.5
END_SLACK_S = 0.1


class ReaderImages(enum.Enum):
    """Which images the reader makes besides the luma plane of analysed frames.

    NONE: nothing more (a gray classifier). ANALYSED: colour for analysed frames (video frames give their 4:2:0
    planes, photos keep their BGR). ALL: BGR for every frame. RENDER: every frame's 4:2:0 planes, and BGR only where
    the renderer cannot use the planes (odd sizes, full range, photos).
    """

    NONE = enum.auto()
    ANALYSED = enum.auto()
    ALL = enum.auto()
    RENDER = enum.auto()


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
        view: np.ndarray = np.frombuffer(memoryview(p), np.uint8).reshape(-1, p.line_size)[:ph, :pw]
        return view

    full = frame.format.name == "yuvj420p" or int(frame.color_range or 0) == 2
    return plane(0, w, h), plane(1, cw, ch), plane(2, cw, ch), full


def from_bgr(index: int, t: float, bgr: np.ndarray, small_wh: tuple[int, int] | None,
             keep_bgr: bool = True) -> Decoded:  # fmt: skip
    """An analysed frame from a BGR image (a photo, a camera frame), which has no planes to cut regions from;
    ``small_wh`` is the detector's input size (None: no detector image)."""
    small = None
    if small_wh is not None:
        small = cv2.cvtColor(cv2.resize(bgr, small_wh, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
    return Decoded(index=index, time_s=t, analyse=True, gray=cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), small=small,
                   bgr=bgr if keep_bgr else None)  # fmt: skip


class FrameReader:
    """Iterates ``Decoded`` frames of one input, decoding in a background thread into a bounded queue.

    ``images`` says which images it makes besides the analysed frames' luma (see ``ReaderImages``); ``scan_size``
    is the detector's input size for this input, made here only for analysed photos (video frames keep their planes,
    and the detector scales those itself); without it a photo gets no detector image.
    Counters ``decoded`` and ``analysed`` are final once iteration ends; a stream that breaks midway raises
    ``StreamBroken`` after the frames before the damage.
    """

    def __init__(self, path: Path, info: VideoInfo, options: Options, *, scan_size: tuple[int, int] | None = None,
                 images: ReaderImages = ReaderImages.NONE, queue_size: int = 64,
                 decode_threads: int = 1) -> None:  # fmt: skip
        self.path, self.info, self.options = path, info, options
        self.images = images
        self.small_wh = scan_size
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
        want_bgr = self.images is ReaderImages.ALL or (
            isinstance(frame, np.ndarray) and self.images in (ReaderImages.ANALYSED, ReaderImages.RENDER)
        )
        rot, mirror = self.info.rotation, self.info.mirror
        item = Decoded(index=index, time_s=t, analyse=analyse)
        if isinstance(frame, np.ndarray):  # a photo, already BGR
            if analyse:
                return from_bgr(index, t, frame, self.small_wh, keep_bgr=want_bgr)
            item.bgr = frame if want_bgr else None
            return item
        if analyse or self.images is ReaderImages.RENDER:
            y, u, v, full_range = yuv_planes(frame)
            y, u, v = rotate(y, rot, mirror), rotate(u, rot, mirror), rotate(v, rot, mirror)
            item.yuv = (y, u, v)  # the detector's small image is made from these only for frames it scans
            if analyse:
                item.gray = Luma(y, limited=not full_range)  # mapped to full range only where a crop reads it
            if self.images is ReaderImages.RENDER and (full_range or y.shape[0] % 2 or y.shape[1] % 2):
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
        seek = self.options.sampling.start is not None and self.options.sampling.start > 0
        while True:  # at most twice: seeking, then (if the seek cannot be trusted) from the beginning
            self.damaged, self._damage_reason = 0, ""
            self._last_duration = 0.0  # the last decoded frame's own duration (s), where the container gives one
            try:
                container = open_input(self.path)
            except av.error.FFmpegError as e:
                raise DecodeError(describe(e)) from None
            with container:
                trusted = yield from self._decode_pass(container, seek)
            if trusted:
                break
            log.debug(
                "%s: seek to %.3f s not exact, decoding from the beginning", self.path, self.options.sampling.start
            )
            seek = False
        if self.damaged:
            expected = f" of {self.info.frames}" if self.info.frames else ""
            raise StreamDamaged(f"{self.damaged} damaged packet(s) skipped ({self._damage_reason}); "
                                f"{self.decoded}{expected} frames decoded")  # fmt: skip

    def _decode_pass(self, container: av.container.InputContainer,
                     seek: bool) -> Generator[tuple[int, float, av.VideoFrame], None, bool]:  # fmt: skip
        """One decoding pass (seeking to --start if asked); returns False where a seek turned out untrustworthy."""
        start, end = self.options.sampling.start, self.options.sampling.end
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
                    clock.last = float(frame.pts * (stream.time_base or 0))
                    continue
            t = clock.time(frame.pts)
            self._last_duration = float(frame.duration * stream.time_base) if frame.duration and stream.time_base else 0
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
        self._damage_reason = self._damage_reason or describe(e)
        if in_a_row >= MAX_BAD_PACKETS:
            raise StreamBroken(f"stream broken after {self.decoded} frames: {describe(e)}")

    def _seek_plan(self, container: av.container.InputContainer,
                   stream: av.video.stream.VideoStream) -> tuple[int, int | None, float | None] | None:  # fmt: skip
        """Count the packets before --start and seek to the keyframe before it; None where that cannot be trusted.

        Returns (packets with pts < start, pts of the first packet at/after start, last time before it).
        """
        start, tb = self.options.sampling.start, stream.time_base
        assert start is not None
        if tb is None:
            return None
        count, first, last_before = 0, None, None
        try:
            for pts, dts in packet_times(container, stream):
                if float(pts * tb) < start - 1e-9:
                    count += 1
                    t_before = float(pts * tb)
                    last_before = t_before if last_before is None else max(last_before, t_before)
                elif first is None or pts < first:
                    first = pts
                # packets come in decode order and pts >= dts: once dts passes the first wanted pts, nothing later
                # can be earlier
                if first is not None and dts is not None and dts >= first:
                    break
            if first is not None:
                container.seek(first, stream=stream, backward=True, any_frame=False)
        except Untimed:
            return None  # no timestamps, or timestamps that go back: only a full decode knows the times
        except av.error.FFmpegError:
            return None
        return count, first, last_before

    def _check_complete(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                        count: int, clock: Clock) -> None:  # fmt: skip
        """Catch files cut short without a decoder error: frames that end well before the stream's stated length.

        Judged by time, not by the header's frame count: edit lists and encoders that miscount make complete files
        hold fewer frames than the header claims, while a file cut short stops early in time. The last frame (plus
        its duration) must reach the stated end within ``END_SLACK_FRAMES`` frames.
        """
        if self.damaged:
            return  # the damage is the reason, reported by the caller
        if stream.duration and stream.time_base:  # the video stream's own length, where the header has one
            begin, total = float((stream.start_time or 0) * stream.time_base), float(stream.duration * stream.time_base)
        elif container.duration and len(container.streams) == 1:  # otherwise audio may rightly run longer
            begin, total = (container.start_time or 0) / 1e6, container.duration / 1e6
        else:
            return
        last_t, dt = clock.last, clock.dt
        shown_for = max(dt, self._last_duration)  # a variable-rate stream's last frame may stay on screen longer
        if last_t is not None and last_t - begin + shown_for < total - max(END_SLACK_S, END_SLACK_FRAMES * dt):
            frames = f" ({count} of {self.info.frames} frames)" if self.info.frames else ""
            raise StreamBroken(f"stream ended at {last_t - begin:.2f} s of {total:.2f} s{frames}")

    def _produce(self) -> None:
        sampler = Sampler(self.options)
        held: dict[int, tuple[float, av.VideoFrame | np.ndarray]] = {}

        def emit(decisions: list[tuple[int, bool]]) -> None:
            for idx, analyse in decisions:
                t, frame = held.pop(idx)
                self.analysed += analyse
                if self.images in (ReaderImages.ALL, ReaderImages.RENDER) or analyse:
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
