"""One input's outcome, built once: the row it gets in ``manifest.parquet``, and the manifest itself.

Why one type: the one-input driver, the folder runner, the segment join, the workers and the API all hand the same
frozen ``InputResult`` on; the manifest's columns are derived from its fields, so a new field cannot be forgotten
in one of them. While an input runs, a mutable ``Tally`` counts; it becomes an ``InputResult`` once, at the end.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch._atomic import atomic_path
from fer_batch._text import utf8
from fer_batch.errors import describe
from fer_batch.outputs.table import MANIFEST
from fer_batch.types import Status

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputResult:
    """One input's outcome: its status, the reason where it is not ``ok``, what was counted, where its table is."""

    path: str
    status: Status
    error: str | None = None
    frames_decoded: int = 0
    frames_analysed: int = 0
    faces: int = 0
    duration_s: float | None = None
    wall_s: float = 0.0
    table: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "status", Status(self.status))  # "ok" from older callers or a stored row

    @classmethod
    def failed(cls, path: str | Path, error: str, **counts: Any) -> InputResult:
        return cls(path=str(path), status=Status.FAILED, error=error, **counts)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> InputResult:
        """A manifest row read back (columns this version does not know are left out)."""
        return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in row})

    def replace(self, **changes: Any) -> InputResult:
        return dataclasses.replace(self, **changes)

    def row(self) -> dict[str, Any]:
        """The manifest row: plain values."""
        return {f.name: (v.value if isinstance(v := getattr(self, f.name), Status) else v) for f in fields(self)}


@dataclass
class Tally:
    """What an input's run counts as it goes (threads add faces, a broken stream sets ``partial``)."""

    status: Status = Status.OK
    error: str | None = None
    frames_decoded: int = 0
    frames_analysed: int = 0
    faces: int = 0
    duration_s: float | None = None

    def set(self, status: Status, error: str | None) -> None:
        self.status, self.error = status, error

    def result(self, path: str | Path, wall_s: float, table: str | Path | None = None) -> InputResult:
        """The outcome, once: a failed input has no table."""
        keep = self.status is not Status.FAILED and table is not None
        return InputResult(path=str(path), status=self.status, error=self.error, frames_decoded=self.frames_decoded,
                           frames_analysed=self.frames_analysed, faces=self.faces, duration_s=self.duration_s,
                           wall_s=wall_s, table=str(table) if keep else None)  # fmt: skip


def _arrow_type(hint: Any) -> pa.DataType:
    """The Parquet type of an ``InputResult`` field, from its annotation (``int``, ``float | None``, ``Status``)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)] if isinstance(hint, types.UnionType) else [hint]
    base = args[0]
    return {int: pa.int64(), float: pa.float64(), str: pa.string(), Status: pa.string()}[base]


MANIFEST_SCHEMA = pa.schema([(name, _arrow_type(hint)) for name, hint in typing.get_type_hints(InputResult).items()])


class ManifestWriter:
    """Rewrites ``manifest.parquet`` atomically as results arrive, so a crash leaves the rows so far.

    Rows of earlier runs into the same folder are kept (their tables are there too); this run's rows replace
    those of the same input. A write that fails (a full disk) is retried with the next row and at the end.

    Written at most once a second while results arrive (and always at the end): a folder of thousands of photos
    finishes inputs faster than a whole manifest can be rewritten and synced for each. The tables, not the
    manifest, are what ``--resume`` trusts, so a crash loses at most a second of manifest rows and no work.
    """

    INTERVAL_S = 1.0

    def __init__(self, out: Path, clock: Callable[[], float] = time.monotonic) -> None:
        self.path, self.clock = out / MANIFEST, clock
        self.rows: dict[str, InputResult] = self._earlier()
        self.error: OSError | None = None
        self._written = float("-inf")

    def _earlier(self) -> dict[str, InputResult]:
        try:
            table = pq.read_table(self.path)
        except FileNotFoundError:
            return {}
        except (OSError, pa.ArrowException) as e:
            log.warning("%s: unreadable (%s); a new manifest replaces it", self.path, describe(e)[:120])
            return {}
        names = [n for n in MANIFEST_SCHEMA.names if n in table.column_names]
        if "path" not in names or "status" not in names:
            return {}
        return {row["path"]: InputResult.from_row(row) for row in table.select(names).to_pylist()}

    def add(self, result: InputResult) -> None:
        self.rows[result.path] = result
        if self.clock() - self._written >= self.INTERVAL_S:
            self.write()

    def write(self) -> None:
        rows = [r.row() for r in self.rows.values()]
        cols = {name: [utf8(row[name]) if isinstance(row[name], str) else row[name] for row in rows]
                for name in MANIFEST_SCHEMA.names}  # paths and errors naming them as valid UTF-8
        try:
            with atomic_path(self.path) as tmp:
                pq.write_table(pa.table(cols, schema=MANIFEST_SCHEMA), tmp)
        except OSError as e:
            if self.error is None:
                log.warning("%s: not written (%s); trying again with the next result", self.path, describe(e))
            self.error = e
        else:
            self.error = None
            self._written = self.clock()
