"""One exception tree for the package, and one way to say an error on one line.

::

    FerBatchError
    ├── UsageError (a ValueError)        a bad option, argument or output folder: nothing is done (exit 2)
    │   └── ClusterError                 the Dask scheduler named by --scheduler cannot be used
    ├── ModelError (a RuntimeError)      a model file is missing, altered or described inconsistently (exit 2)
    ├── InputError                       one input cannot be analysed; a run goes on with the others (exit 1)
    │   ├── DecodeError (a RuntimeError) the file cannot be opened or decoded
    │   │   └── StreamBroken             decoding stopped part-way; the frames before are in the table (partial)
    │   │       └── StreamDamaged        some packets were skipped; every other frame is in the table (partial)
    │   ├── ModelOutputError (a RuntimeError) the model's outputs on its faces are non-finite or not probabilities
    │   └── CameraError                  a camera cannot be opened or read
    └── OutputError (an OSError)         a result cannot be written
        └── ManifestError                the run's manifest.parquet (every input was still tried)

Why one tree: callers (the CLI, a notebook, a cluster driver) catch ``FerBatchError`` or one branch instead of
guessing which built-in class each module raised; and ``describe`` makes a failure read the same in the console,
the manifest and the report, wherever it was caught.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

TMP_WORD = ".tmp-"  # part of every temporary name (see ``_atomic``): such a name says nothing to the user


class FerBatchError(Exception):
    """The base of every error fer_batch raises on purpose; its message is the reason, without the input's path."""


class UsageError(FerBatchError, ValueError):
    """A bad option, argument or output folder, found before any work."""


class ClusterError(UsageError):
    """The Dask scheduler cannot be reached, has no worker, or runs another version."""


class ModelError(FerBatchError, RuntimeError):
    """A model file is missing, altered or described inconsistently."""


class InputError(FerBatchError):
    """One input cannot be analysed; the run goes on with the others."""


class DecodeError(InputError, RuntimeError):
    """The input cannot be opened or decoded."""


class StreamBroken(DecodeError):
    """Decoding stopped part-way; the frames before the damage were delivered."""


class StreamDamaged(StreamBroken):
    """Some packets could not be decoded and were skipped; every other frame was delivered."""


class ModelOutputError(InputError, RuntimeError):
    """A model gave outputs on this input's faces that are not what its spec says (non-finite, or probabilities
    that do not sum to 1): storing them would look like results."""


class CameraError(InputError, RuntimeError):
    """A camera cannot be opened or read."""


class OutputError(FerBatchError, OSError):
    """A result cannot be written."""


class ManifestError(OutputError):
    """The run's manifest could not be written (a full disk); every input was still tried, their tables are
    complete, and ``results`` holds every row the manifest should have had."""

    def __init__(self, errno: int | None, message: str, results: Sequence[Any] = ()) -> None:
        super().__init__(errno, message)
        self.results = list(results)


def describe(e: BaseException, *, with_file: bool = False) -> str:
    """``e`` on one line, the way every part of fer_batch reports it (the caller names the input).

    Our own errors read as their message. An OS or FFmpeg error reads as the system's own words ("No space left on
    device"; pyarrow's I/O errors, which carry no ``strerror`` but end in "[errno N] ...", too); ``with_file``
    adds the file it concerns, for errors that may be about another file than the input (an output, a model),
    unless that is a temporary name. Anything else (a bug, a library's surprise) keeps its class name, so that it
    can be told apart from an expected failure.
    """
    if isinstance(e, FerBatchError | MemoryError):
        own = e.strerror if isinstance(e, OSError) and e.strerror else str(e)  # an OutputError: not "[Errno N] ..."
        return " ".join(str(own).split()) or type(e).__name__
    strerror = getattr(e, "strerror", None)
    if isinstance(e, OSError) or strerror:
        msg = str(strerror or e)
        found = re.search(r"\[errno (\d+)\]", msg)
        words = os.strerror(int(found.group(1))) if found else " ".join(msg.split())
        name = getattr(e, "filename", None)
        shown = with_file and isinstance(name, str) and TMP_WORD not in name
        return words + (f": {name}" if shown else "")
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
