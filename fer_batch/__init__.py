"""fer_batch: batch facial-emotion analysis of recorded video.

Python API (the CLI is a thin layer over it)::

    import fer_batch
    df = fer_batch.analyze_video("interview.mp4", fps=5)
    fer_batch.analyze_many(["recordings/"], "out/")
    df = fer_batch.load("out/")
"""

from __future__ import annotations

from fer_batch._version import __version__
from fer_batch.api import analyze_many, analyze_video, load

__all__ = ["__version__", "analyze_many", "analyze_video", "load"]
