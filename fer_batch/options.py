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


# settings that name files: what the files hold is compared instead (``runs.jobs.Provenance``)
NAMES_FILES = ("model", "model_spec")


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
            value = int(float(value))
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


class Group(Enum):
    """What part of a run a setting belongs to. Each ``Options`` field names its group, once, beside its check."""

    SAMPLING = "sampling"  # which frames are analysed
    DETECTION = "detection"  # how faces are found and followed
    CLASSIFICATION = "classification"  # how a face becomes probabilities (and which rows a table keeps)
    RUNTIME = "runtime"  # where and how fast: never changes a table's numbers


def option(default: Any, group: Group, check: Check) -> Any:
    """An ``Options`` field: its default, its group and its check, declared together (adding a setting is one line
    here and one CLI option; ``test_options_checked`` holds the CLI to the same defaults)."""
    return dataclasses.field(default=default, metadata={"group": group, "check": check})


_S, _D, _C, _R = Group.SAMPLING, Group.DETECTION, Group.CLASSIFICATION, Group.RUNTIME


@dataclass(frozen=True)
class Options:
    """Analysis settings; the defaults were chosen by measurement (see BENCHMARKS.md).

    Every field declares its ``Group`` and its check (run on construction, so the CLI and the Python API refuse the
    same values with the same one-line message). The groups decide what follows from the options: the resume key is
    everything but the runtime group (``result_key``); the models a process keeps loaded depend on detection,
    classification and where they run (``model_key``). Stored flat: one picklable value, with the same keys in every
    table's metadata and in the API's keyword arguments; ``group`` gives one group's settings.
    """

    # centerface | centerface-int8 (int8 full scans) | haar | none (each image or frame is one face that fills it)
    detector: str = option("centerface", _D, choice("centerface", "centerface-int8", "haar", "none"))
    # a manifest id, ids joined by "+" (an averaged ensemble), or the path of an .onnx file
    model: str = option("fer2013-minixception+face-api-expression", _C, text)
    model_spec: str | None = option(None, _C, optional_text)  # JSON manifest entry for a custom --model file
    # analyse the frame nearest each multiple of 1/fps seconds, or every N-th decoded frame
    fps: float | None = option(None, _S, number(0, MAX_FPS, lo_open=True, optional=True))
    every: int | None = option(None, _S, number(1, integer=True, optional=True))
    start: float | None = option(None, _S, number(0, optional=True))  # seconds
    end: float | None = option(None, _S, number(0, lo_open=True, optional=True))  # seconds
    min_face: int = option(24, _D, number(1, 100_000, integer=True))  # px in the displayed frame; smaller dropped
    # longest side of a full-frame scan's input (px), raised by min_face; 0 = full size (documented)
    det_size: int = option(640, _D, number(0, 100_000, integer=True))
    det_threshold: float = option(0.5, _D, number(0, 1, lo_open=True))
    # run the detector on every N-th analysed frame, track in between
    detect_every: int = option(1, _D, number(1, integer=True))
    # s between full-frame scans; other detector frames look only around tracked faces
    scan_interval: float = option(0.5, _D, number(0))
    batch_size: int = option(32, _R, number(1, 4096, integer=True))  # frames per window, classified in one call
    # EMA factor along a track for <label>_smooth columns; None = off
    smooth: float | None = option(None, _C, number(0, 1, lo_open=True, optional=True))
    haar_scale_factor: float = option(1.1, _D, number(1, 10, lo_open=True))
    haar_min_neighbors: int = option(5, _D, number(0, 1000, integer=True))
    # fraction of the box added on each side; None = the model's own crop
    crop_margin: float | None = option(None, _C, number(0, 2, optional=True))
    tta: str | None = option(None, _C, choice(None, "flip"))  # "flip": average each model with its mirrored crop
    device: str = option("auto", _R, choice("auto", "cpu", "cuda"))
    # onnxruntime intra-op threads; None = the cores this job owns
    threads: int | None = option(None, _R, number(1, 1024, integer=True, optional=True))
    # larger frames are refused from the header, before any decoding
    max_pixels: int = option(DEFAULT_MAX_PIXELS, _R, number(1, integer=True))
    # faces whose ``quality`` is below this are left out of the tables (0: none)
    min_quality: float = option(0.0, _C, number(0, 1))

    def __post_init__(self) -> None:
        for f in fields(self):
            value = f.metadata["check"](f.name, getattr(self, f.name))
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

    @classmethod
    def names(cls, *groups: Group) -> list[str]:
        """The settings of these groups, in declaration order."""
        return [f.name for f in fields(cls) if f.metadata["group"] in groups]

    def group(self, group: Group) -> dict[str, Any]:
        """One group's settings."""
        return {name: getattr(self, name) for name in self.names(group)}

    def replace(self, **changes: Any) -> Options:
        """A copy with some settings changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        # shallow (every field is a scalar): ``asdict``'s deep copy cost more than a photo's table row
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def result_key(self) -> dict[str, Any]:
        """The options that change a table's content (what ``--resume`` compares besides the models' checksums):
        every group but the runtime one. ``model`` and ``model_spec`` name files: what they hold is compared
        instead (``jobs.Provenance``), so a model replaced at the same path is redone and one moved is not."""
        names = self.names(Group.SAMPLING, Group.DETECTION, Group.CLASSIFICATION)
        return {name: getattr(self, name) for name in names if name not in NAMES_FILES}

    def model_key(self) -> Options:
        """These options with only what loading the models reads kept (detection, classification, and where they
        run): a segment's own --start/--end, or another --batch-size, must not load them again."""
        defaults = {f.name: f.default for f in fields(self)}
        reset = [n for n in self.names(Group.SAMPLING, Group.RUNTIME) if n not in ("device", "threads")]
        reset += ["detect_every", "scan_interval", "smooth"]  # read by the engine and the tracker, not the models
        return self.replace(**{name: defaults[name] for name in reset})



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
