"""The command line's shared parts: the typer app, the options several commands take, and the one place where an
error becomes a line and an exit code.

Exit codes: 0 all went well; 1 an input (or an output) failed; 2 a usage error, before any work; 130 interrupted.
Every ``FerBatchError`` a command lets through is mapped here (``EXIT_CODES``), so a failure reads and exits the
same whichever command met it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, Optional, TypeVar

import typer

from fer_batch._help import HelpCommand, epilog
from fer_batch._progress import Display, LineHandler, progress
from fer_batch._text import numeric_warnings_to_debug
from fer_batch.errors import FerBatchError, InputError, ModelError, OutputError, UsageError, describe
from fer_batch.options import MAX_RENDER_SCALE, Options

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain layout: see fer_batch._help
    help="Batch facial-emotion analysis of recorded video.",
    epilog=epilog(""),
)
log = logging.getLogger("fer_batch")

EXIT_CODES: tuple[tuple[type[FerBatchError], int], ...] = (
    (UsageError, 2),  # a bad option, argument or output folder: nothing was done
    (ModelError, 2),  # a model that is not there or does not check out: found before any work
    (InputError, 1),  # an input that cannot be analysed
    (OutputError, 1),  # a result that cannot be written
)

F = TypeVar("F", bound=Callable[..., Any])


def exit_code(e: FerBatchError) -> int:
    """The exit code of an error that ends a command."""
    return next((code for cls, code in EXIT_CODES if isinstance(e, cls)), 1)


def fail(message: str, code: int) -> NoReturn:
    """One line on stderr, then exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def command(name: str) -> Callable[[F], F]:
    """Register a command with its examples, and map any ``FerBatchError`` it lets through to a line and a code."""

    def register(fn: F) -> F:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except FerBatchError as e:
                fail(describe(e), exit_code(e))

        app.command(name, cls=HelpCommand, epilog=epilog(name))(run)
        return fn

    return register


def setup_logging(quiet: bool) -> None:
    numeric_warnings_to_debug()
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[LineHandler()])  # fmt: skip


def check_models(options: Options) -> None:
    """Usage errors before any work: an execution provider that is not there, a model that does not check out."""
    from fer_batch.analysis.models import choose_providers
    from fer_batch.runs.runner import check_model

    choose_providers(options.runtime.device)
    check_model(options)


# options shared by analyze and webcam, declared once
Out = Annotated[
    str, typer.Option("--out", "-o", metavar="DIR", help="Output folder.")
]  # str: typer would turn '' into "."
DetectorOpt = Annotated[
    str,
    typer.Option(
        metavar="NAME",
        help="centerface, centerface-int8 (int8 full scans), haar, or none (each image/frame is one "
        "face that fills it).",
    ),
]
ModelOpt = Annotated[
    str,
    typer.Option(metavar="ID", help="Emotion model: manifest id, ids joined by + (averaged ensemble), or PATH.onnx."),
]
TtaOpt = Annotated[Optional[str], typer.Option(metavar="flip", help="flip: average each model with its mirrored crop.")]
CropMargin = Annotated[
    Optional[float],
    typer.Option(metavar="F", help="Fraction of the face box added on each side (default: the model's own)."),
]
ModelSpecOpt = Annotated[
    Optional[Path], typer.Option(metavar="JSON", help="Manifest entry (JSON) for a custom --model.")
]
MinFace = Annotated[int, typer.Option(metavar="PX", help="Smallest face side kept (px).")]
DetSize = Annotated[int, typer.Option(metavar="PX", help="Detector input longest side (px), 0 = full size.")]
DetThreshold = Annotated[float, typer.Option(metavar="P", help="Detector confidence threshold.")]
DetectEvery = Annotated[int, typer.Option(metavar="N", help="Detect on every N-th analysed frame, track between.")]
Smooth = Annotated[Optional[float], typer.Option(metavar="ALPHA", help="EMA factor for <label>_smooth columns.")]
Device = Annotated[str, typer.Option(metavar="auto|cpu|cuda", help="Where the models run.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
MaxPixels = Annotated[
    int, typer.Option(metavar="N", help="Refuse inputs whose frames have more pixels (read from the header).")
]
SCALE_HELP = (
    f"Annotated video size relative to the displayed frame, up to {MAX_RENDER_SCALE:g}; auto enlarges "
    "videos under 360 px by a whole factor so the labels are legible."
)
ScanInterval = Annotated[
    float,
    typer.Option(
        metavar="S",
        help="Seconds between full-frame scans; between them the detector looks only around "
        "tracked faces (0 = scan every frame).",
    ),  # fmt: skip
]
HeadlineQuality = Annotated[Optional[float], typer.Option(metavar="Q", help="Shares leave out rows of lower quality.")]
HeadlineTrack = Annotated[Optional[float], typer.Option(metavar="S", help="Shares leave out tracks seen for less.")]


def write_report_line(run_dir: Path, quiet: bool, **kwargs: Any) -> int:
    """Write the HTML report with one line saying where, or why not; the exit code (2: not a run folder)."""
    from fer_batch.outputs.report import write_report

    tables = progress(Display.for_stream(quiet=quiet), "report", "table", leave=True)
    try:
        path = write_report(run_dir, progress=tables, **kwargs)
    except FileNotFoundError as e:
        typer.echo(f"error: {e}", err=True)
        return 2
    except OSError as e:
        typer.echo(f"error: {run_dir}: report not written: {e}", err=True)
        return 1
    finally:
        tables.close()
    if not quiet:
        typer.echo(f"report: {path}")
    return 0
