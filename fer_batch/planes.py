"""4:2:0 plane arithmetic shared by the decoder, the frame type, the detector and the H.264 writer.

Why a module of its own at the bottom of the package: ``types.Frames`` makes its detector image from planes on
demand, and the decoder and the writers cut and rebuild I420 images; none of them should import the others for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# limited ("MPEG") range luma 16..235 to full-range gray 0..255, as OpenCV's BGR2GRAY of swscale's BGR gives
LIMITED_TO_FULL = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)


@dataclass(frozen=True)
class Luma:
    """A frame's decoded luma plane, read as full-range gray only where a crop cuts it.

    Why not a gray image per frame: mapping a whole 720p plane to full range costs 0.3 ms, a third of decoding it,
    while the classifier reads a few faces' worth of it. The mapping is per pixel, so cutting first and mapping the
    region gives exactly the pixels of the mapped frame.
    """

    plane: np.ndarray  # (h, w) uint8, a view into the decoded frame
    limited: bool  # limited range (16..235): map through LIMITED_TO_FULL when read

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.plane.shape)

    def region(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Full-range gray pixels of the region (x0, y0, x1, y1), inside the frame."""
        part = self.plane[y0:y1, x0:x1]
        return cv2.LUT(part, LIMITED_TO_FULL) if self.limited else part

    def image(self) -> np.ndarray:
        """The whole frame as full-range gray (for callers that need all of it)."""
        return self.region(0, 0, self.plane.shape[1], self.plane.shape[0])

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        """``np.asarray(luma)``: the whole frame as full-range gray, like the gray image it stands for."""
        image = self.image()
        return image if dtype is None else image.astype(dtype)


def yuv_to_rgb(y: np.ndarray, u: np.ndarray, v: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """RGB image of ``size`` (even width and height) from 4:2:0 planes, resizing the planes first."""
    w, h = size
    ys = cv2.resize(y, (w, h), interpolation=cv2.INTER_AREA if y.shape[1] > w else cv2.INTER_LINEAR)
    us = cv2.resize(u, (w // 2, h // 2), interpolation=cv2.INTER_AREA if u.shape[1] > w // 2 else cv2.INTER_LINEAR)
    vs = cv2.resize(v, (w // 2, h // 2), interpolation=cv2.INTER_AREA if v.shape[1] > w // 2 else cv2.INTER_LINEAR)
    i420 = np.concatenate([ys.reshape(-1), us.reshape(-1), vs.reshape(-1)]).reshape(h * 3 // 2, w)
    return cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)


def yuv_region(
    yuv: tuple[np.ndarray, np.ndarray, np.ndarray], box: tuple[int, int, int, int], size: tuple[int, int]
) -> np.ndarray:
    """RGB image of ``size`` showing the region ``box`` (x0, y0, x1, y1, inside the frame) of a 4:2:0 frame."""
    y, u, v = yuv
    x0, y0, x1, y1 = box
    cx0, cy0, cx1, cy1 = x0 // 2, y0 // 2, max((x1 + 1) // 2, x0 // 2 + 1), max((y1 + 1) // 2, y0 // 2 + 1)
    return yuv_to_rgb(y[y0:y1, x0:x1], u[cy0:cy1, cx0:cx1], v[cy0:cy1, cx0:cx1], size)


def bgr_region(
    yuv: tuple[np.ndarray, np.ndarray, np.ndarray], x0: int, y0: int, x1: int, y1: int
) -> tuple[np.ndarray, int, int]:
    """BGR pixels of the region (x0, y0, x1, y1), inside the frame, of a 4:2:0 frame, and their origin.

    Why: a colour classifier needs only its faces in BGR; converting the whole frame would cost more than the model
    (1.5 ms a 720p frame). The region grows to even coordinates so that chroma samples stay aligned; a column or row
    past an odd frame edge repeats the last one.
    """
    y, u, v = yuv
    x0, y0 = x0 & ~1, y0 & ~1
    x1, y1 = x1 + (x1 - x0) % 2, y1 + (y1 - y0) % 2
    w, h = x1 - x0, y1 - y0

    def cut(plane: np.ndarray, a: int, b: int, c: int, d: int) -> np.ndarray:
        part = plane[b:d, a:c]
        if part.shape != (d - b, c - a):
            part = cv2.copyMakeBorder(part, 0, d - b - part.shape[0], 0, c - a - part.shape[1], cv2.BORDER_REPLICATE)
        return part

    ys = cut(y, x0, y0, x1, y1)
    us, vs = (cut(p, x0 // 2, y0 // 2, x0 // 2 + w // 2, y0 // 2 + h // 2) for p in (u, v))
    return cv2.cvtColor(i420(ys, us, vs), cv2.COLOR_YUV2BGR_I420), x0, y0


def i420(y: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """One contiguous I420 image (the layout OpenCV and the yuv420p encoder take) from even-sized planes."""
    h, w = y.shape
    out = np.empty((h * 3 // 2, w), dtype=np.uint8)
    ys, us, vs = i420_views(out, w, h)
    ys[:], us[:], vs[:] = y, u, v
    return out


def i420_views(image: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Writable Y, U and V views into an I420 image of ``w`` x ``h``."""
    flat = image.reshape(-1)
    q = (w // 2) * (h // 2)
    return (
        flat[: w * h].reshape(h, w),
        flat[w * h : w * h + q].reshape(h // 2, w // 2),
        flat[w * h + q :].reshape(h // 2, w // 2),
    )
