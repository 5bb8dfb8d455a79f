"""Per-frame tables: rows built vectorised per window, flushed to Parquet in row groups, renamed when complete.

Why a temporary name (``atomic.AtomicPath``): a run killed at any moment (kill -9) must never leave a
``.parquet`` that looks complete but is not. The file only gets its final name after the footer, with the
metadata and status, is written.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch._atomic import AtomicPath
from fer_batch.columns import LANDMARK_COLUMNS, POSE_COLUMNS, SIGNAL_COLUMNS
from fer_batch.outputs.metadata import META_KEY, TableMeta
from fer_batch.types import Faces

if TYPE_CHECKING:  # pandas only where a table is turned into a DataFrame: importing it costs 0.3 s a process
    import pandas as pd


MANIFEST = "manifest.parquet"  # a run folder: one table per input, this manifest, and the summary
RESERVED = {MANIFEST, "summary.parquet"}
ROW_GROUP_ROWS = 8192


def schema(labels: list[str], smooth: bool = False) -> pa.Schema:
    """The table's columns; a custom model's labels replace the seven FER2013 ones."""
    return _schema(tuple(labels), smooth)


@functools.lru_cache(maxsize=16)
def _schema(labels: tuple[str, ...], smooth: bool) -> pa.Schema:
    """``schema``, built once per label set: a folder of photos writes a table per photo."""
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
    fields += [pa.field(name, pa.float32()) for name in SIGNAL_COLUMNS]
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
    Every float column is scattered to its rows in one matrix operation: per column, the fixed cost of numpy and
    pyarrow calls dominated a photo's one-row table.
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
    no_face = np.ones(n, dtype=bool)
    no_face[face_rows] = False

    names, values, nan_is_null = _float_columns(faces, labels, smoothed)
    out = np.zeros((len(names), n), dtype=np.float32)  # one row per column: each column's values contiguous
    out[:, face_rows] = values
    null = np.repeat(no_face[None, :], len(names), axis=0)
    null[np.ix_(nan_is_null, face_rows)] |= np.isnan(values[nan_is_null])
    floats = {name: pa.array(out[k], mask=null[k]) for k, name in enumerate(names)}

    track_ids = np.full(n, -1, dtype=np.int64)  # -1: no face on this row, or no track assigned
    track_ids[face_rows] = faces.track_id
    ranks = np.zeros(n, dtype=np.int32)
    ranks[face_rows] = face_rank
    codes = np.zeros(n, dtype=np.int32)
    if faces.probs is not None and len(faces):
        codes[face_rows] = faces.probs.argmax(axis=1)
    cols: dict[str, pa.Array] = {
        "video": pa.array(np.full(n, video, dtype=object), pa.string()),
        "frame": pa.array(frame_index[row_frame_pos]),
        "time_s": pa.array(np.asarray(time_s, dtype=np.float64)[row_frame_pos]),
        "face": pa.array(ranks, mask=no_face),
        "track_id": pa.array(track_ids, mask=track_ids < 0),
        "emotion": pa.DictionaryArray.from_arrays(pa.array(codes, mask=no_face), pa.array(labels, pa.string())),
        **floats,
    }
    sch = schema(labels, smoothed is not None)
    return pa.Table.from_arrays([cols[name] for name in sch.names], schema=sch)


def _float_columns(faces: Faces, labels: list[str],
                   smoothed: np.ndarray | None) -> tuple[list[str], np.ndarray, np.ndarray]:  # fmt: skip
    """The float32 columns of a window's faces: names, values (one row per column, one column per face) and which
    columns read NaN as null (the detector score, absent under ``--detector none``, and the trust columns, null
    where a face lacks the value or it was never computed)."""
    n = len(faces)
    b = faces.boxes  # widths in the boxes' own precision, then stored as float32 (as always)
    missing = np.full((n, 1), np.nan, np.float32)
    probs = faces.probs if faces.probs is not None else np.zeros((n, len(labels)), np.float32)
    parts = [b[:, :2], b[:, 2:] - b[:, :2], faces.scores.reshape(n, 1), probs]
    names = ["x", "y", "w", "h", "det_score", *labels]
    if smoothed is not None:
        parts.append(smoothed)
        names += [f"{label}_smooth" for label in labels]
    signals = [
        faces.quality.reshape(n, 1) if faces.quality is not None else missing,
        faces.pose if faces.pose is not None else np.repeat(missing, len(POSE_COLUMNS), axis=1),
        faces.landmarks.reshape(n, 10),
        faces.sharpness.reshape(n, 1) if faces.sharpness is not None else missing,
    ]
    parts += signals
    names += list(SIGNAL_COLUMNS)
    nan_is_null = np.array([name == "det_score" or name in SIGNAL_COLUMNS for name in names])
    values = np.concatenate([np.asarray(v, dtype=np.float32) for v in parts], axis=1).T  # each part (n, k)
    return names, values, nan_is_null


def faces_from_table(table: pa.Table, labels: list[str]) -> Faces:
    """The faces of a saved table (its rows with a face), as ``window_table`` received them.

    Boxes, ``det_score`` (NaN where null), track ids (-1 where null), the ``labels`` probabilities and, where the
    table has them, landmarks, pose, sharpness and quality (NaN where null) come back. Rows without a face are
    analysed frames where none was found: not faces.
    """
    sel = np.nonzero(table.column("face").is_valid().to_numpy(zero_copy_only=False))[0]
    rows = table.take(pa.array(sel, pa.int64()))
    names = set(rows.column_names)

    def col(name: str, dtype: Any = np.float32) -> np.ndarray:
        if name not in names:  # a table written before the column existed
            return np.full(len(sel), np.nan, dtype)
        return np.asarray(rows.column(name).to_numpy(zero_copy_only=False), dtype=dtype).reshape(len(sel))

    x, y = col("x"), col("y")
    boxes = np.stack([x, y, x + col("w"), y + col("h")], axis=1).reshape(len(sel), 4)
    probs = np.stack([col(label) for label in labels], axis=1).reshape(len(sel), len(labels))
    track = rows.column("track_id").fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    landmarks = np.stack([col(name) for name in LANDMARK_COLUMNS], axis=1).reshape(len(sel), 5, 2)
    pose = np.stack([col(name) for name in POSE_COLUMNS], axis=1).reshape(len(sel), 3)
    return Faces(frame=col("frame", np.int64), boxes=boxes, scores=col("det_score"), track_id=track,
                 landmarks=landmarks, probs=np.nan_to_num(probs), pose=pose, sharpness=col("sharpness"),
                 quality=col("quality") if "quality" in names else None)  # fmt: skip


class ParquetSink:
    """Context manager writing one video's table under a temporary name, renamed on a clean exit.

    On an exception the temporary file is removed and nothing appears under the final name. ``table_schema``
    replaces the one built from ``labels`` where the rows come from existing tables (joining segments).
    ``small``: a photo's few rows, whose table is one of thousands in a folder, where a Parquet file's fixed costs
    set the pace: built in memory and written in one call (pyarrow's file output costs ≈ 0.25 ms a file more),
    without compression, column statistics or dictionaries but the emotion column's (its labels, in order), which
    on a few rows cost more than they save (≈ 0.45 ms a file). The same rows, schema and metadata. A video's table
    streams to disk, its memory bounded, compressed.
    """

    def __init__(self, path: Path, labels: list[str], smooth: bool = False, *,
                 table_schema: pa.Schema | None = None, commit: bool = True,
                 small: bool = False) -> None:  # fmt: skip
        self.path = Path(path)
        self.small = small
        self._buffer: pa.BufferOutputStream | None = None
        self.commit = commit  # False: a clean exit leaves ``target`` for the caller to commit (``commit_many``)
        self.schema = table_schema if table_schema is not None else schema(labels, smooth)
        self._target = self.target = AtomicPath(self.path)
        self.tmp = self._target.tmp
        self.meta: TableMeta | None = None  # set by the writer before a clean exit; the footer records it
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> ParquetSink:
        self._target.__enter__()
        try:  # a failure (or a stop signal) between the file's creation and the with-block leaves no file
            self._buffer = pa.BufferOutputStream() if self.small else None
            where = self._buffer if self._buffer is not None else self.tmp
            self._writer = pq.ParquetWriter(where, self.schema, compression="none" if self.small else "zstd",
                                            use_dictionary=["emotion"] if self.small else True,  # its labels, in order
                                            write_statistics=not self.small)  # fmt: skip
        except BaseException:
            self._target.discard()
            raise
        return self

    def write(self, table: pa.Table) -> None:
        self._pending.append(table)
        self._pending_rows += table.num_rows
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
        writer = self._writer
        try:
            if exc_type is None:
                self.flush()
                if self.meta is None:
                    raise ValueError(f"{self.path}: a table needs its metadata before it is finished")
                writer.add_key_value_metadata({META_KEY: json.dumps(self.meta.as_dict(), default=str).encode()})
            writer.close()
            if exc_type is None and self._buffer is not None:
                with open(self.tmp, "wb") as f:
                    f.write(self._buffer.getvalue())
        except BaseException:
            writer.close()  # a no-op where it is already closed
            self._writer = None
            self._target.discard()
            raise
        self._writer = None
        if exc_type is None:
            if self.commit:
                self._target.commit()
        else:
            self._target.discard()


class MemorySink:
    """Collects the same tables in memory, for ``analyze_video`` without an output file."""

    def __init__(self, labels: list[str], smooth: bool = False) -> None:
        self.schema = schema(labels, smooth)
        self.meta: TableMeta | None = None
        self.tables: list[pa.Table] = []

    def __enter__(self) -> MemorySink:
        return self

    def write(self, table: pa.Table) -> None:
        self.tables.append(table)

    def __exit__(self, *exc: object) -> None:
        return None

    def to_pandas(self) -> pd.DataFrame:
        table = pa.concat_tables(self.tables) if self.tables else self.schema.empty_table()
        return to_pandas(table)


def to_pandas(table: pa.Table) -> pd.DataFrame:
    """Nullable integer dtypes, so ``face`` and ``track_id`` stay integers; float nulls become NaN."""
    return table.to_pandas(types_mapper=_nullable_types)


def _nullable_types(t: pa.DataType) -> Any:
    import pandas as pd

    mapping = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}
    return mapping.get(t)


def has_signal_columns(path: Path) -> bool:
    """Whether a table has the trust columns (``SIGNAL_COLUMNS``): tables written before them are redone on resume."""
    try:
        names = set(pq.read_schema(path).names)
    except (OSError, pa.ArrowException):
        return False
    return names.issuperset(SIGNAL_COLUMNS)


def tables(out: str | os.PathLike[str]) -> list[Path]:
    """The complete per-video tables of a run folder: every ``*.parquet`` but the run-level ones (temporary names
    never end in ``.parquet``, so an input's table named ``x.parquet.tmp-a.parquet`` is a table like any other)."""
    root = Path(out)
    return sorted(p for p in root.rglob("*.parquet") if p.name not in RESERVED)
