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

import json
import logging
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch._atomic import atomic_path
from fer_batch._progress import Progress, Silent
from fer_batch._text import utf8
from fer_batch.columns import IDENTITY_COLUMNS
from fer_batch.errors import describe
from fer_batch.options import int_arg, path_arg
from fer_batch.outputs.aggregate import HEADLINE_MIN_QUALITY, MIN_TRACK_S
from fer_batch.outputs.metadata import TableMeta, read_table_meta
from fer_batch.outputs.report.html import (
    _str,
    page,
    rel_href,
)
from fer_batch.outputs.report.parts import (
    Entry,
    run_part,
    video_section,
)
from fer_batch.outputs.report.thumbnails import (
    THUMBS_PER_TRACK,
)
from fer_batch.outputs.table import MANIFEST, tables, to_pandas

log = logging.getLogger(__name__)

REPORT = "report.html"


PAGES_DIR = "report_pages"


PAGES_ABOVE = 36  # more videos than this: an index page plus one page per video


PAGE_NAME = re.compile(r"^\d{4}-.*\.html$")


def write_report(run_dir: str | os.PathLike[str], *, thumbnails: int = THUMBS_PER_TRACK,
                 pages_above: int = PAGES_ABOVE, min_quality: float = HEADLINE_MIN_QUALITY,
                 min_track_s: float = MIN_TRACK_S, progress: Progress | None = None) -> Path:  # fmt: skip
    """Write ``run_dir/report.html`` (and ``report_pages/`` for large runs); return the page's path. ``progress``
    is told the tables as they are done (its caller closes it).

    Tables are read one at a time, so a large run is reported in bounded memory. Raises ``FileNotFoundError``
    when the folder holds neither tables nor a manifest. ``min_quality`` and ``min_track_s``: the summary's
    headline rules (``fer_batch.outputs.summary``).
    """
    rules = {"min_quality": min_quality, "min_track_s": min_track_s}
    root = Path(path_arg("write_report", "run_dir", run_dir))
    int_arg("write_report", "thumbnails", thumbnails)
    int_arg("write_report", "pages_above", pages_above)
    paths = tables(root)
    manifest = read_manifest(root)
    if not paths and manifest is None:
        raise FileNotFoundError(f"{root}: no tables and no {MANIFEST} (not a fer-batch run folder)")
    split = len(paths) > pages_above
    entries: list[Entry] = []
    sections: list[str] = []
    settings: Counter[str] = Counter()
    written: set[str] = set()
    progress = progress or Silent()
    progress.start(len(paths))
    for k, path in enumerate(paths):
        if k:
            progress.advance()  # the table before this one is done
        meta = read_table_meta(path)
        if meta is None and is_foreign(path):  # someone else's Parquet file in the folder: named, not reported
            log.warning("%s: skipped, not a fer-batch table", path)
            continue
        try:
            df = to_pandas(pq.read_table(path))
        except (OSError, pa.ArrowException) as e:  # a damaged file: one line in the report, the others go on
            log.warning("%s: unreadable table (%s)", path, describe(e))
            entries.append(Entry(name=path.relative_to(root).as_posix(), status="failed",
                                 error=f"unreadable table: {describe(e)}"))  # fmt: skip
            continue
        settings[settings_key(meta)] += 1
        name = str(df["video"].iloc[0]) if len(df) else path.stem
        href = f"{PAGES_DIR}/{page_name(k, name)}" if split else f"#v{k}"
        page_dir = root / PAGES_DIR if split else root
        section, entry = video_section(df, meta, path, name, href, page_dir, thumbnails, rules)
        entries.append(entry)
        if split:
            back = f'<p><a href="{rel_href(root / REPORT, page_dir)}">&larr; the whole run</a></p>'
            page_dir.mkdir(exist_ok=True)
            write_atomic(root / href, page(f"{name} — fer-batch report", back + section))
            written.add(Path(href).name)
        else:
            sections.append(section)
    if paths:
        progress.advance()
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
        log.warning("%s: unreadable (%s); the report shows the tables only", path, describe(e))
        return None


def settings_key(meta: TableMeta | None) -> str:
    """What makes two tables comparable: version, models, provider and options (as one JSON string)."""
    if meta is None:
        keep: dict[str, Any] = dict.fromkeys(("version", "model", "detector", "provider", "options"))
    else:
        model = meta.model.as_dict() if meta.model is not None else None
        keep = {"version": meta.version, "provider": meta.provider, "options": meta.options,
                "model": {k: v for k, v in model.items() if k != "labels"} if model is not None else None,
                "detector": meta.detector.as_dict() if meta.detector is not None else None}  # fmt: skip
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


def is_foreign(path: Path) -> bool:
    """A readable Parquet file without our metadata and columns (a damaged table of ours is reported, not this)."""
    try:
        names = pq.read_schema(path).names
    except (OSError, pa.ArrowException):
        return False
    return not set(IDENTITY_COLUMNS) <= set(names)


def write_atomic(path: Path, text: str) -> None:
    """A page is never seen half-written, and an older report stays until the new one is whole. File names that
    are not UTF-8 (Linux allows them) are spelled out (``\\xNN``) rather than fail the page."""
    with atomic_path(path) as tmp:
        tmp.write_text(utf8(text), encoding="utf-8")
