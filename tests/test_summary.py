"""`fer-batch summary`: summary.parquet equals an independent pandas groupby; one timeline PNG per video."""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REPO, write_clip
from typer.testing import CliRunner

import fer_batch
from fer_batch.cli import app
from fer_batch.outputs.aggregate import MIN_TRACK_S
from fer_batch.outputs.summary import SUMMARY, downsample, frame_durations, summarize, summarize_table, timeline_path

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def _faces(i: int) -> list[tuple[int, int, int]]:
    """A face from frame 3 to 7 and again from 14 (a new track), a second one from frame 6 to 17."""
    out = []
    if 3 <= i <= 7 or i >= 14:
        out.append((20 + 4 * i, 40, 90))
    if 6 <= i <= 17:
        out.append((200, 100 - 2 * i, 80))
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run over the bundled sample and a variable-frame-rate clip (in a subfolder) with face-less frames."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(REPO / "samples" / "astronaut.mp4", src / "astronaut.mp4")
    (src / "sub").mkdir()
    times = np.round(np.cumsum([0.0] + [0.1 if i % 3 else 0.25 for i in range(1, 20)]), 3).tolist()
    write_clip(src / "sub" / "gaps.mp4", size=(320, 240), times=times, faces=_faces)
    out = tmp_path_factory.mktemp("run")
    results = fer_batch.analyze_many([src], out, smooth=0.5)
    assert [r.status for r in results] == ["ok", "ok"]
    return out


def expected_summary(df: pd.DataFrame, min_track_s: float = MIN_TRACK_S) -> pd.DataFrame:
    """The summary's definition, computed again with plain pandas groupbys over the loaded tables: visibility over
    every face row; means and shares over the rows of tracks visible >= ``min_track_s``, labelled by the arg-max of
    the smoothed probabilities (the run used --smooth)."""
    frames = df.groupby(["video", "frame"], as_index=False)["time_s"].first()
    frames["duration_s"] = frames.groupby("video")["time_s"].diff(-1).abs()
    medians = frames.groupby("video")["time_s"].apply(lambda t: t.diff().median())
    frames["duration_s"] = frames["duration_s"].fillna(frames["video"].map(medians)).fillna(0.0)
    per_video = frames.groupby("video").agg(analysed_frames=("frame", "size"), duration_s=("duration_s", "sum"))

    faces = df[df["face"].notna()].merge(frames[["video", "frame", "duration_s"]], on=["video", "frame"])
    faces["label"] = faces[[f"{k}_smooth" for k in LABELS]].idxmax(axis=1).str.removesuffix("_smooth")
    faces["track_id"] = faces["track_id"].astype("Int64")
    seen = faces.groupby(["video", "track_id"])["duration_s"].sum().rename("seen")
    faces = faces.merge(seen, left_on=["video", "track_id"], right_index=True, how="left")
    faces["counts"] = faces["seen"] >= min_track_s

    def aggregate(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
        g = rows.groupby(keys)
        out = g.agg(
            frames=("frame", "nunique"), faces=("frame", "size"), first_s=("time_s", "min"), last_s=("time_s", "max")
        )
        out["time_visible_s"] = rows.drop_duplicates(keys + ["frame"]).groupby(keys)["duration_s"].sum()
        kept = rows[rows["counts"]]
        out["share_rows"] = kept.groupby(keys).size().reindex(out.index, fill_value=0)
        out = out.join(kept.groupby(keys)[LABELS].mean().add_prefix("mean_"))
        share = pd.crosstab([kept[k] for k in keys], kept["label"], normalize="index")
        share = share.reindex(columns=LABELS, fill_value=0.0).add_prefix("share_")
        out = out.join(share)
        out["emotion"] = share.idxmax(axis=1).str.removeprefix("share_")
        if "quality" in rows:  # tables with #21's columns: the mean quality of every face row
            out["quality"] = g["quality"].mean()
        return out.reset_index()

    tracks = aggregate(faces[faces["track_id"].notna()], ["video", "track_id"])
    tracks["scope"], tracks["counted"] = "track", tracks["time_visible_s"] >= min_track_s
    videos = aggregate(faces, ["video"])
    videos["scope"], videos["track_id"] = "video", pd.NA
    both = pd.concat([videos, tracks], ignore_index=True).merge(per_video.reset_index(), on="video")
    both["track_id"] = both["track_id"].astype("Int64")
    return both


def _sorted(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values(["video", "scope", "track_id"], na_position="first").reset_index(drop=True)


@pytest.mark.slow
def test_summary_equals_a_pandas_groupby(run_dir: Path) -> None:
    got = summarize(run_dir)
    df = fer_batch.load(run_dir)
    want = expected_summary(df)
    assert set(got.columns) == set(want.columns) | {"tracks", "counted_tracks", "headline"}
    got_rows = _sorted(got)[list(want.columns)]
    got_rows["counted"] = got_rows["counted"].astype(object).where(got_rows["scope"] == "track", np.nan)
    pd.testing.assert_frame_equal(got_rows, _sorted(want), check_dtype=False, atol=1e-9)
    short = got[(got["scope"] == "track") & (got["counted"] == False)]  # noqa: E712 - a nullable column
    assert len(short) and (short["time_visible_s"] < MIN_TRACK_S).all()  # the clip has a track too short to count
    # the written file holds the same numbers, and load() never mistakes it for a video's table
    pd.testing.assert_frame_equal(pd.read_parquet(run_dir / SUMMARY), got)
    assert set(fer_batch.load(run_dir)["video"]) == {"astronaut.mp4", "sub/gaps.mp4"}
    assert not [p for p in run_dir.rglob("*") if ".tmp-" in p.name]
    # the clip really exercises the gaps: frames without a face, and two tracks of the first face
    gaps = got[got["video"] == "sub/gaps.mp4"]
    video_row = gaps[gaps["scope"] == "video"].iloc[0]
    assert video_row["frames"] < video_row["analysed_frames"]
    assert video_row["time_visible_s"] < video_row["duration_s"]
    assert (gaps["scope"] == "track").sum() >= 3


def test_frame_durations_by_hand() -> None:
    df = pd.DataFrame({"frame": [0, 0, 1, 2, 3], "time_s": [0.0, 0.0, 0.1, 0.3, 0.4]})
    np.testing.assert_allclose(frame_durations(df).to_numpy(), [0.1, 0.2, 0.1, 0.1])
    np.testing.assert_allclose(frame_durations(df.iloc[:1]).to_numpy(), [0.0])  # a photo


def test_summarize_table_by_hand() -> None:
    """Two labels, three frames, a face-less frame and a face without a track: the numbers worked out by hand."""
    df = pd.DataFrame(
        {
            "video": ["v"] * 5,
            "frame": [0, 0, 1, 2, 3],
            "time_s": [0.0, 0.0, 0.5, 1.0, 2.0],
            "face": pd.array([0, 1, 0, None, 0], dtype="Int32"),
            "track_id": pd.array([0, 1, 0, None, None], dtype="Int64"),
            "x": 0.0, "y": 0.0, "w": 1.0, "h": 1.0, "det_score": 1.0,
            "a": [0.9, 0.2, 0.4, np.nan, 0.7],
            "b": [0.1, 0.8, 0.6, np.nan, 0.3],
            "emotion": pd.Categorical(["a", "b", "b", None, "a"], categories=["a", "b"]),
        }
    )  # fmt: skip
    s = summarize_table(df, min_track_s=0).set_index("scope", append=True)  # every track counts
    video, t0, t1 = s.iloc[0], s.iloc[1], s.iloc[2]
    # durations 0.5, 0.5, 1.0 and the median step 0.5 for the last frame
    assert (video["analysed_frames"], video["duration_s"]) == (4, 2.5)
    assert (video["frames"], video["faces"], video["time_visible_s"]) == (3, 4, 1.5)
    assert video["mean_a"] == pytest.approx((0.9 + 0.2 + 0.4 + 0.7) / 4)
    assert (video["share_a"], video["share_b"]) == (0.5, 0.5)
    assert (t0["track_id"], t0["frames"], t0["time_visible_s"], t0["first_s"], t0["last_s"]) == (0, 2, 1.0, 0.0, 0.5)
    assert t0["mean_a"] == pytest.approx(0.65) and t0["share_b"] == 0.5
    assert (t1["track_id"], t1["frames"], t1["time_visible_s"], t1["emotion"]) == (1, 1, 0.5, "b")
    assert len(s) == 3  # the face without a track is in the video row only


@pytest.mark.slow
def test_timeline_png_per_video(run_dir: Path) -> None:
    import matplotlib.image

    summarize(run_dir)
    pngs = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.png"))
    assert pngs == ["astronaut.mp4.timeline.png", "sub/gaps.mp4.timeline.png"]
    one = matplotlib.image.imread(run_dir / "astronaut.mp4.timeline.png")
    several = matplotlib.image.imread(run_dir / "sub" / "gaps.mp4.timeline.png")
    assert several.shape[0] > one.shape[0]  # a panel per track
    assert one.std() > 0.05  # something is drawn


def test_timeline_path_stays_inside(tmp_path: Path) -> None:
    assert timeline_path(tmp_path, "../../etc/x.mp4") == tmp_path / "etc" / "x.mp4.timeline.png"
    assert timeline_path(tmp_path, "/abs/y.mov") == tmp_path / "abs" / "y.mov.timeline.png"


@pytest.mark.slow
def test_without_matplotlib_writes_parquet_and_one_notice(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy, ignore=shutil.ignore_patterns("*.png", SUMMARY))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with caplog.at_level(logging.WARNING, logger="fer_batch.outputs.summary"):
        summarize(copy)
    assert (copy / SUMMARY).is_file()
    assert not list(copy.rglob("*.png"))
    assert len([r for r in caplog.records if "matplotlib" in r.getMessage()]) == 1


def test_cli_summary(run_dir: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["summary", str(run_dir), "--no-plots"])
    assert res.exit_code == 0, res.output
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["video", "track", "frames", "visible_s", "emotion", "share"]
    assert any(line.split()[:3] == ["astronaut.mp4", "all", "60"] for line in lines)
    assert any(line.split()[:2] == ["sub/gaps.mp4", "0"] for line in lines)
    assert (run_dir / SUMMARY).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(app, ["summary", str(empty)]).exit_code == 2
    assert CliRunner().invoke(app, ["summary", str(tmp_path / "missing")]).exit_code == 2


@pytest.mark.slow
def test_cli_starts_without_matplotlib() -> None:
    """matplotlib is a dependency, but only the code that draws imports it: the CLI does not start slower."""
    code = "import sys, fer_batch, fer_batch.cli, fer_batch.outputs.summary; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_downsample_averages_time_bins_and_keeps_gaps() -> None:
    t = np.arange(10, dtype=np.float64)  # bins of 0-1.8, 1.8-3.6, ... with 5 bins over 0..9
    v = np.array([[0, 1, 2, 3, 4, np.nan, np.nan, 7, 8, 9]], dtype=np.float64).T
    tt, vv = downsample(t, v, 5)
    edges = np.linspace(0, 9, 6)
    bins = np.clip(np.digitize(t, edges) - 1, 0, 4)
    want = pd.Series(v[:, 0]).groupby(bins).mean()  # pandas skips NaN the same way
    np.testing.assert_allclose(vv[:, 0], want.to_numpy())
    np.testing.assert_allclose(tt, pd.Series(t).groupby(bins).mean().to_numpy())
    v[5:7, 0] = np.nan
    v[4, 0] = np.nan  # the bin of t=4, 5 (3.6-5.4) now has nothing: it stays a gap
    assert np.isnan(downsample(t, v, 5)[1][2, 0])
    short = downsample(t, v, 10)
    assert short[0] is t and short[1] is v  # few points: drawn as they are
