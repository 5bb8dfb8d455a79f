"""One exception tree, exported, and one way to say an error on one line."""

from __future__ import annotations

import errno

import pytest

import fer_batch
from fer_batch.errors import (
    CameraError,
    ClusterError,
    DecodeError,
    FerBatchError,
    InputError,
    ManifestError,
    ModelError,
    OutputError,
    StreamBroken,
    StreamDamaged,
    UsageError,
    describe,
)


def test_every_error_is_a_fer_batch_error_and_exported() -> None:
    for cls in (UsageError, ClusterError, ModelError, InputError, DecodeError, StreamBroken, StreamDamaged,
                CameraError, OutputError, ManifestError):  # fmt: skip
        assert issubclass(cls, FerBatchError)
        assert getattr(fer_batch, cls.__name__) is cls


@pytest.mark.parametrize(
    "child, parent",
    [(ClusterError, UsageError), (StreamDamaged, StreamBroken), (StreamBroken, DecodeError), (DecodeError, InputError),
     (CameraError, InputError), (ManifestError, OutputError), (UsageError, ValueError), (OutputError, OSError)],
)  # fmt: skip
def test_the_tree_has_its_branches(child: type, parent: type) -> None:
    assert issubclass(child, parent)


def test_our_errors_read_as_their_message_on_one_line() -> None:
    assert describe(DecodeError("no video stream\n(contains audio)")) == "no video stream (contains audio)"
    assert describe(UsageError("")) == "UsageError"


def test_os_errors_read_as_the_system_words_naming_the_file_only_when_asked() -> None:
    e = OSError(errno.ENOSPC, "No space left on device", "/out/a.parquet")
    assert describe(e) == "No space left on device"
    assert describe(e, with_file=True) == "No space left on device: /out/a.parquet"
    tmp = OSError(errno.ENOSPC, "No space left on device", "/out/a.parquet.tmp-x1.parquet")
    assert describe(tmp, with_file=True) == "No space left on device"  # a temporary name says nothing


def test_pyarrow_style_errors_read_as_the_errno_words() -> None:
    e = OSError("Error writing bytes to file. Detail: [errno 28] No space left on device")
    assert describe(e) == "No space left on device"


def test_a_surprise_keeps_its_class_name() -> None:
    assert describe(TypeError("bool() undefined")) == "TypeError: bool() undefined"
    assert describe(KeyError()) == "KeyError"


def test_manifest_error_carries_the_rows() -> None:
    e = ManifestError(errno.ENOSPC, "out/manifest.parquet: not written (No space left on device)", [1, 2])
    assert e.results == [1, 2] and e.errno == errno.ENOSPC
    assert describe(e) == "out/manifest.parquet: not written (No space left on device)"


def test_an_input_result_is_frozen_and_its_manifest_row_plain() -> None:
    import dataclasses

    from fer_batch.runs.result import MANIFEST_SCHEMA, InputResult, Tally
    from fer_batch.types import Status

    tally = Tally(frames_decoded=3, frames_analysed=2, faces=2)
    tally.set(Status.PARTIAL, "stream ended at 1.00 s of 2.00 s")
    r = tally.result("a.mp4", 0.5, "out/a.parquet")
    assert r.status is Status.PARTIAL and r.status == "partial" and r.table == "out/a.parquet"
    try:
        r.faces = 5  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("InputResult must be frozen")
    row = r.row()
    assert row["status"] == "partial" and type(row["status"]) is str
    assert list(row) == MANIFEST_SCHEMA.names  # the manifest's columns are the result's fields, in order
    assert InputResult.from_row(row) == r
    failed = Tally()
    failed.set(Status.FAILED, "no video stream")
    assert failed.result("b.mp4", 0.1, "out/b.parquet").table is None  # a failed input has no table
