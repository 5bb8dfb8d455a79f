"""``fer-batch export``: a run's tables, flattened or aggregated, as one CSV, TSV or Parquet file.

Why a module of its own: everything that can be wrong with the request (the output's extension, the events file,
a ``video`` that names no table) is found before anything is written, and the file appears whole or not at all.
Experiment events follow the BIDS ``*_events.tsv`` convention: ``onset`` and ``duration`` in seconds, any other
columns carried through.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from fer_batch._atomic import atomic_path
from fer_batch.outputs.aggregate import Level, aggregate, check_options
from fer_batch.outputs.events import EventsError as ExportError
from fer_batch.outputs.events import read_events
from fer_batch.outputs.metadata import FileSource, read_table_meta
from fer_batch.outputs.summary import read_table
from fer_batch.outputs.table import tables

log = logging.getLogger(__name__)

FORMATS = {".csv": ",", ".tsv": "\t", ".parquet": None}
SIDECAR = "_events.tsv"


def output_format(out: str | os.PathLike[str]) -> str:
    """The output's extension (``.csv``, ``.tsv``, ``.parquet``), or an ``ExportError``."""
    ext = Path(out).suffix.lower()
    if ext not in FORMATS:
        raise ExportError(f"{out}: unknown extension {ext or '(none)'!r}; use .csv, .tsv or .parquet")
    return ext


def sidecar_events(paths: list[Path], names: dict[Path, str]) -> pd.DataFrame:
    """The events of every video that has a ``<video stem>_events.tsv`` next to its source (the table's metadata
    names the source), with a ``video`` column; an ``ExportError`` when none has one."""
    found: list[pd.DataFrame] = []
    looked: list[str] = []
    for path in paths:
        meta = read_table_meta(path)
        src = meta.source.path if meta is not None and isinstance(meta.source, FileSource) else None
        if path not in names or not src:
            continue
        sidecar = Path(src).with_name(Path(src).stem + SIDECAR)
        looked.append(str(sidecar))
        if sidecar.is_file():
            found.append(read_events(sidecar).drop(columns="video", errors="ignore").assign(video=names[path]))
        else:
            log.warning("%s: no events file (%s), no event rows for it", names[path], sidecar)
    if not found:
        raise ExportError(f"no --events given and no sidecar events file found (looked for {', '.join(looked[:3])}"
                          + (", …" if len(looked) > 3 else "") + ")")  # fmt: skip
    return pd.concat(found, ignore_index=True)


def export(run_dir: str | os.PathLike[str], out: str | os.PathLike[str], by: Level | str = Level.FRAME, *,
           bin: float = 1.0, events: str | os.PathLike[str] | None = None, min_quality: float = 0.0,
           min_track_s: float = 0.0, smoothed: bool = False) -> pd.DataFrame:  # fmt: skip
    """Write ``out`` from the tables of ``run_dir`` (format from its extension) and return what was written.

    Every check (extension, options, events) runs before anything is written; ``out`` is written under a temporary
    name and renamed. Tables that cannot be read are left out with one warning line each.
    """
    ext = output_format(out)
    level = Level(by)
    check_options(bin, min_quality, min_track_s)
    if events is not None and level is not Level.EVENT:
        raise ExportError("--events is for --by event")
    if events is not None and not Path(events).is_file():
        raise ExportError(f"{events}: no such events file")
    paths = tables(run_dir)
    loaded = {p: df for p in paths if (df := read_table(p)) is not None and len(df)}
    if not loaded:
        raise ExportError(f"{run_dir}: no readable tables found")
    names = {p: str(df["video"].iloc[0]) for p, df in loaded.items()}
    table_events = None
    if level is Level.EVENT:
        table_events = (read_events(events, names.values()) if events is not None
                        else sidecar_events(list(loaded), names))  # fmt: skip
    parts = [aggregate(df, level, bin, table_events, min_quality, min_track_s, smoothed) for df in loaded.values()]
    result = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    write(result, Path(out), ext)
    return result


def write(df: pd.DataFrame, out: Path, ext: str) -> None:
    """``df`` to ``out`` under a temporary name, renamed when whole."""
    with atomic_path(out) as tmp:
        if FORMATS[ext] is None:
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, sep=FORMATS[ext], index=False, na_rep="")
