"""Strings from the file system made safe to store and to print.

Why: on Linux a file name is bytes; one that is not valid UTF-8 (``bad\\xffname.mp4``) reaches Python with lone
surrogates, which Parquet (UTF-8 only) refuses, crashing the manifest, and a name holding a newline would break
the one-line-per-problem rule on the console.
"""

from __future__ import annotations

import os


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
