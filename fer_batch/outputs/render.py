"""Annotated H.264 video: the source's frames with boxes, labels and probability bars, audio kept.

Output (``h264.H264Writer``): one output frame per source frame, the source's video time base and PTS, no display
matrix (frames arrive already rotated, so the file is stored at the displayed size). ``scale`` = 1 keeps the
displayed size (an odd side is padded by one pixel); other scales round to the nearest even size. ``auto`` (the
default) enlarges small videos by a whole factor (``auto_scale``) so the labels drawn on them are legible and have
room beside the faces.

Drawing (``draw.Painter``) and encoding run in a writer thread fed through a bounded queue, so they overlap the
analysis of the next window; the file gets its final name only on a clean exit. ``render_table`` draws a saved
table onto its video without running any model.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import cv2
import numpy as np
import pyarrow.parquet as pq

from fer_batch._progress import Progress, Silent
from fer_batch.columns import label_columns
from fer_batch.media.probe import VideoInfo, open_input, probe, video_stream
from fer_batch.media.reader import FrameReader, ReaderImages
from fer_batch.options import AUTO, MAX_RENDER_SCALE, Options, Scale, check_scale
from fer_batch.outputs.draw import Painter
from fer_batch.outputs.h264 import AudioSource, H264Writer
from fer_batch.outputs.metadata import read_table_meta
from fer_batch.outputs.table import faces_from_table
from fer_batch.planes import i420, i420_views
from fer_batch.types import Decoded, Faces

log = logging.getLogger(__name__)

FALLBACK_TIME_BASE = Fraction(1, 90000)
RENDER_WINDOW = 16  # frames handed to the renderer at a time by render_table


MIN_SHORT_SIDE = 360  # px: auto scale enlarges smaller videos, so a face has room beside it for 12-px text


def auto_scale(width: int, height: int) -> int:
    """The whole factor (1 to MAX_RENDER_SCALE) that brings the shorter side to at least MIN_SHORT_SIDE.

    Why: text is never drawn smaller than 12 px (``draw.MIN_FONT``), which on a 176x144 frame would leave no room
    beside a face; a whole factor keeps every source pixel a square block, and a video already that large is
    written at its own size.
    """
    return int(min(MAX_RENDER_SCALE, max(1, math.ceil(MIN_SHORT_SIDE / max(1, min(width, height))))))


def resolve_scale(scale: Scale, width: int, height: int) -> float:
    """The factor a ``--scale``/``--annotate-scale`` value means for a displayed frame of this size."""
    value = check_scale("scale", scale)
    return float(auto_scale(width, height)) if value == AUTO else float(value)


def output_size(width: int, height: int, scale: float) -> tuple[int, int, int, int]:
    """(encoded width, height, drawn width, height): drawn is the resized frame, encoded adds the odd-side pad."""
    if scale == 1.0:
        return width + width % 2, height + height % 2, width, height
    w, h = max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2))
    return w, h, w, h


Image = np.ndarray | tuple[np.ndarray, np.ndarray, np.ndarray]  # BGR, or 4:2:0 planes (Y, U, V)


class Renderer:
    """Context manager writing the annotated MP4 of one video, one ``write`` per window of decoded frames.

    ``write`` takes every decoded frame of a window (``bgr`` filled) and the faces of its analysed frames; a frame
    that was not analysed shows the latest analysed frame's faces. ``start``/``end`` (seconds) trim the copied
    audio to the analysed range.
    """

    def __init__(self, source_path: Path, out_path: Path, info: VideoInfo, labels: list[str], *, scale: Scale = AUTO,
                 crf: int = 23, preset: str = "superfast", threads: int | None = None, queue_size: int = 8,
                 start: float | None = None, end: float | None = None) -> None:  # fmt: skip
        self.source_path, self.path, self.info, self.labels = Path(source_path), Path(out_path), info, list(labels)
        self.scale, self.crf, self.preset = resolve_scale(scale, info.width, info.height), crf, preset
        self.start, self.end = start, end
        self.enc_w, self.enc_h, self.draw_w, self.draw_h = output_size(info.width, info.height, self.scale)
        self.painter = Painter(self.labels, self.draw_w, self.draw_h)
        # one x264 thread keeps up with analysis up to 1080p (about 8 ms per 720p frame) and wastes least CPU
        # on the cores analysis needs; larger frames get two so encoding does not become the bottleneck
        self.threads = threads if threads is not None else (1 if self.enc_w * self.enc_h <= 1920 * 1088 else 2)
        self._current = Faces()  # the latest analysed frame's faces
        self._queue: queue.Queue[tuple[Image, Faces, float] | None] = queue.Queue(maxsize=max(1, queue_size))
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._writer: H264Writer | None = None

    @property
    def frames_written(self) -> int:
        return self._writer.frames if self._writer is not None else 0

    @property
    def audio_mode(self) -> str | None:
        """ "copy", "aac" or None (no audio)."""
        return self._writer.audio_mode if self._writer is not None else None

    # --- main thread -------------------------------------------------------------------------------------------
    def __enter__(self) -> Renderer:
        time_base, rate, audio_codec = FALLBACK_TIME_BASE, None, None
        try:
            with open_input(self.source_path) as src:
                vs = video_stream(src) if src.streams.video else None
                time_base = (vs.time_base if vs is not None else None) or FALLBACK_TIME_BASE
                rate = vs.average_rate if vs is not None and vs.average_rate else None
                audio_codec = src.streams.audio[0].codec_context.name if src.streams.audio else None
        except av.error.FFmpegError as e:  # a photo format FFmpeg lacks: frames still come from OpenCV
            log.debug("%s: no stream information for rendering: %s", self.source_path, e)
        audio = AudioSource(self.source_path, audio_codec, self.start, self.end) if audio_codec else None
        self._writer = H264Writer(self.path, self.draw_w, self.draw_h, time_base=time_base, rate=rate, crf=self.crf,
                                  preset=self.preset, threads=self.threads, audio=audio, stop=self._stop)  # fmt: skip
        self._thread = threading.Thread(target=self._run, name=f"render:{self.path.name}", daemon=True)
        self._thread.start()
        return self

    def write(self, window: list[Decoded], faces: Faces) -> None:
        """Queue every frame of the window with the faces it shows (blocks while the writer is behind)."""
        by_frame = faces.by_frame()
        for d in window:
            if d.analyse:
                self._current = by_frame.get(d.index, Faces())
            image = d.bgr if d.bgr is not None else d.yuv
            if image is None:
                raise ValueError("the renderer needs every frame's image (FrameReader images=ReaderImages.RENDER)")
            self._put((image, self._current, d.time_s))

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._thread is None or self._writer is None:
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
            self._writer.commit()
            return
        self._writer.discard()
        if exc_type is None and self._error is not None:
            raise self._error

    def _put(self, item: tuple[Image, Faces, float] | None) -> None:
        while True:
            if self._error is not None:
                e = self._error
                if isinstance(e, OSError) and e.errno is not None:  # e.g. a full disk: the input's failure says so
                    raise OSError(e.errno, f"{e.strerror or e} (writing the annotated video)") from e
                raise RuntimeError(f"annotated video: {e}") from e
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    # --- writer thread -----------------------------------------------------------------------------------------
    def _run(self) -> None:
        assert self._writer is not None
        try:
            while True:
                try:
                    item = self._queue.get(timeout=0.1)
                except queue.Empty:
                    if self._stop.is_set():
                        return
                    continue
                if item is None or self._stop.is_set():
                    break
                image, faces, t = item
                self._encode(image, faces, t)
            if not self._stop.is_set():
                self._writer.finish()
        except BaseException as e:  # noqa: BLE001 — re-raised in the main thread by write() or __exit__
            self._error = e

    def _encode(self, image: Image, faces: Faces, t: float) -> None:
        """Draw and encode one frame: BGR images are drawn on whole; 4:2:0 planes go to the encoder as they are,
        with only the part that the drawing covers converted to BGR and back (a fraction of the conversions)."""
        assert self._writer is not None
        if isinstance(image, tuple):
            y, u, v = image
            h, w = y.shape
            if (self.draw_w, self.draw_h) == (w, h) == (self.enc_w, self.enc_h):
                self._writer.write_i420(self._draw_on_planes(y, u, v, faces), t)
                return
            image = cv2.cvtColor(i420(y, u, v), cv2.COLOR_YUV2BGR_I420)
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
        self._writer.write_bgr(img, t)

    def _draw_on_planes(self, y: np.ndarray, u: np.ndarray, v: np.ndarray, faces: Faces) -> np.ndarray:
        h, w = y.shape
        image = i420(y, u, v)
        ops = self.painter.layout(faces, 1.0, w, h)
        if ops:
            x0, y0, x1, y1 = self.painter.extent(ops)
            x0, y0 = max(0, x0) // 2 * 2, max(0, y0) // 2 * 2  # 4:2:0: even corners, even sizes
            x1, y1 = min(w, (x1 + 1) // 2 * 2), min(h, (y1 + 1) // 2 * 2)
            ys, us, vs = i420_views(image, w, h)
            cy, cx = slice(y0 // 2, y1 // 2), slice(x0 // 2, x1 // 2)
            region = cv2.cvtColor(i420(ys[y0:y1, x0:x1], us[cy, cx], vs[cy, cx]), cv2.COLOR_YUV2BGR_I420)
            self.painter.paint(region, ops, (x0, y0))
            ry, ru, rv = i420_views(cv2.cvtColor(region, cv2.COLOR_BGR2YUV_I420), x1 - x0, y1 - y0)
            ys[y0:y1, x0:x1], us[cy, cx], vs[cy, cx] = ry, ru, rv
        return image


def render_table(video: Path, table: Path, out: Path, *, scale: Scale = AUTO, max_pixels: int | None = None,
                 progress: Progress | None = None) -> int:  # fmt: skip
    """Render ``video`` with the faces of a saved table (no model runs); returns the frames written. ``progress``
    is told the frames as they are encoded (its caller closes it).

    The table's ``frame`` column keys faces to decode indexes; a frame listed there counts as analysed (rows
    with a null ``face`` are analysed frames without faces), so the latest result stays on screen between them.
    """
    meta = read_table_meta(table)
    tbl = pq.read_table(table)
    labels = (meta.labels if meta is not None else None) or label_columns(tbl.column_names)
    by_frame = faces_from_table(tbl, labels).by_frame()
    frame_ids = tbl.column("frame").to_numpy(zero_copy_only=False).astype(np.int64).tolist()
    times = dict(zip(frame_ids, tbl.column("time_s").to_numpy(zero_copy_only=False).tolist(), strict=True))
    info = probe(video, max_pixels)
    enc_w, enc_h, _, _ = output_size(info.width, info.height, resolve_scale(scale, info.width, info.height))
    if max_pixels is not None and enc_w * enc_h > max_pixels:
        raise ValueError(f"--scale {scale} makes {enc_w}x{enc_h} frames, more than --max-pixels {max_pixels}")
    # every=huge: the reader marks (almost) no frame for analysis, so it makes no detector images; the table decides
    reader = FrameReader(video, info, Options.of(every=1 << 62), images=ReaderImages.RENDER)
    progress = progress or Silent()
    progress.start(info.frames or (round(info.duration_s * info.fps) if info.duration_s and info.fps else None))
    with Renderer(video, out, info, labels, scale=scale) as rend:
        window: list[Decoded] = []
        for d in reader:
            d.analyse = d.index in times
            if d.analyse and abs(times[d.index] - d.time_s) > 1e-3:
                raise ValueError(f"the table does not belong to this video (frame {d.index} is at {d.time_s:.3f} s "
                                 f"in the video, {times[d.index]:.3f} s in the table)")  # fmt: skip
            window.append(d)
            if len(window) >= RENDER_WINDOW:
                rend.write(window, Faces.concat([by_frame[x.index] for x in window if x.index in by_frame]))
                progress.advance(len(window))
                window = []
        if window:
            rend.write(window, Faces.concat([by_frame[x.index] for x in window if x.index in by_frame]))
            progress.advance(len(window))
    return rend.frames_written

