"""Units of work of a folder run: which inputs, where each one's outputs go, and whether it is already done.

Why a module of its own: the folder runner, the segment planner and the cluster check all need ``Job`` and the
resume rule; keeping them below all three lets imports run one way (jobs → segments/cluster → runner).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from fer_batch._text import one_line, utf8
from fer_batch._version import __version__
from fer_batch.errors import UsageError
from fer_batch.media.probe import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS
from fer_batch.options import AUTO, Options, Scale
from fer_batch.outputs.metadata import FileSource, TableMeta, annotated_path, read_table_meta
from fer_batch.outputs.table import RESERVED, has_signal_columns
from fer_batch.runs.result import InputResult
from fer_batch.types import Status

if TYPE_CHECKING:
    from fer_batch.analysis.classify import Fingerprint

log = logging.getLogger(__name__)

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
) -> tuple[list[tuple[Path, Path]], list[InputResult]]:
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
    missing: list[InputResult] = []
    resolve = Resolver()
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
            if out is not None and is_within(p, out, resolve):
                if pattern:
                    continue
                raise UsageError(f"{p} is inside --out {out}: outputs are never read as inputs, choose another --out")
            found_here, failure = _inputs_of(p, out, resolve)
            found += found_here
            if failure is not None:
                missing.append(failure)
    seen: set[Path] = set()
    unique = []
    for f, root in found:
        key = resolve(f)
        if key not in seen:
            seen.add(key)
            unique.append((f, root))
    return unique, missing


def _inputs_of(p: Path, out: Path | None,
               resolve: Resolver) -> tuple[list[tuple[Path, Path]], InputResult | None]:  # fmt: skip
    """The (file, root) pairs one existing argument names, or the reason it names none."""
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_EXTENSIONS
                       and not (out is not None and is_within(f, out, resolve)))  # fmt: skip
        if not files:
            return [], InputResult.failed(p, "folder holds no video or image")
        return [(f, p) for f in files], None
    if p.is_file():
        return [(p, p.parent)], None
    if p.exists():
        return [], InputResult.failed(p, "not a regular file")
    return [], InputResult.failed(p, "no such file or directory")


def is_within(path: Path, folder: Path, resolve: Callable[[Path], Path] = Path.resolve) -> bool:
    """``path`` is ``folder`` or lies under it, symbolic links resolved."""
    p, f = resolve(Path(path)), resolve(Path(folder))
    return p == f or f in p.parents


class Resolver:
    """``Path.resolve`` for the thousands of files of a few folders: each folder is resolved once, and a file that
    is not a symbolic link itself resolves to its resolved folder and its name (what ``realpath`` gives, without
    its ``lstat`` of every component for every file: ~0.2 s a thousand photos).
    """

    def __init__(self) -> None:
        self._folders: dict[Path, Path] = {}

    def __call__(self, path: Path) -> Path:
        if path.name in ("", ".", "..") or path.is_symlink():
            return path.resolve()
        folder = self._folders.get(path.parent)
        if folder is None:
            folder = self._folders[path.parent] = path.parent.resolve()
        return folder / path.name


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
    roots (``root_labels``). Outputs are unique per input, never leave ``out`` and never land on an input.

    An input whose table an earlier run wrote keeps that table's name (``TableNames``), so adding or removing other
    inputs never renames it and never leaves two tables for one input. Linear in the number of inputs.
    """
    out = out.resolve()
    resolve = Resolver()
    labels = root_labels(list(dict.fromkeys(root for _, root in files)))
    inputs = {resolve(f) for f, _ in files}
    rels = [(f, _relative(f, root, labels[root])) for f, root in files]
    names = TableNames(out)
    earlier = {f: t for f, rel in rels if (t := names.earlier(f, rel)) is not None}  # first: earlier runs' names
    jobs = []
    for f, rel in rels:
        table = earlier.get(f) or names.new(rel)
        if not resolve(table).is_relative_to(out):
            raise UsageError(f"{f}: output {table} would leave {out}")
        annotated = annotated_path(table) if annotate else None
        for target in (table, annotated):
            if target is not None and resolve(target) in inputs:
                raise UsageError(f"--out {out}: the output {target} would overwrite an input; choose another --out")
        jobs.append(Job(source=f, name=rel.as_posix(), table=table, annotated=annotated, annotate_scale=annotate_scale))
    return jobs


def _relative(f: Path, root: Path, label: Path) -> Path:
    """The input's path below ``--out``: below its root, under the root's label; never climbing out."""
    rel = f.relative_to(root) if f.is_relative_to(root) else Path(f.name)
    rel = label / Path(*[part for part in rel.parts if part not in ("..", ".", "")])  # belt and braces
    return Path(utf8(rel.as_posix()))  # outputs of a name that is not UTF-8 get its bytes spelled out (\xNN)


class TableNames:
    """Table paths for one run: ``a.parquet``, else ``a.mp4.parquet`` (a.mp4 beside a.mov), else ``a.mp4~2.parquet``
    and on; a name an earlier run gave an input stays that input's.

    Why: the first free name depends on which other inputs exist, so without the earlier names a second run
    without ``a.mov`` would give ``a.mp4`` a second table under ``a.parquet``, and ``load`` would count it twice.
    A table is the input's when it lies where the input's names go and its metadata names a file of the input's
    name (an input folder that moved keeps its tables). Each folder is listed once, each counter only rises: planning
    stays linear however many inputs share a name.
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.taken: set[Path] = set()
        self._listing: dict[Path, set[str]] = {}
        self._next: dict[Path, int] = {}

    def _on_disk(self, path: Path) -> bool:
        folder = path.parent
        if folder not in self._listing:
            try:
                self._listing[folder] = set(os.listdir(folder))
            except OSError:
                self._listing[folder] = set()
        return path.name in self._listing[folder]

    def _candidates(self, rel: Path) -> list[Path]:
        return [self.out / rel.with_suffix(".parquet"), self.out / rel.with_name(rel.name + ".parquet")]

    def earlier(self, source: Path, rel: Path) -> Path | None:
        """The table an earlier run wrote for this input, claimed for it; None where there is none."""
        base = self.out / rel
        self._on_disk(base)  # lists the folder
        numbered = sorted(n for n in self._listing[base.parent]
                          if n.startswith(f"{rel.name}~") and n.endswith(".parquet"))  # fmt: skip
        for table in self._candidates(rel) + [base.parent / n for n in numbered]:
            if table in self.taken or table.name in RESERVED or not self._on_disk(table):
                continue
            meta = table_meta(table)
            recorded = meta.source.path if meta is not None and isinstance(meta.source, FileSource) else ""
            if utf8(Path(str(recorded)).name) == rel.name:
                self.taken.add(table)
                return table
        return None

    def new(self, rel: Path) -> Path:
        """The first name of ``rel`` that no input of this run has and no file in ``out`` holds."""
        for table in self._candidates(rel):
            if self._free(table):
                return self._claim(table)
        base = self.out / rel
        k = self._next.get(base, 2)
        while not self._free(table := base.with_name(f"{rel.name}~{k}.parquet")):
            k += 1
        self._next[base] = k + 1
        return self._claim(table)

    def _free(self, table: Path) -> bool:
        return table not in self.taken and table.name not in RESERVED and not self._on_disk(table)

    def _claim(self, table: Path) -> Path:
        self.taken.add(table)
        return table


def table_meta(path: Path) -> TableMeta | None:
    """``read_table_meta``, read once per version of the file: planning and the resume check both need a table's
    metadata, and a footer read costs milliseconds (seconds over thousands of tables on every resume)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return _table_meta(path, st.st_ino, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=16384)
def _table_meta(path: Path, ino: int, size: int, mtime_ns: int) -> TableMeta | None:
    return read_table_meta(path)


@dataclass(frozen=True)
class Provenance:
    """What a table is tied to besides its options: the fer-batch version and, by content, the models that made it.

    Why content: a custom model replaced at the same path, a spec with its labels reordered or another detector file
    give other numbers under the same names; paths alone would let ``--resume`` mix old and new results.
    """

    version: str
    model: Fingerprint
    detector_sha256: str

    @classmethod
    def of(cls, options: Options) -> Provenance:
        """What a run with ``options`` would record now (files hashed, no model session made)."""
        from fer_batch.analysis.classify import fingerprint, member_specs
        from fer_batch.analysis.detect import detector_sha256

        return cls(version=__version__, model=fingerprint(member_specs(options)),
                   detector_sha256=detector_sha256(options))  # fmt: skip

    def mismatch(self, meta: TableMeta) -> str | None:
        """Why a table was not made by this, or None where it was."""
        if meta.version != self.version:
            return f"written by fer-batch {meta.version}, this is {self.version}"
        recorded, now = meta.model, self.model
        if recorded is None or recorded.sha256 != now.sha256:
            return "made with another model file"
        if recorded.spec_sha256 != now.spec_sha256:
            return "made with another model spec"
        if tuple(recorded.labels) != now.labels:
            return "made with other labels"
        if meta.detector is None or meta.detector.sha256 != self.detector_sha256:
            return "made with another detector file"
        return None


def redo_reason(job: Job, options: Options, provenance: Provenance | None = None) -> str | None:
    """None when the job's table can be kept (``--resume``), else why it is made again ("" where none exists)."""
    meta = table_meta(job.table)
    if meta is None or meta.status not in (Status.OK, Status.PARTIAL):
        return ""
    try:
        st = job.source.stat()
    except OSError:
        return ""  # the input itself reports the problem
    if not isinstance(meta.source, FileSource) or (meta.source.size, meta.source.mtime) != (st.st_size, st.st_mtime):
        return "the input changed since its table was written"
    try:
        same_options = Options.from_stored(meta.options).result_key() == options.result_key()
    except (TypeError, ValueError, AttributeError):  # options another version wrote
        same_options = False
    if not same_options:
        return "made with other options"
    why = (provenance or Provenance.of(options)).mismatch(meta)
    if why is not None:
        return why
    if not has_signal_columns(job.table):
        return "written before the trust columns (quality, pose, landmarks, sharpness)"
    if job.annotated is not None:
        # a video made with other options, or someone else's file under that name, must not pass for this table's
        if meta.annotated is None or not meta.annotated.is_at(job.annotated):
            return "its annotated video is missing or was not written with it"
        if meta.annotated.scale != job.annotate_scale:
            return f"its annotated video was made at another --annotate-scale ({meta.annotated.scale})"
    return None


def is_complete(job: Job, options: Options, provenance: Provenance | None = None) -> bool:
    """True when the job's table exists and was made from this source, with these options, by these models."""
    return redo_reason(job, options, provenance) is None


PROVENANCE_WORDS = ("written by", "made with another", "made with other labels")  # ``Provenance.mismatch``


def to_do(planned: list[Job], options: Options, resume: bool) -> list[Job]:
    """The jobs whose table is not kept; one line for each existing table made again, saying why."""
    if not resume:
        return list(planned)
    provenance = Provenance.of(options)
    todo = []
    for job in planned:
        why = redo_reason(job, options, provenance)
        if why:  # another version or other models: said even under --quiet, results would otherwise mix
            level = logging.WARNING if why.startswith(PROVENANCE_WORDS) else logging.INFO
            log.log(level, "%s: analysed again (%s)", utf8(str(job.source)), why)
        if why is not None:
            todo.append(job)
    return todo
