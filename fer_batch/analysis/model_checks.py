"""Checks of an emotion model's spec (a manifest entry) and of what the model outputs.

Why a module of its own: a spec is user input, and every value in it ends up somewhere a wrong one does harm later
(a duplicate label makes a table pyarrow cannot read back, a zero ``std`` fills it with inf, logits stored as
probabilities look like results). Every value is checked once, before any work, with one line naming the spec and
the value; the outputs are checked on the pre-run check and again on every real face.
"""

from __future__ import annotations

import json
import math
import os
import stat
from numbers import Real
from typing import Any

import numpy as np

from fer_batch.columns import SMOOTH_SUFFIX, TABLE_COLUMNS
from fer_batch.errors import ModelError, ModelOutputError

SPEC_MAX_BYTES = 1 << 20  # a manifest entry is a few hundred bytes; /dev/zero or a huge file must not be read whole
OUTPUT_KINDS = ("probabilities", "logits")

SUM_TOLERANCE = 1e-3  # float32 softmax sums stay within 1e-6; a model that does not end in one is far off
CROP_KEYS = {"margin": (-0.25, 2.0), "shift": (-1.0, 1.0)}


def read_spec(spec_path: str) -> dict[str, Any]:
    """The JSON object of ``--model-spec``: a regular file of at most ``SPEC_MAX_BYTES``, read without blocking."""
    where = f"--model-spec {spec_path}"
    try:
        st = os.stat(spec_path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the open, /dev/zero never end
            raise ModelError(f"{where}: not a regular file")
        if st.st_size > SPEC_MAX_BYTES:
            raise ModelError(f"{where}: {st.st_size} bytes, more than a model spec can be ({SPEC_MAX_BYTES})")
        with open(spec_path, "rb") as f:
            raw = f.read(SPEC_MAX_BYTES + 1)
    except OSError as e:
        raise ModelError(f"{where}: {e.strerror or e}") from None
    if len(raw) > SPEC_MAX_BYTES:
        raise ModelError(f"{where}: more than {SPEC_MAX_BYTES} bytes")
    try:
        entry = json.loads(raw)
    except ValueError as e:  # UnicodeDecodeError too
        raise ModelError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(entry, dict):
        raise ModelError(f"{where}: must be a JSON object (one manifest entry)")
    return entry


def check_values(entry: dict[str, Any], where: str) -> None:
    """Every value the pipeline reads from an entry whose keys are present: one ``ModelError`` naming the first bad."""
    _check_input(entry["input"], where, sized=entry.get("task") == "emotion")
    if entry.get("task") == "emotion":
        check_labels(entry["labels"], where)
    _check_crop(entry.get("crop"), where)
    output = entry.get("output", "probabilities")
    if output not in OUTPUT_KINDS:
        raise ModelError(f'{where}: output must be "probabilities" or "logits", got {output!r}')


def _number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _check_input(inp: Any, where: str, sized: bool) -> None:
    """``sized``: the model takes crops of a fixed size (a classifier); a detector's may be null (any size)."""
    if not isinstance(inp, dict):
        raise ModelError(f"{where}: input must be an object")
    if inp["layout"] not in ("NCHW", "NHWC") or inp["color"] not in ("gray", "rgb", "bgr"):
        raise ModelError(f"{where}: input.layout must be NCHW/NHWC and input.color gray/rgb/bgr")
    for key in ("height", "width", "channels"):
        v = inp[key]
        if v is None and key != "channels" and not sized:
            continue
        if not (_number(v) and float(v).is_integer() and 1 <= v <= 4096):
            raise ModelError(f"{where}: input.{key} must be a whole number from 1 to 4096, got {v!r}")
    for key in ("scale", "offset"):
        if not _number(inp[key]):
            raise ModelError(f"{where}: input.{key} must be a finite number, got {inp[key]!r}")
    if float(inp["scale"]) == 0:
        raise ModelError(f"{where}: input.scale must not be 0 (every face would be the same input)")
    channels = 1 if inp["color"] == "gray" else 3
    for key in ("mean", "std"):
        v = inp[key]
        if not (isinstance(v, list) and all(_number(x) for x in v)):
            raise ModelError(f"{where}: input.{key} must be a list of finite numbers, got {v!r}")
    if int(inp["channels"]) != channels or len(inp["mean"]) != channels or len(inp["std"]) != channels:
        raise ModelError(f"{where}: channels, mean and std must match color {inp['color']!r}")
    if any(float(x) == 0 for x in inp["std"]):
        raise ModelError(f"{where}: input.std must not be 0 (it divides)")


def check_labels(labels: Any, where: str) -> None:
    """Labels become table columns: non-empty distinct strings, none named like another column of the table."""
    if not isinstance(labels, list) or not labels:
        raise ModelError(f"{where}: labels must be a non-empty list of names")
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise ModelError(f"{where}: every label must be a non-empty string, got {label!r}")
        if label in TABLE_COLUMNS:
            raise ModelError(f"{where}: label {label!r} is the name of a table column; rename it")
        if label.endswith(SMOOTH_SUFFIX) and label[: -len(SMOOTH_SUFFIX)] in labels:
            raise ModelError(f"{where}: label {label!r} would clash with the smoothed column of "
                             f"{label[: -len(SMOOTH_SUFFIX)]!r}; rename it")  # fmt: skip
    dupes = sorted({lab for lab in labels if labels.count(lab) > 1})
    if dupes:
        raise ModelError(f"{where}: label(s) {', '.join(map(repr, dupes))} given more than once")


def _check_crop(crop: Any, where: str) -> None:
    if crop is None:
        return
    if not isinstance(crop, dict):
        raise ModelError(f"{where}: crop must be an object")
    unknown = set(crop) - {"margin", "square", "align", "shift"}
    if unknown:
        raise ModelError(f"{where}: unknown crop key(s) {', '.join(sorted(unknown))}")
    for key, (lo, hi) in CROP_KEYS.items():
        if key in crop and not (_number(crop[key]) and lo <= crop[key] <= hi):
            raise ModelError(f"{where}: crop.{key} must be a number from {lo:g} to {hi:g}, got {crop[key]!r}")
    if "square" in crop and not isinstance(crop["square"], bool):
        raise ModelError(f"{where}: crop.square must be true or false, got {crop['square']!r}")
    if "align" in crop and crop["align"] not in (True, False, "eyes"):
        raise ModelError(f'{where}: crop.align must be true, false or "eyes", got {crop["align"]!r}')


def as_probabilities(out: np.ndarray, kind: str, model: str) -> np.ndarray:
    """A model's outputs (faces, labels) as probabilities: softmax of logits, checked probabilities as they are.

    Raises ``ModelOutputError`` (one line) for non-finite outputs, and for declared probabilities outside [0, 1] or
    whose rows do not sum to 1: storing either as probabilities would look like results.
    """
    if not np.isfinite(out).all():
        bad = "nan" if np.isnan(out).any() else "inf"
        raise ModelOutputError(f"model {model} gave non-finite outputs ({bad}) for a face")
    if kind == "logits":
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return np.asarray(e / e.sum(axis=1, keepdims=True), dtype=np.float32)
    sums = out.sum(axis=1)
    worst = float(sums[np.argmax(np.abs(sums - 1))]) if len(out) else 1.0
    if abs(worst - 1) > SUM_TOLERANCE or out.min(initial=0) < -SUM_TOLERANCE or out.max(initial=0) > 1 + SUM_TOLERANCE:
        raise ModelOutputError(f'model {model} gave outputs that are not probabilities (a face\'s sum {worst:.4g}); '
                               'if it ends without a softmax, set "output": "logits" in its spec')  # fmt: skip
    return out
