"""The fer-batch command: every command listed, usage errors in one line with exit 2, bad inputs exit 1."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import one_face, write_clip
from typer.testing import CliRunner

from fer_batch.cli import app

runner = CliRunner()


def test_help_lists_every_command() -> None:
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for command in ("analyze", "models", "render", "webcam", "summary"):
        assert command in r.output


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--fps", "0"], "--fps must be a number > 0"),
        (["--fps", "5", "--every", "2"], "exclude each other"),
        (["--jobs", "0"], "--jobs must be a whole number >= 1"),
        (["--segment-seconds", "0"], "--segment-seconds must be a number >= 1"),
        (["--detector", "yolo"], "--detector: unknown value 'yolo'"),
        (["--model", "no-such-model"], "no-such-model"),
    ],
)
def test_usage_errors_are_one_line_and_write_nothing(tmp_path: Path, extra: list[str], message: str) -> None:
    out = tmp_path / "out"
    r = runner.invoke(app, ["analyze", str(tmp_path), "--out", str(out), *extra])
    assert r.exit_code == 2
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], r.output
    assert not out.exists()


def test_a_bad_input_is_named_the_others_finish_and_the_exit_code_says_so(tmp_path: Path) -> None:
    good = tmp_path / "in" / "good.mp4"
    good.parent.mkdir()
    write_clip(good, n=3, faces=one_face)
    broken = tmp_path / "in" / "broken.mp4"  # a path that does not exist is a usage error instead (exit 2)
    broken.write_bytes(b"\0" * 1000)
    out = tmp_path / "out"
    r = runner.invoke(app, ["analyze", str(good), str(broken), "--out", str(out), "-q"])
    assert r.exit_code == 1
    assert [line for line in r.output.splitlines() if "broken.mp4" in line and "failed" in line]
    statuses = pd.read_parquet(out / "manifest.parquet").set_index("path")["status"]
    assert statuses[str(good)] == "ok" and statuses[str(broken)] == "failed"
    assert (out / "good.parquet").exists()


def test_models_lists_the_bundled_models() -> None:
    r = runner.invoke(app, ["models"])
    assert r.exit_code == 0
    assert "fer2013-minixception" in r.output and "centerface" in r.output and "MISMATCH" not in r.output


def test_summary_and_render_refuse_missing_paths(tmp_path: Path) -> None:
    r = runner.invoke(app, ["summary", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and "not a folder" in r.output
    r = runner.invoke(app, ["render", str(tmp_path / "v.mp4"), str(tmp_path / "t.parquet"), "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no such file" in r.output
