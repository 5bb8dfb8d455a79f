"""``fer-batch report RUN_DIR``: one self-contained HTML page that shows a run to a person.

Researchers judge a run by looking: which inputs failed and why, how each tracked face's emotions move over time,
and whether the faces followed are the right ones (thumbnails cut from the source video at a few times per track).
Everything is inline (PNG and JPEG data URIs, CSS; no script, nothing from the network), so the page works opened
from disk or sent by mail. Only an annotated MP4, where the run made one, is linked (relative) and played in place.

Runs of more than ``PAGES_ABOVE`` videos get an index page (one row per video) and one page per video under
``report_pages/``, so no page grows with the run. Each video's part stays small: thumbnails are ~80 px JPEGs and
timelines PNGs of a fixed pixel size with at most ``summary.MAX_POINTS`` points per line.
"""

from __future__ import annotations

import base64
import html
import io
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import av
import cv2
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch._atomic import atomic_path
from fer_batch._version import __version__
from fer_batch.media.decode import (
    DecodeError,
    error_reason,
    is_image,
    open_input,
    orientation,
    read_image,
    rotate,
    video_stream,
)
from fer_batch.outputs.summary import (
    MAX_TRACKS_PLOTTED,
    draw_track,
    has_smooth,
    label_colors,
    labels_of,
    summarize_table,
    track_rows,
)
from fer_batch.outputs.table import MANIFEST, read_metadata, tables, to_pandas

log = logging.getLogger(__name__)

REPORT = "report.html"
PAGES_DIR = "report_pages"
PAGES_ABOVE = 36  # more videos than this: an index page plus one page per video
THUMBS_PER_TRACK = 4
THUMB_PX = 80  # thumbnail height (shown at 64 CSS px, sharp on high-density screens)
SEEK_GAP_S = 2.0  # decode forward to the next thumbnail when it is this close, else seek
PAGE_NAME = re.compile(r"^\d{4}-.*\.html$")


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
    shares: dict[str, float] = field(default_factory=dict)
    colors: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Thumb:
    """A face thumbnail: the track, the time it was cut at, its box in the displayed frame, the image (data URI)."""

    track_id: int
    time_s: float
    box: tuple[float, float, float, float]
    uri: str | None = None


# --- the entry point -------------------------------------------------------------------------------------------


def write_report(run_dir: str | os.PathLike[str], *, thumbnails: int = THUMBS_PER_TRACK,
                 pages_above: int = PAGES_ABOVE) -> Path:  # fmt: skip
    """Write ``run_dir/report.html`` (and ``report_pages/`` for large runs); return the page's path.

    Tables are read one at a time, so a large run is reported in bounded memory. Raises ``FileNotFoundError``
    when the folder holds neither tables nor a manifest.
    """
    root = Path(run_dir)
    paths = tables(root)
    manifest = read_manifest(root)
    if not paths and manifest is None:
        raise FileNotFoundError(f"{root}: no tables and no {MANIFEST} (not a fer-batch run folder)")
    split = len(paths) > pages_above
    entries: list[Entry] = []
    sections: list[str] = []
    settings: Counter[str] = Counter()
    written: set[str] = set()
    for k, path in enumerate(paths):
        try:
            df = to_pandas(pq.read_table(path))
        except (OSError, pa.ArrowException) as e:  # a damaged file: one line in the report, the others go on
            log.warning("%s: unreadable table (%s)", path, error_reason(e))
            entries.append(Entry(name=path.relative_to(root).as_posix(), status="failed",
                                 error=f"unreadable table: {error_reason(e)}"))  # fmt: skip
            continue
        meta = read_metadata(path) or {}
        settings[settings_key(meta)] += 1
        name = str(df["video"].iloc[0]) if len(df) else path.stem
        href = f"{PAGES_DIR}/{page_name(k, name)}" if split else f"#v{k}"
        page_dir = root / PAGES_DIR if split else root
        section, entry = video_section(df, meta, path, name, href, page_dir, thumbnails)
        entries.append(entry)
        if split:
            back = f'<p><a href="{rel_href(root / REPORT, page_dir)}">&larr; the whole run</a></p>'
            page_dir.mkdir(exist_ok=True)
            write_atomic(root / href, page(f"{name} — fer-batch report", back + section))
            written.add(Path(href).name)
        else:
            sections.append(section)
    entries += failed_entries(manifest)
    body = run_part(root, manifest, entries, settings) + "".join(sections)
    write_atomic(root / REPORT, page(f"{root.resolve().name} — fer-batch report", body))
    remove_stale_pages(root / PAGES_DIR, keep=written)
    return root / REPORT


def read_manifest(root: Path) -> pd.DataFrame | None:
    """The run's manifest (the last ``analyze`` of this folder), or None where there is none or it is unreadable."""
    path = root / MANIFEST
    if not path.is_file():
        return None
    try:
        return pd.read_parquet(path)
    except (OSError, ValueError) as e:
        log.warning("%s: unreadable (%s); the report shows the tables only", path, error_reason(e))
        return None


def settings_key(meta: dict[str, Any]) -> str:
    """What makes two tables comparable: version, models, provider and options (as one JSON string)."""
    keep = {k: meta.get(k) for k in ("version", "model", "detector", "provider", "options")}
    if isinstance(keep["model"], dict):
        keep["model"] = {k: v for k, v in keep["model"].items() if k != "labels"}
    return json.dumps(keep, sort_keys=True, default=str)


def failed_entries(manifest: pd.DataFrame | None) -> list[Entry]:
    """Inputs that ended without a table: they have a row in the index and a line among the failures."""
    if manifest is None:
        return []
    rows = manifest[manifest["status"] == "failed"]
    return [Entry(name=str(r["path"]), status="failed", error=_str(r["error"])) for _, r in rows.iterrows()]


def page_name(k: int, name: str) -> str:
    """A per-video page's file name: its position (unique) and a readable, file-system-safe form of its name."""
    return f"{k:04d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:80]}.html"


def remove_stale_pages(folder: Path, keep: set[str]) -> None:
    """Per-video pages of an earlier report of this folder that this one did not write (a run that shrank)."""
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if PAGE_NAME.match(p.name) and p.name not in keep:
            p.unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


def write_atomic(path: Path, text: str) -> None:
    """A page is never seen half-written, and an older report stays until the new one is whole."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --- the run: counts, failures, settings, the videos side by side ----------------------------------------------


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
        blocks.append("<table class=kv>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
                      + "</table>")  # fmt: skip
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
            cells = (f"<td>{fmt_duration(e.duration_s)}</td><td>{e.tracks}</td><td>{esc(e.emotion or '–')}</td>"
                     f"<td class=wide>{share_bar(e.shares, e.colors)}</td>")  # fmt: skip
        rows.append(f'<tr class="video-row"><td>{link(e.name, e.href)}</td>'
                    f'<td><span class="st st-{esc(e.status)}">{esc(e.status)}</span></td>{cells}</tr>')  # fmt: skip
    head = "".join(f"<th>{h}</th>" for h in ("video", "status", "analysed", "tracks", "mostly", "emotion shares"))
    return (f"<h2>Videos: emotion shares side by side</h2>{legend(labels)}"
            f'<table class="index"><tr>{head}</tr>{"".join(rows)}</table>')  # fmt: skip


# --- one video -------------------------------------------------------------------------------------------------


def video_section(df: pd.DataFrame, meta: dict[str, Any], table: Path, name: str, href: str, page_dir: Path,
                  thumbnails: int) -> tuple[str, Entry]:  # fmt: skip
    """A video's part of the report (its header, player, shares and one row per track) and its index row."""
    labels = labels_of(df)
    colors = html_colors(labels)
    summ = summarize_table(df) if len(df) else pd.DataFrame()
    video = summ[summ["scope"] == "video"].iloc[0] if len(summ) else None
    tracks = summ[summ["scope"] == "track"] if len(summ) else pd.DataFrame()
    shown = shown_tracks(tracks)
    thumbs, note = cut_thumbnails(df, shown, meta, thumbnails)
    status, error = str(meta.get("status") or "ok"), _str(meta.get("error"))
    shares = {lb: float(video[f"share_{lb}"]) for lb in labels} if video is not None else {}
    entry = Entry(name=name, status=status, error=error, href=href, tracks=len(tracks), shares=shares, colors=colors,
                  duration_s=float(video["duration_s"]) if video is not None else 0.0,
                  emotion=video["emotion"] if video is not None and isinstance(video["emotion"], str) else None)
    anchor = href[1:] if href.startswith("#") else "video"
    parts = [f'<section class="video" id="{esc(anchor)}" data-video="{esc(name)}">', video_header(entry, meta)]
    whole = f"<div><h3>Whole video: emotion shares</h3>{legend(colors)}{share_bar(shares, colors)}</div>"
    parts.append(f'<div class="overview">{player(table, page_dir)}{whole}</div>')
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


def video_header(e: Entry, meta: dict[str, Any]) -> str:
    """Name, status and the facts a person checks first: where it came from, how long, how many faces."""
    src = (meta.get("source") or {}).get("path")
    tracks = f"{e.tracks} track" + ("" if e.tracks == 1 else "s")
    facts = [f"source {src}" if src else None, f"{fmt_duration(e.duration_s)} analysed",
             f"{meta.get('frames_analysed', '?')} of {meta.get('frames_decoded', '?')} frames",
             f"{meta.get('width', '?')}×{meta.get('height', '?')} px", tracks,
             f"mostly {e.emotion}" if e.emotion else "no face"]  # fmt: skip
    out = (f'<h2>{esc(e.name)} <span class="st st-{esc(e.status)}">{esc(e.status)}</span></h2>'
           f'<p class="muted">{esc(" · ".join(f for f in facts if f))}</p>')  # fmt: skip
    if e.error:
        out += f'<p class="note">{esc(e.status)}: {esc(e.error)}</p>'
    return out


def player(table: Path, page_dir: Path) -> str:
    """The annotated MP4 next to the table, played in place (a relative link: it is never inlined). The media
    fragment ``#t=`` makes browsers show the first frame instead of a black box before it is played."""
    mp4 = table.with_name(table.name[: -len(".parquet")] + ".annotated.mp4")
    if not mp4.is_file():
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
            f"frame{'' if frames == 1 else 's'}, mostly {esc(str(t['emotion']))}")  # fmt: skip
    span = (float(times.min()), float(max(times.max(), times.min() + 1e-3)))
    png = timeline_png(times, track_rows(df, times, int(t["track_id"])), labels, colors, smooth, span)
    shares = {lb: float(t[f"share_{lb}"]) for lb in labels}
    what = (f'<img class="timeline" alt="track {int(t["track_id"])}: emotions over time" src="{png}">'
            f"{share_bar(shares, colors)}")  # fmt: skip
    return seen, what


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
    draw_track(ax, times, rows, labels, colors, smooth)
    ax.set_xlim(*span)
    ax.set_yticks([0, 0.5, 1])
    ax.tick_params(labelsize=7, length=2)
    ax.set_xlabel("time (s)", fontsize=7, labelpad=1)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return data_uri(buf.getvalue(), "image/png")


# --- thumbnails: the track's face cut from the source at a few times -------------------------------------------


def cut_thumbnails(df: pd.DataFrame, shown: pd.DataFrame, meta: dict[str, Any],
                   per_track: int) -> tuple[dict[int, list[Thumb]], str | None]:  # fmt: skip
    """Thumbnails per track id, and a note for the page where they could not be made (the reason, one line)."""
    if per_track <= 0 or not len(shown):
        return {}, None
    wanted = thumb_times(df, shown, per_track)
    src = (meta.get("source") or {}).get("path")
    problem = source_problem(meta)
    if problem:
        return {}, f"No thumbnails: {problem}."
    try:
        frames = grab_frames(Path(src), sorted({t.time_s for t in wanted}), int(meta.get("rotation") or 0))
    except (DecodeError, OSError, av.error.FFmpegError) as e:
        return {}, f"No thumbnails: {src} could not be decoded ({error_reason(e)})."
    out: dict[int, list[Thumb]] = {}
    for t in wanted:
        img = frames.get(t.time_s)
        uri = data_uri(thumb_jpeg(img, t.box), "image/jpeg") if img is not None else None
        out.setdefault(t.track_id, []).append(Thumb(t.track_id, t.time_s, t.box, uri))
    missing = sum(t.uri is None for ts in out.values() for t in ts)
    return out, (f"{missing} thumbnails missing: frames not found in {src}." if missing else None)


def thumb_times(df: pd.DataFrame, shown: pd.DataFrame, per_track: int) -> list[Thumb]:
    """``per_track`` rows of each shown track, evenly spread over its rows in time (first and last included)."""
    out = []
    for tid in shown["track_id"]:
        rows = df[df["track_id"] == tid].sort_values("time_s")
        picks = np.unique(np.linspace(0, len(rows) - 1, min(per_track, len(rows))).round().astype(int))
        for _, r in rows.iloc[picks].iterrows():
            box = (float(r["x"]), float(r["y"]), float(r["w"]), float(r["h"]))
            out.append(Thumb(int(tid), float(r["time_s"]), box))
    return out


def source_problem(meta: dict[str, Any]) -> str | None:
    """Why the source cannot give thumbnails that match the table (gone, or a different file now), or None."""
    src = meta.get("source") or {}
    path = src.get("path")
    if not path:
        return "the table does not record its source video"
    p = Path(path)
    if not p.is_file():
        return f"the source video {path} is not there any more"
    if src.get("size") is not None and p.stat().st_size != src["size"]:
        return f"the source video {path} has changed since it was analysed"
    return None


def grab_frames(path: Path, times: Iterable[float], rotation: int) -> dict[float, np.ndarray]:
    """RGB frames (displayed orientation) at the given presentation times: seek to the keyframe before each one
    that is far ahead, else decode forward. Times come from the table, so they match frames' own times."""
    if is_image(path):
        img = cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)
        return dict.fromkeys(times, img)
    out: dict[float, np.ndarray] = {}
    with open_input(path) as container:
        stream = video_stream(container)
        tb = stream.time_base
        frames: Iterable[av.VideoFrame] | None = None
        last = -np.inf
        for t in sorted(times):
            if frames is None or t < last or t - last > SEEK_GAP_S:
                if tb is not None:
                    container.seek(max(0, int(t / tb)), stream=stream, backward=True, any_frame=False)
                frames = container.decode(stream)
            for frame in frames:
                if frame.time is None:
                    continue
                last = float(frame.time)
                if last >= t - 1e-3:  # the frame at t, or the first after it where a seek landed late
                    # the frame's own display matrix: a mirror is part of it, not only the recorded rotation
                    out[t] = rotate(frame.to_ndarray(format="rgb24"), *orientation(frame))
                    break
    return out


def thumb_jpeg(rgb: np.ndarray, box: tuple[float, float, float, float]) -> bytes:
    """The face with a margin around it (a square 1.4× the box's longer side), ``THUMB_PX`` high, as JPEG."""
    x, y, w, h = box
    side = max(w, h) * 1.4
    cx, cy = x + w / 2, y + h / 2
    H, W = rgb.shape[:2]
    x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x2, y2 = int(min(W, cx + side / 2)), int(min(H, cy + side / 2))
    crop = rgb[y1:max(y2, y1 + 1), x1:max(x2, x1 + 1)]
    scale = THUMB_PX / crop.shape[0]
    small = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), THUMB_PX), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 82])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buf.tobytes()


# --- HTML pieces -----------------------------------------------------------------------------------------------


def esc(s: object) -> str:
    return html.escape(str(s), quote=True)


def _str(v: Any) -> str | None:
    """A manifest or metadata string field, None for missing values (NaN, None, empty)."""
    return None if v is None or (isinstance(v, float) and np.isnan(v)) or v == "" else str(v)


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def rel_href(target: Path, page_dir: Path) -> str:
    """A link from a page in ``page_dir`` to ``target``, relative (the folder may be moved or mailed whole)."""
    rel = os.path.relpath(target.resolve(), page_dir.resolve())
    return esc(quote(Path(rel).as_posix()))


def link(text: str, href: str | None) -> str:
    return f'<a href="{esc(href)}">{esc(text)}</a>' if href else esc(text)


def html_colors(labels: list[str]) -> dict[str, str]:
    """The summary's colour per label, as CSS hex."""
    from matplotlib.colors import to_hex

    return {label: to_hex(c) for label, c in label_colors(labels).items()}


def _ink(hex_color: str) -> str:
    """Dark or light text, whichever reads on the background colour."""
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 150 else "#fff"


def share_bar(shares: dict[str, float], colors: dict[str, str]) -> str:
    """Shares of the arg-max label as one stacked bar; a label is written in its part when it has room."""
    parts = []
    for label, v in shares.items():
        if v > 0:
            text = f"{esc(label)} {v:.0%}" if v >= 0.15 else ""
            parts.append(f'<span style="width:{100 * v:.2f}%;background:{colors[label]};color:{_ink(colors[label])}"'
                         f' title="{esc(label)} {v:.1%}">{text}</span>')  # fmt: skip
    return f'<div class="bar">{"".join(parts) or "<i>no face</i>"}</div>'


def legend(colors: dict[str, str]) -> str:
    keys = "".join(f'<span><i style="background:{c}"></i>{esc(label)}</span>' for label, c in colors.items())
    return f'<div class="legend">{keys}</div>'


def fmt_duration(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    m, sec = divmod(round(s), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min {sec:02d} s" if h else f"{m} min {sec:02d} s"


CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0 auto;max-width:1180px;
padding:16px 24px 48px;background:#fafafa}
h1{font-size:22px;margin:8px 0 2px}h2{font-size:18px;margin:28px 0 6px}h3{font-size:14px;margin:14px 0 4px}
h4{margin:0;font-size:14px}.muted{color:#666}.note{background:#fff4e0;border-left:3px solid #f0a020;padding:4px 8px}
.ok{color:#2a7a2a}a{color:#1a5fb4}
.facts{display:flex;flex-wrap:wrap;gap:8px;margin:12px 0}.fact{background:#fff;border:1px solid #ddd;border-radius:6px;
padding:6px 12px;min-width:90px}.fact b{display:block;font-size:18px}.fact span{color:#666;font-size:12px}
.st{font-size:11px;padding:1px 6px;border-radius:8px;background:#ddd;vertical-align:middle}
.st-ok{background:#d7f0d7}.st-partial{background:#ffe2a8}.st-failed{background:#f6c6c6}.st-skipped{background:#dde6f5}
table{border-collapse:collapse;background:#fff}td,th{border-bottom:1px solid #e4e4e4;padding:4px 8px;text-align:left;
vertical-align:middle}table.kv{margin:6px 0;font-size:13px}table.kv th{color:#555;font-weight:600;white-space:nowrap}
table.index{width:100%}td.wide{width:45%}ul.failures li{margin:2px 0}
.bar{display:flex;height:18px;border-radius:3px;overflow:hidden;background:#eee;font-size:11px;line-height:18px;
min-width:120px}.bar span{white-space:nowrap;overflow:hidden;text-align:center}.bar i{color:#888;padding:0 6px}
.legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;margin:4px 0}.legend i{display:inline-block;width:10px;
height:10px;margin-right:4px;border-radius:2px}
section.video{background:#fff;border:1px solid #ddd;border-radius:8px;padding:4px 16px 12px;margin:24px 0}
.overview{display:flex;flex-wrap:wrap;gap:16px;align-items:flex-start}.overview>div{flex:1;min-width:300px}
figure.player{margin:0}figure.player figcaption{font-size:11px;color:#666}
video.annotated{width:400px;max-width:100%;background:#000;border-radius:4px;display:block}
.track{display:grid;grid-template-columns:300px 1fr;gap:12px;border-top:1px solid #eee;padding:8px 0}
.who p{margin:2px 0;font-size:12px;color:#444}.strip{display:flex;gap:4px;flex-wrap:wrap}
.strip figure{margin:0;text-align:center;font-size:10px;color:#666}.thumb{height:64px;border-radius:3px;display:block}
img.timeline{width:100%;max-width:720px;display:block}
"""


def page(title: str, body: str) -> str:
    """A complete HTML document: inline CSS, no script, no external resource."""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{esc(title)}</title><style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n")  # fmt: skip
