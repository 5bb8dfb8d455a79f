"""A table's metadata is typed (``TableMeta`` with ``ModelInfo``/``DetectorInfo``/a source) and its JSON keeps the
keys earlier versions wrote, so tables written before still read."""

from __future__ import annotations

import json
from pathlib import Path

from fer_batch.analysis.info import DetectorInfo, MemberInfo, ModelInfo
from fer_batch.outputs.metadata import AnnotatedVideo, CameraSource, FileSource, TableMeta, annotated_path

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def full_meta() -> TableMeta:
    model = ModelInfo(id="a+b", sha256="1" * 64, spec_sha256="2" * 64, labels=LABELS, tta="flip",
                      members=[MemberInfo(id="a", sha256="3" * 64, crop={"margin": 0.1, "square": True}),
                               MemberInfo(id="b", sha256="4" * 64, crop=None)],
                      quality={"calibrated": True})  # fmt: skip
    return TableMeta(version="9", options={"fps": 5}, source=FileSource("v.mp4", 10, 1.5), model=model,
                     detector=DetectorInfo(id="centerface", sha256="5" * 64), frames_decoded=3,
                     annotated=AnnotatedVideo("v.annotated.mp4", 100, 7))  # fmt: skip


def test_the_json_round_trips_to_the_same_value() -> None:
    meta = full_meta()
    again = TableMeta.from_dict(json.loads(json.dumps(meta.as_dict())))
    assert again == meta
    assert again is not None and again.labels == LABELS and again.model is not None
    assert again.model.members[0].crop == {"margin": 0.1, "square": True}


def test_the_model_keys_keep_their_historical_names_and_order() -> None:
    d = full_meta().as_dict()
    assert list(d["model"]) == ["id", "sha256", "spec_sha256", "labels", "tta", "members", "quality"]
    assert d["model"]["members"][0] == {"id": "a", "sha256": "3" * 64, "crop": {"margin": 0.1, "square": True}}
    assert d["detector"] == {"id": "centerface", "sha256": "5" * 64}


def test_an_older_table_without_the_later_keys_still_reads() -> None:
    old = {"version": "0.0.9", "options": {}, "source": {"path": "v.mp4"},
           "model": {"id": "m", "sha256": "1" * 64, "labels": LABELS}, "detector": {"id": "d", "sha256": "0" * 64}}
    meta = TableMeta.from_dict(old)
    assert meta is not None and meta.model == ModelInfo(id="m", sha256="1" * 64, labels=LABELS)
    assert meta.model.spec_sha256 is None and meta.model.members == [] and meta.detector == DetectorInfo("d", "0" * 64)


def test_a_table_whose_model_record_is_not_ours_is_not_trusted() -> None:
    broken = {"version": "1", "options": {}, "source": {"path": "v.mp4"}, "model": {"labels": LABELS}}
    assert TableMeta.from_dict(broken) is None  # no id, no checksum: resume must not keep it


def test_a_camera_table_keeps_its_source_kind() -> None:
    meta = full_meta().replace(source=CameraSource("0", "USB camera", 30.0), clock="monotonic")
    again = TableMeta.from_dict(json.loads(json.dumps(meta.as_dict())))
    assert again is not None and isinstance(again.source, CameraSource) and again.source.nominal_fps == 30.0


def test_the_annotated_video_is_recognised_by_size_and_mtime(tmp_path: Path) -> None:
    table = tmp_path / "a.b.parquet"
    video = annotated_path(table)
    assert video.name == "a.b.annotated.mp4"
    video.write_bytes(b"0" * 10)
    st = video.stat()
    assert AnnotatedVideo(video.name, 10, st.st_mtime_ns).is_at(video)
    assert not AnnotatedVideo(video.name, 11, st.st_mtime_ns).is_at(video)  # another run's video under that name
    assert not AnnotatedVideo(video.name, 10, st.st_mtime_ns).is_at(tmp_path / "none.mp4")
