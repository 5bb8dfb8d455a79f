"""Strings from the file system made safe to store and to print.

Why: on Linux a file name is bytes; one that is not valid UTF-8 (``bad\\xffname.mp4``) reaches Python with lone
surrogates, which Parquet (UTF-8 only) refuses, crashing the manifest, and a name holding a newline would break
the one-line-per-problem rule on the console.
"""

from __future__ import annotations

import logging
import os
import warnings
from typing import TextIO


def utf8(text: str) -> str:
    """``text`` as valid UTF-8: bytes that were not UTF-8 in a file name become ``\\xNN``; the rest is unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return os.fsencode(text).decode("utf-8", "backslashreplace")


def one_line(text: str) -> str:
    """``text`` for one console line: invalid UTF-8 and control characters (newlines, tabs) shown escaped."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in utf8(text))


def plural(n: int, noun: str) -> str:
    """``1 frame``, ``2 frames``: counts on the console read as English."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


def numeric_warnings_to_debug() -> None:
    """Send Python's RuntimeWarnings (numpy's "invalid value in divide", "Mean of empty slice", overflow in exp) to
    the debug log instead of the console.

    Why: they are raw library text with a source line, never one line naming a file; where such a value matters,
    the code checks it and says so (non-finite model outputs fail their input). Other warnings show as before.
    """
    original = warnings.showwarning
    log = logging.getLogger("fer_batch")

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:  # fmt: skip
        if issubclass(category, RuntimeWarning):
            log.debug("%s:%d: %s: %s", filename, lineno, category.__name__, message)
            return
        original(message, category, filename, lineno, file, line)

    if getattr(original, "_fer_batch", False):
        return  # installed already
    show._fer_batch = True  # type: ignore[attr-defined]
    warnings.showwarning = show
