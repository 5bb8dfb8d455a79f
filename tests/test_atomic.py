"""One way to write a file safely: temporary name, fsync, rename, fsync of the folder; nothing left on failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fer_batch import _atomic as atomic
from fer_batch._atomic import TMP_MARK, atomic_path, remove_stale


def test_the_file_appears_only_when_the_block_completes(tmp_path: Path) -> None:
    final = tmp_path / "sub" / "out.bin"
    with atomic_path(final) as tmp:
        assert tmp.parent == final.parent and tmp.name.startswith(f".out.bin{TMP_MARK}")
        tmp.write_bytes(b"new")
        assert not final.exists()
    assert final.read_bytes() == b"new"
    assert [p.name for p in final.parent.iterdir()] == ["out.bin"]


def test_a_failure_keeps_the_old_file_and_removes_the_temporary_one(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    final.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="midway"), atomic_path(final) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("midway")
    assert final.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_the_data_is_synced_before_the_rename_and_the_folder_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append("fsync-dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "fsync-file")
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    monkeypatch.setattr(atomic.os, "replace", replace)
    with atomic_path(tmp_path / "out.bin") as tmp:
        tmp.write_bytes(b"x")
    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("no /proc to tell a folder's descriptor from a file's")
    assert events == ["fsync-file", "replace", "fsync-dir"]


def test_a_writer_that_wrote_nothing_fails_and_leaves_nothing(tmp_path: Path) -> None:
    final = tmp_path / "out.bin"
    with pytest.raises(FileNotFoundError), atomic_path(final):
        pass
    assert list(tmp_path.iterdir()) == []


def test_commit_and_discard_for_writers_that_span_several_calls(tmp_path: Path) -> None:
    kept, dropped = atomic.AtomicPath(tmp_path / "a"), atomic.AtomicPath(tmp_path / "b")
    kept.tmp.write_bytes(b"a")
    dropped.tmp.write_bytes(b"b")
    assert kept.commit() == tmp_path / "a"
    dropped.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


def test_stale_temporary_files_of_one_output_are_removed(tmp_path: Path) -> None:
    (tmp_path / f".v.parquet{TMP_MARK}123-abcd").write_bytes(b"")
    (tmp_path / f"v.parquet{TMP_MARK}123-abcd").write_bytes(b"")  # an older version's name
    (tmp_path / f".w.parquet{TMP_MARK}123-abcd").write_bytes(b"")  # another output's: kept
    (tmp_path / f"v.parquet{TMP_MARK}a.mp4").write_bytes(b"")  # a user's file that merely looks like one: kept
    (tmp_path / "v.parquet").write_bytes(b"done")
    remove_stale(tmp_path / "v.parquet")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f".w.parquet{TMP_MARK}123-abcd", "v.parquet",
                                                          f"v.parquet{TMP_MARK}a.mp4"]  # fmt: skip
