"""Thumbnails of each tracked face, cut from the source at a few times per track (seek, decode, rotate, JPEG).

Why apart from the page: it is the only part of the report that reads media; a source that moved or changed
since the run is named instead of shown.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd

from fer_batch.errors import DecodeError, describe
from fer_batch.media.orientation import orientation, rotate
from fer_batch.media.probe import is_image, open_input, read_image, video_stream
from fer_batch.outputs.metadata import FileSource, TableMeta
from fer_batch.outputs.report.html import data_uri

log = logging.getLogger(__name__)

THUMBS_PER_TRACK = 4


THUMB_PX = 80  # thumbnail height (shown at 64 CSS px, sharp on high-density screens)


MAX_ASPECT = 4  # a thumbnail is at most this many times as wide as high (or high as wide)


SEEK_GAP_S = 2.0  # decode forward to the next thumbnail when it is this close, else seek


@dataclass(frozen=True)
class Thumb:
    """A face thumbnail: the track, the time it was cut at, its box in the displayed frame, the image (data URI)."""

    track_id: int
    time_s: float
    box: tuple[float, float, float, float]
    uri: str | None = None


def cut_thumbnails(df: pd.DataFrame, shown: pd.DataFrame, meta: TableMeta | None,
                   per_track: int) -> tuple[dict[int, list[Thumb]], str | None]:  # fmt: skip
    """Thumbnails per track id, and a note for the page where they could not be made (the reason, one line)."""
    if per_track <= 0 or not len(shown):
        return {}, None
    wanted = thumb_times(df, shown, per_track)
    problem, src = source_problem(meta), source_path(meta)
    if problem or src is None:
        return {}, f"No thumbnails: {problem}."
    try:
        frames = grab_frames(src, sorted({t.time_s for t in wanted}), int((meta.rotation if meta else 0) or 0))
    except (DecodeError, OSError, av.error.FFmpegError) as e:
        return {}, f"No thumbnails: {src} could not be decoded ({describe(e)})."
    out: dict[int, list[Thumb]] = {}
    for t in wanted:
        img = frames.get(t.time_s)
        uri = data_uri(thumb_jpeg(img, t.box), "image/jpeg") if img is not None else None
        out.setdefault(t.track_id, []).append(Thumb(t.track_id, t.time_s, t.box, uri))
    missing = sum(t.uri is None for ts in out.values() for t in ts)
    return out, (f"{missing} thumbnails missing: frames not found in {src}." if missing else None)


def thumb_times(df: pd.DataFrame, shown: pd.DataFrame, per_track: int) -> list[Thumb]:
    """``per_track`` rows of each shown track, evenly spread over its rows in time (first and last included)."""
    out = []
    for tid in shown["track_id"]:
        rows = df[df["track_id"] == tid].sort_values("time_s")
        picks = np.unique(np.linspace(0, len(rows) - 1, min(per_track, len(rows))).round().astype(int))
        for _, r in rows.iloc[picks].iterrows():
            box = (float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]))
            out.append(Thumb(int(tid), float(r["time_s"]), box))
    return out


def source_path(meta: TableMeta | None) -> Path | None:
    """The source file a table records (None for a camera's table). Tables store it absolute; an older table's
    relative path is tried from the current folder, as it was given."""
    src = meta.source if meta is not None else None
    return Path(src.path) if isinstance(src, FileSource) and src.path else None


def source_problem(meta: TableMeta | None) -> str | None:
    """Why the source cannot give thumbnails that match the table (gone, or a different file now), or None."""
    p = source_path(meta)
    if p is None or meta is None or not isinstance(meta.source, FileSource):
        return "the table does not record its source video"
    if not p.is_file():
        return f"the source video {meta.source.path} is not there any more"
    if meta.source.size is not None and p.stat().st_size != meta.source.size:
        return f"the source video {meta.source.path} has changed since it was analysed"
    return None


def grab_frames(path: Path, times: Iterable[float], rotation: int) -> dict[float, np.ndarray]:
    """RGB frames (displayed orientation) at the given presentation times: seek to the keyframe before each one
    that is far ahead, else decode forward. Times come from the table, so they match frames' own times."""
    if is_image(path):
        img = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
        return dict.fromkeys(times, img)
    out: dict[float, np.ndarray] = {}
    with open_input(path) as container:
        stream = video_stream(container)
        tb = stream.time_base
        frames: Iterable[av.VideoFrame] | None = None
        last = -np.inf
        for t in sorted(times):
            if frames is None or t < last or t - last > SEEK_GAP_S:
                if tb is not None:
                    container.seek(max(0, int(t / tb)), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            for frame in frames:
                if frame.time is None:
                    continue
                last = float(frame.time)
                if last >= t - 1e-3:  # the frame at t, or the first after it where a seek landed late
                    # the frame's own display matrix: a mirror is part of it, not only the recorded rotation
                    out[t] = rotate(frame.to_ndarray(format="rgb24"), *orientation(frame))
                    break
    return out


def thumb_jpeg(rgb: np.ndarray, box: tuple[float, float, float, float]) -> bytes:
    """The face with a margin around it (a square 1.4× the box's longer side), ``THUMB_PX`` high, as JPEG."""
    x, y, w, h = box
    side = max(w, h) * 1.4
    cx, cy = x + w / 2, y + h / 2
    H, W = rgb.shape[:2]
    x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x2, y2 = int(min(W, cx + side / 2)), int(min(H, cy + side / 2))
    crop = rgb[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
    if crop.shape[1] > MAX_ASPECT * crop.shape[0]:  # a 100000x1 photo: its middle, or the JPEG would be too wide
        mid, half = crop.shape[1] // 2, MAX_ASPECT * crop.shape[0] // 2
        crop = crop[:, max(0, mid - half) : mid + max(1, half)]
    elif crop.shape[0] > MAX_ASPECT * crop.shape[1]:
        mid, half = crop.shape[0] // 2, MAX_ASPECT * crop.shape[1] // 2
        crop = crop[max(0, mid - half) : mid + max(1, half)]
    scale = THUMB_PX / crop.shape[0]
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), THUMB_PX), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()
