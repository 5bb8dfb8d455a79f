"""The size a frame is scanned at by a full-frame detector: the detector's own policy, in one place.

Why here and not in the reader: how small an image the detector can be given and still find a face of a given
size is a property of the detector; the reader, the webcam and the benchmarks ask it, none of them decides it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fer_batch.options import Detection

# Smallest face side (px, at the detector's input) that CenterFace finds reliably: on the crowd photo, scanning at
# 1280 px wide (faces >= 26 px shrunk to >= 16 px) kept 93% of a full-size pass's faces, at 1024 px only 81%.
DETECTABLE_PX = 16


# ...but --min-face raises a full scan's input to at most this many pixels (what a 4K frame gets for the default
# --min-face 24): CenterFace's activations take hundreds of bytes per input pixel, and an 8K frame scanned at 2/3
# scale took gigabytes per call (benchmarks/memory_large.py). Beyond 4K the smallest face found grows instead.
MAX_SCAN_PIXELS = 2560 * 1440


SCAN_PIXELS_LIMIT = 16_000_000  # any full scan, --det-size 0 ("full size") included: 4000x4000, about 5 GB


def small_size(width: int, height: int, det_size: int, min_face: int = 0) -> tuple[int, int]:
    """Detector input size: longest side ``det_size``, never upscaled, both sides multiples of 32.

    ``min_face`` raises the scale so a face of that size still spans ``DETECTABLE_PX`` at the detector's input:
    small faces vanish first when the input shrinks, and a user who asks for them must not lose them. The raise
    stops at ``MAX_SCAN_PIXELS``, so memory stays bounded on 8K frames and huge photos.
    """
    s = 1.0 if det_size <= 0 else min(1.0, det_size / max(width, height))
    if min_face > 0:
        raised = min(DETECTABLE_PX / min_face, math.sqrt(MAX_SCAN_PIXELS / max(1, width * height)))
        s = min(1.0, max(s, raised))
    s = min(s, math.sqrt(SCAN_PIXELS_LIMIT / max(1, width * height)))  # even where --det-size asks for more
    return max(32, math.ceil(width * s / 32) * 32), max(32, math.ceil(height * s / 32) * 32)


def scan_size(detection: Detection, width: int, height: int) -> tuple[int, int]:
    """The full-scan input size for a ``width`` x ``height`` frame under these detection settings."""
    return small_size(width, height, detection.det_size, detection.min_face)
