"""One palette (issue 25): a label is the same colour in the annotated video, the report and the timeline PNGs."""

from __future__ import annotations

import base64
import re

import cv2
import numpy as np
import pandas as pd
from conftest import REPO

from fer_batch.outputs.draw import Painter
from fer_batch.outputs.palette import FER_COLOURS, bgr, hex_colours
from fer_batch.outputs.report.html import html_colors, legend
from fer_batch.outputs.report.parts import timeline_png
from fer_batch.outputs.summary import label_colors

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# a label's name followed by a colour: a palette of its own
COLOUR_TABLE = re.compile(r"""["'](angry|disgust|fear|happy|sad|surprise|neutral)["']\s*:\s*(\(\s*\d|["']#)""")


def test_only_the_palette_module_holds_label_colours() -> None:
    owners = sorted(str(p.relative_to(REPO)) for p in (REPO / "fer_batch").rglob("*.py")
                    if COLOUR_TABLE.search(p.read_text(encoding="utf-8")))  # fmt: skip
    assert owners == ["fer_batch/outputs/palette.py"]


def test_video_report_and_pngs_agree() -> None:
    for labels in (LABELS, ["Happy", "calm", "excited", "bored"]):
        colours = hex_colours(labels)
        assert Painter(labels, 640, 360).colours == [bgr(colours[lb]) for lb in labels]
        assert html_colors(labels) == colours == label_colors(labels)
        assert len(set(colours.values())) == len(labels)
    assert hex_colours(["Happy"])["Happy"] == FER_COLOURS["happy"]
    assert f"background:{FER_COLOURS['sad']}" in legend(html_colors(LABELS))


def test_timeline_png_draws_each_label_in_its_colour() -> None:
    """A track that is mostly 'sad' then mostly 'happy': both lines appear in the PNG in the palette's colours."""
    n = 40
    times = pd.Series(np.arange(n) / 10.0, index=np.arange(n))
    rows = pd.DataFrame({lb: np.full(n, 0.02) for lb in LABELS}, index=times.index)
    rows["sad"] = np.where(np.arange(n) < n // 2, 0.9, 0.05)
    rows["happy"] = np.where(np.arange(n) < n // 2, 0.05, 0.9)
    uri = timeline_png(times, rows, LABELS, html_colors(LABELS), False, (0.0, 3.9))
    img = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    for label in ("sad", "happy"):
        near = np.abs(img.astype(int) - np.array(bgr(FER_COLOURS[label]))).sum(axis=2) < 30
        assert near.sum() > 50, label
