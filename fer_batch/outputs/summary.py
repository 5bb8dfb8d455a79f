"""Per-video and per-track summaries of a run: ``DIR/summary.parquet`` and one timeline PNG per video.

Definitions: ``fer_batch.aggregate`` (its video and track levels are the rows here, one code path with
``fer-batch export --by video|track``). The headline rules, so that noise is never headlined:

- a track visible for less than ``min_track_s`` (default ``MIN_TRACK_S``) is listed (``counted`` false) but
  its rows are left out of its video's shares;
- shares count only rows whose ``quality`` (where the table has it) is at least ``min_quality`` (default
  ``HEADLINE_MIN_QUALITY``); ``share_rows`` says how many face-rows they rest on;
- a table made with ``--smooth`` has its shares counted on the arg-max of the ``<label>_smooth`` columns;
- ``emotion`` is the label with the largest share (tied labels joined by ``/``), null when nothing counts;
  ``headline`` (video rows) says it per counted track when there are several, and "no reliable face" when none.

Why a separate step: the tables are the product; a summary is a cheap, re-runnable view of them.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch._atomic import atomic_path
from fer_batch._progress import Progress, Silent
from fer_batch.errors import describe
from fer_batch.options import flag_arg, path_arg
from fer_batch.outputs.aggregate import (
    HEADLINE_MIN_QUALITY,
    MIN_TRACK_S,
    TIE,
    Level,
    aggregate,
    frame_durations,
    labels_of,
)
from fer_batch.outputs.palette import hex_colours
from fer_batch.outputs.table import tables, to_pandas

log = logging.getLogger(__name__)
__all__ = ["frame_durations", "labels_of", "summarize", "summarize_table"]  # the first two live in aggregate

SUMMARY = "summary.parquet"
MAX_TRACKS_PLOTTED = 12  # a crowd video gets its longest-visible tracks plotted, not a wall of tiny panels
MAX_POINTS = 2000  # points per line on a timeline; longer videos are averaged into this many time bins

def summarize_table(df: pd.DataFrame, *, min_quality: float = HEADLINE_MIN_QUALITY,
                    min_track_s: float = MIN_TRACK_S) -> pd.DataFrame:  # fmt: skip
    """Summary rows of one video's table: one ``scope="video"`` row, then one per track in id order.

    The numbers are ``aggregate``'s video and track levels (one code path with ``fer-batch export``), with the
    headline rules: shares over rows of quality >= ``min_quality`` in tracks visible >= ``min_track_s`` s, from the
    smoothed columns where the table has them.
    """
    labels = labels_of(df)
    smoothed = has_smooth(df, labels)
    videos = aggregate(df, Level.VIDEO, min_quality=min_quality, min_track_s=min_track_s, smoothed=smoothed)
    tracks = aggregate(df, Level.TRACK, min_quality=min_quality, min_track_s=min_track_s, smoothed=smoothed)
    base = videos[["video", "analysed_frames", "duration_s"]]
    tracks = tracks.merge(base, on="video", how="left")
    rows = []
    for video, vrow in videos.groupby("video", sort=True):
        rows += [vrow.assign(scope="video", track_id=pd.NA), tracks[tracks["video"] == video].assign(scope="track")]
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
    if len(out):
        out["track_id"] = out["track_id"].astype(pd.Int64Dtype())
        out[["frames", "faces", "share_rows"]] = out[["frames", "faces", "share_rows"]].astype(np.int64)
        out["counted"] = out["counted"].astype("boolean")
        out[["tracks", "counted_tracks"]] = out[["tracks", "counted_tracks"]].astype(pd.Int64Dtype())
        out = out[["video", "scope", "track_id", *[c for c in out.columns if c not in ("video", "scope", "track_id")]]]
    return out


TABLE_COLUMNS = ("video", "frame", "time_s", "face", "track_id", "det_score", "emotion")


def read_table(path: Path) -> pd.DataFrame | None:
    """One table as a DataFrame, or None (with one warning line) when it is damaged or not a fer-batch table.

    Why: a run folder may hold a table cut short by a full disk or someone else's Parquet file; the summary of
    the others is still wanted.
    """
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        log.warning("%s: skipped, not a readable Parquet file (%s)", path, describe(e)[:200])
        return None
    missing = [c for c in TABLE_COLUMNS if c not in table.column_names]
    if missing:
        log.warning("%s: skipped, not a fer-batch table (no %s column)", path, ", ".join(missing))
        return None
    return to_pandas(table)


def summarize(run_dir: str | os.PathLike[str], *, plots: bool = True, min_quality: float = HEADLINE_MIN_QUALITY,
              min_track_s: float = MIN_TRACK_S, progress: Progress | None = None) -> pd.DataFrame:  # fmt: skip
    """Summarise every table of a run into ``run_dir/summary.parquet`` (and timeline PNGs); return the summary.

    Tables are read one at a time, so a run of many long videos is summarised in bounded memory. The PNGs need
    matplotlib (a dependency; an install made with ``--no-deps`` may lack it): without it only the Parquet file is
    written. ``progress`` is told the tables as they are done (its caller closes it).
    """
    root = Path(path_arg("summarize", "run_dir", run_dir))
    flag_arg("summarize", "plots", plots)
    paths = tables(root)
    if not paths:
        raise FileNotFoundError(f"{root}: no tables found")
    plot = _plotter() if plots else None
    parts = []
    progress = progress or Silent()
    progress.start(len(paths))
    for path in paths:
        df = read_table(path)
        progress.advance()  # counted as it starts: plotting is most of a table's time, and it follows at once
        if df is None:
            continue
        part = summarize_table(df, min_quality=min_quality, min_track_s=min_track_s)
        parts.append(part)
        if plot is not None:
            for video, vdf in df.groupby("video", sort=True):
                plot(vdf, part[part["video"] == video], timeline_path(root, str(video)))
    if not parts:
        raise FileNotFoundError(f"{root}: no readable tables found")
    summary = pd.concat(parts, ignore_index=True)
    with atomic_path(root / SUMMARY) as tmp:
        summary.to_parquet(tmp, index=False)
    return summary


def timeline_path(root: Path, video: str) -> Path:
    """``root/<video>.timeline.png``; ``video`` is the table's relative name, kept inside ``root``."""
    parts = [p for p in Path(video).parts if p not in ("..", ".", "", "/")]
    rel = Path(*parts) if parts else Path("video")
    return root / rel.with_name(rel.name + ".timeline.png")


def _plotter() -> Any:
    """The PNG writer, or None (with one notice) where matplotlib is not installed."""
    if importlib.util.find_spec("matplotlib") is None:
        log.warning("matplotlib is not installed: summary.parquet only, no timeline PNGs (pip install matplotlib)")
        return None
    return plot_timeline


def label_colors(labels: list[str]) -> dict[str, str]:
    """A colour per label (``"#rrggbb"``), the same as the annotated video's and the report's."""
    return hex_colours(labels)


def has_smooth(vdf: pd.DataFrame, labels: list[str]) -> bool:
    """True when the table has ``<label>_smooth`` columns (``--smooth``): those are the lines to draw."""
    return all(f"{label}_smooth" in vdf.columns for label in labels)


def track_rows(vdf: pd.DataFrame, times: pd.Series, track_id: int) -> pd.DataFrame:
    """One track's rows on every analysed frame of its video (``times``' index): NaN where the track is absent,
    so the lines drawn from it break there."""
    return vdf[vdf["track_id"] == track_id].drop_duplicates("frame").set_index("frame").reindex(times.index)


def downsample(t: np.ndarray, values: np.ndarray, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (one row per time in ``t``, ascending) averaged over ``max_points`` equal time bins, when there
    are more points than that; NaN (absent) is left out of the means and a bin with nothing stays NaN.

    Why: a line of 100 000 points draws slowly and shows no more than the pixels it has.
    """
    if len(t) <= max_points:
        return t, values
    edges = np.linspace(t[0], t[-1], max_points + 1)
    bins = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, max_points - 1)
    present = ~np.isnan(values)
    sums = np.zeros((max_points, values.shape[1]))
    counts = np.zeros((max_points, values.shape[1]))
    np.add.at(sums, bins, np.where(present, values, 0.0))
    np.add.at(counts, bins, present)
    n = np.bincount(bins, minlength=max_points)
    used = n > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    return np.bincount(bins, weights=t, minlength=max_points)[used] / n[used], means[used]


def draw_track(ax: Any, times: pd.Series, rows: pd.DataFrame, labels: list[str], colors: dict[str, str],
               smooth: bool) -> None:  # fmt: skip
    """Each label's probability over time for one track (``track_rows``) on a matplotlib axes: with ``smooth``
    the moving average solid and the raw values faint behind it; at most ``MAX_POINTS`` points per line."""
    t = times.to_numpy(np.float64)
    tt, raw = downsample(t, rows[labels].to_numpy(np.float64), MAX_POINTS)
    smoothed = None
    if smooth:
        smoothed = downsample(t, rows[[f"{lb}_smooth" for lb in labels]].to_numpy(np.float64), MAX_POINTS)[1]
    style = {"ms": 3, "marker": "." if len(tt) <= 300 else None}  # dots keep one-frame sightings visible
    for k, label in enumerate(labels):
        if smoothed is not None:
            ax.plot(tt, raw[:, k], color=colors[label], lw=0.8, alpha=0.35)
            ax.plot(tt, smoothed[:, k], color=colors[label], lw=1.4, label=label, **style)
        else:
            ax.plot(tt, raw[:, k], color=colors[label], lw=1.2, label=label, **style)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)


def plot_timeline(vdf: pd.DataFrame, summary: pd.DataFrame, path: Path) -> None:
    """One PNG per video: a panel per track (the ``MAX_TRACKS_PLOTTED`` longest visible, in id order) with each
    label's probability over time; lines break where the track is not visible."""
    from matplotlib.figure import Figure  # lazy: the CLI starts without it; no pyplot, so no global backend state

    labels = labels_of(vdf)
    colors = label_colors(labels)
    tracks = summary[summary["scope"] == "track"].sort_values(["time_visible_s", "track_id"], ascending=[False, True])
    shown = tracks.head(MAX_TRACKS_PLOTTED).sort_values("track_id")
    smooth = has_smooth(vdf, labels)
    times = vdf.groupby("frame", sort=True)["time_s"].first()
    n = max(len(shown), 1)
    fig = Figure(figsize=(10, 1.9 * n + 0.9))
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)
    for ax, (_, track) in zip(axes[:, 0], shown.iterrows(), strict=False):
        draw_track(ax, times, track_rows(vdf, times, int(track["track_id"])), labels, colors, smooth)
        ax.set_ylabel("p")
        ax.set_title(
            f"track {int(track['track_id'])}: {track['time_visible_s']:.1f} s visible, {track_says(track)}",
            fontsize=9,
            loc="left",
        )
    if not len(shown):
        axes[0, 0].text(0.5, 0.5, "no tracked face", ha="center", va="center", transform=axes[0, 0].transAxes)
        axes[0, 0].set_yticks([])
    axes[-1, 0].set_xlabel("time (s)")
    if len(times):
        axes[-1, 0].set_xlim(float(times.min()), float(max(times.max(), times.min() + 1e-3)))
    title = str(vdf["video"].iloc[0])
    if len(tracks) > len(shown):
        title += f" ({len(shown)} of {len(tracks)} tracks: the longest visible)"
    if smooth:
        title += " (lines: smoothed; faint: raw)"
    fig.suptitle(title, fontsize=10, x=0.01, ha="left")
    handles, names = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="upper right", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def track_says(track: pd.Series) -> str:
    """A track's headline: its top label(s), or why it has none."""
    if not track["counted"]:
        return "too short to count"
    return f"mostly {track['emotion']}" if isinstance(track["emotion"], str) else "no reliable rows"


def short_table(summary: pd.DataFrame) -> str:
    """The few columns a terminal has room for: one line per video and per track."""
    if not len(summary):
        return "(no tables)"
    rows = []
    for _, r in summary.iterrows():
        label = r["emotion"] if isinstance(r["emotion"], str) else None
        share = r[f"share_{label.split(TIE)[0]}"] if label else np.nan
        if r["scope"] == "track" and not r["counted"]:
            label = "(not counted)"
        elif r["scope"] == "video" and r["counted_tracks"] > 1:  # several people: their own rows say it
            label, share = "(per track)", np.nan
        rows.append({
            "video": r["video"],
            "track": "all" if r["scope"] == "video" else str(int(r["track_id"])),
            "frames": int(r["frames"]),
            "visible_s": round(float(r["time_visible_s"]), 2),
            "emotion": label or "-",
            "share": "-" if np.isnan(share) else f"{share:.0%}",
        })  # fmt: skip
    return str(pd.DataFrame(rows).to_string(index=False))
