"""Units of work of a folder run: which inputs, where each one's outputs go, and whether it is already done.

Why a module of its own: the folder runner, the segment planner and the cluster check all need ``Job`` and the
resume rule; keeping them below all three lets imports run one way (jobs → segments/cluster → runner).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fer_batch.atomic import TMP_MARK
from fer_batch.decode import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from fer_batch.options import Options, UsageError
from fer_batch.pipeline import VideoResult
from fer_batch.sink import read_table_meta

MANIFEST = "manifest.parquet"
RESERVED = {MANIFEST, "summary.parquet"}
MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go: everything a worker needs, picklable."""

    source: Path
    name: str  # path relative to its input root, as the table's ``video`` column shows it
    table: Path
    annotated: Path | None


def expand_inputs(paths: Iterable[str | os.PathLike[str]]) -> tuple[list[tuple[Path, Path]], list[VideoResult]]:
    """(file, root) pairs for every media file the arguments name, and failures for those that name nothing.

    Folders are searched recursively for known extensions (any case); globs are expanded; an explicit file is
    taken whatever its extension (the decoder decides whether it is media).
    """
    found: list[tuple[Path, Path]] = []
    missing: list[VideoResult] = []
    for raw in paths:
        arg = str(raw)
        matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))] if glob.has_magic(arg) else [Path(arg)]
        if not matches:
            missing.append(VideoResult(path=arg, status="failed", error="no file matches this pattern"))
        for p in matches:
            if p.is_dir():
                files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS)
                if not files:
                    missing.append(VideoResult(path=str(p), status="failed", error="folder holds no video or image"))
                found += [(f, p) for f in files]
            elif p.is_file():
                found.append((p, p.parent))
            elif p.exists():
                missing.append(VideoResult(path=str(p), status="failed", error="not a regular file"))
            else:
                missing.append(VideoResult(path=str(p), status="failed", error="no such file or directory"))
    seen: set[Path] = set()
    unique = []
    for f, root in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, root))
    return unique, missing


def plan_jobs(files: list[tuple[Path, Path]], out: Path, annotate: bool) -> list[Job]:
    """Output paths under ``out`` mirroring each file's path below its root; they can never leave ``out``."""
    out = out.resolve()
    jobs, taken = [], set()
    for f, root in files:
        rel = f.relative_to(root) if f.is_relative_to(root) else Path(f.name)
        rel = Path(*[part for part in rel.parts if part not in ("..", ".", "")])  # belt and braces
        table = out / rel.with_suffix(".parquet")
        if table in taken or table.name in RESERVED:  # a.mp4 and a.mov in one folder: keep both tables
            table = out / rel.with_name(rel.name + ".parquet")
        taken.add(table)
        if not table.resolve().is_relative_to(out):
            raise UsageError(f"{f}: output {table} would leave {out}")
        annotated = table.with_name(table.name[: -len(".parquet")] + ".annotated.mp4") if annotate else None
        jobs.append(Job(source=f, name=rel.as_posix(), table=table, annotated=annotated))
    return jobs


def is_complete(job: Job, options: Options) -> bool:
    """True when the job's table exists, came from the same source (size, mtime) and the same options."""
    meta = read_table_meta(job.table)
    if meta is None or meta.status not in ("ok", "partial"):
        return False
    st = job.source.stat()
    same_source = meta.source.get("size") == st.st_size and meta.source.get("mtime") == st.st_mtime
    try:
        same_options = Options.from_stored(meta.options).result_key() == options.result_key()
    except (TypeError, ValueError, AttributeError):  # written by another version: redo it
        same_options = False
    if job.annotated is not None and not job.annotated.exists():
        return False
    return same_source and same_options


def tables(out: str | os.PathLike[str]) -> list[Path]:
    """The complete per-video tables of a run folder (temporary files and run-level tables excluded)."""
    root = Path(out)
    return sorted(p for p in root.rglob("*.parquet") if p.name not in RESERVED and TMP_MARK not in p.name)
