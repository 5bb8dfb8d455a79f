"""``jobs.Resolver`` resolves paths exactly as ``Path.resolve`` does: the folder run's checks that no output leaves
``--out`` or lands on an input, and that no output is read as an input, rest on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fer_batch.runs.jobs import Resolver


def test_every_kind_of_path_resolves_as_path_resolve_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "a.mp4").write_bytes(b"")
    (tmp_path / "outside.mp4").write_bytes(b"")
    (real / "link.mp4").symlink_to(tmp_path / "outside.mp4")  # a file that is a link: its target
    (real / "dangling.mp4").symlink_to(tmp_path / "gone.mp4")
    (tmp_path / "dirlink").symlink_to(real, target_is_directory=True)  # a folder that is a link
    monkeypatch.chdir(real)
    paths = [real / "a.mp4", real / "link.mp4", real / "dangling.mp4", real / "missing.parquet",
             tmp_path / "dirlink" / "a.mp4", tmp_path / "dirlink" / "link.mp4", tmp_path / "dirlink" / "new.parquet",
             real / "sub" / ".." / "a.mp4", Path("a.mp4"), Path("sub/../link.mp4"), Path("."), Path(".."),
             real / "sub" / "..", Path("/")]  # fmt: skip
    resolve = Resolver()
    for _ in range(2):  # the second time from its folder cache
        for p in paths:
            assert resolve(p) == p.resolve(), p
            assert str(resolve(p)) == os.path.realpath(p), p
