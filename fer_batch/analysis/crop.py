"""Face crops for a classifier: the geometry each model expects, cut from the full-resolution frame.

Why a module of its own: the crop decides much of the accuracy (on a real recording, widening the margin from 0.1 to
0.2 of the box took fer's network from 5 to 26 of 36 frames right). The geometry is a property of the model — its
manifest entry's optional ``crop`` object — not of the detector, and it is the same for videos, photos and camera
frames. Crops are never stretched: a square model input gets a square crop, padded by repeating the border where it
leaves the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from fer_batch.planes import Luma, bgr_region

# CenterFace's five landmarks: left eye, right eye, nose, left and right mouth corner (image left/right)
LEFT_EYE, RIGHT_EYE = 0, 1


@dataclass(frozen=True)
class CropSpec:
    """Where a model's input is cut, relative to the detector's box.

    ``margin``: fraction of the box's side added on each side. ``square``: use the longer side for both, so the
    face keeps its aspect in a square input. ``align``: rotate so that the eyes are level (needs landmarks; faces
    without them are cut upright). ``shift``: move the centre down by this fraction of the side (detectors centre
    boxes on the eyes-to-chin region; some training crops centre lower or higher).
    """

    margin: float = 0.1
    square: bool = True
    align: bool = False
    shift: float = 0.0

    @classmethod
    def from_entry(cls, entry: dict[str, Any], margin: float | None = None) -> CropSpec:
        """The manifest entry's ``crop`` object (absent keys take the defaults), ``margin`` overriding its margin."""
        raw = dict(entry.get("crop") or {})
        unknown = set(raw) - {"margin", "square", "align", "shift"}
        if unknown:
            raise ValueError(f"unknown crop key(s) {', '.join(sorted(unknown))} in model {entry.get('id')!r}")
        align = raw.get("align", False)
        spec = cls(
            margin=float(raw.get("margin", cls.margin)),
            square=bool(raw.get("square", cls.square)),
            align=align in (True, "eyes"),
            shift=float(raw.get("shift", cls.shift)),
        )
        if margin is not None:
            spec = CropSpec(margin=margin, square=spec.square, align=spec.align, shift=spec.shift)
        if not (math.isfinite(spec.margin) and -0.25 <= spec.margin <= 2):
            raise ValueError(f"crop margin {spec.margin} outside [-0.25, 2]")
        return spec

    def as_dict(self) -> dict[str, Any]:
        return {"margin": self.margin, "square": self.square, "align": self.align, "shift": self.shift}


WHOLE = CropSpec(margin=0.0, square=True, align=False, shift=0.0)  # the image is the face (--detector none)


def _geometry(box: np.ndarray, landmarks: np.ndarray, spec: CropSpec) -> tuple[float, float, float, float, float]:
    """Centre, width, height (source pixels) and angle (radians) of one face's crop."""
    x1, y1, x2, y2 = (float(v) for v in box)
    bw, bh = x2 - x1, y2 - y1
    if spec.square:
        bw = bh = max(bw, bh)
    w, h = bw * (1 + 2 * spec.margin), bh * (1 + 2 * spec.margin)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 + spec.shift * h
    angle = 0.0
    if spec.align:
        eyes = landmarks[[LEFT_EYE, RIGHT_EYE]]
        if np.isfinite(eyes).all():
            dx, dy = float(eyes[1, 0] - eyes[0, 0]), float(eyes[1, 1] - eyes[0, 1])
            if dx > 0:  # a face seen upside down or eyes swapped: keep it upright rather than flip it
                angle = math.atan2(dy, dx)
    return cx, cy, max(w, 1.0), max(h, 1.0), angle


Planes = tuple[np.ndarray, np.ndarray, np.ndarray]


def crop_one(
    image: np.ndarray | Luma | Planes, box: np.ndarray, landmarks: np.ndarray, spec: CropSpec, size: tuple[int, int]
) -> np.ndarray:
    """One face's crop of ``size`` (width, height) from a gray or BGR image, a decoded luma plane (gray), or in BGR
    from a frame's 4:2:0 planes.

    Large faces are first reduced by area averaging (no aliasing), then one affine warp places, rotates and
    scales the crop; pixels outside the frame repeat its border. From planes only the region the crop covers is
    converted to BGR, and from a luma plane only that region mapped to full range.
    """
    out_w, out_h = size
    cx, cy, w, h, angle = _geometry(box, landmarks, spec)
    s = max(w / out_w, h / out_h)  # source pixels per output pixel
    # the axis-aligned source region that the (possibly rotated) crop covers, plus a pixel for interpolation
    c, si = abs(math.cos(angle)), abs(math.sin(angle))
    half_w, half_h = (w * c + h * si) / 2 + 1, (w * si + h * c) / 2 + 1
    x0, y0 = math.floor(cx - half_w), math.floor(cy - half_h)
    x1, y1 = math.ceil(cx + half_w), math.ceil(cy + half_h)
    ih, iw = image[0].shape[:2] if isinstance(image, tuple) else image.shape[:2]
    x0, y0 = min(max(x0, 0), iw - 1), min(max(y0, 0), ih - 1)
    x1, y1 = max(min(x1, iw), x0 + 1), max(min(y1, ih), y0 + 1)
    if isinstance(image, tuple):
        region, ox, oy = bgr_region(image, x0, y0, x1, y1)
    elif isinstance(image, Luma):
        region, ox, oy = image.region(x0, y0, x1, y1), x0, y0
    else:
        region, ox, oy = image[y0:y1, x0:x1], x0, y0
    if s > 1.5:  # reduce by area first: a bilinear warp of a much larger face would alias
        rw, rh = max(1, round(region.shape[1] / s)), max(1, round(region.shape[0] / s))
        kx, ky = region.shape[1] / rw, region.shape[0] / rh
        region = cv2.resize(region, (rw, rh), interpolation=cv2.INTER_AREA)
    else:
        kx = ky = 1.0
    # output pixel (u, v) -> region pixel: rotate/scale about the crop centre, in pixel-centre coordinates
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    sx, sy = w / out_w, h / out_h
    m = np.array(
        [
            [cos_a * sx / kx, -sin_a * sy / kx, 0.0],
            [sin_a * sx / ky, cos_a * sy / ky, 0.0],
        ]
    )
    # centre of the output maps to the crop centre
    ucx, ucy = out_w / 2 - 0.5, out_h / 2 - 0.5
    rcx, rcy = (cx - ox) / kx, (cy - oy) / ky  # the crop centre in the region's continuous coordinates
    m[0, 2] = rcx - 0.5 - (m[0, 0] * ucx + m[0, 1] * ucy)
    m[1, 2] = rcy - 0.5 - (m[1, 0] * ucx + m[1, 1] * ucy)
    return cv2.warpAffine(region, m, (out_w, out_h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
