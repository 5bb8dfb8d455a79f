"""Tables: rows per window, the round trip back to faces, and a sink that never leaves a half-written table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fer_batch.analysis.info import ModelInfo
from fer_batch.outputs.metadata import CameraSource, FileSource, TableMeta, read_metadata, read_table_meta
from fer_batch.outputs.table import MemorySink, ParquetSink, faces_from_table, schema, window_table
from fer_batch.types import Faces

LABELS = ["calm", "excited", "bored"]
META = TableMeta(version="0", options={"fps": 5}, source=FileSource("v.mp4"),
                 model=ModelInfo(id="m", sha256="0" * 64, labels=LABELS), status="ok")


def some_faces() -> Faces:
    """Three faces on frames 10 and 12 (frame 11 analysed, no face), one without a track."""
    return Faces(
        frame=np.array([10, 10, 12]),
        boxes=np.array([[5, 6, 45, 56], [60, 10, 80, 40], [7, 8, 47, 58]], np.float32),
        scores=np.array([0.9, 0.6, 0.8], np.float32),
        landmarks=np.zeros((3, 5, 2), np.float32),
        track_id=np.array([3, -1, 3]),
        probs=np.array([[0.1, 0.7, 0.2], [0.5, 0.25, 0.25], [0.2, 0.2, 0.6]], np.float32),
    )


def test_one_row_per_face_and_one_empty_row_per_frame_without_faces() -> None:
    t = window_table("v.mp4", np.array([10, 11, 12]), np.array([1.0, 1.1, 1.2]), some_faces(), LABELS).to_pandas()
    assert t["frame"].tolist() == [10, 10, 11, 12]
    assert t["face"].tolist()[:2] == [0, 1] and np.isnan(t["face"][2]) and t["face"][3] == 0
    assert t["emotion"].tolist()[:2] == ["excited", "calm"] and t["emotion"].tolist()[3] == "bored"
    assert t["w"].tolist()[0] == 40 and t["h"].tolist()[0] == 50


def test_a_saved_table_gives_back_the_faces_it_was_written_from() -> None:
    faces = some_faces()
    table = window_table("v.mp4", np.array([10, 11, 12]), np.array([1.0, 1.1, 1.2]), faces, LABELS)
    back = faces_from_table(table, LABELS)
    np.testing.assert_array_equal(back.frame, faces.frame)
    np.testing.assert_allclose(back.boxes, faces.boxes)
    np.testing.assert_allclose(back.scores, faces.scores)  # det_score kept
    np.testing.assert_array_equal(back.track_id, faces.track_id)
    np.testing.assert_allclose(back.probs, faces.probs)


def test_a_table_without_faces_gives_no_faces() -> None:
    table = window_table("v.mp4", np.array([0, 1]), np.array([0.0, 0.1]), Faces(), LABELS)
    back = faces_from_table(table, LABELS)
    assert len(back) == 0 and back.probs is not None and back.probs.shape == (0, 3)


def test_the_table_appears_complete_with_its_metadata_or_not_at_all(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "v.parquet"
    table = window_table("v.mp4", np.array([10, 11, 12]), np.array([1.0, 1.1, 1.2]), some_faces(), LABELS)
    with pytest.raises(RuntimeError), ParquetSink(path, LABELS) as sink:
        sink.write(table)
        raise RuntimeError("stopped")
    assert not path.parent.exists() or list(path.parent.iterdir()) == []
    with ParquetSink(path, LABELS) as sink:
        sink.write(table)
        sink.meta = META
        assert not path.exists()
    assert pq.read_table(path).num_rows == 4
    assert read_table_meta(path) == META
    assert read_metadata(path) == META.as_dict()
    assert [p.name for p in path.parent.iterdir()] == ["v.parquet"]


@pytest.mark.parametrize("small", [False, True], ids=["streamed", "small"])
def test_a_small_table_holds_what_a_streamed_one_holds(small: bool, tmp_path: Path) -> None:
    """A photo's table (``small``: built in memory, no compression, dictionaries or statistics) reads back as the
    same rows and metadata; like a streamed one, it appears complete or not at all."""
    path = tmp_path / "v.parquet"
    faces = some_faces()
    table = window_table("v.mp4", np.array([10, 11, 12]), np.array([1.0, 1.1, 1.2]), faces, LABELS)
    with pytest.raises(RuntimeError), ParquetSink(path, LABELS, small=small) as sink:
        sink.write(table)
        sink.meta = META
        raise RuntimeError("stopped")
    assert list(tmp_path.iterdir()) == []
    with ParquetSink(path, LABELS, small=small) as sink:
        sink.write(table)
        sink.meta = META
    back = pq.read_table(path)
    assert back.replace_schema_metadata(None).equals(table) and read_table_meta(path) == META
    column = pq.read_metadata(path).row_group(0).column(0)
    assert (column.compression, column.statistics is None) == (("UNCOMPRESSED", True) if small else ("ZSTD", False))


class Unprintable:
    def __str__(self) -> str:
        raise TypeError("no text for this value")


def test_metadata_that_cannot_be_written_leaves_no_table(tmp_path: Path) -> None:
    """The footer is written last: when it fails, the temporary file goes and no table appears."""
    path = tmp_path / "v.parquet"
    with pytest.raises(TypeError, match="no text"), ParquetSink(path, LABELS) as sink:
        sink.write(window_table("v.mp4", np.array([0]), np.array([0.0]), Faces(), LABELS))
        sink.meta = META.replace(error=Unprintable())  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_memory_sink_collects_the_same_rows() -> None:
    table = window_table("v.mp4", np.array([10, 11, 12]), np.array([1.0, 1.1, 1.2]), some_faces(), LABELS, None)
    with MemorySink(LABELS) as sink:
        sink.write(table)
    df = sink.to_pandas()
    assert len(df) == 4 and str(df["face"].dtype) == "Int32" and str(df["track_id"].dtype) == "Int64"
    assert MemorySink(LABELS, smooth=True).to_pandas().columns.tolist() == schema(LABELS, smooth=True).names


def test_read_metadata_of_something_else_is_none(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    assert read_metadata(tmp_path / "x.parquet") is None
    assert read_metadata(tmp_path / "missing.parquet") is None


def test_a_table_needs_its_metadata(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="metadata"), ParquetSink(tmp_path / "v.parquet", LABELS):
        pass
    assert list(tmp_path.iterdir()) == []


def test_table_metadata_keeps_each_kind_of_table_to_its_own_fields() -> None:
    video = META.as_dict()
    assert video["segments"] is None and "segment_runs" not in video  # how it was made: not split
    assert "clock" not in video and "recording" not in video
    camera = META.replace(clock="monotonic", recording=None).as_dict()
    assert camera["clock"] == "monotonic" and "recording" in camera and camera["recording"] is None
    assert "segments" not in camera
    joined = META.replace(segments=[[0.0, 2.0], [2.0, 4.0]], segment_runs=[{"from": None}]).as_dict()
    assert joined["segments"] == [[0.0, 2.0], [2.0, 4.0]] and joined["segment_runs"] == [{"from": None}]
    assert TableMeta.from_dict({**camera, "added_later": 1}) == META.replace(clock="monotonic")
    assert TableMeta.from_dict({"status": "ok"}) is None  # not ours: no version, options or source
    assert META.labels == LABELS and TableMeta(version="0", options={}, source=FileSource("x")).labels is None


def test_a_tables_source_is_typed_and_its_json_unchanged() -> None:
    camera = META.replace(source=CameraSource(camera="0", description="usb", nominal_fps=30.0), clock="monotonic")
    d = camera.as_dict()
    assert d["source"] == {"camera": "0", "description": "usb", "nominal_fps": 30.0}
    assert TableMeta.from_dict(d) == camera and isinstance(TableMeta.from_dict(d).source, CameraSource)  # type: ignore[union-attr]
    file = META.replace(source=FileSource(path="/v.mp4", size=10, mtime=1.5)).as_dict()
    assert list(file["source"]) == ["path", "size", "mtime"]  # the JSON earlier versions wrote, key for key


def test_load_leaves_out_a_foreign_parquet_file_with_one_line(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    import logging

    import fer_batch

    out = tmp_path / "run"
    out.mkdir()
    table = window_table("v.mp4", np.array([0]), np.array([0.0]), Faces(), LABELS)
    pq.write_table(table, out / "v.parquet")
    pq.write_table(pa.table({"subject": ["s1"], "score": [3.0]}), out / "ratings.parquet")  # someone else's file
    with caplog.at_level(logging.WARNING):
        df = fer_batch.load(out)
    assert len(df) == 1 and "subject" not in df.columns
    assert any("ratings.parquet: skipped, not a fer-batch table" in r.getMessage() for r in caplog.records)
