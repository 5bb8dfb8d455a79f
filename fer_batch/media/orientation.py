"""A frame as it is displayed: the container's display matrix turned into a quarter-turn rotation and a mirror.

Why its own module: phone clips are stored sideways and front cameras mirrored; the reader, the probe, the webcam
and the report's thumbnails all apply the same rule, and it must be exact (boxes are mapped through it).
"""

from __future__ import annotations

import av
import numpy as np


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
    m = np.frombuffer(bytes(matrix)[:36], dtype="<i4").astype(np.int64)  # type: ignore[arg-type]  # side data is a buffer
    probe_img = np.arange(6).reshape(2, 3)
    shown = _matrix_view(probe_img, m)
    for mirror in (False, True):
        for k in range(4):
            if np.array_equal(rotate(probe_img, 90 * k, mirror), shown):
                return (rotation if not mirror and k == round(rotation / 90) % 4 else 90 * k), mirror
    return rotation, False  # a matrix that is not a quarter turn: keep FFmpeg's rotation
