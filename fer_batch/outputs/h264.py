"""H.264 output shared by the annotated-video renderer and the webcam recorder.

Why PyAV's libx264 and not cv2.VideoWriter: OpenCV's wheels cannot write H.264, and only PyAV lets us give every
frame an exact PTS (variable frame rate survives) and copy audio packets untouched.

Output: H.264 yuv420p in MP4 with ``+faststart``. yuv420p needs even sides: an odd width or height is padded by one
replicated pixel at the right/bottom. PTS always increase (a source whose timestamps repeat or go back gets the
next tick, so the muxer never refuses a frame). Audio from a source file is copied where MP4 takes it as it is,
else re-encoded to AAC, and muxed up to the latest video time so the file stays interleaved. The file is written
under a temporary name (``atomic.AtomicPath``) and gets its final name only from ``commit``.
"""

from __future__ import annotations

import io
import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from fer_batch._atomic import AtomicPath
from fer_batch.media.probe import open_input

log = logging.getLogger(__name__)

# audio codecs copied as they are; anything else (pcm, vorbis, ...) is re-encoded to AAC so players cope
COPY_AUDIO = frozenset({"aac", "mp3", "ac3", "eac3", "opus", "flac", "alac"})
# superfast with macroblock-tree rate control back on: measured at 720p, half the CPU of veryfast (6-8 vs 11-16
# ms/frame) for 5-13 % more bytes and 0.1-0.5 dB less PSNR at the same crf; plain superfast (mbtree off) is
# 60-130 % larger. Encoding is most of the rendering cost, so this is the knob that matters.
SUPERFAST_PARAMS = "mbtree=1:rc-lookahead=10"


@dataclass(frozen=True)
class AudioSource:
    """The audio to carry over: the first audio stream of ``path`` (codec ``codec``), trimmed to [start, end)."""

    path: Path
    codec: str
    start: float | None = None
    end: float | None = None


class H264Writer:
    """One MP4 file: ``write_bgr``/``write_i420`` per frame with its time, then ``finish`` and ``commit``.

    ``width`` x ``height`` is the size of the frames handed in; the encoded size adds the odd-side pad. ``stop``
    (set by the owner) ends a long audio copy early when the output is going to be discarded anyway.
    """

    def __init__(self, path: Path, width: int, height: int, *, time_base: Fraction, rate: Fraction | int | None = None,
                 crf: int = 23, preset: str = "superfast", threads: int | None = None,
                 audio: AudioSource | None = None, stop: threading.Event | None = None) -> None:  # fmt: skip
        self.path, self.width, self.height = Path(path), width, height
        self.enc_w, self.enc_h = width + width % 2, height + height % 2
        self.time_base = time_base
        self.frames = 0
        self.audio_mode: str | None = None  # "copy", "aac" or None (no audio)
        self._target = AtomicPath(self.path)
        self._stop = stop or threading.Event()
        self._last_pts: int | None = None
        self.shifted = 0  # frames whose timestamp did not increase
        # seconds added to every timestamp: a source that starts before 0 (negative presentation times, e.g. a
        # transport stream) would otherwise lose those frames behind the MP4 edit list that players and decoders obey
        self.offset: float | None = None
        self._audio_until = -math.inf
        self._pending_audio: tuple[float, av.Packet[Any]] | None = None
        self._audio_in: av.container.InputContainer | None = None
        self._target.__enter__()
        self._out: av.container.OutputContainer | None = None
        try:  # from the file's creation on: a failure (or a stop signal) removes it
            self._out = av.open(str(self._target.tmp), "w", format="mp4", options={"movflags": "+faststart"})
            self._video = self._add_video(rate, crf, preset, threads)
            if audio is not None:
                self._add_audio(audio)
            self._audio = self._audio_packets(audio)
        except BaseException:
            self.discard()
            raise

    @property
    def tmp(self) -> Path:
        return self._target.tmp

    # --- set-up ------------------------------------------------------------------------------------------------
    def _add_video(self, rate: Fraction | int | None, crf: int, preset: str, threads: int | None) -> av.VideoStream:
        assert self._out is not None
        options = {"crf": str(crf), "preset": preset}
        if preset == "superfast":
            options["x264-params"] = SUPERFAST_PARAMS
        vs = self._out.add_stream("libx264", rate=rate or 30, options=options)
        vs.width, vs.height, vs.pix_fmt = self.enc_w, self.enc_h, "yuv420p"
        vs.time_base = self.time_base
        vs.codec_context.time_base = self.time_base
        if threads is not None:
            vs.codec_context.thread_count = threads
        return vs

    def _add_audio(self, audio: AudioSource) -> None:
        assert self._out is not None
        self._audio_in = open_input(audio.path)
        ain = self._audio_in.streams.audio[0]
        if audio.codec in COPY_AUDIO and audio.codec in self._out.supported_codecs and _can_copy(ain):
            self._audio_out = self._out.add_stream_from_template(ain)
            self.audio_mode = "copy"
            return
        rate_hz = ain.codec_context.sample_rate or 48000
        if rate_hz not in (av.codec.Codec("aac", "w").audio_rates or ()):
            rate_hz = 48000  # the resampler converts; the AAC encoder refuses odd rates
        self._audio_out = self._out.add_stream("aac", rate=rate_hz)
        channels = ain.codec_context.channels or 2
        self._audio_out.layout = "mono" if channels == 1 else "stereo"  # the AAC encoder's safe layouts
        self._audio_out.format = "fltp"
        self._audio_out.time_base = Fraction(1, rate_hz)
        self.audio_mode = "aac"
        log.info("%s: audio %s cannot be copied into MP4, re-encoding to AAC", audio.path, audio.codec)

    # --- frames ------------------------------------------------------------------------------------------------
    def write_bgr(self, bgr: np.ndarray, t: float) -> None:
        """Encode a BGR frame of ``width`` x ``height`` shown from ``t`` seconds."""
        if (self.enc_w, self.enc_h) != (self.width, self.height):
            bgr = cv2.copyMakeBorder(bgr, 0, self.enc_h - self.height, 0, self.enc_w - self.width,
                                     cv2.BORDER_REPLICATE)  # fmt: skip
        self.write_i420(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), t)

    def write_i420(self, i420: np.ndarray, t: float) -> None:
        """Encode an I420 image of the encoded size (``planes.i420``) shown from ``t`` seconds."""
        assert self._out is not None
        frame = av.VideoFrame.from_ndarray(i420, format="yuv420p")
        if self.offset is None:
            self.offset = max(0.0, -t)
            if self.offset:
                log.info("%s: the source starts at %.3f s; the annotated video starts at 0", self.path, t)
        t += self.offset
        pts = round(t / self.time_base)
        if self._last_pts is not None and pts <= self._last_pts:  # a broken source: keep the muxer's order valid
            self.shifted += 1  # reported once, in finish(): one line per problem, not one per frame
            pts = self._last_pts + 1
        self._last_pts = pts
        frame.pts, frame.time_base = pts, self.time_base
        self._mux_video(self._video.encode(frame))
        self.frames += 1
        self._audio_until = max(self._audio_until, t)
        self._mux_audio(self._audio_until)

    def finish(self) -> None:
        """Flush the encoder and mux the rest of the audio (call once, after the last frame)."""
        self._mux_video(self._video.encode(None))
        self._mux_audio(math.inf)
        if self.shifted:
            log.warning("%s: %d frame(s) with non-increasing timestamps, each moved by one tick", self.path,
                        self.shifted)  # fmt: skip

    # --- closing -----------------------------------------------------------------------------------------------
    def commit(self) -> Path:
        """Close the file and give it its final name; on any failure nothing is left behind."""
        try:
            self._close()
        except BaseException:
            self.discard()
            raise
        return self._target.commit()

    def discard(self) -> None:
        """Close what is open, quietly, and remove the temporary file."""
        try:
            self._close()
        except (av.error.FFmpegError, OSError, ValueError):
            log.debug("closing %s after a failure", self._target.tmp, exc_info=True)
        self._target.discard()

    def _close(self) -> None:
        out, audio_in, self._out, self._audio_in = self._out, self._audio_in, None, None
        try:
            if out is not None:
                out.close()
        finally:
            if audio_in is not None:
                audio_in.close()

    # --- muxing ------------------------------------------------------------------------------------------------
    def _mux_video(self, packets: list[av.Packet[Any]]) -> None:
        assert self._out is not None
        for p in packets:
            p.stream = self._video
            self._out.mux(p)

    def _mux_audio(self, until: float) -> None:
        """Mux audio packets that start before ``until`` seconds; the first later one is held back."""
        assert self._out is not None
        item = self._pending_audio
        while True:
            if item is None:
                item = next(self._audio, None)
                if item is None:
                    break
            if item[0] > until:
                break
            self._out.mux(item[1])
            item = None
        self._pending_audio = item

    def _audio_packets(self, audio: AudioSource | None) -> Iterator[tuple[float, av.Packet[Any]]]:
        """(start time in seconds, packet for the output audio stream), trimmed to the source's start/end and moved
        by the video's ``offset``, so sound and picture stay together."""
        for t, packet in self._source_audio(audio):
            shift = self.offset or 0.0
            if shift and packet.time_base is not None:
                ticks = round(shift / packet.time_base)
                packet.pts = packet.pts + ticks if packet.pts is not None else None
                packet.dts = packet.dts + ticks if packet.dts is not None else None
            yield t + shift, packet

    def _source_audio(self, audio: AudioSource | None) -> Iterator[tuple[float, av.Packet[Any]]]:
        if self._audio_in is None or audio is None:
            return
        ain = self._audio_in.streams.audio[0]
        start = -math.inf if audio.start is None else audio.start
        end = math.inf if audio.end is None else audio.end
        resampler = None
        if self.audio_mode == "aac":
            cc = self._audio_out.codec_context
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
                packet.stream = self._audio_out
                yield t, packet
                continue
            for frame in packet.decode():
                yield from ((t, p) for rf in resampler.resample(frame) for p in self._audio_out.encode(rf))
        if resampler is not None:
            yield from ((math.inf, p) for rf in resampler.resample(None) for p in self._audio_out.encode(rf))
            yield from ((math.inf, p) for p in self._audio_out.encode(None))


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
