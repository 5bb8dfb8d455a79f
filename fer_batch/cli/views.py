"""The commands that work on what a run left: ``render``, ``summary``, ``report``, ``export``, and ``models``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fer_batch._progress import Display, progress
from fer_batch._text import one_line
from fer_batch.cli._app import (
    SCALE_HELP,
    HeadlineQuality,
    HeadlineTrack,
    MaxPixels,
    Quiet,
    command,
    fail,
    setup_logging,
    write_report_line,
)
from fer_batch.options import AUTO, Level, Limits, check_scale, number


@command("render")
def render(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The source video.")],
    table: Annotated[Path, typer.Argument(metavar="TABLE", help="Its table (.parquet) from `fer-batch analyze`.")],
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="Output .mp4 (H.264, audio kept).")],
    scale: Annotated[str, typer.Option(metavar="auto|N", help=SCALE_HELP)] = AUTO,
    max_pixels: MaxPixels = Limits.max_pixels,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")] = False,
) -> None:
    """Draw a saved table's faces onto the video, without running any model."""
    setup_logging(quiet)
    size = check_scale("scale", scale)
    for path in (video, table):
        if not path.is_file():
            fail(f"{path}: no such file", 2)
    from fer_batch.errors import DecodeError, describe
    from fer_batch.outputs.render import render_table

    target = Path(out)
    if not out.strip() or target.is_dir():
        fail(f"-o {out!r}: must name a file (.mp4)", 2)
    if target.exists() and any(target.resolve() == p.resolve() for p in (video, table)):
        fail(f"-o {out} is an input of this command; it would be overwritten", 2)
    bar = progress(Display.for_stream(quiet=quiet), video.name, "frame", leave=True)
    try:
        frames = render_table(video, table, target, scale=size, max_pixels=max_pixels, progress=bar)
    except (DecodeError, OSError, ValueError, KeyError) as e:
        bar.close()
        fail(f"{video}: {describe(e)}", 1)
    bar.close()
    if not quiet:
        typer.echo(f"wrote {out} ({frames} frames)")


@command("summary")
def summary(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run folder written by `fer-batch analyze`.")],
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Also write <video>.timeline.png.")] = True,
    min_quality: HeadlineQuality = None,
    min_track_s: HeadlineTrack = None,
) -> None:
    """Per-video and per-track summary: DIR/summary.parquet, one timeline PNG per video, a short table."""
    setup_logging(quiet=True)
    rules = headline_rules(min_quality, min_track_s)
    if not run_dir.is_dir():
        fail(f"{run_dir}: not a folder", 2)
    from fer_batch.outputs.summary import SUMMARY, short_table, summarize

    bar = progress(Display.for_stream(), "summary", "table", leave=True)
    try:
        result = summarize(run_dir, plots=plots, progress=bar, **rules)
    except FileNotFoundError as e:
        bar.close()
        fail(str(e), 2)
    bar.close()
    typer.echo(short_table(result))
    typer.echo(f"summary: {run_dir / SUMMARY}")


@command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run folder written by `fer-batch analyze`.")],
    thumbnails: Annotated[
        int, typer.Option(metavar="N", help="Face thumbnails per track, cut from the source video.")
    ] = 4,
    min_quality: HeadlineQuality = None,
    min_track_s: HeadlineTrack = None,
    quiet: Quiet = False,
) -> None:
    """One self-contained HTML page of a run: DIR/report.html (failures, settings, per-track timelines and faces)."""
    setup_logging(quiet)
    rules = headline_rules(min_quality, min_track_s)
    if not run_dir.is_dir():
        fail(f"{run_dir}: not a folder", 2)
    if thumbnails < 0:
        fail("--thumbnails must be 0 or more", 2)
    raise typer.Exit(write_report_line(run_dir, quiet, thumbnails=thumbnails, **rules))


@command("export")
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run folder written by `fer-batch analyze`.")],
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="Output file: .csv, .tsv or .parquet.")],
    by: Annotated[
        Level,
        typer.Option(
            metavar="LEVEL",
            help="frame, second, track, video or event: one row per face-frame, "
            "track time bin, track, video or track x event.",
        ),  # fmt: skip
    ] = Level.FRAME,
    bin_s: Annotated[float, typer.Option("--bin", metavar="S", help="Time bin of --by second (s).")] = 1.0,
    events: Annotated[
        Optional[Path], typer.Option(metavar="PATH", help="BIDS events; default <stem>_events.tsv by a video.")
    ] = None,
    min_quality: Annotated[float, typer.Option(metavar="Q", help="Leave out face rows of lower quality.")] = 0.0,
    min_track_s: Annotated[float, typer.Option(metavar="S", help="Leave out tracks visible for less.")] = 0.0,
    smoothed: Annotated[bool, typer.Option(help="Count shares on the <label>_smooth columns.")] = False,
) -> None:
    """The run's tables as one file, flattened (--by frame) or aggregated; format from OUT's extension."""
    from fer_batch.outputs.export import export as write_export  # warnings (a skipped table) reach stderr as lines

    try:
        result = write_export(run_dir, out, by.value, bin=bin_s, events=events, min_quality=min_quality,
                              min_track_s=min_track_s, smoothed=smoothed)  # fmt: skip
    except ValueError as e:  # the request (an EventsError is one): nothing was written
        fail(one_line(str(e)), 2)
    except OSError as e:
        fail(f"{out}: not written: {one_line(str(e))}", 1)
    typer.echo(f"wrote {out} ({len(result)} rows, by {by.value})")


def headline_rules(min_quality: float | None, min_track_s: float | None) -> dict[str, float]:
    """summary's and report's headline rules where given (else fer_batch.outputs.aggregate's); exit 2 if bad."""
    rules = {"min_quality": number(0, 1, optional=True)("min_quality", min_quality),
             "min_track_s": number(0, optional=True)("min_track_s", min_track_s)}  # fmt: skip
    return {k: v for k, v in rules.items() if v is not None}


@command("models")
def list_models() -> None:
    """List the bundled models and whether their sha256 checks out."""
    from fer_batch.analysis.models import check_all

    checks = check_all()
    for c in checks:
        ok = "ok" if c.sha256_ok else "MISMATCH"
        typer.echo(f"{c.id:<24} {c.task:<8} {c.license:<6} sha256 {ok:<8} {c.file}")
    raise typer.Exit(0 if all(c.sha256_ok for c in checks) else 1)
