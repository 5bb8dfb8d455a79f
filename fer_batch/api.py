"""The Python API that the CLI and notebooks call."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fer_batch._progress import Display
from fer_batch._progress import progress as progress_of
from fer_batch.columns import IDENTITY_COLUMNS
from fer_batch.errors import DecodeError, UsageError, describe
from fer_batch.options import AUTO, Options, Scale, flag_arg, number, path_arg, paths_arg
from fer_batch.outputs.table import tables, to_pandas
from fer_batch.runs.one_input import run_video
from fer_batch.runs.result import InputResult
from fer_batch.runs.runner import run_many

log = logging.getLogger(__name__)


def analyze_video(path: str | os.PathLike[str], *, progress: bool = False, **options: Any) -> pd.DataFrame:
    """Analyse one video or photo and return its table (nothing is written); ``progress``: show a bar of its frames
    (a notebook bar in Jupyter).

    Raises ``DecodeError`` when the input cannot be decoded at all; a stream that breaks midway returns the
    frames before the damage, with ``df.attrs["status"] == "partial"`` and the reason in ``df.attrs["error"]``.
    """
    p = Path(path_arg("analyze_video", "path", path))
    opts = Options.of(**options)
    frames = progress_of(Display.for_api(progress), p.name, "frame")
    try:
        result, sink = run_video(p, opts, video_name=p.name, progress=frames)
    finally:
        frames.close()
    if sink is None:
        raise DecodeError(f"{p}: {result.error}")
    df = sink.to_pandas()
    df.attrs.update(status=result.status, error=result.error, frames_decoded=result.frames_decoded)
    return df


def analyze_many(
    paths: list[str | os.PathLike[str]] | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    executor: Executor | None = None,
    jobs: int | None = 1,
    resume: bool = True,
    quiet: bool = True,
    progress: bool = False,
    segment_seconds: float | None = None,
    annotate: bool = False,
    annotate_scale: Scale = AUTO,
    **options: Any,
) -> list[InputResult]:
    """Analyse files, folders and globs into ``out`` (one table each plus ``manifest.parquet``).

    ``executor`` may be any ``concurrent.futures.Executor`` (e.g. a Dask client's ``get_executor()``);
    by default inputs run in this process, or in a pool of ``jobs`` processes. ``jobs=None`` chooses as the command
    line does: this process, helped by worker processes (up to one per further core) where there are hundreds of
    photos; a script that calls it so needs multiprocessing's ``if __name__ == "__main__":`` guard, which is why it
    is not the default here. ``segment_seconds`` splits long videos into time ranges analysed as separate tasks
    and joined into one table. ``annotate`` also
    writes each input's ``<name>.annotated.mp4`` (H.264, audio kept), ``annotate_scale`` times the displayed size
    (``"auto"``: small videos enlarged by a whole factor so the labels are legible). ``progress=True`` shows
    progress as it goes: in Jupyter a notebook bar (tqdm.auto), at a terminal a bar, else plain lines on stderr;
    none by default (``quiet=False``, kept from earlier versions, means the same).
    """
    paths = paths_arg("analyze_many", "paths", paths)
    if not isinstance(out, (str, os.PathLike)):
        path_arg("analyze_many", "out", out)  # raises: a wrong type, named
    for name, value in (("resume", resume), ("quiet", quiet), ("annotate", annotate)):
        flag_arg("analyze_many", name, value)
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"analyze_many: executor must be a concurrent.futures.Executor (e.g. a Dask client's "
                        f"get_executor()), got {type(executor).__name__}")  # fmt: skip
    return run_many(paths, out, Options.of(**options), jobs=jobs, executor=executor, resume=resume,
                    display=Display.for_api(progress or not quiet), segment_seconds=segment_seconds,
                    annotate=annotate, annotate_scale=annotate_scale)  # fmt: skip


def load(out: str | os.PathLike[str], *, min_quality: float = 0.0) -> pd.DataFrame:
    """All tables of a run concatenated, in path order (``video`` tells them apart).

    A table that cannot be read (cut short by a full disk, not Parquet), or a Parquet file that is not a fer-batch
    table (someone else's file in the folder), is left out with one warning line.
    ``min_quality``: leave out the rows of faces whose ``quality`` is below it (rows without a face stay: they say
    a frame was analysed), as ``analyze --min-quality`` does when writing.
    """
    number(0, 1)("min_quality", min_quality)
    paths = tables(path_arg("load", "out", out))
    if not paths:
        raise FileNotFoundError(f"{out}: no tables found")
    parts = []
    for path in paths:
        try:
            part = pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            log.warning("%s: skipped, not a readable table (%s)", path, describe(e)[:200])
            continue
        if not set(IDENTITY_COLUMNS) <= set(part.column_names):
            log.warning("%s: skipped, not a fer-batch table", path)
            continue
        parts.append(part)
    if not parts:
        raise FileNotFoundError(f"{out}: no readable tables found")
    # custom models may have other label columns; unify by name, dictionary columns included
    table = pa.concat_tables(parts, promote_options="permissive")
    if min_quality > 0:
        if "quality" not in table.column_names:
            raise UsageError(f"{out}: min_quality={min_quality:g}, but its tables have no quality column (older run)")
        face, q = table.column("face"), table.column("quality")
        table = table.filter(pc.or_(pc.is_null(face), pc.greater_equal(q.fill_null(0), min_quality)))
    return to_pandas(table)
