"""The report's sections, from a run's tables and manifest: the run, failures, settings, the index, each video.

Why apart from ``write``: sections are pure functions of data to HTML (thumbnails come in ready-made), so each can
be read and tested without a run folder.
"""

from __future__ import annotations

import io
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fer_batch._text import plural
from fer_batch._version import __version__
from fer_batch.analysis.quality import RELIABLE
from fer_batch.outputs.metadata import FileSource, TableMeta, annotated_path
from fer_batch.outputs.report.html import (
    _str,
    data_uri,
    esc,
    fmt_duration,
    html_colors,
    legend,
    link,
    rel_href,
    share_bar,
)
from fer_batch.outputs.report.thumbnails import (
    Thumb,
    cut_thumbnails,
)
from fer_batch.outputs.summary import (
    MAX_TRACKS_PLOTTED,
    draw_track,
    has_smooth,
    labels_of,
    summarize_table,
    track_rows,
    track_says,
)

log = logging.getLogger(__name__)
SHARE_DEFINITION = ('<p class="muted">A label\'s <b>share</b> is the fraction of face-rows (one face in one analysed '
                    "frame) whose most probable emotion is that label, counting only rows of quality at or above "
                    "the headline threshold in tracks visible for at least the minimum time; shorter tracks are "
                    "listed but not counted. Tables made with --smooth use the smoothed probabilities.</p>")

@dataclass(frozen=True)
class Entry:
    """One row of the index: a video with a table, or an input that failed without one."""

    name: str
    status: str
    error: str | None = None
    href: str | None = None  # its section or page; None without a table
    duration_s: float = 0.0  # analysed video time
    tracks: int = 0
    emotion: str | None = None
    headline: str = "no reliable face"  # the summary's: per counted track, ties as ties
    shares: dict[str, float] = field(default_factory=dict)
    colors: dict[str, str] = field(default_factory=dict)


def run_part(root: Path, manifest: pd.DataFrame | None, entries: list[Entry], settings: Counter[str]) -> str:
    """The top of the report: what ran, how it ended, with which settings, and every video's emotion shares."""
    written = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    videos = [e for e in entries if e.href is not None]
    facts = [
        ("inputs", str(len(manifest)) if manifest is not None else "?"),
        *status_counts(manifest, entries),
        ("videos with a table", str(len(videos))),
        ("video time analysed", fmt_duration(sum(e.duration_s for e in videos))),
        ("tracks", str(sum(e.tracks for e in videos))),
    ]
    cards = "".join(f'<div class="fact"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for k, v in facts)
    out = [
        f"<h1>fer-batch report: {esc(root.resolve().name)}</h1>",
        f'<p class="muted">{esc(str(root.resolve()))} · written {written} by fer-batch {esc(__version__)}</p>',
        f'<div class="facts">{cards}</div>',
        failures_part(entries),
        index_part(entries),
        settings_part(settings),
    ]
    return "\n".join(out)


def status_counts(manifest: pd.DataFrame | None, entries: list[Entry]) -> list[tuple[str, str]]:
    """Status counts of the manifest's inputs; without a manifest, of the tables' own status."""
    statuses = manifest["status"].astype(str).tolist() if manifest is not None else [e.status for e in entries]
    counts = Counter(statuses)
    return [(s, str(counts[s])) for s in ("ok", "partial", "failed", "skipped") if counts[s] or s in ("ok", "failed")]


def failures_part(entries: list[Entry]) -> str:
    """Every input that failed or was cut short, with its one-line reason."""
    bad = [e for e in entries if e.status in ("failed", "partial")]
    if not bad:
        return '<h2>Failures</h2><p class="ok">none: every input was analysed to its end.</p>'
    items = "".join(
        f'<li><span class="st st-{esc(e.status)}">{esc(e.status)}</span> '
        f"{link(e.name, e.href)} — {esc(e.error or 'no reason recorded')}</li>"
        for e in bad
    )
    return f'<h2>Failures</h2><ul class="failures">{items}</ul>'


def settings_part(settings: Counter[str]) -> str:
    """Version, model and detector ids (sha256) and options, from the tables' metadata; one block per distinct
    combination, so a folder analysed twice with different options says so."""
    if not settings:
        return ""
    blocks = []
    for key, n in settings.most_common():
        s = json.loads(key)
        model, det = s.get("model") or {}, s.get("detector") or {}
        rows = [("tables", str(n)), ("fer-batch", str(s.get("version"))), ("emotion model", model_id(model))]
        members = model.get("members") or []
        if len(members) > 1:  # an ensemble: the models it averages
            rows.append(("members", ", ".join(model_id(m) for m in members)))
        if model.get("tta") not in (None, "none"):
            rows.append(("test-time augmentation", str(model["tta"])))
        rows += [("face detector", model_id(det)), ("provider", str(s.get("provider")))]
        opts = s.get("options") or {}
        rows.append(("options", ", ".join(f"{k}={v}" for k, v in opts.items())))
        blocks.append("<div class=scroll><table class=kv>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>"
                      for k, v in rows) + "</table></div>")  # fmt: skip
    title = "Settings" if len(blocks) == 1 else f"Settings ({len(blocks)} different ones in this folder)"
    return f"<h2>{title}</h2>" + "".join(blocks)


def model_id(d: dict[str, Any]) -> str:
    """A model's id and the start of its sha256 (where it has one)."""
    sha = d.get("sha256")
    return f"{d.get('id')}" + (f" (sha256 {str(sha)[:12]}…)" if sha else "")


def index_part(entries: list[Entry]) -> str:
    """One row per video with its emotion shares as a bar: the videos side by side."""
    labels: dict[str, str] = {}
    for e in entries:
        labels.update(e.colors)
    rows = []
    for e in entries:
        if e.href is None:
            cells = f'<td colspan="4" class="muted">{esc(e.error or "")}</td>'
        else:
            cells = (f"<td>{fmt_duration(e.duration_s)}</td><td>{e.tracks}</td><td>{esc(e.headline)}</td>"
                     f"<td class=wide>{share_bar(e.shares, e.colors)}</td>")  # fmt: skip
        rows.append(f'<tr class="video-row"><td>{link(e.name, e.href)}</td>'
                    f'<td><span class="st st-{esc(e.status)}">{esc(e.status)}</span></td>{cells}</tr>')  # fmt: skip
    head = "".join(f"<th>{h}</th>" for h in ("video", "status", "analysed", "tracks", "headline", "emotion shares"))
    return (f"<h2>Videos: emotion shares side by side</h2>{SHARE_DEFINITION}{legend(labels)}"
            f'<div class=scroll><table class="index"><tr>{head}</tr>{"".join(rows)}</table></div>')  # fmt: skip


def video_section(df: pd.DataFrame, meta: TableMeta | None, table: Path, name: str, href: str, page_dir: Path,
                  thumbnails: int, rules: dict[str, float] | None = None) -> tuple[str, Entry]:  # fmt: skip
    """A video's part of the report (its header, player, shares and one row per track) and its index row."""
    labels = labels_of(df)
    colors = html_colors(labels)
    summ = summarize_table(df, **(rules or {})) if len(df) else pd.DataFrame()
    video = summ[summ["scope"] == "video"].iloc[0] if len(summ) else None
    tracks = summ[summ["scope"] == "track"] if len(summ) else pd.DataFrame()
    shown = shown_tracks(tracks)
    thumbs, note = cut_thumbnails(df, shown, meta, thumbnails)
    status, error = (str(meta.status), _str(meta.error)) if meta is not None else ("ok", None)
    shares = {lb: float(video[f"share_{lb}"]) for lb in labels} if video is not None else {}
    entry = Entry(name=name, status=status, error=error, href=href, tracks=len(tracks), shares=shares, colors=colors,
                  duration_s=float(video["duration_s"]) if video is not None else 0.0,
                  emotion=video["emotion"] if video is not None and isinstance(video["emotion"], str) else None,
                  headline=str(video["headline"]) if video is not None else "no reliable face")
    anchor = href[1:] if href.startswith("#") else "video"
    parts = [f'<section class="video" id="{esc(anchor)}" data-video="{esc(name)}">', video_header(entry, meta)]
    whole = f"<div><h3>Whole video: emotion shares</h3>{legend(colors)}{share_bar(shares, colors)}</div>"
    parts.append(f'<div class="overview">{player(table, page_dir, meta)}{whole}</div>')
    if note:
        parts.append(f'<p class="note">{esc(note)}</p>')
    parts.append(tracks_part(df, shown, thumbs, labels, colors))
    parts.append(not_shown(tracks, shown))
    parts.append("</section>")
    return "\n".join(parts), entry


def not_shown(tracks: pd.DataFrame, shown: pd.DataFrame) -> str:
    """One line for the tracks left out (a crowd): how many, their ids while the list is short."""
    if len(tracks) <= len(shown):
        return ""
    rest = sorted(set(tracks["track_id"].astype(int)) - set(shown["track_id"].astype(int)))
    ids = ", ".join(map(str, rest)) if len(rest) <= 20 else f"ids between {rest[0]} and {rest[-1]}"
    return (f'<p class="muted">{len(rest)} more tracks not shown (those shown are the {len(shown)} longest visible): '
            f"{ids}.</p>")  # fmt: skip


def shown_tracks(tracks: pd.DataFrame) -> pd.DataFrame:
    """The ``MAX_TRACKS_PLOTTED`` longest-visible tracks, in id order (as the summary's timeline shows them)."""
    if not len(tracks):
        return tracks
    order = tracks.sort_values(["time_visible_s", "track_id"], ascending=[False, True])
    return order.head(MAX_TRACKS_PLOTTED).sort_values("track_id")


def video_header(e: Entry, meta: TableMeta | None) -> str:
    """Name, status and the facts a person checks first: where it came from, how long, how many faces."""
    src = meta.source.path if meta is not None and isinstance(meta.source, FileSource) else None

    def fact(name: str) -> object:
        return getattr(meta, name) if meta is not None else "?"

    tracks = plural(e.tracks, "track")
    facts = [f"source {src}" if src else None, f"{fmt_duration(e.duration_s)} analysed",
             f"{fact('frames_analysed')} of {fact('frames_decoded')} frames",
             f"{fact('width')}×{fact('height')} px", tracks, e.headline]  # fmt: skip
    out = (f'<h2>{esc(e.name)} <span class="st st-{esc(e.status)}">{esc(e.status)}</span></h2>'
           f'<p class="muted">{esc(" · ".join(f for f in facts if f))}</p>')  # fmt: skip
    if e.error:
        out += f'<p class="note">{esc(e.status)}: {esc(e.error)}</p>'
    return out


def player(table: Path, page_dir: Path, meta: TableMeta | None) -> str:
    """The annotated MP4 next to the table, played in place (a relative link: it is never inlined). The media
    fragment ``#t=`` makes browsers show the first frame instead of a black box before it is played.

    Only the video written with this table (its size and mtime as the table's metadata records them): one left by
    an earlier run with other options would show other faces under this table's name.
    """
    mp4 = annotated_path(table)
    recorded = meta.annotated if meta is not None else None
    if recorded is None or not recorded.is_at(mp4):
        return ""
    src = f"{rel_href(mp4, page_dir)}#t=0.001"
    return (f'<figure class="player"><video class="annotated" controls preload="metadata" src="{src}"></video>'
            f"<figcaption>{esc(mp4.name)}</figcaption></figure>")  # fmt: skip


def tracks_part(df: pd.DataFrame, shown: pd.DataFrame, thumbs: dict[int, list[Thumb]], labels: list[str],
                colors: dict[str, str]) -> str:  # fmt: skip
    """One row per shown track: who it is (thumbnails), how long it is visible, its timeline and its shares.
    A photo (one analysed frame) has no time line: its faces get their probabilities as a bar instead."""
    if not len(shown):
        return '<p class="muted">No face was tracked in this video.</p>'
    times = df.groupby("frame", sort=True)["time_s"].first()
    photo = len(times) == 1
    smooth = has_smooth(df, labels)
    lines = " (lines: smoothed; faint: raw)" if smooth else ""
    title = "the probability of each emotion" if photo else f"the probability of each emotion over time{lines}"
    rows = [f"<h3>{'Faces' if photo else 'Tracks'}: who each one is, and {title}</h3>"]
    for _, t in shown.iterrows():
        tid = int(t["track_id"])
        strip = "".join(
            f'<figure><img class="thumb" alt="track {tid} at {th.time_s:.1f} s" src="{th.uri}">'
            + ("" if photo else f"<figcaption>{th.time_s:.1f} s</figcaption>") + "</figure>"
            for th in thumbs.get(tid, []) if th.uri
        )  # fmt: skip
        seen, what = photo_face(t, labels, colors) if photo else track_timeline(df, times, t, labels, colors, smooth)
        rows.append(f'<div class="track" data-track="{tid}"><div class="who"><h4>{"face" if photo else "track"} '
                    f"{tid}</h4><p>{seen}</p><div class=strip>{strip}</div></div>"
                    f'<div class="what">{what}</div></div>')  # fmt: skip
    return "\n".join(rows)


def track_timeline(df: pd.DataFrame, times: pd.Series, t: pd.Series, labels: list[str], colors: dict[str, str],
                   smooth: bool) -> tuple[str, str]:  # fmt: skip
    """A video's track: how long it is visible; its timeline (on the whole video's time axis, so rows line up)
    and the shares of its arg-max labels."""
    frames = int(t["frames"])
    seen = (f"{t['time_visible_s']:.1f} s visible ({t['first_s']:.1f}–{t['last_s']:.1f} s), {frames} "
            f"frame{'' if frames == 1 else 's'}, {esc(track_says(t))}")  # fmt: skip
    seen += track_quality(df[df["track_id"] == t["track_id"]])
    span = (float(times.min()), float(max(times.max(), times.min() + 1e-3)))
    png = timeline_png(times, track_rows(df, times, int(t["track_id"])), labels, colors, smooth, span)
    shares = {lb: float(t[f"share_{lb}"]) for lb in labels}
    what = (f'<img class="timeline" alt="track {int(t["track_id"])}: emotions over time" src="{png}">'
            f"{share_bar(shares, colors)}")  # fmt: skip
    return seen, what


def track_quality(rows: pd.DataFrame) -> str:
    """How far a track can be trusted: the median size of its face (the side of the box's square, px) and the share
    of its frames whose ``quality`` reaches ``RELIABLE``."""
    side = np.sqrt(rows["w"].to_numpy(np.float64) * rows["h"].to_numpy(np.float64))
    text = f"; median face {np.nanmedian(side):.0f} px" if len(side) else ""
    if "quality" in rows and rows["quality"].notna().any():
        share = float((rows["quality"] >= RELIABLE).mean())
        text += f"; {share:.0%} of its frames reliable (quality ≥ {RELIABLE:g}; fainter in the timeline below)"
    return text


def photo_face(t: pd.Series, labels: list[str], colors: dict[str, str]) -> tuple[str, str]:
    """A face in a photo: its label and its probabilities (a share of one row says nothing more)."""
    probs = {lb: float(t[f"mean_{lb}"]) for lb in labels}
    return f"mostly {esc(str(t['emotion']))}", f'<p class="muted">probabilities</p>{share_bar(probs, colors)}'


def timeline_png(times: pd.Series, rows: pd.DataFrame, labels: list[str], colors: dict[str, str], smooth: bool,
                 span: tuple[float, float]) -> str:  # fmt: skip
    """One track's emotions over the whole video's time (so rows line up), as a small PNG data URI."""
    from matplotlib.figure import Figure  # lazy: only the code that draws imports matplotlib

    fig = Figure(figsize=(7.2, 1.45), dpi=100)
    ax = fig.add_axes((0.055, 0.24, 0.935, 0.7))
    if "quality" in rows:  # rows below the reliable quality: only a faint line (every row), none drawn strong
        doubtful = ~(rows["quality"] >= RELIABLE)
        if doubtful.any():
            faint = {lb: to_faint(c) for lb, c in colors.items()}
            draw_track(ax, times, rows, labels, faint, smooth)
            rows = rows.mask(doubtful)
    draw_track(ax, times, rows, labels, colors, smooth)
    ax.set_xlim(*span)
    ax.set_yticks([0, 0.5, 1])
    ax.tick_params(labelsize=7, length=2)
    ax.set_xlabel("time (s)", fontsize=7, labelpad=1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return data_uri(buf.getvalue(), "image/png")


def to_faint(colour: str) -> str:
    """A colour mixed three parts in four with white: a row below the reliable quality, drawn behind the others."""
    from matplotlib.colors import to_hex, to_rgb

    r, g, b = (c + (1 - c) * 0.75 for c in to_rgb(colour))
    return str(to_hex((r, g, b)))
