"""fer_batch: batch facial-emotion analysis of recorded video.

Python API (the CLI is a thin layer over it)::

    import fer_batch
    df = fer_batch.analyze_video("interview.mp4", fps=5)
    fer_batch.analyze_many(["recordings/"], "out/")
    df = fer_batch.load("out/")
    fer_batch.write_report("out/")            # out/report.html
"""

from __future__ import annotations

__version__ = "0.1.0"

from fer_batch.api import analyze_many, analyze_video, load  # noqa: E402
from fer_batch.report import write_report  # noqa: E402

__all__ = ["__version__", "analyze_many", "analyze_video", "load", "write_report"]
