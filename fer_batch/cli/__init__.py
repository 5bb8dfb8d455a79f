"""The ``fer-batch`` command: a thin typer layer over the Python API.

``_app`` holds the app, the shared options and the one mapping from errors to exit codes; ``analyze``, ``webcam``
and ``views`` (render, summary, report, export, models) hold the commands. Results go to stdout; progress,
warnings and per-input errors to stderr.
"""

from __future__ import annotations

# isort: off
# importing a command module registers its commands, in the order --help lists them
from fer_batch.cli import analyze, webcam, views  # noqa: F401
# isort: on
from fer_batch._text import numeric_warnings_to_debug
from fer_batch.cli._app import app

__all__ = ["app", "main"]


def main() -> None:
    numeric_warnings_to_debug()  # every command, including those that set up no logging (export, models)
    app()
