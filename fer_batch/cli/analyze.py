"""``fer-batch analyze``: recordings in, one table per input and a manifest out; the run's result on stdout."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fer_batch._progress import Display, write_line
from fer_batch._text import one_line, plural
from fer_batch.cli._app import (
    SCALE_HELP,
    CropMargin,
    DetectEvery,
    DetectorOpt,
    DetSize,
    DetThreshold,
    Device,
    MaxPixels,
    MinFace,
    ModelOpt,
    ModelSpecOpt,
    Out,
    Quiet,
    ScanInterval,
    Smooth,
    TtaOpt,
    check_models,
    command,
    setup_logging,
    write_report_line,
)
from fer_batch.errors import ManifestError, UsageError
from fer_batch.options import AUTO, Classification, Detection, Limits, Options, Tracking, check_run, check_scale


@command("analyze")
def analyze(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH...", help="Video files, photos, folders (recursive) or globs.")
    ],
    out: Out,
    detector: DetectorOpt = Detection.detector,
    model: ModelOpt = Classification.model,
    model_spec: ModelSpecOpt = None,
    tta: TtaOpt = None,
    crop_margin: CropMargin = None,
    fps: Annotated[
        Optional[float], typer.Option(metavar="F", help="Analyse the frame nearest each 1/F seconds.")
    ] = None,
    every: Annotated[Optional[int], typer.Option(metavar="N", help="Analyse every N-th frame.")] = None,
    start: Annotated[Optional[float], typer.Option(metavar="S", help="Start time (s).")] = None,
    end: Annotated[Optional[float], typer.Option(metavar="S", help="End time (s).")] = None,
    min_face: MinFace = Detection.min_face,
    det_size: DetSize = Detection.det_size,
    det_threshold: DetThreshold = Detection.det_threshold,
    detect_every: DetectEvery = 1,
    scan_interval: ScanInterval = Tracking.scan_interval,
    batch_size: Annotated[int, typer.Option(metavar="N", help="Frames per classification window.")] = Limits.batch_size,
    smooth: Smooth = None,
    haar_scale_factor: Annotated[float, typer.Option(metavar="F", help="Haar detectMultiScale scaleFactor.")] = 1.1,
    haar_min_neighbors: Annotated[int, typer.Option(metavar="N", help="Haar detectMultiScale minNeighbors.")] = 5,
    device: Device = "auto",
    threads: Annotated[Optional[int], typer.Option(metavar="N", help="onnxruntime threads per job.")] = None,
    jobs: Annotated[
        Optional[int],
        typer.Option(metavar="N", help="Inputs analysed in N parallel processes (default: one at a time, every core "
                     "each; hundreds of photos also in helper processes, up to one per further core)."),
    ] = None,
    scheduler: Annotated[
        Optional[str], typer.Option(metavar="ADDRESS", help="Run on a Dask cluster, e.g. tcp://10.0.0.5:8786.")
    ] = None,
    segment_seconds: Annotated[
        Optional[float], typer.Option(metavar="S", help="Split videos longer than S seconds into tasks of S s.")
    ] = None,
    annotate: Annotated[bool, typer.Option(help="Also write <name>.annotated.mp4.")] = False,
    annotate_scale: Annotated[str, typer.Option(metavar="auto|N", help=SCALE_HELP)] = AUTO,
    write_html: Annotated[bool, typer.Option("--report", help="At the end, write OUT/report.html.")] = False,
    max_pixels: MaxPixels = Limits.max_pixels,
    min_quality: Annotated[
        float, typer.Option(metavar="Q", help="Leave faces whose quality (0-1) is below Q out of the tables.")
    ] = Classification.min_quality,
    resume: Annotated[bool, typer.Option("--resume/--overwrite", help="Skip inputs whose table is complete.")] = True,
    quiet: Quiet = False,
) -> None:
    """Analyse recordings into one Parquet table per input plus OUT/manifest.parquet."""
    setup_logging(quiet)
    # usage errors first, before the heavy modules load, so they answer at once
    options = Options.of(
        detector=detector, model=model, model_spec=str(model_spec) if model_spec else None, fps=fps, every=every,
        start=start, end=end, min_face=min_face, det_size=det_size, det_threshold=det_threshold,
        detect_every=detect_every, scan_interval=scan_interval, batch_size=batch_size, smooth=smooth,
        haar_scale_factor=haar_scale_factor, haar_min_neighbors=haar_min_neighbors, device=device, threads=threads,
        tta=tta, crop_margin=crop_margin, max_pixels=max_pixels, min_quality=min_quality,
    )  # fmt: skip
    check_run(jobs, segment_seconds)
    scale = check_scale("annotate_scale", annotate_scale)
    if scheduler is not None and jobs not in (None, 1):
        raise UsageError("--jobs and --scheduler exclude each other (the cluster's workers set the parallelism)")
    check_models(options)
    from fer_batch.runs.runner import run_many

    display = Display.for_stream(quiet=quiet)
    announce = _Announcer(display)
    manifest_error: ManifestError | None = None
    try:
        client = None
        if scheduler is not None:
            from fer_batch.runs.cluster import connect

            client = connect(scheduler)  # one line and exit 2 when unreachable, before anything is written
        try:
            with _sigterm_unwinds():
                results = run_many(paths, out, options, jobs=jobs, resume=resume, display=display,
                                   on_result=announce, executor=client.get_executor() if client else None,
                                   segment_seconds=segment_seconds, annotate=annotate,
                                   annotate_scale=scale)  # fmt: skip
        finally:
            if client is not None:
                client.close()
    except KeyboardInterrupt as e:
        _interrupted(Path(out), announce.finished, terminated=isinstance(e, Terminated))
    except ManifestError as e:  # every input was tried; only the run's record could not be written
        results, manifest_error = e.results, e
    failed = [r for r in results if r.status in ("failed", "partial")]
    if not quiet:  # the run's result: stdout, so that `| tee run.log` keeps it
        counts = {s: sum(r.status == s for r in results) for s in ("ok", "partial", "failed", "skipped")}
        typer.echo(" ".join(f"{k}={v}" for k, v in counts.items()) + f"; manifest: {Path(out) / 'manifest.parquet'}")
    if manifest_error is not None:
        typer.echo(f"error: {manifest_error.strerror}", err=True)
    report_failed = write_html and write_report_line(Path(out), quiet) != 0
    raise typer.Exit(1 if failed or report_failed or manifest_error else 0)


class _Announcer:
    """One line per input on stderr: always for failures and cut-short streams, for every input when progress goes
    to a log as lines (each input's end, after its start and progress lines)."""

    def __init__(self, display: Display) -> None:
        self.every = display is Display.LINES
        self.finished: list[str] = []  # statuses so far, for the line Ctrl-C prints

    def __call__(self, r: Any) -> None:
        self.finished.append(r.status)
        line = f"{one_line(r.path)}: {r.status}"
        if r.error:
            line += f" — {one_line(r.error)}"
        elif r.status == "ok":
            line += f" ({plural(r.frames_analysed, 'frame')}, {plural(r.faces, 'face')}, {r.wall_s:.1f} s)"
        if r.status in ("failed", "partial") or self.every:
            write_line(line)


class Terminated(KeyboardInterrupt):
    """SIGTERM, unwound like Ctrl-C: the input in progress removes its temporary files, the manifest is written."""


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a folder run works, SIGTERM (a scheduler's stop, ``kill``) raises ``Terminated`` in the main thread
    instead of killing the process where it stands, which would leave temporary files and say nothing."""

    def handle(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: a second SIGTERM must not interrupt the clean-up
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:  # not the main thread (an embedding application): its own handling stays
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupted(out: Path, finished: list[str], terminated: bool = False) -> None:
    """Ctrl-C or SIGTERM: say what finished (its rows are in the manifest) and how to go on; exit 130 (143 for
    SIGTERM), no traceback."""
    done = ", ".join(f"{s}={finished.count(s)}" for s in ("ok", "partial", "failed", "skipped") if s in finished)
    typer.echo(f"{'terminated' if terminated else 'interrupted'}: {len(finished)} input(s) finished "
               f"({done or 'none'}), recorded in {out / 'manifest.parquet'}; run the same command again to go on "
               "(finished inputs are skipped)", err=True)  # fmt: skip
    raise typer.Exit(143 if terminated else 130)
