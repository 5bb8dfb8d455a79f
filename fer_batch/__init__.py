"""fer_batch: batch facial-emotion analysis of recorded video.

Python API (the CLI is a thin layer over it)::

    import fer_batch
    df = fer_batch.analyze_video("interview.mp4", fps=5)
    fer_batch.analyze_many(["recordings/"], "out/")
    df = fer_batch.load("out/")
    per_event = fer_batch.aggregate(df, by="event", events="events.tsv")  # also: frame, second, track, video
    fer_batch.write_report("out/")            # out/report.html

The API is imported on first use (PEP 562), so ``import fer_batch`` and ``fer-batch --help`` do not load PyAV,
OpenCV, pandas, pyarrow or onnxruntime.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from fer_batch._version import __version__

# onnxruntime >= 1.32 appends a usage record under ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ at every import
# unless this is set before it is imported; set ORT_DISABLE_TELEMETRY=0 yourself to allow it. Worker processes
# inherit the setting.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

if TYPE_CHECKING:
    from fer_batch.api import analyze_many, analyze_video, load
    from fer_batch.errors import (
        CameraError,
        ClusterError,
        DecodeError,
        FerBatchError,
        InputError,
        ManifestError,
        ModelError,
        ModelOutputError,
        OutputError,
        StreamBroken,
        StreamDamaged,
        UsageError,
        describe,
    )
    from fer_batch.options import Group, Level, Options
    from fer_batch.outputs.aggregate import aggregate
    from fer_batch.outputs.report import write_report
    from fer_batch.outputs.summary import summarize
    from fer_batch.runs.result import InputResult
    from fer_batch.types import Status

# The public API: each name and the module that defines it. Everything else in the package is internal and may
# change without notice (the subpackages are the layers of the design, not an interface).
_PUBLIC = {
    "analyze_video": "fer_batch.api",
    "analyze_many": "fer_batch.api",
    "load": "fer_batch.api",
    "Options": "fer_batch.options",
    "Group": "fer_batch.options",
    "Level": "fer_batch.options",
    "Status": "fer_batch.types",
    "InputResult": "fer_batch.runs.result",
    "aggregate": "fer_batch.outputs.aggregate",
    "summarize": "fer_batch.outputs.summary",
    "write_report": "fer_batch.outputs.report",
    "FerBatchError": "fer_batch.errors",
    "UsageError": "fer_batch.errors",
    "ClusterError": "fer_batch.errors",
    "ModelError": "fer_batch.errors",
    "ModelOutputError": "fer_batch.errors",
    "InputError": "fer_batch.errors",
    "DecodeError": "fer_batch.errors",
    "StreamBroken": "fer_batch.errors",
    "StreamDamaged": "fer_batch.errors",
    "CameraError": "fer_batch.errors",
    "OutputError": "fer_batch.errors",
    "ManifestError": "fer_batch.errors",
    "describe": "fer_batch.errors",
}

__all__ = [
    "CameraError",
    "ClusterError",
    "DecodeError",
    "FerBatchError",
    "Group",
    "InputError",
    "InputResult",
    "Level",
    "ManifestError",
    "ModelError",
    "ModelOutputError",
    "Options",
    "OutputError",
    "Status",
    "StreamBroken",
    "StreamDamaged",
    "UsageError",
    "__version__",
    "aggregate",
    "analyze_many",
    "analyze_video",
    "describe",
    "load",
    "summarize",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC:
        raise AttributeError(f"module 'fer_batch' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
