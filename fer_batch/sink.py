"""Per-frame tables: rows built vectorised per window, flushed to Parquet in row groups, renamed when complete.

Why a temporary name: a run killed at any moment (kill -9) must never leave a ``.parquet`` that looks complete
but is not. The file only gets its final name after the footer, with the metadata and status, is written.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch.types import Faces

META_KEY = b"fer_batch"
ROW_GROUP_ROWS = 8192
TMP_MARK = ".tmp-"


def schema(labels: list[str], smooth: bool = False) -> pa.Schema:
    """The table's columns; a custom model's labels replace the seven FER2013 ones."""
    fields = [
        pa.field("video", pa.string()),
        pa.field("frame", pa.int64(), nullable=False),
        pa.field("time_s", pa.float64(), nullable=False),
        pa.field("face", pa.int32()),
        pa.field("track_id", pa.int64()),
        pa.field("x", pa.float32()),
        pa.field("y", pa.float32()),
        pa.field("w", pa.float32()),
        pa.field("h", pa.float32()),
        pa.field("det_score", pa.float32()),
    ]
    fields += [pa.field(label, pa.float32()) for label in labels]
    fields.append(pa.field("emotion", pa.dictionary(pa.int32(), pa.string())))
    if smooth:
        fields += [pa.field(f"{label}_smooth", pa.float32()) for label in labels]
    return pa.schema(fields)


def window_table(
    video: str,
    frame_index: np.ndarray,
    time_s: np.ndarray,
    faces: Faces,
    labels: list[str],
    smoothed: np.ndarray | None = None,
) -> pa.Table:
    """Rows for the analysed frames of one window: one per face, or one null-face row for a frame without any.

    Faces must be ordered by frame and, within a frame, largest first (the detector's ``finish`` does that).
    """
    frame_index = np.asarray(frame_index, dtype=np.int64)
    pos = np.searchsorted(frame_index, faces.frame)
    counts = np.bincount(pos, minlength=len(frame_index)) if len(faces) else np.zeros(len(frame_index), int)
    rows_per_frame = np.maximum(counts, 1)
    n = int(rows_per_frame.sum())
    row_frame_pos = np.repeat(np.arange(len(frame_index)), rows_per_frame)
    # the row that each face lands on: frames are laid out in order, faces in order within their frame
    first_row = np.concatenate([[0], np.cumsum(rows_per_frame)[:-1]])
    face_rank = np.arange(len(faces)) - np.concatenate([[0], np.cumsum(counts)[:-1]])[pos] if len(faces) else pos
    face_rows = first_row[pos] + face_rank
    has_face = np.zeros(n, dtype=bool)
    has_face[face_rows] = True

    def scatter(values: np.ndarray, dtype: Any, null: np.ndarray | None = None) -> pa.Array:
        out = np.zeros(n, dtype=dtype)
        out[face_rows] = values
        mask = ~has_face
        if null is not None:
            mask[face_rows] |= null
        return pa.array(out, mask=mask)

    b = faces.boxes
    track_ids = np.full(n, -1, dtype=np.int64)  # -1: no face on this row, or no track assigned
    track_ids[face_rows] = faces.track_id
    cols: dict[str, pa.Array] = {
        "video": pa.array(np.full(n, video, dtype=object), pa.string()),
        "frame": pa.array(frame_index[row_frame_pos]),
        "time_s": pa.array(np.asarray(time_s, dtype=np.float64)[row_frame_pos]),
        "face": scatter(face_rank, np.int32),
        "track_id": pa.array(track_ids, mask=track_ids < 0),
        "x": scatter(b[:, 0], np.float32),
        "y": scatter(b[:, 1], np.float32),
        "w": scatter(b[:, 2] - b[:, 0], np.float32),
        "h": scatter(b[:, 3] - b[:, 1], np.float32),
        "det_score": scatter(faces.scores, np.float32, null=np.isnan(faces.scores)),  # no score: --detector none
    }
    probs = faces.probs if faces.probs is not None else np.zeros((len(faces), len(labels)), np.float32)
    for k, label in enumerate(labels):
        cols[label] = scatter(probs[:, k], np.float32)
    codes = scatter(probs.argmax(axis=1) if len(faces) else np.zeros(0, int), np.int32)
    cols["emotion"] = pa.DictionaryArray.from_arrays(codes, pa.array(labels, pa.string()))
    if smoothed is not None:
        for k, label in enumerate(labels):
            cols[f"{label}_smooth"] = scatter(smoothed[:, k], np.float32)
    return pa.table(cols, schema=schema(labels, smoothed is not None))


class ParquetSink:
    """Context manager writing one video's table under a temporary name, renamed on a clean exit.

    On an exception the temporary file is removed and nothing appears under the final name.
    """

    def __init__(self, path: Path, labels: list[str], smooth: bool = False) -> None:
        self.path = Path(path)
        self.schema = schema(labels, smooth)
        self.tmp = self.path.with_name(f"{self.path.name}{TMP_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}")
        self.metadata: dict[str, Any] = {}
        self.rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetSink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
        return self

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
        self.rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self.flush()

    def flush(self) -> None:
        if self._pending and self._writer is not None:
            self._writer.write_table(pa.concat_tables(self._pending), row_group_size=ROW_GROUP_ROWS * 4)
        self._pending, self._pending_rows = [], 0

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._writer is None:
            return
        if exc_type is None:
            self.flush()
        writer, self._writer = self._writer, None
        if exc_type is not None:
            writer.close()
            self.tmp.unlink(missing_ok=True)
            return
        writer.add_key_value_metadata({META_KEY: json.dumps(self.metadata, default=str).encode()})
        writer.close()
        with open(self.tmp, "rb+") as f:  # durable before it gets its final name
            os.fsync(f.fileno())
        os.replace(self.tmp, self.path)


class MemorySink:
    """Collects the same tables in memory, for ``analyze_video`` without an output file."""

    def __init__(self, labels: list[str], smooth: bool = False) -> None:
        self.schema = schema(labels, smooth)
        self.metadata: dict[str, Any] = {}
        self.tables: list[pa.Table] = []
        self.rows = 0

    def __enter__(self) -> MemorySink:
        return self

    def write(self, table: pa.Table) -> None:
        self.tables.append(table)
        self.rows += table.num_rows

    def __exit__(self, *exc: object) -> None:
        return None

    def to_pandas(self) -> pd.DataFrame:
        table = pa.concat_tables(self.tables) if self.tables else self.schema.empty_table()
        return to_pandas(table)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Nullable integer dtypes, so ``face`` and ``track_id`` stay integers; float nulls become NaN."""
    return table.to_pandas(types_mapper=_nullable_types)


def _nullable_types(t: pa.DataType) -> Any:
    mapping = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}
    return mapping.get(t)


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The ``fer_batch`` metadata of a table, or None if it is not a complete table of ours."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    raw = meta.get(META_KEY)
    return json.loads(raw) if raw else None
