"""The ``fer-batch`` command: a thin typer layer over the Python API.

``_app`` holds the app, the shared options and the one mapping from errors to exit codes; ``analyze``, ``webcam``
and ``views`` (render, summary, report, export, models) hold the commands. Results go to stdout; progress,
warnings and per-input errors to stderr.
"""

from __future__ import annotations

import atexit
import os
import sys

# isort: off
# importing a command module registers its commands, in the order --help lists them
from fer_batch.cli import analyze, webcam, views  # noqa: F401
# isort: on
from fer_batch._text import numeric_warnings_to_debug
from fer_batch.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    """The console script: the app, then a quick exit once its output is flushed.

    Why not a plain return: tearing the interpreter down (onnxruntime's thread pools, PyAV, thousands of modules)
    took 0.3-0.6 s (measured on the 10 s test clip) after every command had finished and committed its files, a
    tenth of a short video's run. Only a finished command (``SystemExit``) exits this way; an exception or an
    interrupt unwinds as usual.
    """
    numeric_warnings_to_debug()  # every command, including those that set up no logging (export, models)
    try:
        app()
    except SystemExit as e:
        _exit_now(e.code)


def _exit_now(code: object) -> None:
    if isinstance(code, str):  # sys.exit("message") semantics: the message on stderr, status 1
        print(code, file=sys.stderr)
    status = code if isinstance(code, int) else (0 if code is None else 1)
    # what a normal exit runs first: logging's flush, multiprocessing's clean-up of a worker pool's semaphores
    # (skipped, the resource tracker warns of leaks), tqdm's; only the interpreter's teardown is left out
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (``| head``): what could be written was
            pass
    os._exit(status)
