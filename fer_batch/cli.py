"""The ``fer-batch`` command: a thin typer layer over the Python API."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from fer_batch._help import HelpCommand, epilog
from fer_batch._progress import Display, LineHandler, progress, write_line
from fer_batch._text import numeric_warnings_to_debug, one_line
from fer_batch.errors import UsageError
from fer_batch.options import AUTO, MAX_RENDER_SCALE, Level, Options, check_run, check_scale, number
from fer_batch.runs.outdir import check_out

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain layout: see fer_batch._help
    help="Batch facial-emotion analysis of recorded video.",
    epilog=epilog(""),
)
log = logging.getLogger("fer_batch")

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
SCALE_HELP = (f"Annotated video size relative to the displayed frame, up to {MAX_RENDER_SCALE:g}; auto enlarges "
              "videos under 360 px by a whole factor so the labels are legible.")
ScanInterval = Annotated[
    float,
    typer.Option(
        metavar="S",
        help="Seconds between full-frame scans; between them the detector looks only around "
        "tracked faces (0 = scan every frame).",
    ),  # fmt: skip
]


def _setup_logging(quiet: bool) -> None:
    numeric_warnings_to_debug()
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO, format="%(message)s",
                        handlers=[LineHandler()])  # fmt: skip


def _check_models(options: Options) -> None:
    """Usage errors before any work: an execution provider that is not there, a model that does not check out."""
    from fer_batch.analysis.classify import member_ids
    from fer_batch.analysis.models import check_classifier, choose_providers
    from fer_batch.errors import ModelError

    try:
        choose_providers(options.device)
        ids = member_ids(options.model)
        for m in ids:
            check_classifier(m, options.model_spec if len(ids) == 1 else None)
    except (ValueError, ModelError) as e:
        _fail(str(e), 2)


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command(cls=HelpCommand, epilog=epilog("analyze"))
def analyze(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH...", help="Video files, photos, folders (recursive) or globs.")
    ],
    out: Out,
    detector: DetectorOpt = "centerface",
    model: ModelOpt = Options.model,
    model_spec: ModelSpecOpt = None,
    tta: TtaOpt = None,
    crop_margin: CropMargin = None,
    fps: Annotated[
        Optional[float], typer.Option(metavar="F", help="Analyse the frame nearest each 1/F seconds.")
    ] = None,
    every: Annotated[Optional[int], typer.Option(metavar="N", help="Analyse every N-th frame.")] = None,
    start: Annotated[Optional[float], typer.Option(metavar="S", help="Start time (s).")] = None,
    end: Annotated[Optional[float], typer.Option(metavar="S", help="End time (s).")] = None,
    min_face: MinFace = Options.min_face,
    det_size: DetSize = Options.det_size,
    det_threshold: DetThreshold = Options.det_threshold,
    detect_every: DetectEvery = 1,
    scan_interval: ScanInterval = Options.scan_interval,
    batch_size: Annotated[
        int, typer.Option(metavar="N", help="Frames per classification window.")
    ] = Options.batch_size,
    smooth: Smooth = None,
    haar_scale_factor: Annotated[float, typer.Option(metavar="F", help="Haar detectMultiScale scaleFactor.")] = 1.1,
    haar_min_neighbors: Annotated[int, typer.Option(metavar="N", help="Haar detectMultiScale minNeighbors.")] = 5,
    device: Device = "auto",
    threads: Annotated[Optional[int], typer.Option(metavar="N", help="onnxruntime threads per job.")] = None,
    jobs: Annotated[int, typer.Option(metavar="N", help="Videos analysed in parallel processes.")] = 1,
    scheduler: Annotated[
        Optional[str], typer.Option(metavar="ADDRESS", help="Run on a Dask cluster, e.g. tcp://10.0.0.5:8786.")
    ] = None,
    segment_seconds: Annotated[
        Optional[float], typer.Option(metavar="S", help="Split videos longer than S seconds into tasks of S s.")
    ] = None,
    annotate: Annotated[bool, typer.Option(help="Also write <name>.annotated.mp4.")] = False,
    annotate_scale: Annotated[str, typer.Option(metavar="auto|N", help=SCALE_HELP)] = AUTO,
    write_html: Annotated[bool, typer.Option("--report", help="At the end, write OUT/report.html.")] = False,
    max_pixels: MaxPixels = Options.max_pixels,
    resume: Annotated[bool, typer.Option("--resume/--overwrite", help="Skip inputs whose table is complete.")] = True,
    quiet: Quiet = False,
) -> None:
    """Analyse recordings into one Parquet table per input plus OUT/manifest.parquet."""
    _setup_logging(quiet)
    try:  # usage errors first, before the heavy modules load, so they answer at once
        options = Options(
            detector=detector, model=model, model_spec=str(model_spec) if model_spec else None, fps=fps, every=every,
            start=start, end=end, min_face=min_face, det_size=det_size, det_threshold=det_threshold,
            detect_every=detect_every, scan_interval=scan_interval, batch_size=batch_size, smooth=smooth,
            haar_scale_factor=haar_scale_factor,
            haar_min_neighbors=haar_min_neighbors, device=device, threads=threads, tta=tta, crop_margin=crop_margin,
            max_pixels=max_pixels,
        )  # fmt: skip
        check_run(jobs, segment_seconds)
        scale = check_scale("annotate_scale", annotate_scale)
        if scheduler is not None and jobs != 1:
            raise ValueError("--jobs and --scheduler exclude each other (the cluster's workers set the parallelism)")
        if not out.strip():
            raise ValueError("--out must not be empty")
    except ValueError as e:
        _fail(str(e), 2)
    _check_models(options)
    from fer_batch.errors import ManifestError
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
                results = run_many(paths, Path(out), options, jobs=jobs, resume=resume, display=display,
                                   on_result=announce, executor=client.get_executor() if client else None,
                                   segment_seconds=segment_seconds, annotate=annotate,
                                   annotate_scale=scale)  # fmt: skip
        finally:
            if client is not None:
                client.close()
    except UsageError as e:
        _fail(str(e), 2)
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
    report_failed = write_html and _write_report(Path(out), quiet) != 0
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
            line += f" ({r.frames_analysed} frames, {r.faces} faces, {r.wall_s:.1f} s)"
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


def _write_report(run_dir: Path, quiet: bool, **kwargs: Any) -> int:
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


@app.command("models", cls=HelpCommand, epilog=epilog("models"))
def list_models() -> None:
    """List the bundled models and whether their sha256 checks out."""
    from fer_batch.analysis.models import check_all

    rows = check_all()
    for r in rows:
        ok = "ok" if r["sha256_ok"] else "MISMATCH"
        typer.echo(f"{r['id']:<24} {r['task']:<8} {r['license']:<6} sha256 {ok:<8} {r['file']}")
    raise typer.Exit(0 if all(r["sha256_ok"] for r in rows) else 1)


@app.command(cls=HelpCommand, epilog=epilog("render"))
def render(
    video: Annotated[Path, typer.Argument(metavar="VIDEO", help="The source video.")],
    table: Annotated[Path, typer.Argument(metavar="TABLE", help="Its table (.parquet) from `fer-batch analyze`.")],
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="Output .mp4 (H.264, audio kept).")],
    scale: Annotated[str, typer.Option(metavar="auto|N", help=SCALE_HELP)] = AUTO,
    max_pixels: MaxPixels = Options.max_pixels,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary line.")] = False,
) -> None:
    """Draw a saved table's faces onto the video, without running any model."""
    _setup_logging(quiet)
    try:
        size = check_scale("scale", scale)
    except UsageError as e:
        _fail(str(e), 2)
    for path in (video, table):
        if not path.is_file():
            _fail(f"{path}: no such file", 2)
    from fer_batch.errors import DecodeError, describe
    from fer_batch.outputs.render import render_table

    target = Path(out)
    if not out.strip() or target.is_dir():
        _fail(f"-o {out!r}: must name a file (.mp4)", 2)
    if target.exists() and any(target.resolve() == p.resolve() for p in (video, table)):
        _fail(f"-o {out} is an input of this command; it would be overwritten", 2)
    bar = progress(Display.for_stream(quiet=quiet), video.name, "frame", leave=True)
    try:
        frames = render_table(video, table, target, scale=size, max_pixels=max_pixels, progress=bar)
    except (DecodeError, OSError, ValueError, KeyError) as e:
        bar.close()
        _fail(f"{video}: {describe(e)}", 1)
    bar.close()
    if not quiet:
        typer.echo(f"wrote {out} ({frames} frames)")


@app.command(cls=HelpCommand, epilog=epilog("webcam"))
def webcam(
    out: Out,
    camera: Annotated[
        str,
        typer.Option(
            metavar="SOURCE", help="Camera index, /dev/videoN, stream URL, or a video FILE played at real-time pace."
        ),
    ] = "0",
    seconds: Annotated[
        Optional[float], typer.Option(metavar="S", help="Stop after S seconds (else Ctrl-C or q).")
    ] = None,
    annotate: Annotated[bool, typer.Option(help="Also record every frame, annotated, to .annotated.mp4.")] = False,
    preview: Annotated[bool, typer.Option("--preview/--no-preview", help="Window, if a display exists.")] = True,
    detector: DetectorOpt = "centerface",
    model: ModelOpt = Options.model,
    model_spec: ModelSpecOpt = None,
    tta: TtaOpt = None,
    crop_margin: CropMargin = None,
    min_face: MinFace = Options.min_face,
    det_size: DetSize = Options.det_size,
    det_threshold: DetThreshold = Options.det_threshold,
    detect_every: DetectEvery = 1,
    smooth: Smooth = None,
    device: Device = "auto",
    threads: Annotated[Optional[int], typer.Option(metavar="N", help="onnxruntime threads.")] = None,
    quiet: Quiet = False,
) -> None:
    """Analyse a live camera into OUT/webcam-<YYYYmmdd-HHMMSS>.parquet (same columns as `analyze`).

    Every captured frame gets a capture index (`frame`) and a capture time (`time_s`, seconds since the start,
    monotonic clock). Analysis always takes the newest frame, so it never falls behind the camera: on a machine
    slower than the camera, some frames are not analysed. The table has one row per face per ANALYSED frame; `frame`
    has gaps where frames were skipped, and the table metadata records frames_captured and frames_analysed. With
    --annotate the recording holds every captured frame, with the same timestamps and the latest analysis drawn.

    Stops at --seconds, Ctrl-C, SIGTERM, or q in the preview; each way closes the table and recording properly.
    """
    _setup_logging(quiet)
    try:  # usage errors first, before the heavy modules load
        options = Options(
            detector=detector, model=model, model_spec=str(model_spec) if model_spec else None, min_face=min_face,
            det_size=det_size, det_threshold=det_threshold, detect_every=detect_every, batch_size=1, smooth=smooth,
            device=device, threads=threads, tta=tta, crop_margin=crop_margin,
        )  # fmt: skip
        number(0, lo_open=True, optional=True)("seconds", seconds)
        check_out(out)  # created only once the camera opens
    except ValueError as e:
        _fail(str(e), 2)
    _check_models(options)
    from fer_batch.errors import CameraError
    from fer_batch.live.session import run_webcam
    from fer_batch.live.sources import open_source, redact

    try:
        source = open_source(camera)
    except CameraError as e:
        _fail(str(e), 1)
    frames = progress(Display.for_stream(quiet=quiet), "webcam", "frame", first=False, final=False)  # analysed
    try:
        result = run_webcam(source, Path(out), options, seconds=seconds, annotate=annotate, preview=preview,
                            name=redact(camera), progress=frames)  # fmt: skip
    finally:
        frames.close()
    if not quiet:
        line = (f"{result.frames_captured} frames captured, {result.frames_analysed} analysed, {result.faces} faces, "
                f"{result.duration_s:.1f} s (stopped: {result.stopped_by}); table: {result.table}")  # fmt: skip
        if result.recording is not None:
            line += f"; recording: {result.recording}"
        typer.echo(line)
    raise typer.Exit(1 if result.stopped_by == "error" or (annotate and result.recording is None) else 0)


HeadlineQuality = Annotated[Optional[float], typer.Option(metavar="Q", help="Shares leave out rows of lower quality.")]
HeadlineTrack = Annotated[Optional[float], typer.Option(metavar="S", help="Shares leave out tracks seen for less.")]


def _headline_rules(min_quality: float | None, min_track_s: float | None) -> dict[str, float]:
    """summary's and report's headline rules where given (else fer_batch.outputs.aggregate's); exit 2 if bad."""
    try:
        rules = {"min_quality": number(0, 1, optional=True)("min_quality", min_quality),
                 "min_track_s": number(0, optional=True)("min_track_s", min_track_s)}  # fmt: skip
    except UsageError as e:
        _fail(str(e), 2)
    return {k: v for k, v in rules.items() if v is not None}


@app.command(cls=HelpCommand, epilog=epilog("summary"))
def summary(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run folder written by `fer-batch analyze`.")],
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Also write <video>.timeline.png.")] = True,
    min_quality: HeadlineQuality = None,
    min_track_s: HeadlineTrack = None,
) -> None:
    """Per-video and per-track summary: DIR/summary.parquet, one timeline PNG per video, a short table."""
    _setup_logging(quiet=True)
    rules = _headline_rules(min_quality, min_track_s)
    if not run_dir.is_dir():
        _fail(f"{run_dir}: not a folder", 2)
    from fer_batch.outputs.summary import SUMMARY, short_table, summarize

    bar = progress(Display.for_stream(), "summary", "table", leave=True)
    try:
        result = summarize(run_dir, plots=plots, progress=bar, **rules)
    except FileNotFoundError as e:
        bar.close()
        _fail(str(e), 2)
    bar.close()
    typer.echo(short_table(result))
    typer.echo(f"summary: {run_dir / SUMMARY}")


@app.command(cls=HelpCommand, epilog=epilog("report"))
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
    _setup_logging(quiet)
    rules = _headline_rules(min_quality, min_track_s)
    if not run_dir.is_dir():
        _fail(f"{run_dir}: not a folder", 2)
    if thumbnails < 0:
        _fail("--thumbnails must be 0 or more", 2)
    raise typer.Exit(_write_report(run_dir, quiet, thumbnails=thumbnails, **rules))


@app.command(cls=HelpCommand, epilog=epilog("export"))
def export(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run folder written by `fer-batch analyze`.")],
    out: Annotated[str, typer.Option("--out", "-o", metavar="FILE", help="Output file: .csv, .tsv or .parquet.")],
    by: Annotated[
        Level, typer.Option(metavar="LEVEL", help="frame, second, track, video or event: one row per face-frame, "
                            "track time bin, track, video or track x event.")  # fmt: skip
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
        _fail(one_line(str(e)), 2)
    except OSError as e:
        _fail(f"{out}: not written: {one_line(str(e))}", 1)
    typer.echo(f"wrote {out} ({len(result)} rows, by {by.value})")


def main() -> None:
    numeric_warnings_to_debug()  # every command, including those that set up no logging (export, models)
    app()


if __name__ == "__main__":
    main()
