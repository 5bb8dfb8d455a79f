"""Summaries that never headline noise (#21 item 3), in `summary`, the report and the Python API alike: short tracks
listed but not counted, shares over rows of enough quality (and how many), smoothed labels under --smooth,
one headline per counted track, ties shown as ties, "no reliable face" when nothing counts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_export import LABELS, write_table
from typer.testing import CliRunner

from fer_batch.cli import app
from fer_batch.outputs.aggregate import HEADLINE_MIN_QUALITY, MIN_TRACK_S, aggregate
from fer_batch.outputs.report import write_report
from fer_batch.outputs.summary import summarize, summarize_table

FPS = 10


def table(n: int, faces: dict[int, list[tuple[int, str]]], quality: dict[int, float] | None = None,
          smooth: dict[int, str] | None = None) -> pd.DataFrame:  # fmt: skip
    """``n`` frames at 10 fps; ``faces[frame]`` = [(track_id, label)], each face 0.9 sure of its label;
    ``quality[frame]`` sets its faces' quality (else 0.9); ``smooth[frame]`` the smoothed label (else the raw one)."""
    rows = []
    for f in range(n):
        for k, (tid, label) in enumerate(faces.get(f, [])):
            p = np.full(len(LABELS), 0.1 / (len(LABELS) - 1))
            p[LABELS.index(label)] = 0.9
            s = np.full(len(LABELS), 0.1 / (len(LABELS) - 1))
            s[LABELS.index((smooth or {}).get(f, label))] = 0.9
            rows.append({"frame": f, "face": k, "track_id": tid, "emotion": label, **dict(zip(LABELS, p, strict=True)),
                         "quality": (quality or {}).get(f, 0.9),
                         **{f"{lb}_smooth": v for lb, v in zip(LABELS, s, strict=True)}})  # fmt: skip
        if not faces.get(f):
            rows.append({"frame": f, "face": None, "track_id": None, "emotion": None})
    df = pd.DataFrame(rows)
    for c in [*LABELS, "quality"]:  # a video without any face still has the columns
        if c not in df.columns:
            df[c] = np.nan
    df.insert(0, "video", "v.mp4")
    df.insert(2, "time_s", df["frame"] / FPS)
    for c in ("x", "y", "w", "h", "det_score"):
        df[c] = np.where(df["face"].notna(), 10.0, np.nan)
    df["face"] = df["face"].astype("Int32")
    df["track_id"] = df["track_id"].astype("Int64")
    cols = ["video", "frame", "time_s", "face", "track_id", "x", "y", "w", "h", "det_score", *LABELS, "emotion"]
    rest = [c for c in df.columns if c not in cols]
    if smooth is None:
        rest = [c for c in rest if not c.endswith("_smooth")]
    return df[cols + rest]


def video_row(summary: pd.DataFrame) -> pd.Series:
    return summary[summary["scope"] == "video"].iloc[0]


def test_a_one_frame_false_face_is_listed_but_never_headlined() -> None:
    """The cartoon: one false face in 1 of 132 frames."""
    s = summarize_table(table(132, {40: [(0, "neutral")]}))
    v = video_row(s)
    assert v["emotion"] is None or pd.isna(v["emotion"])
    assert v["headline"] == "no reliable face" and v["share_rows"] == 0 and v["counted_tracks"] == 0
    track = s[s["scope"] == "track"].iloc[0]
    assert track["counted"] == False and track["frames"] == 1  # noqa: E712 - listed, not counted


def test_a_short_track_beside_a_long_one_leaves_the_shares() -> None:
    faces = {f: [(0, "happy")] for f in range(60)}
    for f in range(20, 25):  # 0.5 s of an "angry" false face
        faces[f] = [(0, "happy"), (1, "angry")]
    s = summarize_table(table(60, faces))
    v = video_row(s)
    assert (v["emotion"], v["share_happy"], v["share_angry"], v["share_rows"]) == ("happy", 1.0, 0.0, 60)
    assert v["headline"] == "happy 100% (of 60 face-rows)"
    # with every track counted (an export's default), the false face is in the numbers again
    every = summarize_table(table(60, faces), min_track_s=0)
    assert video_row(every)["share_angry"] == pytest.approx(5 / 65)


def test_shares_rest_on_rows_of_enough_quality_and_say_how_many() -> None:
    faces = {f: [(0, "happy" if f < 30 else "sad")] for f in range(40)}
    s = summarize_table(table(40, faces, quality={f: 0.2 for f in range(30)}), min_quality=0.5)
    v = video_row(s)
    assert (v["emotion"], v["share_sad"], v["share_rows"], v["faces"]) == ("sad", 1.0, 10, 40)
    assert "of 10 face-rows" in v["headline"]
    # the default is the one documented constant
    pd.testing.assert_frame_equal(summarize_table(table(40, faces)),
                                  summarize_table(table(40, faces), min_quality=HEADLINE_MIN_QUALITY))  # fmt: skip


def test_with_smooth_the_shares_use_the_smoothed_columns() -> None:
    faces = {f: [(0, "happy" if f % 3 else "angry")] for f in range(30)}
    s = summarize_table(table(30, faces, smooth={f: "happy" for f in range(30)}))
    assert video_row(s)["share_happy"] == 1.0
    raw = summarize_table(table(30, faces))  # no _smooth columns: the raw labels
    assert video_row(raw)["share_angry"] == pytest.approx(10 / 30)


def test_two_people_get_a_headline_each_and_a_tie_is_a_tie() -> None:
    """One neutral and one happy person, 50/50: never "mostly happy"."""
    faces = {f: [(0, "neutral"), (1, "happy")] for f in range(30)}
    v = video_row(summarize_table(table(30, faces)))
    assert v["emotion"] == "happy/neutral" and v["counted_tracks"] == 2
    assert v["headline"] == "track 0: neutral 100%; track 1: happy 100%"
    one = {f: [(0, "neutral" if f % 2 else "happy")] for f in range(30)}
    v = video_row(summarize_table(table(30, one)))
    assert v["emotion"] == "happy/neutral" and v["headline"].startswith("tie: happy 50% = neutral 50%")


def test_a_photo_or_a_clip_shorter_than_the_minimum_counts_a_face_seen_throughout() -> None:
    photo = video_row(summarize_table(table(1, {0: [(0, "happy"), (1, "neutral")]})))
    assert photo["counted_tracks"] == 2 and photo["headline"] == "track 0: happy 100%; track 1: neutral 100%"
    short = {f: [(0, "sad")] for f in range(6)}  # a 0.6-s clip, the face in every frame
    assert video_row(summarize_table(table(6, short)))["headline"] == "sad 100% (of 6 face-rows)"
    half = {f: [(0, "sad")] for f in range(3)}  # ... or in half of it: not counted
    assert video_row(summarize_table(table(6, half)))["headline"] == "no reliable face"


def test_min_track_s_default_is_the_constant() -> None:
    faces = {f: [(0, "happy")] for f in range(round(MIN_TRACK_S * FPS) - 1)}  # visible just under the minimum
    assert video_row(summarize_table(table(40, faces)))["headline"] == "no reliable face"
    assert aggregate(table(40, faces), "video")["headline"].item().startswith("happy 100%")  # export: all count


@pytest.fixture
def run(tmp_path: Path) -> Path:
    root = tmp_path / "run"
    write_table(root / "empty.parquet", table(20, {}).drop(columns="quality", errors="ignore"), tmp_path / "e.mp4")
    both = {f: [(0, "neutral"), (1, "happy")] if f < 15 else [(0, "neutral")] for f in range(30)}  # 1: 1.5 s
    write_table(root / "two.parquet", table(30, both).assign(video="two.mp4").drop(columns="quality"),
                tmp_path / "two.mp4")  # fmt: skip
    return root


def test_the_report_says_no_reliable_face_a_headline_per_person_and_what_a_share_is(run: Path) -> None:
    html = write_report(run, thumbnails=0).read_text()
    assert "no reliable face" in html
    assert "track 0: neutral 100%; track 1: happy 100%" in html
    assert html.count("mostly happy") == 1  # track 1's own line only, never the video's
    assert "<b>share</b> is the fraction of face-rows" in html


def test_cli_summary_takes_the_rules(run: Path) -> None:
    res = CliRunner().invoke(app, ["summary", str(run), "--no-plots"])
    assert res.exit_code == 0, res.output
    two = [line.split() for line in res.stdout.splitlines() if line.split()[:1] == ["two.mp4"]]
    assert two[0][1] == "all" and "(per" in two[0] and "happy" not in two[0]  # one line per person instead
    res = CliRunner().invoke(app, ["summary", str(run), "--no-plots", "--min-track-s", "2"])
    assert res.exit_code == 0, res.output
    s = summarize(run, plots=False, min_track_s=2)
    assert s["headline"].dropna().tolist() == ["no reliable face", "neutral 100% (of 30 face-rows)"]
    bad = CliRunner().invoke(app, ["summary", str(run), "--min-quality", "1.5"])
    assert bad.exit_code == 2 and "--min-quality" in bad.output
