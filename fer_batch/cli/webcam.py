"""``fer-batch webcam``: a live camera (or a file played at real-time pace) into the same table as ``analyze``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from fer_batch._progress import Display, progress
from fer_batch.cli._app import (
    CropMargin,
    DetectEvery,
    DetectorOpt,
    DetSize,
    DetThreshold,
    Device,
    MinFace,
    ModelOpt,
    ModelSpecOpt,
    Out,
    Quiet,
    Smooth,
    TtaOpt,
    check_models,
    command,
    setup_logging,
)
from fer_batch.options import Classification, Detection, Options, number
from fer_batch.runs.outdir import check_out


@command("webcam")
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
    model: ModelOpt = Classification.model,
    model_spec: ModelSpecOpt = None,
    tta: TtaOpt = None,
    crop_margin: CropMargin = None,
    min_face: MinFace = Detection.min_face,
    det_size: DetSize = Detection.det_size,
    det_threshold: DetThreshold = Detection.det_threshold,
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
    setup_logging(quiet)
    # usage errors first, before the heavy modules load
    options = Options.of(
        detector=detector, model=model, model_spec=str(model_spec) if model_spec else None, min_face=min_face,
        det_size=det_size, det_threshold=det_threshold, detect_every=detect_every, batch_size=1, smooth=smooth,
        device=device, threads=threads, tta=tta, crop_margin=crop_margin,
    )  # fmt: skip
    number(0, lo_open=True, optional=True)("seconds", seconds)
    check_out(out)  # created only once the camera opens
    check_models(options)
    from fer_batch.live.session import run_webcam
    from fer_batch.live.sources import open_source, redact

    source = open_source(camera)  # a CameraError is an input's failure: one line, exit 1
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
