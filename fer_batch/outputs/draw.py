"""Drawing faces onto a frame: boxes, labels and probability bars, sized to the frame and laid out to stay legible.

Why apart from the video output: the renderer, the webcam preview and the webcam recording all draw the same way,
and the layout (what goes where) is decided before painting so the renderer can convert only the part of a
frame that changes.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import cv2
import numpy as np

from fer_batch.types import Faces

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
        self.width, self.height = width, height  # the frame size the style was made for
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


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
