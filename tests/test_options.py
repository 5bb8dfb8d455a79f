"""Options: one frozen value with its checks, what resume compares, and what older tables recorded."""

from __future__ import annotations

import pytest

import fer_batch
from fer_batch.options import Options


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"fps": 5, "every": 2}, "exclude each other"),
        ({"fps": 0}, "--fps must be a number > 0"),
        ({"every": 0}, "--every must be a whole number >= 1"),
        ({"batch_size": 0}, "--batch-size"),
        ({"smooth": 1.5}, "--smooth"),
        ({"scan_interval": -1}, "--scan-interval"),
        ({"detect_every": 0}, "--detect-every"),
        ({"detector": "yolo"}, "--detector: unknown value 'yolo'"),
        ({"device": "tpu"}, "--device: unknown value 'tpu'"),
        ({"start": 5, "end": 2}, "--end must be after --start"),
    ],
)
def test_bad_settings_are_refused_with_the_option_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Options.of(**kwargs)


def test_replace_checks_again() -> None:
    with pytest.raises(ValueError, match="--fps"):
        Options().replace(fps=-1)
    assert Options().replace(fps=2).sampling.fps == 2


def test_unknown_keywords_are_named() -> None:
    with pytest.raises(TypeError, match="unknown option\\(s\\): colour, size"):
        Options.of(size=3, colour="red")


def test_analyze_video_refuses_annotate_instead_of_ignoring_it() -> None:
    """annotate belongs to folder runs (analyze_many), which write files; analyze_video writes nothing."""
    with pytest.raises(TypeError, match="annotate"):
        fer_batch.analyze_video("never-opened.mp4", annotate=True)


def test_resume_compares_only_what_changes_a_table() -> None:
    base = Options()
    assert base.replace(threads=3, device="cpu", batch_size=8).result_key() == base.result_key()
    assert base.replace(fps=5).result_key() != base.result_key()
    ignored = {"threads", "device", "batch_size", "max_pixels", "model", "model_spec"}  # files: their checksums
    assert set(base.result_key()) == {f.name for f in Options.settings()} - ignored


def test_options_recorded_by_an_older_version_still_compare() -> None:
    stored = {**Options.of(fps=5).as_dict(), "annotate": True}  # what tables written before this version hold
    assert Options.from_stored(stored) == Options.of(fps=5)
    with pytest.raises(TypeError):
        Options.from_stored({**stored, "no_such_setting": 1})  # anything else: another version, redo the table


def test_options_are_hashable_and_picklable() -> None:
    import pickle

    opts = Options.of(fps=5, smooth=0.5)
    assert pickle.loads(pickle.dumps(opts)) == opts and hash(opts) == hash(Options.of(fps=5, smooth=0.5))
