"""Units of work of a folder run: which inputs, where each one's outputs go, and whether it is already done.

Why a module of its own: the folder runner, the segment planner and the cluster check all need ``Job`` and the
resume rule; keeping them below all three lets imports run one way (jobs → segments/cluster → runner).
"""

from __future__ import annotations

import glob
import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from fer_batch._text import one_line, utf8
from fer_batch.errors import UsageError
from fer_batch.media.probe import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from fer_batch.options import AUTO, Options, Scale
from fer_batch.outputs.table import RESERVED, has_signal_columns, read_table_meta
from fer_batch.runs.one_input import VideoResult

MEDIA_EXTENSIONS = IMAGE_EXTENSIONS | VIDEO_EXTENSIONS


@dataclass(frozen=True)
class Job:
    """One input and where its outputs go: everything a worker needs, picklable."""

    source: Path
    name: str  # path relative to its input root, as the table's ``video`` column shows it
    table: Path
    annotated: Path | None
    annotate_scale: Scale = AUTO  # the annotated video's size relative to the displayed frame


def expand_inputs(
    paths: Iterable[str | os.PathLike[str]], out: Path | None = None
) -> tuple[list[tuple[Path, Path]], list[VideoResult]]:
    """(file, root) pairs for every media file the arguments name, and failures for those that name no media.

    An argument that names nothing at all (no such path, a pattern that matches nothing, an empty string) is a
    ``UsageError``: a typing mistake, answered before any work, not a damaged input.

    An argument that exists is that file or folder, whatever characters its name holds (``take[1].mp4``); only an
    argument that does not exist is expanded as a pattern. Folders are searched recursively for known extensions
    (any case); an explicit file is taken whatever its extension (the decoder decides whether it is media).
    Nothing under ``out`` is ever an input: a folder walk skips it, a pattern's matches there are dropped, and an
    argument inside (or equal to) it is a usage error, so a rerun never analyses its own outputs.
    """
    found: list[tuple[Path, Path]] = []
    missing: list[VideoResult] = []
    for raw in paths:
        arg = str(raw)
        if not arg.strip():  # Path("") would be the current folder
            raise UsageError(f"{arg!r}: an empty path names no input")
        literal = Path(arg)
        pattern = glob.has_magic(arg) and not (literal.exists() or literal.is_symlink())
        matches = [Path(m) for m in sorted(glob.glob(arg, recursive=True))] if pattern else [literal]
        if not matches:
            raise UsageError(f"{one_line(arg)}: no such file or directory, and no file matches it as a pattern")
        if not pattern and not (literal.exists() or literal.is_symlink()):
            raise UsageError(f"{one_line(arg)}: no such file or directory")
        for p in matches:
            if out is not None and is_within(p, out):
                if pattern:
                    continue
                raise UsageError(f"{p} is inside --out {out}: outputs are never read as inputs, choose another --out")
            found_here, failure = _inputs_of(p, out)
            found += found_here
            if failure is not None:
                missing.append(failure)
    seen: set[Path] = set()
    unique = []
    for f, root in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append((f, root))
    return unique, missing


def _inputs_of(p: Path, out: Path | None) -> tuple[list[tuple[Path, Path]], VideoResult | None]:
    """The (file, root) pairs one existing argument names, or the reason it names none."""
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS
                       and not (out is not None and is_within(f, out)))  # fmt: skip
        if not files:
            return [], VideoResult(path=str(p), status="failed", error="folder holds no video or image")
        return [(f, p) for f in files], None
    if p.is_file():
        return [(p, p.parent)], None
    if p.exists():
        return [], VideoResult(path=str(p), status="failed", error="not a regular file")
    return [], VideoResult(path=str(p), status="failed", error="no such file or directory")


def is_within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies under it, symbolic links resolved."""
    p, f = Path(path).resolve(), Path(folder).resolve()
    return p == f or f in p.parents


def root_labels(roots: list[Path]) -> dict[Path, Path]:
    """Where each input root's outputs go below ``--out``: nowhere else for one root; for several, the root's
    path relative to the folder they all lie in (``r1``, ``r2``; ``a/data``, ``b/data``), so the same relative
    name under two roots never gives the same table."""
    resolved = {r: r.resolve() for r in roots}
    if len(set(resolved.values())) <= 1:
        return dict.fromkeys(roots, Path())
    try:
        common = Path(os.path.commonpath([str(v) for v in resolved.values()]))
    except ValueError:  # different drives
        return {r: Path(f"root{k}") for k, r in enumerate(roots)}
    return {r: resolved[r].relative_to(common) for r in roots}


def plan_jobs(files: list[tuple[Path, Path]], out: Path, annotate: bool, annotate_scale: Scale = AUTO) -> list[Job]:
    """Output paths under ``out``: each file's path below its root, under the root's label when there are several
    roots (``root_labels``). Outputs are unique per input, never leave ``out`` and never land on an input."""
    out = out.resolve()
    labels = root_labels(list(dict.fromkeys(root for _, root in files)))
    inputs = {f.resolve() for f, _ in files}
    jobs, taken = [], set()
    for f, root in files:
        rel = f.relative_to(root) if f.is_relative_to(root) else Path(f.name)
        rel = labels[root] / Path(*[part for part in rel.parts if part not in ("..", ".", "")])  # belt and braces
        rel = Path(utf8(rel.as_posix()))  # outputs of a name that is not UTF-8 get its bytes spelled out (\xNN)
        table = _unique(out, rel, taken)
        if not table.resolve().is_relative_to(out):
            raise UsageError(f"{f}: output {table} would leave {out}")
        annotated = table.with_name(table.name[: -len(".parquet")] + ".annotated.mp4") if annotate else None
        for target in (table, annotated):
            if target is not None and target.resolve() in inputs:
                raise UsageError(f"--out {out}: the output {target} would overwrite an input; choose another --out")
        jobs.append(Job(source=f, name=rel.as_posix(), table=table, annotated=annotated, annotate_scale=annotate_scale))
    return jobs


def _unique(out: Path, rel: Path, taken: set[Path]) -> Path:
    """``rel`` as a table path not taken yet: ``a.parquet``, else ``a.mp4.parquet`` (a.mp4 beside a.mov), else
    ``a.mp4~2.parquet`` and on."""
    # made one at a time: a list of all 10 000 candidates cost 10 000 paths per input (minutes for a folder of
    # a few thousand photos) where the first candidate is almost always free
    candidates = itertools.chain(
        (out / rel.with_suffix(".parquet"), out / rel.with_name(rel.name + ".parquet")),
        (out / rel.with_name(f"{rel.name}~{k}.parquet") for k in range(2, 10_000)),
    )
    for table in candidates:
        if table not in taken and table.name not in RESERVED:
            taken.add(table)
            return table
    raise UsageError(f"{rel}: too many inputs with this name")


def is_complete(job: Job, options: Options) -> bool:
    """True when the job's table exists, came from the same source (size, mtime) and the same options, and has the
    columns this version writes."""
    meta = read_table_meta(job.table)
    if meta is None or meta.status not in ("ok", "partial"):
        return False
    st = job.source.stat()
    same_source = meta.source.get("size") == st.st_size and meta.source.get("mtime") == st.st_mtime
    try:
        same_options = Options.from_stored(meta.options).result_key() == options.result_key()
    except (TypeError, ValueError, AttributeError):  # written by another version: redo it
        same_options = False
    if job.annotated is not None and not _is_its_video(job.annotated, meta.annotated):
        return False
    return same_source and same_options and has_signal_columns(job.table)  # no quality column: an older version


def _is_its_video(path: Path, recorded: dict | None) -> bool:
    """The annotated video on disk is the one written with the table (same size and mtime as recorded there).

    Why: a video made with other options, or someone else's file under that name, must not pass for this table's.
    """
    try:
        st = path.stat()
    except OSError:
        return False
    return recorded is not None and (recorded.get("size"), recorded.get("mtime_ns")) == (st.st_size, st.st_mtime_ns)

