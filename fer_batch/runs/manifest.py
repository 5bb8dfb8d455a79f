"""``manifest.parquet``: one row per input of every run into a folder, rewritten atomically as results arrive.

Why a module of its own: the folder runner only decides what runs; what a manifest row holds and how it is kept
safe (atomic rewrites, earlier runs' rows kept, at most one rewrite a second) is this module's.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch._atomic import atomic_path
from fer_batch._text import utf8
from fer_batch.errors import describe
from fer_batch.outputs.table import MANIFEST
from fer_batch.runs.one_input import VideoResult

log = logging.getLogger(__name__)

MANIFEST_SCHEMA = pa.schema(
    [
        ("path", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("frames_decoded", pa.int64()),
        ("frames_analysed", pa.int64()),
        ("faces", pa.int64()),
        ("duration_s", pa.float64()),
        ("wall_s", pa.float64()),
        ("table", pa.string()),
    ]
)


class ManifestWriter:
    """Rewrites ``manifest.parquet`` atomically as results arrive, so a crash leaves the rows so far.

    Rows of earlier runs into the same folder are kept (their tables are there too); this run's rows replace
    those of the same input. A write that fails (a full disk) is retried with the next row and at the end.

    Written at most once a second while results arrive (and always at the end): a folder of thousands of photos
    finishes inputs faster than a whole manifest can be rewritten and synced for each. The tables, not the
    manifest, are what ``--resume`` trusts, so a crash loses at most a second of manifest rows and no work.
    """

    INTERVAL_S = 1.0

    def __init__(self, out: Path) -> None:
        self.path = out / MANIFEST
        self.rows: dict[str, VideoResult] = self._earlier()
        self.error: OSError | None = None
        self._written = float("-inf")

    def _earlier(self) -> dict[str, VideoResult]:
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
        return {row["path"]: VideoResult(**row) for row in table.select(names).to_pylist()}

    def add(self, result: VideoResult) -> None:
        self.rows[result.path] = result
        if time.monotonic() - self._written >= self.INTERVAL_S:
            self.write()

    def write(self) -> None:
        # getattr, not asdict: asdict deep-copies every row for each column, seconds over thousands of photos
        cols = {name: [_stored(getattr(r, name)) for r in self.rows.values()] for name in MANIFEST_SCHEMA.names}
        try:
            with atomic_path(self.path) as tmp:
                pq.write_table(pa.table(cols, schema=MANIFEST_SCHEMA), tmp)
        except OSError as e:
            if self.error is None:
                log.warning("%s: not written (%s); trying again with the next result", self.path, describe(e))
            self.error = e
        else:
            self.error = None
            self._written = time.monotonic()


def _stored(value: Any) -> Any:
    """A manifest cell: strings (paths from the file system, errors naming them) as valid UTF-8."""
    return utf8(value) if isinstance(value, str) else value
