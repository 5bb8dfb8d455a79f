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
from typing import Any, ClassVar, Literal, Union, cast

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
    lo: float | None = None,
    hi: float | None = None,
    *,
    lo_open: bool = False,
    integer: bool = False,
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


class Group(Enum):
    """The parts of a run's settings; each is a frozen dataclass of ``Options`` (``Options.sampling`` ...)."""

    SAMPLING = "sampling"
    DETECTION = "detection"
    TRACKING = "tracking"
    CLASSIFICATION = "classification"
    RUNTIME = "runtime"
    LIMITS = "limits"


def option(default: Any, check: Check) -> Any:
    """A setting: its default and its check, declared together (adding a setting is one line in its group and one
    CLI option; ``test_options_checked`` holds the CLI to the same defaults)."""
    return dataclasses.field(default=default, metadata={"check": check})


@dataclass(frozen=True)
class _Settings:
    """A group of settings, each checked on construction (the CLI and the Python API refuse the same values with
    the same one-line message). What a group's settings change is declared once, on the group."""

    CHANGES_RESULTS: ClassVar[bool] = True  # part of the resume key: another value, other numbers in the table
    READ_BY_MODELS: ClassVar[bool] = False  # part of the loaded-models key: another value, other model sessions

    def __post_init__(self) -> None:
        for f in fields(self):
            value = f.metadata["check"](f.name, getattr(self, f.name))
            if value is not getattr(self, f.name):
                object.__setattr__(self, f.name, value)  # e.g. every=2.0 -> 2


@dataclass(frozen=True)
class Sampling(_Settings):
    """Which frames are analysed."""

    # analyse the frame nearest each multiple of 1/fps seconds, or every N-th decoded frame
    fps: float | None = option(None, number(0, MAX_FPS, lo_open=True, optional=True))
    every: int | None = option(None, number(1, integer=True, optional=True))
    start: float | None = option(None, number(0, optional=True))  # seconds
    end: float | None = option(None, number(0, lo_open=True, optional=True))  # seconds

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.fps is not None and self.every is not None:
            raise UsageError("--fps and --every exclude each other")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError("--end must be after --start")


@dataclass(frozen=True)
class Detection(_Settings):
    """How faces are found: the detector reads these when it is loaded, and on every scan."""

    READ_BY_MODELS: ClassVar[bool] = True

    # centerface-int8 (int8 full scans, float regions; the default: 15-20 % less CPU a video at the float model's
    # recall, BENCHMARKS.md) | centerface (float scans) | haar | none (each image or frame is one face that fills it)
    detector: str = option("centerface-int8", choice("centerface", "centerface-int8", "haar", "none"))
    min_face: int = option(24, number(1, 100_000, integer=True))  # px in the displayed frame; smaller dropped
    # longest side of a full-frame scan's input (px), raised by min_face; 0 = full size (documented)
    det_size: int = option(640, number(0, 100_000, integer=True))
    det_threshold: float = option(0.5, number(0, 1, lo_open=True))
    haar_scale_factor: float = option(1.1, number(1, 10, lo_open=True))
    haar_min_neighbors: int = option(5, number(0, 1000, integer=True))


@dataclass(frozen=True)
class Tracking(_Settings):
    """How faces are followed between detector frames and smoothed along a track (the engine reads these, not the
    models)."""

    # run the detector on every N-th analysed frame, track in between
    detect_every: int = option(1, number(1, integer=True))
    # s between full-frame scans; other detector frames look only around tracked faces
    scan_interval: float = option(0.5, number(0))
    # EMA factor along a track for <label>_smooth columns; None = off
    smooth: float | None = option(None, number(0, 1, lo_open=True, optional=True))


@dataclass(frozen=True)
class Classification(_Settings):
    """How a face becomes probabilities, and which rows a table keeps."""

    READ_BY_MODELS: ClassVar[bool] = True

    # a manifest id, ids joined by "+" (an averaged ensemble), or the path of an .onnx file
    model: str = option("fer2013-minixception+face-api-expression", text)
    model_spec: str | None = option(None, optional_text)  # JSON manifest entry for a custom --model file
    # fraction of the box added on each side; None = the model's own crop
    crop_margin: float | None = option(None, number(0, 2, optional=True))
    tta: str | None = option(None, choice(None, "flip"))  # "flip": average each model with its mirrored crop
    # faces whose ``quality`` is below this are left out of the tables (0: none)
    min_quality: float = option(0.0, number(0, 1))


@dataclass(frozen=True)
class Runtime(_Settings):
    """Where the models run (never changes a table's numbers beyond float rounding)."""

    CHANGES_RESULTS: ClassVar[bool] = False
    READ_BY_MODELS: ClassVar[bool] = True

    device: str = option("auto", choice("auto", "cpu", "cuda"))
    # onnxruntime intra-op threads; None = the cores this job owns
    threads: int | None = option(None, number(1, 1024, integer=True, optional=True))


@dataclass(frozen=True)
class Limits(_Settings):
    """How work is cut and what is refused: never changes a table's numbers (batched output equals one at a time)."""

    CHANGES_RESULTS: ClassVar[bool] = False

    batch_size: int = option(32, number(1, 4096, integer=True))  # frames per window, classified in one call
    # larger frames are refused from the header, before any decoding
    max_pixels: int = option(DEFAULT_MAX_PIXELS, number(1, integer=True))


@dataclass(frozen=True)
class Options:
    """Analysis settings, stored in groups; the defaults were chosen by measurement (see BENCHMARKS.md).

    Why groups: what follows from the settings is declared once per group, so the resume key (``result_key``:
    the groups that change results) and the key of the models a process keeps loaded (``model_key``: the groups
    the models read) follow from them. Flat at the edges: ``Options.of(fps=5)``, ``replace``, ``as_dict`` and
    the tables' metadata use the settings' own names, which are unique across groups.
    """

    sampling: Sampling = dataclasses.field(default_factory=Sampling)
    detection: Detection = dataclasses.field(default_factory=Detection)
    tracking: Tracking = dataclasses.field(default_factory=Tracking)
    classification: Classification = dataclasses.field(default_factory=Classification)
    runtime: Runtime = dataclasses.field(default_factory=Runtime)
    limits: Limits = dataclasses.field(default_factory=Limits)

    @classmethod
    def of(cls, **settings: Any) -> Options:
        """Build from settings by name (``Options.of(fps=5, detector="haar")``), naming any that do not exist."""
        return cls().replace(**settings)

    @classmethod
    def from_stored(cls, stored: dict[str, Any]) -> Options:
        """The options a table's metadata recorded; settings retired since (which never changed a table) dropped."""
        return cls.of(**{k: v for k, v in stored.items() if k not in RETIRED})

    @classmethod
    def groups(cls) -> dict[Group, type[_Settings]]:
        """Each group and its dataclass, in declaration order."""
        return _GROUPS

    @classmethod
    def settings(cls) -> list[dataclasses.Field[Any]]:
        """Every setting's field (name, default, check), group by group."""
        return [f for kind in cls.groups().values() for f in fields(kind)]

    @classmethod
    def names(cls, *groups: Group) -> list[str]:
        """The settings of these groups, in declaration order."""
        return [f.name for g, kind in cls.groups().items() if g in groups for f in fields(kind)]

    def group(self, group: Group) -> _Settings:
        """One group's settings."""
        value: _Settings = getattr(self, group.value)
        return value

    def replace(self, **changes: Any) -> Options:
        """A copy with some settings changed by name (checked again); an unknown name is a TypeError."""
        unknown = sorted(set(changes) - set(_OWNER))
        if unknown:
            raise TypeError(f"unknown option(s): {', '.join(unknown)}")
        groups: dict[str, Any] = {}
        for g in Group:
            mine = {k: v for k, v in changes.items() if _OWNER[k] is g}
            if mine:
                groups[g.value] = dataclasses.replace(self.group(g), **mine)
        return dataclasses.replace(self, **groups) if groups else self

    def as_dict(self) -> dict[str, Any]:
        """Every setting by name (flat), group by group: what a table's metadata records."""
        # shallow (every setting is a scalar): ``asdict``'s deep copy cost more than a photo's table row
        return {f.name: getattr(self.group(g), f.name) for g, kind in self.groups().items() for f in fields(kind)}

    def result_key(self) -> dict[str, Any]:
        """The settings that change a table's content (what ``--resume`` compares besides the models' checksums):
        the groups that declare ``CHANGES_RESULTS``. ``model`` and ``model_spec`` name files: what they hold is
        compared instead (``jobs.Provenance``), so a model replaced at the same path is redone and one moved is not."""
        names = self.names(*(g for g, kind in self.groups().items() if kind.CHANGES_RESULTS))
        flat = self.as_dict()
        return {name: flat[name] for name in names if name not in NAMES_FILES}

    def model_key(self) -> Options:
        """These options with only the groups the models read (``READ_BY_MODELS``) kept: a segment's own
        --start/--end, or another --batch-size, must not load them again."""
        kept: dict[str, Any] = {g.value: self.group(g) for g, kind in self.groups().items() if kind.READ_BY_MODELS}
        return Options(**kept)


# each group's dataclass is its field's default factory; every setting's name is unique across groups
_GROUPS: dict[Group, type[_Settings]] = {Group(f.name): cast("type[_Settings]", f.default_factory)
                                         for f in fields(Options)}  # fmt: skip
_OWNER: dict[str, Group] = {f.name: g for g, kind in _GROUPS.items() for f in fields(kind)}


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


def check_run(jobs: Any = None, segment_seconds: Any = None) -> None:
    """The folder run's own numbers (not part of ``Options``: they change how, not what, is computed)."""
    number(1, 4096, integer=True, optional=True)("jobs", jobs)
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
