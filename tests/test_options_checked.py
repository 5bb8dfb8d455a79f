"""Every numeric option is checked, the same way in the Python API (ValueError naming it) and the CLI (exit 2)."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

import fer_batch
from fer_batch.cli import app
from fer_batch.errors import UsageError
from fer_batch.media.sampling import Sampler
from fer_batch.options import Group, Options
from fer_batch.runs import runner as runner_module

cli = CliRunner()

BAD = [
    ("fps", math.nan), ("fps", math.inf), ("fps", 1e9), ("fps", 0), ("fps", -5), ("fps", "5"),
    ("every", 2.5), ("every", 0), ("every", True),
    ("start", math.nan), ("start", -1.0), ("end", math.nan), ("end", 0.0), ("end", -2.0),
    ("det_threshold", 0.0), ("det_threshold", 1.5), ("det_threshold", math.nan),
    ("min_face", 0), ("min_face", -3), ("det_size", -1), ("threads", 0), ("threads", -1),
    ("haar_scale_factor", 1.0), ("haar_scale_factor", 0.5), ("haar_min_neighbors", -1),
    ("batch_size", 0), ("smooth", 0.0), ("smooth", 2.0), ("scan_interval", -1.0), ("scan_interval", math.inf),
    ("detect_every", 0), ("crop_margin", math.nan), ("max_pixels", 0), ("detector", "yolo"), ("device", "tpu"),
    ("model", ""),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}={v!r}" for n, v in BAD])
def test_the_api_refuses_a_bad_value_naming_the_option(name: str, value: object) -> None:
    with pytest.raises(ValueError, match="--" + name.replace("_", "-")):
        Options.of(**{name: value})


def test_every_setting_has_a_check_and_one_group() -> None:
    names = [f.name for f in Options.settings()]
    assert len(names) == len(set(names)), "a setting's name must be unique across groups (flat at the edges)"
    assert set(names) == set(Options().as_dict())
    for f in Options.settings():
        assert callable(f.metadata.get("check")), f.name
    for group in Group:
        assert set(Options.names(group)) == {f.name for f in dataclasses.fields(Options().group(group))}


def cli_defaults(command: str) -> dict[str, object]:
    """The default of every option of a CLI command, by its Python name."""
    import typer.main

    from fer_batch.cli import app

    click_command = typer.main.get_command(app).commands[command]  # type: ignore[attr-defined]
    return {p.name: p.default for p in click_command.params if p.name}


def test_every_option_is_an_analyze_option_with_the_same_default() -> None:
    """Adding a setting to Options without the CLI, or a CLI default that drifts from Options', fails here."""
    cli = cli_defaults("analyze")
    for f in Options.settings():
        assert f.name in cli, f"Options.{f.name} has no --{f.name.replace('_', '-')} in `fer-batch analyze`"
        assert cli[f.name] == f.default, (f.name, cli[f.name], f.default)


def test_webcam_options_share_analyze_defaults() -> None:
    cli = cli_defaults("webcam")
    for f in Options.settings():
        if f.name in cli:
            assert cli[f.name] == f.default, (f.name, cli[f.name], f.default)


def test_the_resume_key_follows_from_the_groups() -> None:
    key = Options().result_key()
    changing = [g for g, kind in Options.groups().items() if kind.CHANGES_RESULTS]
    assert changing == [Group.SAMPLING, Group.DETECTION, Group.TRACKING, Group.CLASSIFICATION]
    assert set(key) == set(Options.names(*changing)) - {"model", "model_spec"}
    assert not set(key) & set(Options.names(Group.RUNTIME, Group.LIMITS))
    assert Options.of(batch_size=4, threads=1).result_key() == Options().result_key()
    assert Options.of(fps=5).result_key() != Options().result_key()


def test_the_models_key_follows_from_the_groups_the_models_read() -> None:
    assert Options.of(start=3.0, end=9.0, batch_size=4).model_key() == Options().model_key()
    assert Options.of(detect_every=3, scan_interval=1.0, smooth=0.5).model_key() == Options().model_key()
    assert Options.of(det_size=320).model_key() != Options().model_key()
    assert Options.of(device="cpu").model_key() != Options().model_key()
    assert Options.of(tta="flip").model_key() != Options().model_key()


def test_settings_are_read_from_their_group() -> None:
    o = Options.of(fps=5, detector="haar", smooth=0.5, tta="flip", threads=2, batch_size=4)
    assert (o.sampling.fps, o.detection.detector, o.tracking.smooth) == (5, "haar", 0.5)
    assert (o.classification.tta, o.runtime.threads, o.limits.batch_size) == ("flip", 2, 4)
    assert Options.of(**o.as_dict()) == o


def test_whole_numbers_given_as_floats_are_taken() -> None:
    assert Options.of(every=2.0).sampling.every == 2 and isinstance(Options.of(every=2.0).sampling.every, int)


@pytest.mark.parametrize(
    "kwargs",
    [{"jobs": 0}, {"jobs": 2.5}, {"segment_seconds": math.nan}, {"segment_seconds": 1e-300}, {"segment_seconds": -1}],
)
def test_analyze_many_refuses_bad_run_numbers_before_any_work(tmp_path: Path, kwargs: dict) -> None:
    out = tmp_path / "out"
    with pytest.raises(ValueError, match="--" + next(iter(kwargs)).replace("_", "-")):
        fer_batch.analyze_many(tmp_path, out, **kwargs)
    assert not out.exists()


def test_analyze_many_refuses_an_empty_out(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--out"):
        fer_batch.analyze_many(tmp_path, "")


ARGS = [
    ["--fps", "1e9"], ["--fps", "nan"], ["--fps", "inf"], ["--segment-seconds", "1e-300"],
    ["--segment-seconds", "nan"], ["--det-threshold", "0"], ["--det-threshold", "1.01"], ["--min-face", "0"],
    ["--det-size", "-5"], ["--threads", "0"], ["--start", "nan"], ["--start", "-1"], ["--end", "-1"],
    ["--haar-scale-factor", "1"], ["--jobs", "0"], ["--max-pixels", "0"], ["--out", ""],
]  # fmt: skip


@pytest.mark.parametrize("args", ARGS, ids=[" ".join(a) for a in ARGS])
def test_the_cli_gives_one_line_and_exit_2(tmp_path: Path, args: list[str]) -> None:
    out = tmp_path / "out"
    cmd = ["analyze", str(tmp_path), *(["--out", str(out)] if "--out" not in args else []), *args]
    r = cli.invoke(app, cmd)
    assert r.exit_code == 2, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.output
    assert "Traceback" not in r.output and not out.exists()


def test_sampling_at_a_huge_rate_takes_every_frame_without_looping_over_targets() -> None:
    """fps 10,000 on an hour at 1 frame/s: 36 million targets, which a loop over targets would walk one by one."""
    sampler = Sampler(Options.of(fps=10_000))
    decisions = []
    for i in range(3601):
        decisions += sampler.push(i, float(i))
    decisions += sampler.flush()
    assert [i for i, _ in decisions] == list(range(3601))
    assert all(analyse for _, analyse in decisions)


def test_more_jobs_than_inputs_start_no_process_pool(clip, tmp_path: Path, monkeypatch) -> None:
    path, _ = clip("one.mp4", n=3)

    def no_pool(jobs: int):
        raise AssertionError(f"a pool of {jobs} processes was started for one input")

    monkeypatch.setattr(runner_module, "local_executor", no_pool)
    res = fer_batch.analyze_many(path, tmp_path / "out", jobs=8)
    assert [r.status for r in res] == ["ok"]
