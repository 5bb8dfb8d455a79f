"""The data that passes between stages: one window of decoded frames and the faces found in it.

Why one type: every stage (detect, track, classify, sink, render) takes and returns these, so a stage can be
swapped or tested alone, and a frame without a face is simply a frame index with no rows in ``Faces``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from fer_batch.planes import Luma


class Clock(Protocol):
    """Where time comes from for code that paces itself (a file played as a camera, a webcam session's stop).

    Why a seam: tests pass a fake clock whose ``sleep`` only moves its time on, so a ten-second session runs in
    the time its frames take to decode and its timestamps are exact.
    """

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: ``time.monotonic`` and ``time.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


class Status(str, Enum):
    """An input's outcome, as the manifest and a table's metadata record it (the value is what is stored)."""

    OK = "ok"  # every frame analysed
    PARTIAL = "partial"  # the stream broke or was damaged: the frames before (or around) it are in the table
    FAILED = "failed"  # nothing written; the error says why
    SKIPPED = "skipped"  # --resume: its complete table was there already

    def __str__(self) -> str:
        return self.value

    def __repr__(self) -> str:  # results print as they always did (status='ok') and compare equal to the string
        return repr(self.value)


@dataclass
class Decoded:
    """One decoded frame, as the reader yields it; images are filled only where the pipeline needs them."""

    index: int
    time_s: float
    analyse: bool
    gray: np.ndarray | Luma | None = None  # a video frame's luma plane as decoded; gray for photos and cameras
    small: np.ndarray | None = None
    bgr: np.ndarray | None = None
    yuv: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # planes (4:2:0), for detector regions of interest


@dataclass(frozen=True)
class Frames:
    """A window of decoded frames, in presentation order.

    ``index`` is the 0-based decode index within the video, ``time_s`` the presentation time in seconds
    (``pts * time_base``), ``gray`` the full-resolution gray image used for face crops (for video frames the
    decoded luma plane, ``planes.Luma``, mapped to full range only where a crop reads it), ``small`` the
    detector-sized RGB image, ``bgr`` the full colour image, present only when something downstream (rendering,
    a colour classifier) needs it, and ``yuv`` the decoded planes from which the detector cuts regions of
    interest around tracked faces. Images are already rotated to the displayed orientation.
    """

    index: np.ndarray  # int64 (n,)
    time_s: np.ndarray  # float64 (n,)
    gray: list[np.ndarray | Luma]
    small: list[np.ndarray | None]  # made on demand (``small_image``) where planes exist
    bgr: list[np.ndarray | None] | None = None  # where a frame has no planes (photos, camera frames)
    yuv: list[tuple[np.ndarray, np.ndarray, np.ndarray] | None] | None = None  # 4:2:0 planes, for regions

    @classmethod
    def from_decoded(cls, items: Sequence[Decoded], *, colour: bool = False) -> Frames:
        """The analysed frames among ``items`` (the others carry no images); with ``colour``, their BGR images.

        Why one constructor: the pipeline, the webcam and the benchmarks all turn decoded frames into a window,
        and an analysed frame without its gray image (or, for a colour model, without planes or a BGR image to cut
        its faces from) is a reader bug caught here.
        """
        analysed = [d for d in items if d.analyse]
        if any(d.gray is None for d in analysed) or (
            colour and any(d.bgr is None and d.yuv is None for d in analysed)
        ):
            raise ValueError("an analysed frame lacks the image the analysis needs")
        return cls(
            index=np.array([d.index for d in analysed], dtype=np.int64),
            time_s=np.array([d.time_s for d in analysed], dtype=np.float64),
            gray=[d.gray for d in analysed if d.gray is not None],
            small=[d.small for d in analysed],
            bgr=[d.bgr for d in analysed] if colour else None,
            yuv=[d.yuv for d in analysed],
        )

    def small_image(self, j: int, size: tuple[int, int]) -> np.ndarray:
        """The detector-sized RGB image of frame ``j``, made from its planes the first time it is asked for."""
        small = self.small[j]
        if small is None:
            from fer_batch.planes import yuv_to_rgb  # lazy: cv2 only where planes are converted

            planes = self.yuv[j] if self.yuv is not None else None
            if planes is None:
                raise ValueError("frame has neither a small image nor planes")
            small = self.small[j] = yuv_to_rgb(*planes, size)
        return small

    def subset(self, sel: np.ndarray) -> Frames:
        """The frames at positions ``sel`` (an index array)."""
        return Frames(
            index=self.index[sel],
            time_s=self.time_s[sel],
            gray=[self.gray[i] for i in sel],
            small=[self.small[i] for i in sel],
            bgr=None if self.bgr is None else [self.bgr[i] for i in sel],
            yuv=None if self.yuv is None else [self.yuv[i] for i in sel],
        )

    def __len__(self) -> int:
        return len(self.index)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the displayed frame."""
        h, w = self.gray[0].shape[:2]
        return w, h


def _empty(shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.zeros(shape, dtype=dtype)


@dataclass(frozen=True)
class Faces:
    """All faces of a window; the first axis of every array is the face.

    ``frame`` holds the decode index of the frame each face belongs to, ``boxes`` are ``x1, y1, x2, y2`` in pixels
    of the displayed frame, ``track_id`` is -1 where no tracker assigned one and ``probs`` is ``None`` until the
    classifier has run. ``pose`` (yaw, pitch, roll in degrees; NaN without landmarks), ``sharpness`` and
    ``quality`` (``fer_batch.quality``) are filled by the classifier too.
    """

    frame: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    boxes: np.ndarray = field(default_factory=lambda: _empty((0, 4), np.float32))
    scores: np.ndarray = field(default_factory=lambda: _empty((0,), np.float32))
    landmarks: np.ndarray = field(default_factory=lambda: _empty((0, 5, 2), np.float32))
    track_id: np.ndarray = field(default_factory=lambda: _empty((0,), np.int64))
    probs: np.ndarray | None = None
    pose: np.ndarray | None = None  # (n, 3) float32
    sharpness: np.ndarray | None = None  # (n,) float32
    quality: np.ndarray | None = None  # (n,) float32

    def __len__(self) -> int:
        return len(self.frame)

    def replace(self, **changes: np.ndarray | None) -> Faces:
        """A copy with some fields changed (the dataclass is frozen so stages never mutate their input)."""
        return replace(self, **changes)  # type: ignore[arg-type]  # each field an array; checked by __post_init__

    def take(self, order: np.ndarray) -> Faces:
        """Faces selected or reordered by an index array (or boolean mask)."""
        return Faces(
            frame=self.frame[order],
            boxes=self.boxes[order],
            scores=self.scores[order],
            landmarks=self.landmarks[order],
            track_id=self.track_id[order],
            probs=None if self.probs is None else self.probs[order],
            pose=None if self.pose is None else self.pose[order],
            sharpness=None if self.sharpness is None else self.sharpness[order],
            quality=None if self.quality is None else self.quality[order],
        )

    def of_frame(self, index: int) -> Faces:
        """The faces of one frame."""
        return self.take(self.frame == index)

    def by_frame(self) -> dict[int, Faces]:
        """The faces of every frame that has any, keyed by frame index, in one sort (not one mask per frame)."""
        if not len(self):
            return {}
        faces = self.take(np.argsort(self.frame, kind="stable"))
        frames, starts = np.unique(faces.frame, return_index=True)
        ends = np.append(starts[1:], len(faces))
        return {int(f): faces.take(np.arange(a, b)) for f, a, b in zip(frames, starts, ends, strict=True)}

    @staticmethod
    def concat(parts: list[Faces]) -> Faces:
        """Join the faces of several windows or frames into one."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return Faces()

        def joined(name: str) -> np.ndarray | None:  # only where every part has it
            have = [getattr(p, name) for p in parts if getattr(p, name) is not None]
            return np.concatenate(have) if len(have) == len(parts) else None

        return Faces(
            frame=np.concatenate([p.frame for p in parts]),
            boxes=np.concatenate([p.boxes for p in parts]),
            scores=np.concatenate([p.scores for p in parts]),
            landmarks=np.concatenate([p.landmarks for p in parts]),
            track_id=np.concatenate([p.track_id for p in parts]),
            probs=joined("probs"),
            pose=joined("pose"),
            sharpness=joined("sharpness"),
            quality=joined("quality"),
        )
