"""Drawing faces onto a frame: boxes, labels and probability bars, sized to the frame and laid out to stay legible.

Why apart from the video output: the renderer, the webcam preview and the webcam recording all draw the same way,
and the layout (what goes where) is decided before painting so the renderer can convert only the part of a
frame that changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import cv2
import numpy as np

from fer_batch.analysis.quality import RELIABLE
from fer_batch.outputs.palette import bgr_colours
from fer_batch.types import Faces

FONT = cv2.FONT_HERSHEY_SIMPLEX


MIN_FONT = 0.5  # HERSHEY_SIMPLEX at 0.5 is 12 px tall: the smallest text drawn, at any frame size
GAP = 2  # px between a face's outline and what is placed beside it


def chart_font(font: float) -> float:
    """The chart's labels: a little smaller than the face's label, never under MIN_FONT."""
    return max(MIN_FONT, 0.85 * font)


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
        font = max(MIN_FONT, 0.55 * unit)
        thick = max(1, round(1.4 * unit))
        (tw, th), _ = cv2.getTextSize(max(labels, key=len) if labels else "x", FONT, chart_font(font), thick)
        return Style(unit=unit, font=font, thick=thick, box=max(2, round(2.5 * unit)),
                     row=max(9, th + round(5 * unit)), bar=max(30, round(70 * unit)), text_w=tw + round(6 * unit),
                     pad=max(2, round(4 * unit)))  # fmt: skip


class Kind(Enum):
    """What an ``Op`` draws."""

    BOX = "box"  # the face's outline, just outside its box
    DASHED = "dashed"  # the outline in dashes: a face whose quality is below ``RELIABLE`` (no label, no chart)
    LABEL = "label"  # top label, score and track id, outside every face's box
    BARS = "bars"  # the probability chart, outside every face's box


Rect = tuple[int, int, int, int]  # x1, y1, x2, y2 (x2, y2 exclusive), frame pixels


class Side(Enum):
    """Where beside a face a label or chart may go."""

    ABOVE = "above"
    BELOW = "below"
    RIGHT = "right"
    LEFT = "left"


LABEL_SIDES = (Side.ABOVE, Side.BELOW, Side.RIGHT, Side.LEFT)
CHART_SIDES = (Side.RIGHT, Side.LEFT, Side.BELOW, Side.ABOVE)


@dataclass(frozen=True)
class Op:
    """One thing to draw, in frame pixels: a face's box, its label, or its bar chart."""

    kind: Kind
    rect: Rect
    colour: tuple[int, int, int]
    text: str = ""
    probs: np.ndarray | None = None


class Painter:
    """Draws one frame's faces in place; cheap enough for every frame (a few cv2 calls per face)."""

    def __init__(self, labels: list[str], width: int, height: int) -> None:
        self.labels = labels
        self.width, self.height = width, height  # the frame size the style was made for
        self.colours = bgr_colours(labels)  # the report's and the PNGs' colours too
        self.style = Style.for_size(width, height, labels)

    def draw(self, img: np.ndarray, faces: Faces, scale: float = 1.0) -> None:
        """Draw the faces onto the whole frame ``img`` (see ``layout`` for where things go)."""
        h, w = img.shape[:2]
        self.paint(img, self.layout(faces, scale, w, h))

    @property
    def ring(self) -> int:
        """How far outside a face's box its outline reaches (the outline never enters the box)."""
        return self.style.box + 1

    def layout(self, faces: Faces, scale: float, w: int, h: int) -> list[Op]:
        """What to draw where, in frame pixels: every box's outline; then, largest face first, its label and chart
        beside its box, inside the frame, where they cover no face's box and no other label or chart.

        Why the rules: the face is what the viewer watches change, so only its outline (drawn just outside the box)
        touches it; in a crowd, labels and charts of small faces would bury the picture, and the box colour still
        says the emotion. A label is drawn for faces at least as tall as the label, a chart for faces at least half
        its height (the largest face gets both wherever they fit); what fits nowhere is left out. Laying out before
        painting lets the renderer convert only the part of the frame that changes.
        """
        if not len(faces):
            return []
        boxes = np.round(faces.boxes * scale).astype(np.int64)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        probs = faces.probs if faces.probs is not None and len(self.labels) else None
        top = probs.argmax(axis=1) if probs is not None else np.full(len(faces), -1)
        colours = [self.colours[k] if k >= 0 else (255, 255, 255) for k in top]
        rects: list[Rect] = [(int(b[0]), int(b[1]), int(b[2]), int(b[3])) for b in boxes]
        # a face below the reliable quality: a dashed outline and no label or chart (its emotion is not to be read)
        doubtful = faces.quality < RELIABLE if faces.quality is not None else np.zeros(len(faces), bool)
        ops = [Op(Kind.DASHED if d else Kind.BOX, r, c) for r, c, d in zip(rects, colours, doubtful, strict=True)]
        r = self.ring
        taken: list[Rect] = [(x1 - r, y1 - r, x2 + r, y2 + r) for x1, y1, x2, y2 in rects]  # faces and outlines
        order = np.argsort(-(boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), kind="stable")
        order = order[~doubtful[order]]
        for rank, i in enumerate(order):
            face_h = rects[i][3] - rects[i][1]
            text = f"{self.labels[top[i]]} {probs[i, top[i]]:.2f}" if probs is not None else "face"
            if int(faces.track_id[i]) >= 0:
                text += f"  #{int(faces.track_id[i])}"
            size = self._label_size(text)
            label = self._place(size, taken[i], LABEL_SIDES, taken, w, h) if rank == 0 or face_h >= size[1] else None
            if label is not None:
                ops.append(Op(Kind.LABEL, label, colours[i], text=text))
                taken.append(label)
            if probs is None:
                continue
            size = self._chart_size()
            fits = rank == 0 or 2 * face_h >= size[1]
            chart = self._place(size, taken[i], CHART_SIDES, taken, w, h) if fits else None
            if chart is not None:
                ops.append(Op(Kind.BARS, chart, colours[i], probs=probs[i]))
                taken.append(chart)
        return ops

    def paint(self, img: np.ndarray, ops: list[Op], origin: tuple[int, int] = (0, 0)) -> None:
        """Draw laid-out ``ops`` onto ``img``, whose top-left pixel is ``origin`` in frame pixels."""
        ox, oy = origin
        for op in ops:
            x1, y1, x2, y2 = op.rect
            rect = (x1 - ox, y1 - oy, x2 - ox, y2 - oy)
            if op.kind is Kind.BOX:
                self._outline(img, rect, op.colour)
            elif op.kind is Kind.DASHED:
                self._outline(img, rect, op.colour, dashed=True)
            elif op.kind is Kind.LABEL:
                self._label(img, op.text, rect, op.colour)
            elif op.probs is not None:
                self._bars(img, op.probs, rect)

    def extent(self, ops: list[Op]) -> Rect:
        """The frame rectangle that painting ``ops`` can touch (outlines lie just outside their boxes)."""
        m = self.ring + 1
        return (min(op.rect[0] for op in ops) - m, min(op.rect[1] for op in ops) - m,
                max(op.rect[2] for op in ops) + m, max(op.rect[3] for op in ops) + m)  # fmt: skip

    def _label_size(self, text: str) -> tuple[int, int]:
        s = self.style
        (tw, th), base = cv2.getTextSize(text, FONT, s.font, s.thick)
        return tw + 2 * s.pad, th + base + 2 * s.pad

    def _chart_size(self) -> tuple[int, int]:
        s = self.style
        return s.text_w + s.bar + 3 * s.pad, len(self.labels) * s.row + 2 * s.pad

    @staticmethod
    def _place(size: tuple[int, int], around: Rect, sides: tuple[Side, ...], taken: list[Rect], w: int,
               h: int) -> Rect | None:  # fmt: skip
        """The first spot beside ``around`` (a face's box with its outline), in the order of ``sides``, that lies
        inside the frame and overlaps nothing ``taken``; each side is tried aligned with either end of the box."""
        pw, ph = size
        if pw > w or ph > h:
            return None
        x1, y1, x2, y2 = around
        for side in sides:
            if side in (Side.ABOVE, Side.BELOW):
                y = y1 - GAP - ph if side is Side.ABOVE else y2 + GAP
                spots = [(x, y) for x in (x1, x2 - pw, (x1 + x2 - pw) // 2)]
            else:
                x = x2 + GAP if side is Side.RIGHT else x1 - GAP - pw
                spots = [(x, y) for y in (y1, y2 - ph, (y1 + y2 - ph) // 2)]
            for x, y in spots:
                x, y = (max(0, min(x, w - pw)), y) if side in (Side.ABOVE, Side.BELOW) else (x, max(0, min(y, h - ph)))
                rect = (x, y, x + pw, y + ph)
                if x >= 0 and y >= 0 and x + pw <= w and y + ph <= h and not any(_overlap(rect, t) for t in taken):
                    return rect
        return None

    def _outline(self, img: np.ndarray, rect: Rect, colour: tuple[int, int, int], dashed: bool = False) -> None:
        """A frame ``style.box`` px wide around ``rect``, one pixel away from it: no pixel of the box (nor, in
        4:2:0, any chroma sample shared with one) changes. ``dashed``: in dashes and gaps of four widths each."""
        x1, y1, x2, y2 = rect
        r = self.ring
        dash = max(4, 4 * self.style.box)
        for a, b in (((x1 - r, y1 - r), (x2 + r - 1, y1 - 2)), ((x1 - r, y2 + 1), (x2 + r - 1, y2 + r - 1)),
                     ((x1 - r, y1 - r), (x1 - 2, y2 + r - 1)), ((x2 + 1, y1 - r), (x2 + r - 1, y2 + r - 1))):
            if not dashed:
                cv2.rectangle(img, a, b, colour, -1)  # fmt: skip
                continue
            along = 0 if b[0] - a[0] >= b[1] - a[1] else 1  # the band's long axis
            for start in range(a[along], b[along] + 1, 2 * dash):
                p, q = list(a), list(b)
                p[along], q[along] = start, min(start + dash - 1, b[along])
                cv2.rectangle(img, (p[0], p[1]), (q[0], q[1]), colour, -1)

    def _label(self, img: np.ndarray, text: str, rect: Rect, colour: tuple[int, int, int]) -> None:
        s = self.style
        tx, ty, tx2, ty2 = rect
        (_, th), _ = cv2.getTextSize(text, FONT, s.font, s.thick)
        cv2.rectangle(img, (tx, ty), (tx2 - 1, ty2 - 1), colour, -1)
        ink = (0, 0, 0) if sum(colour) > 380 else (255, 255, 255)
        cv2.putText(img, text, (tx + s.pad, ty + s.pad + th), FONT, s.font, ink, s.thick, cv2.LINE_AA)

    def _bars(self, img: np.ndarray, p: np.ndarray, rect: Rect) -> None:
        s = self.style
        px, py, px2, py2 = rect
        roi = img[py:py2, px:px2]
        cv2.addWeighted(roi, 0.35, np.zeros_like(roi), 0.65, 0.0, dst=roi)  # darkened panel behind the chart
        fs = chart_font(s.font)
        for k in range(len(self.labels)):
            top = py + s.pad + k * s.row
            cv2.putText(img, self.labels[k], (px + s.pad, top + s.row - max(2, s.row // 5)), FONT, fs,
                        (235, 235, 235), max(1, s.thick - 1), cv2.LINE_AA)  # fmt: skip
            bx = px + 2 * s.pad + s.text_w
            length = int(round(float(np.clip(p[k], 0.0, 1.0)) * s.bar))
            cv2.rectangle(img, (bx, top + 1), (bx + s.bar, top + s.row - 2), (80, 80, 80), 1)
            if length > 0:
                cv2.rectangle(img, (bx, top + 1), (bx + length, top + s.row - 2), self.colours[k], -1)


def _overlap(a: Rect, b: Rect) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]
