"""Hostile arguments and environments: one line naming the problem, the right exit code, nothing written."""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Executor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, one_face, write_clip
from typer.testing import CliRunner

import fer_batch
from fer_batch.cli import app
from fer_batch.errors import UsageError

cli = CliRunner()


def one_error_line(output: str) -> str:
    lines = [ln for ln in output.strip().splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


@pytest.fixture
def video(tmp_path: Path) -> Path:
    path = tmp_path / "in" / "v.mp4"
    path.parent.mkdir()
    write_clip(path, n=4, faces=one_face)
    return path


@pytest.mark.parametrize("where", ["is_a_file", "under_a_file"])
def test_out_that_is_or_lies_under_a_file_is_a_usage_error(video: Path, tmp_path: Path, where: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    out = blocker if where == "is_a_file" else blocker / "sub"
    r = cli.invoke(app, ["analyze", str(video), "--out", str(out)])
    assert r.exit_code == 2
    assert "is a file" in one_error_line(r.output)
    assert blocker.read_text() == "a file, not a folder"


def test_out_on_a_read_only_folder_is_a_usage_error(video: Path, tmp_path: Path, monkeypatch) -> None:
    """A read-only mount refuses every write; root ignores permission bits, so the probe write is made to fail as
    a read-only file system would fail it."""
    import fer_batch.runs.outdir as outdir

    locked = tmp_path / "ro"
    locked.mkdir()

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(outdir.tempfile, "mkstemp", read_only)
    r = cli.invoke(app, ["analyze", str(video), "--out", str(locked / "out")])
    assert r.exit_code == 2
    assert "Read-only file system" in one_error_line(r.output)


class NoWork(Executor):
    """An executor that fails the test if any work reaches it."""

    def submit(self, fn, /, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN201
        raise AssertionError("an input was analysed although --out is unusable")


def test_out_error_comes_before_any_work(video: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "f"
    blocker.write_text("x")
    with pytest.raises(UsageError, match="is a file"):
        fer_batch.analyze_many(video, blocker, executor=NoWork())


@pytest.fixture
def custom_model(tmp_path: Path) -> tuple[Path, dict]:
    """The bundled classifier copied as a user's own model, with its manifest entry as the spec."""
    manifest = json.loads((REPO / "models" / "manifest.json").read_text())
    entry = next(e for e in manifest if e["task"] == "emotion")
    model = tmp_path / "mine.onnx"
    shutil.copy(REPO / "models" / entry["file"], model)
    spec = {k: entry[k] for k in ("input", "labels")}
    return model, spec


@pytest.mark.parametrize("problem", ["not_onnx", "fewer_labels", "wrong_input"])
def test_a_custom_model_that_cannot_work_is_one_usage_error(video: Path, tmp_path: Path, custom_model,
                                                            problem: str) -> None:  # fmt: skip
    model, spec = custom_model
    if problem == "not_onnx":
        model.write_bytes(b"this is not an ONNX file")
    elif problem == "fewer_labels":
        spec["labels"] = spec["labels"][:5]
    else:
        spec["input"] = dict(spec["input"], height=32, width=48)
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    r = cli.invoke(app, ["analyze", str(video), str(video), "--out", str(out), "--model", str(model),
                         "--model-spec", str(spec_path)])  # fmt: skip
    assert r.exit_code == 2, r.output
    line = one_error_line(r.output)
    assert str(model) in line
    if problem == "fewer_labels":
        assert "7 outputs" in line and "5 labels" in line
    assert not out.exists()
    with pytest.raises(UsageError):
        fer_batch.analyze_many(video, out, model=str(model), model_spec=str(spec_path))


def test_a_custom_model_that_matches_its_spec_runs(video: Path, tmp_path: Path, custom_model) -> None:
    model, spec = custom_model
    spec_path = tmp_path / "spec.json"
    spec_path.write_text(json.dumps(spec))
    res = fer_batch.analyze_many(video, tmp_path / "out", model=str(model), model_spec=str(spec_path))
    assert [r.status for r in res] == ["ok"]


def test_a_spec_that_is_not_json_is_one_usage_error(video: Path, tmp_path: Path, custom_model) -> None:
    model, _ = custom_model
    spec_path = tmp_path / "spec.json"
    spec_path.write_text("{not json")
    r = cli.invoke(app, ["analyze", str(video), "--out", str(tmp_path / "o"), "--model", str(model),
                         "--model-spec", str(spec_path)])  # fmt: skip
    assert r.exit_code == 2 and "not valid JSON" in one_error_line(r.output)
    r = cli.invoke(app, ["analyze", str(video), "--out", str(tmp_path / "o"), "--model", str(model),
                         "--model-spec", str(tmp_path / "missing.json")])  # fmt: skip
    assert r.exit_code == 2 and "missing.json" in one_error_line(r.output)


@pytest.mark.slow
@pytest.mark.parametrize("scale", ["50", "nan", "0", "-1"])
def test_render_refuses_a_scale_out_of_range(video: Path, tmp_path: Path, scale: str) -> None:
    table = tmp_path / "t.parquet"
    fer_batch.analyze_many(video, tmp_path / "run")
    shutil.copy(tmp_path / "run" / "v.parquet", table)
    r = cli.invoke(app, ["render", str(video), str(table), "-o", str(tmp_path / "a.mp4"), "--scale", scale])
    assert r.exit_code == 2 and "--scale" in one_error_line(r.output)
    assert not (tmp_path / "a.mp4").exists()


def test_render_never_writes_over_its_own_inputs(video: Path, tmp_path: Path) -> None:
    fer_batch.analyze_many(video, tmp_path / "run")
    table = tmp_path / "run" / "v.parquet"
    before = video.read_bytes(), table.read_bytes()
    for target in (video, table):
        r = cli.invoke(app, ["render", str(video), str(table), "-o", str(target)])
        assert r.exit_code == 2 and "overwritten" in one_error_line(r.output)
    assert (video.read_bytes(), table.read_bytes()) == before


def test_summary_skips_damaged_and_foreign_tables_with_a_line_each(video: Path, tmp_path: Path, caplog) -> None:
    run = tmp_path / "run"
    fer_batch.analyze_many(video, run)
    good = (run / "v.parquet").read_bytes()
    (run / "truncated.parquet").write_bytes(good[: len(good) // 2])
    pq.write_table(pa.table({"a": [1, 2], "b": ["x", "y"]}), run / "foreign.parquet")
    r = cli.invoke(app, ["summary", str(run), "--no-plots"])
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    skipped = [rec.getMessage() for rec in caplog.records if "skipped" in rec.getMessage()]
    assert all("\n" not in ln for ln in skipped)
    assert len(skipped) == 2 and any("truncated.parquet" in ln for ln in skipped)
    assert any("foreign.parquet" in ln for ln in skipped)
    summary = pq.read_table(run / "summary.parquet").to_pandas()
    assert set(summary["video"]) == {"v.mp4"}


@pytest.mark.parametrize("seconds", ["nan", "0", "-1", "inf"])
def test_webcam_refuses_bad_seconds(tmp_path: Path, seconds: str) -> None:
    r = cli.invoke(app, ["webcam", "--out", str(tmp_path / "o"), "--seconds", seconds, "--no-preview"])
    assert r.exit_code == 2 and "--seconds" in one_error_line(r.output)
    assert not (tmp_path / "o").exists()


def test_load_skips_a_damaged_table_with_a_warning(video: Path, tmp_path: Path, caplog) -> None:
    run = tmp_path / "run"
    fer_batch.analyze_many(video, run)
    good = (run / "v.parquet").read_bytes()
    (run / "cut.parquet").write_bytes(good[: len(good) // 2])
    df = fer_batch.load(run)
    assert set(df["video"]) == {"v.mp4"}
    assert [r for r in caplog.records if "cut.parquet" in r.getMessage() and "skipped" in r.getMessage()]
