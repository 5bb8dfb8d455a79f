"""Annotated H.264 video: the source's frames with boxes, labels and probability bars, audio kept.

Why PyAV's libx264 and not cv2.VideoWriter: OpenCV's wheels cannot write H.264, and only PyAV lets us give every
frame the source's exact PTS (variable frame rate survives) and copy the audio packets untouched.

Output: H.264 yuv420p in MP4 with ``+faststart``, one output frame per source frame, the source's video time
base and PTS, no display matrix (frames arrive already rotated, so the file is stored at the displayed size).
yuv420p needs even sides: an odd width or height is padded by one replicated pixel at the right/bottom
(``scale`` = 1) or rounded to the nearest even size (other scales).

Drawing and encoding run in a writer thread fed through a bounded queue, so they overlap the analysis of the
next window; the file is written under a temporary name and renamed only on a clean exit.
"""

from __future__ import annotations

import colorsys
import io
import logging
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np

from fer_batch.atomic import AtomicPath
from fer_batch.decode import Decoded, VideoInfo
from fer_batch.types import Faces

log = logging.getLogger(__name__)

# audio codecs copied as they are; anything else (pcm, vorbis, ...) is re-encoded to AAC so players cope
COPY_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"})
FALLBACK_TIME_BASE = Fraction(1, 90000)
# superfast with macroblock-tree rate control back on: measured at 720p, half the CPU of veryfast (6-8 vs 11-16
# ms/frame) for 5-13 % more bytes and 0.1-0.5 dB less PSNR at the same crf; plain superfast (mbtree off) is
# 60-130 % larger. Encoding is most of the rendering cost, so this is the knob that matters.
SUPERFAST_PARAMS = "mbtree=1:rc-lookahead=10"

# BGR colours of the seven FER2013 labels; custom labels get evenly spaced hues instead
FER_COLOURS: dict[str, tuple[int, int, int]] = {
    "angry": (40, 40, 230),
    "disgust": (40, 160, 40),
    "fear": (170, 60, 160),
    "happy": (0, 210, 255),
    "sad": (210, 120, 30),
    "surprise": (0, 140, 255),
    "neutral": (170, 170, 170),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def palette(labels: list[str]) -> list[tuple[int, int, int]]:
    """One BGR colour per label: fixed for the FER labels, golden-ratio hues for any other."""
    out = []
    for k, label in enumerate(labels):
        fixed = FER_COLOURS.get(label.lower())
        if fixed is not None:
            out.append(fixed)
            continue
        r, g, b = colorsys.hsv_to_rgb((0.13 + 0.618034 * k) % 1.0, 0.75, 0.95)
        out.append((int(b * 255), int(g * 255), int(r * 255)))
    return out


def output_size(width: int, height: int, scale: float) -> tuple[int, int, int, int]:
    """(encoded width, height, drawn width, height): drawn is the resized frame, encoded adds the odd-side pad."""
    if scale == 1.0:
        return width + width % 2, height + height % 2, width, height
    w, h = max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))
    return w, h, w, h


@dataclass(frozen=True)
class Style:
    """Sizes of every drawn element, proportional to the frame so labels read the same from 360p to 4K."""

    unit: float  # 1.0 at 720p (shorter side)
    font: float
    thick: int
    box: int
    row: int  # bar-chart row height
    bar: int  # bar length at probability 1
    text_w: int  # width of the label column of the chart
    pad: int

    @staticmethod
    def for_size(width: int, height: int, labels: list[str]) -> Style:
        unit = max(min(width, height) / 720.0, 0.5)
        font = max(0.4, 0.55 * unit)  # HERSHEY_SIMPLEX at 0.4 is about 9 px tall: the smallest that reads well
        thick = max(1, round(1.4 * unit))
        (tw, th), _ = cv2.getTextSize(max(labels, key=len) if labels else "x", FONT, font * 0.85, thick)
        return Style(unit=unit, font=font, thick=thick, box=max(2, round(2.5 * unit)),
                     row=max(9, th + round(5 * unit)), bar=max(30, round(70 * unit)), text_w=tw + round(6 * unit),
                     pad=max(2, round(4 * unit)))  # fmt: skip


Image = np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]  # BGR, or 4:2:0 planes (Y, U, V)


@dataclass(frozen=True)
class Op:
    """One thing to draw, in frame pixels: a face's box, its label, or its bar chart."""

    kind: str  # box | label | bars
    rect: tuple[int, int, int, int]
    colour: tuple[int, int, int]
    text: str = ""
    probs: np.ndarray | None = None


class Painter:
    """Draws one frame's faces in place; cheap enough for every frame (a few cv2 calls per face)."""

    def __init__(self, labels: list[str], width: int, height: int) -> None:
        self.labels = labels
        self.colours = palette(labels)
        self.style = Style.for_size(width, height, labels)

    def draw(self, img: np.ndarray, faces: Faces, scale: float = 1.0) -> None:
        """Draw the faces onto the whole frame ``img`` (see ``layout`` for where things go)."""
        h, w = img.shape[:2]
        self.paint(img, self.layout(faces, scale, w, h))

    def layout(self, faces: Faces, scale: float, w: int, h: int) -> list[Op]:
        """What to draw where, in frame pixels: every box; then, largest face first, its label and chart where
        they cover no other label or chart.

        Why the rules: in a crowd, labels and charts of small faces would bury the picture; the box colour still
        says the emotion. A chart is drawn for faces at least half its height, a label for faces at least as tall
        as the label, each only where it is free (the largest face's chart is always drawn). Laying out before
        painting lets the renderer convert only the part of the frame that changes.
        """
        if not len(faces):
            return []
        ops: list[Op] = []
        boxes = np.round(faces.boxes * scale).astype(np.int64)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w - 1)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h - 1)
        probs = faces.probs if faces.probs is not None and len(self.labels) else None
        top = probs.argmax(axis=1) if probs is not None else np.full(len(faces), -1)
        colours = [self.colours[k] if k >= 0 else (255, 255, 255) for k in top]
        faces_rects = [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes]
        for i in range(len(faces)):
            ops.append(Op("box", faces_rects[i], colours[i]))
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        placed: list[tuple[int, int, int, int]] = []  # labels and charts laid out so far
        for rank, i in enumerate(order):
            x1, y1, x2, y2 = faces_rects[i]
            text = f"{self.labels[top[i]]} {probs[i, top[i]]:.2f}" if probs is not None else "face"
            tid = int(faces.track_id[i])
            if tid >= 0:
                text += f"  #{tid}"
            rect = self._label_rect(text, x1, y1, y2, w, h)
            if rank == 0 or (y2 - y1 >= rect[3] - rect[1] and not any(_overlap(rect, r) for r in placed)):
                ops.append(Op("label", rect, colours[i], text=text))
                placed.append(rect)
            if probs is None:
                continue
            chart = self._chart_place(faces_rects[i], faces_rects + placed, w, h, fallback=rank == 0)
            if chart is not None and (rank == 0 or 2 * (y2 - y1) >= chart[3] - chart[1]):
                ops.append(Op("bars", chart, colours[i], probs=probs[i]))
                placed.append(chart)
        return ops

    def paint(self, img: np.ndarray, ops: list[Op], origin: tuple[int, int] = (0, 0)) -> None:
        """Draw laid-out ``ops`` onto ``img``, whose top-left pixel is ``origin`` in frame pixels."""
        ox, oy = origin
        for op in ops:
            x1, y1, x2, y2 = op.rect
            rect = (x1 - ox, y1 - oy, x2 - ox, y2 - oy)
            if op.kind == "box":
                cv2.rectangle(img, rect[:2], rect[2:], op.colour, self.style.box, cv2.LINE_AA)
            elif op.kind == "label":
                self._label(img, op.text, rect, op.colour)
            else:
                self._bars(img, op.probs, rect)

    def extent(self, ops: list[Op]) -> tuple[int, int, int, int]:
        """The frame rectangle that painting ``ops`` can touch (box lines are centred on the box's edges)."""
        m = self.style.box + 2
        return (min(op.rect[0] for op in ops) - m, min(op.rect[1] for op in ops) - m,
                max(op.rect[2] for op in ops) + m + 1, max(op.rect[3] for op in ops) + m + 1)  # fmt: skip

    def _label_rect(self, text: str, x1: int, y1: int, y2: int, w: int, h: int) -> tuple[int, int, int, int]:
        s = self.style
        (tw, th), base = cv2.getTextSize(text, FONT, s.font, s.thick)
        bh = th + base + 2 * s.pad
        ty = y1 - bh if y1 - bh >= 0 else min(y2, h - bh)  # above the box, else just below it
        tx = max(0, min(x1, w - tw - 2 * s.pad))
        return tx, ty, tx + tw + 2 * s.pad, ty + bh

    def _label(self, img: np.ndarray, text: str, rect: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
        s = self.style
        tx, ty, tx2, ty2 = rect
        (_, th), _ = cv2.getTextSize(text, FONT, s.font, s.thick)
        cv2.rectangle(img, (tx, ty), (tx2, ty2), colour, -1)
        ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        cv2.putText(img, text, (tx + s.pad, ty + s.pad + th), FONT, s.font, ink, s.thick, cv2.LINE_AA)

    def _chart_place(self, box: tuple[int, int, int, int], taken: list[tuple[int, int, int, int]], w: int, h: int,
                     fallback: bool) -> tuple[int, int, int, int] | None:  # fmt: skip
        """Right of the face, else left, below or above: the first spot inside the frame that overlaps nothing."""
        s = self.style
        pw, ph = s.text_w + s.bar + 3 * s.pad, len(self.labels) * s.row + 2 * s.pad
        if pw > w or ph > h:
            return None  # a frame too small for the chart keeps just the box and label
        x1, y1, x2, y2 = box
        spots = [(x2 + s.pad, y1), (x1 - s.pad - pw, y1), (x1, y2 + s.pad), (x1, y1 - s.pad - ph)]
        clamped = [(max(0, min(x, w - pw)), max(0, min(y, h - ph))) for x, y in spots]
        for (x, y), (cx, cy) in zip(spots, clamped, strict=True):
            rect = (cx, cy, cx + pw, cy + ph)
            if (x, y) == (cx, cy) and not any(_overlap(rect, other) for other in taken if other != box):
                return rect
        if not fallback:
            return None
        cx, cy = clamped[0]  # nowhere free: beside the face, inside the frame
        return cx, cy, cx + pw, cy + ph

    def _bars(self, img: np.ndarray, p: np.ndarray, rect: tuple[int, int, int, int]) -> None:
        s = self.style
        px, py, px2, py2 = rect
        roi = img[py:py2, px:px2]
        cv2.addWeighted(roi, 0.35, np.zeros_like(roi), 0.65, 0.0, dst=roi)  # darkened panel behind the chart
        fs = s.font * 0.85
        for k in range(len(self.labels)):
            top = py + s.pad + k * s.row
            cv2.putText(img, self.labels[k], (px + s.pad, top + s.row - max(2, s.row // 5)), FONT, fs,
                        (235, 235, 235), max(1, s.thick - 1), cv2.LINE_AA)  # fmt: skip
            bx = px + 2 * s.pad + s.text_w
            length = int(round(float(np.clip(p[k], 0.0, 1.0)) * s.bar))
            cv2.rectangle(img, (bx, top + 1), (bx + s.bar, top + s.row - 2), (80, 80, 80), 1)
            if length > 0:
                cv2.rectangle(img, (bx, top + 1), (bx + length, top + s.row - 2), self.colours[k], -1)


def _i420(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One contiguous I420 image (the layout OpenCV and the yuv420p encoder take) from even-sized planes."""
    h, w = y.shape
    out = np.empty((h * 3 // 2, w), dtype=np.uint8)
    ys, us, vs = _i420_views(out, w, h)
    ys[:], us[:], vs[:] = y, u, v
    return out


def _i420_views(i420: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable Y, U and V views into an I420 image of ``w`` x ``h``."""
    flat = i420.reshape(-1)
    q = (w // 2) * (h // 2)
    return (
        flat[: w * h].reshape(h, w),
        flat[w * h : w * h + q].reshape(h // 2, w // 2),
        flat[w * h + q :].reshape(h // 2, w // 2),
    )


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


class Renderer:
    """Context manager writing the annotated MP4 of one video, one ``write`` per window of decoded frames.

    ``write`` takes every decoded frame of a window (``bgr`` filled) and the faces of its analysed frames; a frame
    that was not analysed shows the latest analysed frame's faces. ``start``/``end`` (seconds) trim the copied
    audio to the analysed range.
    """

    def __init__(self, source_path: Path, out_path: Path, info: VideoInfo, labels: list[str], *, scale: float = 1.0,
                 crf: int = 23, preset: str = "superfast", threads: int | None = None, queue_size: int = 8,
                 start: float | None = None, end: float | None = None) -> None:  # fmt: skip
        if not scale > 0:
            raise ValueError("--scale must be positive")
        self.source_path, self.path, self.info, self.labels = Path(source_path), Path(out_path), info, list(labels)
        self.scale, self.crf, self.preset = float(scale), crf, preset
        self.start, self.end = start, end
        self._target = AtomicPath(self.path)
        self.tmp = self._target.tmp
        self.enc_w, self.enc_h, self.draw_w, self.draw_h = output_size(info.width, info.height, self.scale)
        self.painter = Painter(self.labels, self.draw_w, self.draw_h)
        # one x264 thread keeps up with analysis up to 1080p (about 8 ms per 720p frame) and wastes least CPU
        # on the cores analysis needs; larger frames get two so encoding does not become the bottleneck
        self.threads = threads if threads is not None else (1 if self.enc_w * self.enc_h <= 1920 * 1088 else 2)
        self.frames_written = 0
        self.audio_mode: str | None = None  # "copy", "aac" or None (no audio)
        self._current = Faces()  # the latest analysed frame's faces
        self._queue: queue.Queue[tuple[Image, Faces, float] | None] = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._out: av.container.OutputContainer | None = None
        self._audio_in: av.container.InputContainer | None = None

    # --- main thread -------------------------------------------------------------------------------------------
    def __enter__(self) -> Renderer:
        self._target.__enter__()
        self.time_base, rate, audio_codec = FALLBACK_TIME_BASE, None, None
        try:
            with av.open(str(self.source_path)) as src:
                vs = src.streams.video[0] if src.streams.video else None
                self.time_base = (vs.time_base if vs is not None else None) or FALLBACK_TIME_BASE
                rate = vs.average_rate if vs is not None and vs.average_rate else None
                audio_codec = src.streams.audio[0].codec_context.name if src.streams.audio else None
        except av.error.FFmpegError as e:  # a photo format FFmpeg lacks: frames still come from OpenCV
            log.debug("%s: no stream information for rendering: %s", self.source_path, e)
        try:
            self._open_output(rate, audio_codec)
        except BaseException:
            self._discard()
            raise
        self._thread = threading.Thread(target=self._run, name=f"render:{self.path.name}", daemon=True)
        self._thread.start()
        return self

    def write(self, window: list[Decoded], faces: Faces) -> None:
        """Queue every frame of the window with the faces it shows (blocks while the writer is behind)."""
        for d in window:
            if d.analyse:
                self._current = faces.of_frame(d.index)
            image = d.bgr if d.bgr is not None else d.yuv
            if image is None:
                raise ValueError("the renderer needs every frame's image (FrameReader need_bgr='render')")
            self._put((image, self._current, d.time_s))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is None:
            return
        if exc_type is None:
            try:
                self._put(None)
            except RuntimeError:
                pass  # the writer failed: its error is raised below, after the partial file is removed
            self._thread.join()
        else:
            self._stop.set()
            self._thread.join(timeout=30)
        self._thread = None
        if exc_type is None and self._error is None:
            try:
                self._close_output()
                self._target.commit()
                return
            except BaseException:
                self._discard()
                raise
        self._discard()
        if exc_type is None and self._error is not None:
            raise self._error

    def _put(self, item: tuple[Image, Faces, float] | None) -> None:
        while True:
            if self._error is not None:
                raise RuntimeError(f"annotated video: {self._error}") from self._error
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _discard(self) -> None:
        for c in (self._out, self._audio_in):
            if c is not None:
                try:
                    c.close()
                except (av.error.FFmpegError, OSError, ValueError):
                    log.debug("closing %s after a failure", self.tmp, exc_info=True)
        self._out = self._audio_in = None
        self._target.discard()

    # --- output ------------------------------------------------------------------------------------------------
    def _open_output(self, rate: Fraction | None, audio_codec: str | None) -> None:
        out = av.open(str(self.tmp), "w", format="mp4", options={"movflags": "+faststart"})
        self._out = out
        options = {"crf": str(self.crf), "preset": self.preset}
        if self.preset == "superfast":
            options["x264-params"] = SUPERFAST_PARAMS
        vs = out.add_stream("libx264", rate=rate or 30, options=options)
        vs.width, vs.height, vs.pix_fmt = self.enc_w, self.enc_h, "yuv420p"
        vs.time_base = self.time_base
        vs.codec_context.time_base = self.time_base
        vs.codec_context.thread_count = self.threads
        self._video = vs
        self.audio_mode = None
        if audio_codec is None:
            return
        self._audio_in = av.open(str(self.source_path))
        ain = self._audio_in.streams.audio[0]
        if audio_codec in COPY_AUDIO and audio_codec in out.supported_codecs and _can_copy(ain):
            self._audio = out.add_stream_from_template(ain)
            self.audio_mode = "copy"
        else:
            rate_hz = ain.codec_context.sample_rate or 48000
            if rate_hz not in (av.codec.Codec("aac", "w").audio_rates or ()):
                rate_hz = 48000  # the resampler converts; the AAC encoder refuses odd rates
            self._audio = out.add_stream("aac", rate=rate_hz)
            channels = ain.codec_context.channels or 2
            self._audio.layout = "mono" if channels == 1 else "stereo"  # the AAC encoder's safe layouts
            self._audio.format = "fltp"
            self._audio.time_base = Fraction(1, rate_hz)
            self.audio_mode = "aac"
            log.info("%s: audio %s cannot be copied into MP4, re-encoding to AAC", self.source_path, audio_codec)

    def _close_output(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None
        if self._audio_in is not None:
            self._audio_in.close()
            self._audio_in = None

    # --- writer thread -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            audio = self._audio_packets()
            pending: tuple[float, av.Packet] | None = None
            last_pts: int | None = None
            audio_until = -math.inf  # audio is muxed up to the latest video time, so the file stays interleaved
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                if item is None:
                    break
                if self._stop.is_set():
                    return
                image, faces, t = item
                pts = round(t / self.time_base)
                if last_pts is not None and pts <= last_pts:  # a broken source: keep the muxer's order valid
                    log.warning("%s: non-increasing timestamp at %.6f s, shifted by one tick", self.source_path, t)
                    pts = last_pts + 1
                last_pts = pts
                frame = self._frame(image, faces)
                frame.pts, frame.time_base = pts, self.time_base
                self._mux_video(self._video.encode(frame))
                self.frames_written += 1
                audio_until = max(audio_until, t)
                pending = self._mux_audio(audio, pending, audio_until)
            self._mux_video(self._video.encode(None))
            self._mux_audio(audio, pending, math.inf)
        except BaseException as e:  # noqa: BLE001 — re-raised in the main thread by write() or __exit__
            self._error = e

    def _frame(self, image: Image, faces: Faces) -> av.VideoFrame:
        """The encoder's frame: BGR images are drawn on whole; 4:2:0 planes go to the encoder as they are, with
        only the part that the drawing covers converted to BGR and back (a fraction of the colour conversions)."""
        if isinstance(image, tuple):
            y, u, v = image
            h, w = y.shape
            if (self.draw_w, self.draw_h) == (w, h) == (self.enc_w, self.enc_h):
                return self._frame_from_planes(y, u, v, faces)
            image = cv2.cvtColor(_i420(y, u, v), cv2.COLOR_YUV2BGR_I420)
        bgr = image
        h, w = bgr.shape[:2]
        if (self.draw_w, self.draw_h) != (w, h):
            interp = cv2.INTER_AREA if self.draw_w < w else cv2.INTER_LINEAR
            img = cv2.resize(bgr, (self.draw_w, self.draw_h), interpolation=interp)
        elif len(faces):
            img = bgr.copy()  # the pipeline still owns the decoded image
        else:
            img = bgr  # nothing to draw: only read
        self.painter.draw(img, faces, self.draw_w / w)
        if (self.enc_w, self.enc_h) != (self.draw_w, self.draw_h):
            img = cv2.copyMakeBorder(img, 0, self.enc_h - self.draw_h, 0, self.enc_w - self.draw_w,
                                     cv2.BORDER_REPLICATE)  # fmt: skip
        yuv = cv2.cvtColor(img, cv2.COLOR_BGR2YUV_I420)
        return av.VideoFrame.from_ndarray(yuv, format="yuv420p")

    def _frame_from_planes(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, faces: Faces) -> av.VideoFrame:
        h, w = y.shape
        i420 = _i420(y, u, v)
        ops = self.painter.layout(faces, 1.0, w, h)
        if ops:
            x0, y0, x1, y1 = self.painter.extent(ops)
            x0, y0 = max(0, x0) // 2 * 2, max(0, y0) // 2 * 2  # 4:2:0: even corners, even sizes
            x1, y1 = min(w, (x1 + 1) // 2 * 2), min(h, (y1 + 1) // 2 * 2)
            ys, us, vs = _i420_views(i420, w, h)
            cy, cx = slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2)
            region = cv2.cvtColor(_i420(ys[y0:y1, x0:x1], us[cy, cx], vs[cy, cx]), cv2.COLOR_YUV2BGR_I420)
            self.painter.paint(region, ops, (x0, y0))
            ry, ru, rv = _i420_views(cv2.cvtColor(region, cv2.COLOR_BGR2YUV_I420), x1 - x0, y1 - y0)
            ys[y0:y1, x0:x1], us[cy, cx], vs[cy, cx] = ry, ru, rv
        return av.VideoFrame.from_ndarray(i420, format="yuv420p")

    def _mux_video(self, packets: list[av.Packet]) -> None:
        assert self._out is not None
        for p in packets:
            p.stream = self._video
            self._out.mux(p)

    def _mux_audio(self, audio: Iterator[tuple[float, av.Packet]], pending: tuple[float, av.Packet] | None,
                   until: float) -> tuple[float, av.Packet] | None:  # fmt: skip
        """Mux audio packets that start before ``until`` seconds; return the first later one, held back."""
        assert self._out is not None
        item = pending
        while True:
            if item is None:
                item = next(audio, None)
                if item is None:
                    return None
            if item[0] > until:
                return item
            self._out.mux(item[1])
            item = None

    def _audio_packets(self) -> Iterator[tuple[float, av.Packet]]:
        """(start time in seconds, packet for the output audio stream), trimmed to ``start``/``end``."""
        if self._audio_in is None:
            return
        ain = self._audio_in.streams.audio[0]
        start = -math.inf if self.start is None else self.start
        end = math.inf if self.end is None else self.end
        resampler = None
        if self.audio_mode == "aac":
            cc = self._audio.codec_context
            resampler = av.AudioResampler(format="fltp", layout=cc.layout, rate=cc.sample_rate)
        for packet in self._audio_in.demux(ain):
            if self._stop.is_set():
                return
            if packet.size == 0 or packet.pts is None or packet.time_base is None:
                continue
            t = float(packet.pts * packet.time_base)
            t_end = t + float((packet.duration or 0) * packet.time_base)
            if t_end <= start or t >= end:
                continue
            if resampler is None:
                packet.stream = self._audio
                yield t, packet
                continue
            for frame in packet.decode():
                for rf in resampler.resample(frame):
                    for out_packet in self._audio.encode(rf):
                        yield t, out_packet
        if resampler is not None:
            for rf in resampler.resample(None):
                for out_packet in self._audio.encode(rf):
                    yield math.inf, out_packet
            for out_packet in self._audio.encode(None):
                yield math.inf, out_packet


def _can_copy(stream: av.audio.stream.AudioStream) -> bool:
    """True when an MP4 muxer accepts this audio stream as it is (some codec parameters it rejects at the header)."""
    try:
        with av.open(io.BytesIO(), "w", format="mp4") as probe_out:
            probe_out.add_stream_from_template(stream)
            probe_out.start_encoding()
        return True
    except (av.error.FFmpegError, ValueError) as e:
        log.debug("audio stream copy refused: %s", e)
        return False


def render_table(video: Path, table: Path, out: Path, *, scale: float = 1.0) -> int:
    """Render ``video`` with the faces of a saved table (no model runs); returns the frames written.

    The table's ``frame`` column keys faces to decode indexes; a frame listed there counts as analysed (rows
    with a null ``face`` are analysed frames without faces), so the latest result stays on screen between them.
    """
    import pyarrow.parquet as pq

    from fer_batch.decode import FrameReader, probe
    from fer_batch.options import Options
    from fer_batch.sink import read_metadata

    meta = read_metadata(table) or {}
    tbl = pq.read_table(table)
    names = tbl.column_names
    labels = (meta.get("model") or {}).get("labels") or _labels_from_columns(names)
    cols = {c: tbl.column(c).to_numpy(zero_copy_only=False) for c in ("frame", "x", "y", "w", "h")}
    face = tbl.column("face").is_valid().to_numpy(zero_copy_only=False)
    track = tbl.column("track_id").fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    frame_ids = cols["frame"].astype(np.int64)
    sel = np.nonzero(face)[0]
    x, y = cols["x"][sel].astype(np.float32), cols["y"][sel].astype(np.float32)
    boxes = np.stack([x, y, x + cols["w"][sel].astype(np.float32), y + cols["h"][sel].astype(np.float32)], axis=1)
    probs = np.stack([tbl.column(lb).to_numpy(zero_copy_only=False)[sel].astype(np.float32) for lb in labels], axis=1)
    all_faces = Faces(frame=frame_ids[sel], boxes=boxes.reshape(-1, 4), scores=np.ones(len(sel), np.float32),
                      landmarks=np.zeros((len(sel), 5, 2), np.float32), track_id=track[sel],
                      probs=np.nan_to_num(probs.reshape(len(sel), len(labels))))  # fmt: skip
    by_frame = {int(i): all_faces.of_frame(int(i)) for i in np.unique(all_faces.frame)}
    analysed = set(np.unique(frame_ids).tolist())

    times = dict(zip(frame_ids.tolist(), tbl.column("time_s").to_numpy(zero_copy_only=False).tolist(), strict=True))
    info = probe(video)
    # every=huge: the reader marks (almost) no frame for analysis, so it makes no detector images; the table decides
    reader = FrameReader(video, info, Options(every=1 << 62), need_bgr="render")
    with Renderer(video, out, info, labels, scale=scale) as rend:
        window: list[Decoded] = []
        for d in reader:
            d.analyse = d.index in analysed
            if d.analyse and abs(times[d.index] - d.time_s) > 1e-3:
                raise ValueError(f"the table does not belong to this video (frame {d.index} is at {d.time_s:.3f} s "
                                 f"in the video, {times[d.index]:.3f} s in the table)")  # fmt: skip
            window.append(d)
            if len(window) >= 16:
                rend.write(window, Faces.concat([by_frame[x.index] for x in window if x.index in by_frame]))
                window = []
        if window:
            rend.write(window, Faces.concat([by_frame[x.index] for x in window if x.index in by_frame]))
    return rend.frames_written


def _labels_from_columns(names: list[str]) -> list[str]:
    """The probability columns of a table without our metadata: those between ``det_score`` and ``emotion``."""
    return names[names.index("det_score") + 1 : names.index("emotion")]
