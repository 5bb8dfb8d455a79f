"""``run_video`` with fake models (``models=``): the one-input driver's own behaviour, fast and without onnxruntime."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from conftest import write_clip
from fakes import FakeClassifier, FakeDetector, fake_models

from fer_batch.analysis.info import DetectorInfo
from fer_batch.options import Options
from fer_batch.outputs.metadata import read_table_meta
from fer_batch.runs.one_input import run_video
from fer_batch.types import Status


def test_the_table_does_not_depend_on_the_window_size(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_clip(path, n=16, size=(96, 64))
    tables = []
    for batch in (1, 4, 64):
        table = tmp_path / f"b{batch}.parquet"
        result, _ = run_video(path, Options.of(batch_size=batch, detect_every=2), video_name="v", table_path=table,
                              models=fake_models(regions=True))  # fmt: skip
        assert result.status is Status.OK and result.frames_analysed == 16 and result.faces == 16
        tables.append(pq.read_table(table).replace_schema_metadata(None))
    assert all(t.equals(tables[0]) for t in tables[1:])
    df = tables[0].to_pandas()
    assert df["frame"].tolist() == list(range(16)) and set(df["track_id"]) == {0} and set(df["emotion"]) == {"happy"}


def test_the_metadata_names_the_models_that_ran(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    write_clip(path, n=3, size=(96, 64))
    table = tmp_path / "v.parquet"
    detector, classifier = FakeDetector(), FakeClassifier()
    result, _ = run_video(path, Options(), video_name="v", table_path=table, models=(detector, classifier))
    meta = read_table_meta(table)
    assert result.status is Status.OK and meta is not None
    assert meta.detector == DetectorInfo(id="fake-detector", sha256="0" * 64)
    assert meta.provider == "FakeExecutionProvider"
    assert meta.model is not None and meta.model.id == "fake-classifier" and classifier.calls >= 1 and detector.scanned


def test_a_window_that_fails_to_classify_fails_the_video_and_leaves_no_table(tmp_path: Path) -> None:
    """The classifier runs in the finishing thread; its error still fails the video, with nothing written."""
    path = tmp_path / "v.mp4"
    write_clip(path, n=12, size=(96, 64))

    def disk_full(n: int) -> None:
        if n == 2:
            raise OSError(28, "No space left on device")

    table = tmp_path / "out" / "v.parquet"
    table.parent.mkdir()
    result, _ = run_video(path, Options.of(batch_size=4), video_name="v", table_path=table,
                          models=(FakeDetector(), FakeClassifier(on_call=disk_full)))  # fmt: skip
    assert result.status is Status.FAILED and "No space left" in (result.error or "")
    assert list(table.parent.iterdir()) == []
