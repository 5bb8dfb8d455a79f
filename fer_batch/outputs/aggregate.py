"""Aggregates of the per-frame tables: per time bin, track, video or experiment event; one code path for
``fer-batch export``, ``fer-batch summary``, the report and ``fer_batch.aggregate``.

Definitions (every number can be recomputed with plain pandas over the tables):

- A video's analysed frames are its distinct ``frame`` values; each lasts until the next one, the last one the
  median step (0 for a photo). ``time_visible_s`` sums the durations of the frames a group appears in.
- A face row *counts* when its ``quality`` (where it has one) is at least ``min_quality`` and its track is
  visible for at least ``min_track_s`` seconds, or for the whole of a shorter video (a photo lasts 0 s); with
  ``min_track_s > 0`` a face without a track never counts. ``mean_<label>`` is the mean probability over the
  counted rows, ``share_<label>`` the fraction of them whose label is ``<label>``, ``share_rows`` how many rows
  that is. The label is ``emotion`` (the arg-max of the raw probabilities), or the arg-max of the
  ``<label>_smooth`` columns with ``smoothed=True``.
- ``emotion`` (track and video rows) is the label with the largest share; on a tie, the tied labels joined by
  ``/`` in label order; null when no row counts.
- ``second`` and ``event`` rows hold counted rows only: ``frames`` is their number of distinct frames. ``track``
  and ``video`` rows (the summary's) count every face row in ``frames``, ``faces`` and ``time_visible_s`` and say
  with ``counted`` / ``share_rows`` what their shares rest on, so a short track is listed but not headlined.

Why one module: the summary's headline numbers and the exported numbers must never drift apart.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from fer_batch.analysis.quality import RELIABLE
from fer_batch.columns import label_columns
from fer_batch.errors import UsageError
from fer_batch.options import Level, number
from fer_batch.outputs.events import read_events

__all__ = ["Level", "aggregate", "frame_durations", "labels_of"]

# The quality a face row needs to enter the summary's and the report's shares (``quality`` = calibrated probability
# that ``emotion`` is right): the one reliable threshold, chosen from the calibration measurements in BENCHMARKS.md
# ("Quality") and used by the report's and the annotated video's marks too.
HEADLINE_MIN_QUALITY = RELIABLE
# Tracks visible for less than this many seconds are listed but not counted in a video's headline shares. Why 1 s:
# false faces (a cartoon's one-frame detection, a 5-frame 23-px face in a street) live for well under a second,
# while every person in the sample and the test recordings stays for several (measured: README, "Summaries").
MIN_TRACK_S = 1.0
TIE = "/"  # joins tied labels in ``emotion``
HEADLINE_TRACKS = 4  # per-track headlines listed before "+N more"


# per-face measurements (#21), never labels, wherever a table version places them
def labels_of(df: pd.DataFrame) -> list[str]:
    """The probability columns of a table: those between ``det_score`` and ``emotion``, in order."""
    return label_columns(list(df.columns))


def frame_durations(df: pd.DataFrame) -> pd.Series:
    """Duration (s) of each analysed frame of one video, indexed by ``frame`` (see the module docstring)."""
    times = df.groupby("frame", sort=True)["time_s"].first()
    steps = np.diff(times.to_numpy(np.float64))
    last = float(np.median(steps)) if len(steps) else 0.0
    return pd.Series(np.append(steps, last), index=times.index, name="duration_s")


def check_options(bin: float, min_quality: float, min_track_s: float) -> tuple[float, float, float]:
    """The three numbers as floats, or a ``UsageError`` naming the option (``--bin`` ...)."""
    return (float(number(0, lo_open=True)("bin", bin)), float(number(0, 1)("min_quality", min_quality)),
            float(number(0)("min_track_s", min_track_s)))  # fmt: skip


def aggregate(
    df: pd.DataFrame,
    by: Level | str = Level.FRAME,
    bin: float = 1.0,  # the CLI's --bin
    events: pd.DataFrame | str | os.PathLike[str] | None = None,
    min_quality: float = 0.0,
    min_track_s: float = 0.0,
    smoothed: bool = False,
) -> pd.DataFrame:
    """One row per face-frame (``frame``), per video × track × time bin (``second``), per track, per video, or per
    video × track × event (``event``, with ``events`` an events file or its ``read_events`` frame); see the module
    docstring.

    An export is data, not a headline: by default every row counts. ``df`` is one or more tables (``load``).
    """
    level = Level(by)
    bin, min_quality, min_track_s = check_options(bin, min_quality, min_track_s)
    if isinstance(events, (str, os.PathLike)):
        events = read_events(events, df["video"].astype(str).unique())
    labels = labels_of(df)
    faces = face_rows(df, labels, min_quality=min_quality, min_track_s=min_track_s, smoothed=smoothed)
    if level is Level.FRAME:
        return flatten(df, faces)
    if level is Level.SECOND:
        return by_second(faces, labels, bin)
    if level is Level.TRACK:
        return by_track(faces, labels)
    if level is Level.VIDEO:
        return by_video(df, faces, labels)
    return by_event(df, faces, labels, events)


def face_rows(df: pd.DataFrame, labels: list[str], *, min_quality: float, min_track_s: float,
              smoothed: bool) -> pd.DataFrame:  # fmt: skip
    """The rows with a face, with what every level needs: ``_dur`` (their frame's duration), ``_tid`` (track id,
    -1 for none), ``_track_s`` (their track's visible time), ``_label`` (the label shares count) and ``_counts``."""
    durations = pd.concat({v: frame_durations(vdf) for v, vdf in df.groupby("video", sort=False)}, names=["video"])
    faces = df[df["face"].notna()].copy()
    index = pd.MultiIndex.from_arrays([faces["video"], faces["frame"]])
    faces["_dur"] = durations.reindex(index).to_numpy(np.float64) if len(faces) else np.zeros(0)
    faces["_tid"] = faces["track_id"].astype("Int64").fillna(-1).astype(np.int64)
    seen = faces.drop_duplicates(["video", "_tid", "frame"]).groupby(["video", "_tid"])["_dur"].sum()
    faces["_track_s"] = seen.reindex(pd.MultiIndex.from_arrays([faces["video"], faces["_tid"]])).to_numpy()
    # a photo (one frame, 0 s) or a clip shorter than min_track_s: a track seen throughout is long enough
    needed = np.minimum(min_track_s, faces["video"].map(durations.groupby(level="video").sum()).to_numpy(np.float64))
    faces["_long"] = (faces["_tid"].to_numpy() >= 0) & (faces["_track_s"].to_numpy() >= needed - 1e-9)
    if smoothed:
        if not all(f"{lb}_smooth" in df.columns for lb in labels):
            raise UsageError(f"--smoothed: {df['video'].iloc[0]} has no <label>_smooth columns (analysed without "
                             "--smooth)")  # fmt: skip
        probs = faces[[f"{lb}_smooth" for lb in labels]].to_numpy(np.float64)
        smooth_label = np.asarray(labels, dtype=object)[np.nan_to_num(probs, nan=-1.0).argmax(axis=1)]
        faces["_label"] = np.where(np.isnan(probs).all(axis=1), faces["emotion"].astype(object), smooth_label)
    else:
        faces["_label"] = faces["emotion"].astype(object)
    counts = np.ones(len(faces), dtype=bool)
    if "quality" in faces.columns and min_quality > 0:
        counts &= ~(faces["quality"].to_numpy(np.float64, na_value=np.nan) < min_quality)  # no value: a table
        # without the column, concatenated with one that has it (load): its rows count, as without the column
    if min_track_s > 0:
        counts &= faces["_long"].to_numpy()
    faces["_counts"] = counts
    return faces


def stats(faces: pd.DataFrame, keys: list[str], labels: list[str]) -> pd.DataFrame:
    """Per group of ``keys``: visibility over every row of ``faces``, means and shares over its counted rows."""
    g = faces.groupby(keys, sort=True)
    out = g.agg(frames=("frame", "nunique"), faces=("frame", "size"), first_s=("time_s", "min"),
                last_s=("time_s", "max"))  # fmt: skip
    out["time_visible_s"] = faces.drop_duplicates([*keys, "frame"]).groupby(keys)["_dur"].sum()
    kept = faces[faces["_counts"]]
    gk = kept.groupby(keys, sort=True)
    out["share_rows"] = gk.size().reindex(out.index, fill_value=0).astype(np.int64)
    out = out.join(gk[labels].mean().astype(np.float64).add_prefix("mean_"))
    onehot = pd.DataFrame({lb: (kept["_label"] == lb).to_numpy(np.float64) for lb in labels}, index=kept.index)
    out = out.join(onehot.groupby([kept[k] for k in keys], sort=True).mean().add_prefix("share_"))
    if "quality" in faces.columns:
        out["quality"] = g["quality"].mean().astype(np.float64)
    for col in [f"{p}_{lb}" for p in ("mean", "share") for lb in labels]:
        if col not in out.columns:
            out[col] = np.nan
    return out


def top_label(row: pd.Series, labels: list[str]) -> str | None:
    """The label with the largest share; tied labels joined by ``TIE``; None when no row counts."""
    shares = np.array([row[f"share_{lb}"] for lb in labels], dtype=np.float64)
    if not row["share_rows"] or np.isnan(shares).all():
        return None
    best = np.nanmax(shares)
    return TIE.join(lb for lb, s in zip(labels, shares, strict=True) if s == best)


def _restore(out: pd.DataFrame, labels: list[str], lead: list[str]) -> pd.DataFrame:
    """Index back to columns, ``_tid`` -1 to a null ``track_id``, columns in their documented order."""
    out = out.reset_index()
    if "_tid" in out.columns:
        out["track_id"] = pd.array(np.where(out["_tid"] >= 0, out["_tid"], 0), dtype="Int64")
        out.loc[out["_tid"] < 0, "track_id"] = pd.NA
    tail = [f"mean_{lb}" for lb in labels] + [f"share_{lb}" for lb in labels]
    tail += ["quality"] if "quality" in out.columns else []
    return out[[c for c in lead if c in out.columns] + tail]


def flatten(df: pd.DataFrame, faces: pd.DataFrame) -> pd.DataFrame:
    """Every row of the tables in plain types (``emotion`` as text), ``video`` first; rows that do not count
    (``--min-quality``, ``--min-track-s``) left out, rows without a face kept."""
    dropped = faces.index[~faces["_counts"].to_numpy()]
    out = df.drop(index=dropped) if len(dropped) else df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype(object).where(out[col].notna(), None)
    return out[["video", *[c for c in out.columns if c != "video"]]].reset_index(drop=True)


def by_second(faces: pd.DataFrame, labels: list[str], bin: float) -> pd.DataFrame:
    """Per video, track and time bin [k·bin, (k+1)·bin): counted rows only."""
    kept = faces[faces["_counts"]].copy()
    kept["_bin"] = np.floor(kept["time_s"].to_numpy(np.float64) / bin).astype(np.int64)
    out = stats(kept, ["video", "_tid", "_bin"], labels)
    out["start_s"] = out.index.get_level_values("_bin") * bin
    out["end_s"] = (out.index.get_level_values("_bin") + 1) * bin
    return _restore(out, labels, ["video", "track_id", "start_s", "end_s", "frames"])


TRACK_COLUMNS = ["video", "track_id", "frames", "faces", "first_s", "last_s", "time_visible_s", "counted",
                 "share_rows", "emotion"]  # fmt: skip


def by_track(faces: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per tracked face (faces without a track are in their video's row only): the summary's track rows."""
    out = stats(faces[faces["_tid"] >= 0], ["video", "_tid"], labels)
    out["counted"] = faces[faces["_tid"] >= 0].groupby(["video", "_tid"], sort=True)["_long"].first()
    out["emotion"] = [top_label(r, labels) for _, r in out.iterrows()] if len(out) else []
    return _restore(out, labels, TRACK_COLUMNS)


VIDEO_COLUMNS = ["video", "analysed_frames", "duration_s", "tracks", "counted_tracks", "frames", "faces", "first_s",
                 "last_s", "time_visible_s", "share_rows", "emotion", "headline"]  # fmt: skip


def by_video(df: pd.DataFrame, faces: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """Per video: its analysed time, its face rows, the shares of its counted rows and a ``headline`` built from
    its counted tracks (one per track when there are several)."""
    videos = df.groupby("video", sort=True)
    per_frame = {v: frame_durations(vdf) for v, vdf in videos}
    out = stats(faces, ["video"], labels).reindex(list(per_frame))
    out.index.name = "video"
    out["analysed_frames"] = [len(d) for d in per_frame.values()]
    out["duration_s"] = [float(d.sum()) for d in per_frame.values()]
    for col in ("frames", "faces", "share_rows"):
        out[col] = out[col].fillna(0).astype(np.int64)
    out["time_visible_s"] = out["time_visible_s"].fillna(0.0)
    tracks = by_track(faces, labels)
    good = tracks[tracks["counted"] & (tracks["share_rows"] > 0)]
    out["tracks"] = tracks.groupby("video").size().reindex(out.index, fill_value=0).astype(np.int64)
    out["counted_tracks"] = good.groupby("video").size().reindex(out.index, fill_value=0).astype(np.int64)
    out["emotion"] = [top_label(r, labels) for _, r in out.iterrows()]
    out["headline"] = [headline(r, good[good["video"] == v], labels) for v, r in out.iterrows()]
    return _restore(out, labels, VIDEO_COLUMNS)


def describe(row: pd.Series, labels: list[str]) -> str:
    """``happy 62%`` or, on a tie, ``tie: happy 50% = neutral 50%``."""
    emotion = row["emotion"]
    parts = [f"{lb} {row[f'share_{lb}']:.0%}" for lb in str(emotion).split(TIE)]
    return " = ".join(parts) if len(parts) == 1 else "tie: " + " = ".join(parts)


def headline(video: pd.Series, good: pd.DataFrame, labels: list[str]) -> str:
    """What a video is said to show: ``no reliable face``, its one counted track's (or its own) top label, or one
    per counted track, longest visible first."""
    if not len(good) and not isinstance(video["emotion"], str):
        return "no reliable face"
    if len(good) <= 1:
        row = good.iloc[0] if len(good) else video
        return f"{describe(row, labels)} (of {int(row['share_rows'])} face-rows)"
    order = good.sort_values(["time_visible_s", "track_id"], ascending=[False, True])
    parts = [f"track {int(t['track_id'])}: {describe(t, labels)}" for _, t in order.head(HEADLINE_TRACKS).iterrows()]
    more = len(order) - HEADLINE_TRACKS
    return "; ".join(parts) + (f"; +{more} more tracks" if more > 0 else "")


def by_event(df: pd.DataFrame, faces: pd.DataFrame, labels: list[str], events: pd.DataFrame | None) -> pd.DataFrame:
    """Per video × event × track, counted rows only; an event without a face is one row with a null
    ``track_id`` and ``frames`` 0. Events without a ``video`` column apply to every video."""
    if events is None:
        raise UsageError("--by event needs events (an events file)")
    kept = faces[faces["_counts"]]
    own = [c for c in events.columns if c != "video"]
    parts: list[pd.DataFrame] = []
    for video in sorted(df["video"].unique()):
        mine = events[events["video"] == video] if "video" in events.columns else events
        if len(mine):
            vfaces = kept[kept["video"] == video].sort_values("time_s", kind="stable")
            parts.append(event_rows(vfaces, str(video), mine[own].reset_index(drop=True), labels))
    lead = ["video", *own, "track_id", "frames"]
    if not parts:
        return pd.DataFrame(columns=lead + [f"{p}_{lb}" for p in ("mean", "share") for lb in labels])
    return pd.concat(parts, ignore_index=True)


def event_rows(vfaces: pd.DataFrame, video: str, events: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    """One video's rows for its events (file order): a row per track seen in [onset, onset + duration), or one
    empty row. ``vfaces`` sorted by time: each event is a slice of it, so overlapping events share rows."""
    t = vfaces["time_s"].to_numpy(np.float64)
    onset = events["onset"].to_numpy(np.float64)
    lo = np.searchsorted(t, onset, side="left")
    hi = np.searchsorted(t, onset + events["duration"].to_numpy(np.float64), side="left")
    n = np.maximum(hi - lo, 0)
    take = (np.repeat(lo - np.cumsum(n) + n, n) + np.arange(int(n.sum()))).astype(np.int64)
    inside = vfaces.iloc[take].assign(_event=np.repeat(np.arange(len(events)), n))
    out = _restore(stats(inside, ["_event", "_tid"], labels), labels, ["_event", "track_id", "frames"])
    empty = np.setdiff1d(np.arange(len(events)), out["_event"].to_numpy())
    if len(empty):
        none = pd.DataFrame({"_event": empty, "track_id": pd.array([pd.NA] * len(empty), dtype="Int64"), "frames": 0})
        out = pd.concat([out, none.reindex(columns=out.columns)], ignore_index=True)
    out = out.sort_values(["_event", "track_id"], kind="stable", na_position="first").reset_index(drop=True)
    head = events.iloc[out["_event"].to_numpy()].reset_index(drop=True)
    head.insert(0, "video", video)
    return pd.concat([head, out.drop(columns="_event")], axis=1)
