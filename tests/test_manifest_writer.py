"""``ManifestWriter`` alone: its one-second throttle (on a fake clock), the merge with an earlier run's rows, the
retry after a failed write and file names that are not UTF-8."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from fakes import FakeClock

from fer_batch.runs.result import MANIFEST_SCHEMA, InputResult, ManifestWriter
from fer_batch.types import Status

LogCapture = pytest.LogCaptureFixture


def ok(name: str, faces: int = 1) -> InputResult:
    return InputResult(path=f"/in/{name}", status=Status.OK, frames_decoded=3, frames_analysed=3, faces=faces,
                       duration_s=0.3, wall_s=0.01, table=f"/out/{name}.parquet")  # fmt: skip


def on_disk(out: Path) -> dict[str, dict]:
    return {row["path"]: row for row in pq.read_table(out / "manifest.parquet").to_pylist()}


def test_written_at_most_once_a_second_while_results_arrive_and_always_at_the_end(tmp_path: Path) -> None:
    clock = FakeClock()
    writer = ManifestWriter(tmp_path, clock=clock)
    writer.add(ok("a"))  # the first result is written at once
    assert list(on_disk(tmp_path)) == ["/in/a"]
    clock.advance(0.5)
    writer.add(ok("b"))  # half a second later: kept for the next write
    assert list(on_disk(tmp_path)) == ["/in/a"]
    clock.advance(0.5)
    writer.add(ok("c"))  # a second after the last write
    assert list(on_disk(tmp_path)) == ["/in/a", "/in/b", "/in/c"]
    writer.add(ok("d"))
    assert len(on_disk(tmp_path)) == 3
    writer.write()  # the end of the run
    assert list(on_disk(tmp_path)) == ["/in/a", "/in/b", "/in/c", "/in/d"]


def test_rows_of_an_earlier_run_are_kept_and_this_runs_rows_replace_the_same_inputs(tmp_path: Path) -> None:
    first = ManifestWriter(tmp_path, clock=FakeClock())
    first.add(ok("a"))
    first.add(ok("b", faces=1))
    first.write()
    again = ManifestWriter(tmp_path, clock=FakeClock())
    assert set(again.rows) == {"/in/a", "/in/b"} and again.rows["/in/a"] == ok("a")  # read back as results
    again.add(InputResult.failed("/in/b", "/in/b: damaged"))
    again.add(ok("c"))
    again.write()
    rows = on_disk(tmp_path)
    assert list(rows) == ["/in/a", "/in/b", "/in/c"]
    assert rows["/in/b"]["status"] == "failed" and rows["/in/b"]["error"] == "/in/b: damaged"
    assert rows["/in/b"]["table"] is None and rows["/in/a"]["faces"] == 1


def test_an_unreadable_earlier_manifest_is_replaced_with_a_warning(tmp_path: Path, caplog: LogCapture) -> None:
    (tmp_path / "manifest.parquet").write_bytes(b"not parquet at all")
    with caplog.at_level(logging.WARNING):
        writer = ManifestWriter(tmp_path, clock=FakeClock())
    assert writer.rows == {} and "unreadable" in caplog.text
    writer.add(ok("a"))
    assert list(on_disk(tmp_path)) == ["/in/a"]


def test_a_failed_write_is_retried_with_the_next_result_and_warned_once(tmp_path: Path, caplog: LogCapture) -> None:
    clock = FakeClock()
    writer = ManifestWriter(tmp_path, clock=clock)
    blocker = tmp_path / "manifest.parquet"
    blocker.mkdir()  # a file cannot replace a folder: every write fails (as on a full disk) while it is there
    with caplog.at_level(logging.WARNING):
        writer.add(ok("a"))
        writer.add(ok("b"))  # no second passed: retried all the same, since the last write failed
    assert isinstance(writer.error, OSError)
    assert [r.getMessage() for r in caplog.records].count(f"{blocker}: not written ({writer.error.strerror}); "
                                                          "trying again with the next result") == 1  # fmt: skip
    assert not [p for p in tmp_path.iterdir() if p != blocker]  # no temporary file left behind
    blocker.rmdir()
    writer.add(ok("c"))
    assert writer.error is None and list(on_disk(tmp_path)) == ["/in/a", "/in/b", "/in/c"]


def test_file_names_that_are_not_utf8_are_written_escaped(tmp_path: Path) -> None:
    name = os.fsdecode(b"caf\xe9.mp4")  # a Latin-1 name on a UTF-8 system: a lone surrogate in Python
    writer = ManifestWriter(tmp_path, clock=FakeClock())
    writer.add(InputResult.failed(f"/in/{name}", f"/in/{name}: damaged"))
    row = pq.read_table(tmp_path / "manifest.parquet").to_pylist()[0]
    assert row["path"] == "/in/caf\\xe9.mp4" and row["error"] == "/in/caf\\xe9.mp4: damaged"
    assert pq.read_schema(tmp_path / "manifest.parquet").remove_metadata().equals(MANIFEST_SCHEMA)
