"""The one colour per emotion label that every output uses: the annotated video, the report and the timeline PNGs.

Why one module: a viewer reads "yellow = happy" off the video and then looks for yellow in the report; two palettes
(as there once were) made the same label two colours. The seven FER2013 labels have fixed colours chosen to read as
the emotion and to stay apart from each other on a photo and on white; labels of a custom model get evenly spaced
hues, by their position in the model's label list.
"""

from __future__ import annotations

import colorsys

# RGB hex of the seven FER2013 labels (matched without regard to case)
FER_COLOURS: dict[str, str] = {
    "angry": "#d62728",
    "disgust": "#2ca02c",
    "fear": "#9467bd",
    "happy": "#ffbf00",
    "sad": "#1f77b4",
    "surprise": "#ff7f0e",
    "neutral": "#999999",
}


def colour(label: str, position: int) -> str:
    """A label's ``"#rrggbb"``: fixed for the FER labels, else a golden-ratio hue from its ``position`` in the list."""
    fixed = FER_COLOURS.get(label.lower())
    if fixed is not None:
        return fixed
    r, g, b = colorsys.hsv_to_rgb((0.13 + 0.618034 * position) % 1.0, 0.75, 0.95)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"


def hex_colours(labels: list[str]) -> dict[str, str]:
    """``{label: "#rrggbb"}`` in label order, for CSS and matplotlib."""
    return {label: colour(label, k) for k, label in enumerate(labels)}


def bgr_colours(labels: list[str]) -> list[tuple[int, int, int]]:
    """The same colours as (B, G, R) tuples in label order, for OpenCV drawing."""
    return [bgr(colour(label, k)) for k, label in enumerate(labels)]


def bgr(colour: str) -> tuple[int, int, int]:
    """``"#rrggbb"`` as OpenCV's (B, G, R)."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return b, g, r
