"""Every setting of an analysis run, as one frozen dataclass.

Why: the same options travel from the CLI or the Python API to a worker process (local pool or Dask), are
written into each table's metadata, and decide whether ``--resume`` may skip an input. One picklable value
keeps those three in step.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from enum import Enum
from numbers import Integral, Real
from typing import Any, Literal, Union

from fer_batch.errors import UsageError

# settings that older versions recorded in each table's metadata and that never changed a table's content:
# ``annotate`` is a property of a folder run (``run_many``), not of the analysis
RETIRED = frozenset({"annotate"})

MAX_FPS = 10_000.0  # above any camera; the sampler is O(1) per frame whatever the rate
MIN_SEGMENT_S = 1.0  # shorter segments would be mostly pre-roll (and 1e-300 s would never finish planning)
MAX_RENDER_SCALE = 4.0  # render --scale: beyond this the output is only larger, never sharper
AUTO: Literal["auto"] = "auto"  # --annotate-scale / render --scale: enlarge small videos so the drawn text is legible
DEFAULT_MAX_PIXELS = 40_000_000  # an 8K frame (33 Mpx) passes, a 16000x16000 PNG (256 Mpx) does not


# settings that never change a table's numbers (how fast, where), or that name files whose content is compared instead
NOT_IN_RESULT = ("threads", "device", "batch_size", "max_pixels", "model", "model_spec")


class Level(str, Enum):
    """What one row of an aggregate stands for (``fer-batch export --by``, ``fer_batch.aggregate(by=...)``); here,
    below pandas, so that ``--help`` lists the choices without loading it."""

    FRAME = "frame"
    SECOND = "second"
    TRACK = "track"
    VIDEO = "video"
    EVENT = "event"


def cli_name(name: str) -> str:
    """The command-line spelling of an option (``det_size`` -> ``--det-size``), used in every message."""
    return "--" + name.replace("_", "-")


Check = Callable[[str, Any], Any]  # (option name, value) -> the value (normalised) or UsageError


def number(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, integer: bool = False,
    optional: bool = False,
) -> Check:
    """A check for a finite number in [lo, hi] (``lo_open``: (lo, hi]); ``integer`` also asks for a whole number."""
    if lo is None:
        span = f"<= {hi:g}" if hi is not None else "finite"
    else:
        span = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi is not None else "")

    def check(name: str, value: Any) -> Any:
        if value is None and optional:
            return None
        kind = "a whole number" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, Real):
            raise UsageError(f"{cli_name(name)} must be {kind} {span}, got {value!r}")
        if not math.isfinite(float(value)):
            raise UsageError(f"{cli_name(name)} must be {kind} {span}, got {value}")
        if integer:
            if not isinstance(value, Integral) and not float(value).is_integer():
                raise UsageError(f"{cli_name(name)} must be {kind} {span}, got {value}")
            value = int(value)
        v = float(value)
        if (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi):
            raise UsageError(f"{cli_name(name)} must be {kind} {span}, got {value}")
        return value

    return check


def choice(*allowed: str | None) -> Check:
    def check(name: str, value: Any) -> Any:
        if value not in allowed:
            names = ", ".join(a for a in allowed if a is not None)
            raise UsageError(f"{cli_name(name)}: unknown value {value!r} ({names})")
        return value

    return check


def text(name: str, value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{cli_name(name)} must be a non-empty string, got {value!r}")
    return value


def optional_text(name: str, value: Any) -> Any:
    return None if value is None else text(name, value)


def flag(name: str, value: Any) -> Any:
    if not isinstance(value, bool):
        raise UsageError(f"{cli_name(name)} must be True or False, got {value!r}")
    return value


@dataclass(frozen=True)
class Options:
    """Analysis settings; the defaults were chosen by measurement (see BENCHMARKS.md).

    Every field has a check in ``CHECKS`` (a new field without one is an error at import), run on construction,
    so the CLI and the Python API refuse the same values with the same one-line message.
    """

    # centerface | centerface-int8 (int8 full scans) | haar | none (each image or frame is one face that fills it)
    detector: str = "centerface"
    # a manifest id, ids joined by "+" (an averaged ensemble), or the path of an .onnx file
    model: str = "fer2013-minixception+face-api-expression"
    model_spec: str | None = None  # JSON manifest entry for a custom --model file
    fps: float | None = None  # analyse the frame nearest each multiple of 1/fps seconds
    every: int | None = None  # or every N-th decoded frame
    start: float | None = None  # seconds
    end: float | None = None  # seconds
    min_face: int = 24  # px in the displayed frame; smaller faces are dropped
    det_size: int = 640  # longest side of a full-frame scan's input (px), raised by min_face; 0 = full size
    det_threshold: float = 0.5
    detect_every: int = 1  # run the detector on every N-th analysed frame, track in between
    scan_interval: float = 0.5  # s between full-frame scans; other detector frames look only around tracked faces
    batch_size: int = 32  # frames per window: their faces are classified in one call
    smooth: float | None = None  # EMA factor along a track for <label>_smooth columns; None = off
    haar_scale_factor: float = 1.1
    haar_min_neighbors: int = 5
    crop_margin: float | None = None  # fraction of the box added on each side; None = the model's own crop
    tta: str | None = None  # "flip": average each model with its mirrored crop
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # onnxruntime intra-op threads; None = the cores this job owns
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger frames are refused from the header, before any decoding
    min_quality: float = 0.0  # faces whose ``quality`` is below this are left out of the tables (0: none)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = CHECKS[f.name](f.name, getattr(self, f.name))
            if value is not getattr(self, f.name):
                object.__setattr__(self, f.name, value)  # e.g. every=2.0 -> 2
        if self.fps is not None and self.every is not None:
            raise UsageError("--fps and --every exclude each other")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("--end must be after --start")

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> Options:
        """Build from keyword arguments, naming any that do not exist."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}")
        return cls(**kwargs)

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Options:
        """The options a table's metadata recorded; settings retired since (which never changed a table) dropped."""
        return cls(**{k: v for k, v in stored.items() if k not in RETIRED})

    def replace(self, **changes: Any) -> Options:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_key(self) -> dict[str, Any]:
        """The options that change a table's content (what ``--resume`` compares besides the models' checksums).

        ``model`` and ``model_spec`` name files: what they hold is compared instead (``jobs.Provenance``), so a
        model replaced at the same path is redone and one moved elsewhere is not.
        """
        d = self.as_dict()
        for name in NOT_IN_RESULT:
            d.pop(name)
        return d


CHECKS: dict[str, Check] = {
    "detector": choice("centerface", "centerface-int8", "haar", "none"),
    "model": text,
    "model_spec": optional_text,
    "fps": number(0, MAX_FPS, lo_open=True, optional=True),
    "every": number(1, integer=True, optional=True),
    "start": number(0, optional=True),
    "end": number(0, lo_open=True, optional=True),
    "min_face": number(1, 100_000, integer=True),
    "det_size": number(0, 100_000, integer=True),  # 0 = full size (documented)
    "det_threshold": number(0, 1, lo_open=True),
    "detect_every": number(1, integer=True),
    "scan_interval": number(0),
    "batch_size": number(1, 4096, integer=True),
    "smooth": number(0, 1, lo_open=True, optional=True),
    "haar_scale_factor": number(1, 10, lo_open=True),
    "haar_min_neighbors": number(0, 1000, integer=True),
    "crop_margin": number(0, 2, optional=True),
    "tta": choice(None, "flip"),
    "device": choice("auto", "cpu", "cuda"),
    "threads": number(1, 1024, integer=True, optional=True),
    "max_pixels": number(1, integer=True),
    "min_quality": number(0, 1),
}
_unchecked = {f.name for f in fields(Options)} - set(CHECKS)
assert not _unchecked, f"Options fields without a check: {_unchecked}"


Scale = Union[float, Literal["auto"]]  # the annotated video's size relative to the displayed frame


def check_scale(name: str, value: Any) -> Scale:
    """``auto`` or a number in (0, MAX_RENDER_SCALE]; text from the command line ("2", "auto") is parsed."""
    if isinstance(value, str):
        if value.strip().lower() == AUTO:
            return AUTO
        try:
            value = float(value)
        except ValueError:
            raise UsageError(f"{cli_name(name)} must be auto or a number > 0 and <= {MAX_RENDER_SCALE:g}, "
                             f"got {value!r}") from None  # fmt: skip
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 < float(value) <= MAX_RENDER_SCALE:
        raise UsageError(f"{cli_name(name)} must be auto or a number > 0 and <= {MAX_RENDER_SCALE:g}, got {value!r}")
    return float(value)


def check_run(jobs: Any = 1, segment_seconds: Any = None) -> None:
    """The folder run's own numbers (not part of ``Options``: they change how, not what, is computed)."""
    number(1, 4096, integer=True)("jobs", jobs)
    number(MIN_SEGMENT_S, optional=True)("segment_seconds", segment_seconds)


# --- the Python API's own arguments (not options): a wrong type is a TypeError naming the function and argument,
# not pathlib's "expected str, bytes or os.PathLike object, not int"; a flag given "no" is not silently true


def path_arg(func: str, name: str, value: Any) -> str | os.PathLike[str]:
    """A path (``str`` or ``os.PathLike``), non-empty."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{func}: {name} must be a path (str or os.PathLike), got {type(value).__name__} {value!r}")
    if not str(os.fspath(value)).strip():
        raise ValueError(f"{func}: {name} must not be empty")
    return value


def paths_arg(func: str, name: str, value: Any) -> list[str | os.PathLike[str]]:
    """One path, or an iterable of paths (never a single string split into characters)."""
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if not isinstance(value, Iterable) or isinstance(value, (bytes, dict)):
        raise TypeError(f"{func}: {name} must be a path or a list of paths, got {type(value).__name__} {value!r}")
    items = list(value)
    for item in items:
        if not isinstance(item, (str, os.PathLike)):
            raise TypeError(f"{func}: every item of {name} must be a path (str or os.PathLike), got "
                            f"{type(item).__name__} {item!r}")  # fmt: skip
    return items


def flag_arg(func: str, name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{func}: {name} must be True or False, got {type(value).__name__} {value!r}")
    return value


def int_arg(func: str, name: str, value: Any, lo: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{func}: {name} must be a whole number, got {type(value).__name__} {value!r}")
    if value < lo:
        raise ValueError(f"{func}: {name} must be {lo} or more, got {value}")
    return value
