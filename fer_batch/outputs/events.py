"""Experiment events, BIDS-style (``*_events.tsv``): ``onset`` and ``duration`` in seconds, a ``trial_type`` and any
other columns, plus ``video`` when one file covers several videos.

Why the BIDS convention: neuroimaging and psychology already store their stimulus timings this way, so the files
researchers have can be used as they are.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from fer_batch.errors import UsageError

BIDS_NA = "n/a"


class EventsError(UsageError):
    """An events file (or an export request) that cannot be used: one line naming the file and the reason."""


def read_events(path: str | os.PathLike[str], videos: Iterable[str] | None = None) -> pd.DataFrame:
    """A BIDS-style events file (``.csv`` comma-separated, anything else tab-separated) checked: ``onset`` and
    ``duration`` present, numbers, not negative; every ``video`` value naming one of ``videos``. The other columns
    are carried as written (``carried``)."""
    p = Path(path)
    sep = "," if p.suffix.lower() == ".csv" else "\t"
    try:
        events = pd.read_csv(p, sep=sep, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as e:
        raise EventsError(f"{p}: not a readable events file ({' '.join(str(e).split())[:200]})") from e
    missing = [c for c in ("onset", "duration") if c not in events.columns]
    if missing:
        raise EventsError(f"{p}: no {' and no '.join(missing)} column (columns: {', '.join(map(str, events.columns))})")
    for col in ("onset", "duration"):
        values = pd.to_numeric(events[col].str.strip(), errors="coerce").astype(np.float64)
        bad = ~np.isfinite(values.to_numpy()) | (values.to_numpy() < 0)
        if bad.any():
            k = int(np.argmax(bad))
            raise EventsError(f"{p}: line {k + 2}: {col} {events[col].iloc[k]!r} is not a number >= 0")
        events[col] = values
    for col in events.columns.drop(["onset", "duration"]):
        events[col] = carried(events[col]) if col != "video" else events[col]
    if "video" in events.columns and videos is not None:
        unknown = sorted(set(events["video"]) - set(videos))
        if unknown:
            raise EventsError(f"{p}: video {unknown[0]!r} matches no table of the run")
    return events


def carried(text: pd.Series) -> pd.Series:
    """A column of an events file as written: numbers where every value reads back as the same text (``2``,
    ``0.5``), else the text itself (``01``, ``1.50``, ``face_01``); ``n/a`` and empty cells are missing either way.
    Why: a subject ``01`` must not become ``1``, while a numeric column should stay numeric for R and pandas."""
    missing = text.isin([BIDS_NA, ""])
    numbers = pd.to_numeric(text.where(~missing), errors="coerce")
    present = numbers[~missing]
    if present.isna().any():
        return text.where(~missing, None)
    if all(float(v).is_integer() and str(int(v)) == t for v, t in zip(present, text[~missing], strict=True)):
        return numbers.astype("Int64")
    if all(t in (repr(float(v)), str(int(v)) if float(v).is_integer() else t + "?")
           for v, t in zip(present, text[~missing], strict=True)):
        return numbers.astype(np.float64)
    return text.where(~missing, None)
