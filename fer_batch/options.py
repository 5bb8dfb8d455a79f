"""Every setting of an analysis run, as one frozen dataclass.

Why: the same options travel from the CLI or the Python API to a worker process (local pool or Dask), are
written into each table's metadata, and decide whether ``--resume`` may skip an input. One picklable value
keeps those three in step.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from typing import Any

# settings that older versions recorded in each table's metadata and that never changed a table's content:
# ``annotate`` is a property of a folder run (``run_many``), not of the analysis
RETIRED = frozenset({"annotate"})


@dataclass(frozen=True)
class Options:
    """Analysis settings; the defaults were chosen by measurement (see BENCHMARKS.md)."""

    detector: str = "centerface"  # centerface | haar | none (each image or frame is one face that fills it)
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

    def __post_init__(self) -> None:
        if self.fps is not None and self.every is not None:
            raise ValueError("--fps and --every exclude each other")
        if self.fps is not None and self.fps <= 0:
            raise ValueError("--fps must be positive")
        if self.every is not None and self.every < 1:
            raise ValueError("--every must be at least 1")
        if self.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
        if self.smooth is not None and not 0 < self.smooth <= 1:
            raise ValueError("--smooth must be in (0, 1]")
        if self.scan_interval < 0:
            raise ValueError("--scan-interval must be >= 0")
        if self.detect_every < 1:
            raise ValueError("--detect-every must be at least 1")
        if self.detector not in ("centerface", "haar", "none"):
            raise ValueError(f"unknown detector {self.detector!r} (centerface, haar or none)")
        if self.tta not in (None, "flip"):
            raise ValueError(f"unknown --tta {self.tta!r} (flip)")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown device {self.device!r} (auto, cpu or cuda)")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError("--end must be after --start")

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
        """The options that change a table's content (what ``--resume`` compares)."""
        d = self.as_dict()
        for name in ("threads", "device", "batch_size"):
            d.pop(name)
        return d
