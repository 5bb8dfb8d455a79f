"""`fer-batch export` and `fer_batch.aggregate`: every number equals an independent pandas computation over the
tables (1e-6), events past the end / overlapping / without a face are kept, the CSV reads back with the `csv`
module, and every bad request is one line, exit 2, with nothing written."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import fer_batch
from fer_batch.cli import app
from fer_batch.outputs.metadata import META_KEY
from fer_batch.outputs.summary import summarize
from fer_batch.outputs.table import SIGNAL_COLUMNS, schema

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FPS = 10


def fake_rows(video: str, n: int, seed: int, quality: bool = False) -> pd.DataFrame:
    """A table of ``n`` frames at 10 fps: track 0 throughout but frames 5-9, track 1 from 1.2 s to 3.5 s, track 2
    for 3 frames (0.3 s), a face without a track at frame 2, and face-less frames 5-9."""
    rng = np.random.default_rng(seed)
    rows = []
    for f in range(n):
        faces = []
        if not 5 <= f <= 9:
            faces.append(0)
        if 12 <= f < 35:
            faces.append(1)
        if 20 <= f < 23:
            faces.append(2)
        if f == 2:
            faces.append(None)
        for k, tid in enumerate(faces):
            p = rng.dirichlet(np.full(len(LABELS), 0.6)).astype(np.float32)
            rows.append({"video": video, "frame": f, "time_s": f / FPS, "face": k, "track_id": tid,
                         **dict(zip(LABELS, p, strict=True)), "q": float(rng.uniform())})  # fmt: skip
        if not faces:
            rows.append({"video": video, "frame": f, "time_s": f / FPS, "face": None, "track_id": None})
    df = pd.DataFrame(rows)
    for c in ("x", "y", "w", "h", "det_score"):
        df[c] = np.where(df["face"].notna(), 10.0, np.nan)
    df["emotion"] = [LABELS[int(np.argmax(r))] if not np.isnan(r[0]) else None for r in df[LABELS].to_numpy()]
    if quality:
        df["quality"] = np.where(df["face"].notna(), df["q"], np.nan)
    return df.drop(columns="q")


def write_table(path: Path, df: pd.DataFrame, source: Path) -> None:
    """``df`` as a fer-batch table: the real schema (dictionary ``emotion``) and metadata naming its source."""
    # the trust columns (#21) only where ``df`` has them: a table without ``quality`` stands for an older one
    sch = pa.schema([f for f in schema(LABELS) if f.name in df.columns or f.name not in SIGNAL_COLUMNS])
    table = pa.Table.from_pandas(df[sch.names], schema=sch, preserve_index=False)
    meta = {"version": "test", "options": {}, "source": {"path": str(source)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table.replace_schema_metadata({META_KEY: json.dumps(meta).encode()}), path)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    """A run of two videos (one in a subfolder, with a ``quality`` column) whose sources lie in ``src/``."""
    root = tmp_path / "run"
    src = tmp_path / "src"
    src.mkdir()
    write_table(root / "a.parquet", fake_rows("a.mp4", 40, 1), src / "a.mp4")
    write_table(root / "sub" / "b.parquet", fake_rows("sub/b.mp4", 31, 2, quality=True), src / "b.mp4")
    return root


def loaded(run: Path) -> pd.DataFrame:
    df = fer_batch.load(run)
    df["emotion"] = df["emotion"].astype(object)
    return df


# --- the independent computation ---------------------------------------------------------------------------------


def durations(df: pd.DataFrame) -> pd.DataFrame:
    frames = df.groupby(["video", "frame"], as_index=False)["time_s"].first()
    frames["dur"] = -frames.groupby("video")["time_s"].diff(-1)
    med = frames.groupby("video")["time_s"].transform(lambda t: t.diff().median())
    frames["dur"] = frames["dur"].fillna(med).fillna(0.0)
    return frames


def reference(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """frames, mean_<label>, share_<label> (and mean quality) per group, by plain groupbys (no track: -1)."""
    if "track_id" in keys:
        rows = rows.assign(track_id=rows["track_id"].astype("Int64").fillna(-1).astype(int))
    g = rows.groupby(keys)
    out = g["frame"].nunique().rename("frames").to_frame()
    out = out.join(g[LABELS].mean().add_prefix("mean_"))
    share = pd.crosstab([rows[k] for k in keys], rows["emotion"], normalize="index")
    out = out.join(share.reindex(columns=LABELS, fill_value=0.0).add_prefix("share_"))
    if "quality" in rows.columns:
        out["quality"] = g["quality"].mean()
    return out.reset_index()


def assert_close(got: pd.DataFrame, want: pd.DataFrame, keys: list[str]) -> None:
    got = got.copy()
    want = want.copy()
    for df in (got, want):
        if "track_id" in df.columns:
            df["track_id"] = df["track_id"].astype("Int64").fillna(-1).astype(int)
    got = got.sort_values(keys).reset_index(drop=True)
    want = want.sort_values(keys).reset_index(drop=True)
    assert len(got) == len(want)
    for col in want.columns:
        if col in keys or want[col].dtype == object:
            assert got[col].tolist() == want[col].tolist(), col
        else:
            np.testing.assert_allclose(got[col].to_numpy(float), want[col].to_numpy(float), atol=1e-6, err_msg=col)


# --- levels --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bin_s", [1.0, 0.5, 0.3])
def test_second_level_equals_pandas(run: Path, bin_s: float) -> None:
    df = loaded(run)
    got = fer_batch.aggregate(df, by="second", bin=bin_s)
    faces = df[df["face"].notna()].copy()
    faces["start_s"] = np.floor(faces["time_s"] / bin_s) * bin_s
    want = reference(faces, ["video", "track_id", "start_s"])
    want["end_s"] = want["start_s"] + bin_s
    assert list(got.columns[:5]) == ["video", "track_id", "start_s", "end_s", "frames"]
    assert_close(got, want, ["video", "track_id", "start_s"])
    assert set(got.columns) == set(want.columns)


def test_track_and_video_levels_equal_pandas_and_the_summary(run: Path) -> None:
    df = loaded(run)
    tracks = fer_batch.aggregate(df, by="track")
    faces = df[df["face"].notna()].merge(durations(df), on=["video", "frame", "time_s"])
    want = reference(faces[faces["track_id"].notna()], ["video", "track_id"])
    want["time_visible_s"] = faces.groupby(["video", "track_id"])["dur"].sum().to_numpy()
    assert_close(tracks[list(want.columns)], want, ["video", "track_id"])
    videos = fer_batch.aggregate(df, by="video")
    want = reference(faces, ["video"])
    want["faces"] = faces.groupby("video").size().to_numpy()
    assert_close(videos[list(want.columns)], want, ["video"])
    # one code path: summary.parquet's rows are these rows, given the same rules
    summ = summarize(run, plots=False, min_quality=0.0, min_track_s=0.0)
    same = summ[summ["scope"] == "track"].reset_index(drop=True)
    pd.testing.assert_frame_equal(same[tracks.columns.tolist()], tracks, check_dtype=False)


def test_events_past_the_end_overlapping_and_without_a_face(run: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.tsv"
    events.write_text("onset\tduration\ttrial_type\tstim\n"
                      "0\t1.5\tcalm\tA01\n"
                      "1\t2\tstress\tB02\n"  # overlaps the first
                      "0.5\t0.45\tcalm\tn/a\n"  # only face-less frames in a.mp4 (frames 5-9)
                      "100\t5\tstress\tC03\n")  # past the end of both videos  # fmt: skip
    df = loaded(run)
    got = fer_batch.aggregate(df, by="event", events=events)
    assert list(got.columns[:6]) == ["video", "onset", "duration", "trial_type", "stim", "track_id"]
    ev = pd.read_csv(events, sep="\t", na_values=["n/a"], keep_default_na=False)
    want = []
    faces = df[df["face"].notna()]
    for video in sorted(df["video"].unique()):
        vf = faces[faces["video"] == video]
        for _, e in ev.iterrows():
            inside = vf[(vf["time_s"] >= e["onset"]) & (vf["time_s"] < e["onset"] + e["duration"])]
            part = reference(inside, ["track_id"]) if len(inside) else pd.DataFrame({"track_id": [pd.NA], "frames": 0})
            want.append(part.assign(video=video, onset=e["onset"], stim=e["stim"]))
    want = pd.concat(want, ignore_index=True)
    assert_close(got[list(want.columns)].fillna({"stim": "?"}), want.fillna({"stim": "?"}),
                 ["video", "onset", "track_id"])  # fmt: skip
    a = got[got["video"] == "a.mp4"]
    empty = a[a["onset"].isin([0.5, 100.0])]
    assert len(empty) == 2 and empty["track_id"].isna().all() and (empty["frames"] == 0).all()
    # overlapping events both hold the frames they share (1.0-1.5 s)
    assert a[(a["onset"] == 0) & (a["track_id"] == 0)]["frames"].item() == 10
    assert a[(a["onset"] == 1) & (a["track_id"] == 0)]["frames"].item() == 20


def test_an_events_video_column_limits_events_to_that_table(run: Path, tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text("video,onset,duration,trial_type\nsub/b.mp4,0,1,x\nsub/b.mp4,2,1,y\n")
    got = fer_batch.aggregate(loaded(run), by="event", events=events)
    assert set(got["video"]) == {"sub/b.mp4"} and set(got["trial_type"]) == {"x", "y"}


def test_min_quality_and_min_track_s_leave_rows_out(run: Path) -> None:
    df = loaded(run)
    got = fer_batch.aggregate(df, by="second", min_quality=0.5, min_track_s=1.0)
    b = df[(df["video"] == "sub/b.mp4") & df["face"].notna()]
    kept = b[(b["quality"] >= 0.5) & b["track_id"].isin([0, 1])]  # track 2 is 0.3 s, one face has no track
    kept = kept.assign(start_s=np.floor(kept["time_s"]))
    assert_close(got[got["video"] == "sub/b.mp4"].drop(columns="end_s"), reference(kept, ["video", "track_id",
                 "start_s"]), ["video", "track_id", "start_s"])  # fmt: skip
    a = got[got["video"] == "a.mp4"]  # no quality column: every row of a counted track counts
    assert int(a["frames"].sum()) == int(df[(df["video"] == "a.mp4") & df["track_id"].isin([0, 1])].shape[0])


def test_frame_level_is_every_row_in_plain_types_video_first(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "frames.parquet"
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(out)])
    assert res.exit_code == 0, res.output
    table = pq.read_table(out)
    assert table.column_names[0] == "video"
    assert not any(pa.types.is_dictionary(t) for t in table.schema.types)
    assert table.num_rows == len(loaded(run))


# --- files ---------------------------------------------------------------------------------------------------------


def test_csv_reads_back_with_the_csv_module(run: Path, tmp_path: Path) -> None:
    for by in ("frame", "second", "track", "video"):
        out = tmp_path / f"{by}.csv"
        res = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--by", by])
        assert res.exit_code == 0, res.output
        want = fer_batch.aggregate(loaded(run), by=by)
        with open(out, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        assert len(rows) == len(want) and list(rows[0])[0] == "video"
        for row, (_, w) in zip(rows, want.iterrows(), strict=True):
            for col in (c for c in want.columns if c.startswith(("mean_", "share_")) or c in ("frames", "time_s")):
                got = float(row[col]) if row[col] != "" else math.nan
                assert (math.isnan(got) and pd.isna(w[col])) or abs(got - float(w[col])) <= 1e-6, (by, col)


def test_tsv_and_parquet_hold_the_same_numbers(run: Path, tmp_path: Path) -> None:
    for ext in ("tsv", "parquet"):
        res = CliRunner().invoke(app, ["export", str(run), "-o", str(tmp_path / f"s.{ext}"), "--by", "second",
                                       "--bin", "0.5"])  # fmt: skip
        assert res.exit_code == 0, res.output
    tsv = pd.read_csv(tmp_path / "s.tsv", sep="\t")
    par = pd.read_parquet(tmp_path / "s.parquet")
    np.testing.assert_allclose(tsv["mean_happy"], par["mean_happy"], atol=1e-9)


def test_sidecar_events_beside_the_source(run: Path, tmp_path: Path) -> None:
    (tmp_path / "src" / "a_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1\tx\n")
    out = tmp_path / "e.csv"
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--by", "event"])
    assert res.exit_code == 0, res.output
    got = pd.read_csv(out)
    assert set(got["video"]) == {"a.mp4"} and set(got["trial_type"]) == {"x"}


BAD_EVENTS = {
    "no onset": ("duration\ttrial_type\n1\tx\n", "onset"),
    "no duration": ("onset\ttrial_type\n1\tx\n", "duration"),
    "not a number": ("onset\tduration\n1\tlong\n", "'long'"),
    "negative": ("onset\tduration\n-1\t1\n", "onset"),
    "unknown video": ("video\tonset\tduration\nc.mp4\t0\t1\n", "'c.mp4'"),
}


@pytest.mark.parametrize("case", sorted(BAD_EVENTS))
def test_a_bad_events_file_is_one_line_exit_2_and_nothing_written(run: Path, tmp_path: Path, case: str) -> None:
    text, named = BAD_EVENTS[case]
    events = tmp_path / "events.tsv"
    events.write_text(text)
    out_dir = tmp_path / "out"
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(out_dir / "e.csv"), "--by", "event",
                                   "--events", str(events)])  # fmt: skip
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and str(events) in lines[0] and named in lines[0], res.output
    assert not out_dir.exists()


@pytest.mark.parametrize("args, named", [
    (["-o", "{tmp}/out/x.xlsx"], ".xlsx"),
    (["-o", "{tmp}/out/x"], "unknown extension"),
    (["-o", "{tmp}/out/x.csv", "--by", "event", "--events", "{tmp}/missing.tsv"], "missing.tsv"),
    (["-o", "{tmp}/out/x.csv", "--by", "event"], "no sidecar"),
    (["-o", "{tmp}/out/x.csv", "--events", "{tmp}/missing.tsv"], "--by event"),
    (["-o", "{tmp}/out/x.csv", "--bin", "0", "--by", "second"], "--bin"),
    (["-o", "{tmp}/out/x.csv", "--min-quality", "2"], "--min-quality"),
    (["-o", "{tmp}/out/x.csv", "--min-track-s", "-1"], "--min-track-s"),
])  # fmt: skip
def test_a_bad_request_is_one_line_exit_2_and_nothing_written(run: Path, tmp_path: Path, args: list[str],
                                                             named: str) -> None:  # fmt: skip
    res = CliRunner().invoke(app, ["export", str(run), *[a.format(tmp=tmp_path) for a in args]])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and named in lines[0], res.output
    assert not (tmp_path / "out").exists()


def test_a_folder_without_tables_is_exit_2(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export", str(tmp_path), "-o", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "no readable tables" in res.output
    assert not (tmp_path / "x.csv").exists()


def test_out_is_written_whole_or_not_at_all(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "x.csv"
    out.write_text("old")

    def fail(*args: object, **kwargs: object) -> None:
        Path(args[1] if len(args) > 1 else kwargs["path_or_buf"]).write_text("half")  # type: ignore[arg-type]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", lambda self, *a, **k: fail(self, *a, **k))
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(out)])
    assert res.exit_code == 1 and "No space left" in res.output
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir() if p.is_file()] == ["x.csv"]


def test_smoothed_without_smooth_columns_is_one_line_exit_2(run: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(tmp_path / "out" / "x.csv"), "--by", "track",
                                   "--smoothed"])  # fmt: skip
    assert res.exit_code == 2 and "--smooth" in res.output and len(res.output.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_an_analysed_run_exports_the_numbers_pandas_computes(tmp_path: Path) -> None:
    """Real tables (float32 probabilities, dictionary labels, variable frame rate, face-less frames, two faces):
    every level through the CLI, read back and compared with the computation above."""
    from conftest import write_clip

    src = tmp_path / "src"
    src.mkdir()
    times = np.round(np.cumsum([0.0] + [0.1 if i % 3 else 0.25 for i in range(1, 24)]), 3).tolist()

    def faces(i: int) -> list[tuple[int, int, int]]:
        return ([(20 + 3 * i, 30, 90)] if not 8 <= i <= 11 else []) + ([(210, 110, 80)] if i >= 12 else [])

    write_clip(src / "two.mp4", times=times, faces=faces)
    (src / "two_events.tsv").write_text("onset\tduration\ttrial_type\n0\t1.2\ta\n1\t2\tb\n2.5\t0.5\ta\n9\t1\tb\n")
    run = tmp_path / "run"
    assert [r.status for r in fer_batch.analyze_many([src], run)] == ["ok"]
    df = loaded(run)
    faces_df = df[df["face"].notna()]
    assert faces_df["track_id"].nunique() >= 2 and df["face"].isna().any()
    out = {by: tmp_path / f"{by}.csv" for by in ("second", "track", "event")}
    for by, path in out.items():
        res = CliRunner().invoke(app, ["export", str(run), "-o", str(path), "--by", by, "--bin", "0.5"])
        assert res.exit_code == 0, res.output
    sec = faces_df.assign(start_s=np.floor(faces_df["time_s"] / 0.5) * 0.5)
    assert_close(pd.read_csv(out["second"]).drop(columns="end_s"), reference(sec, ["video", "track_id", "start_s"]),
                 ["video", "track_id", "start_s"])  # fmt: skip
    want = reference(faces_df[faces_df["track_id"].notna()], ["video", "track_id"])
    assert_close(pd.read_csv(out["track"])[list(want.columns)], want, ["video", "track_id"])
    events = pd.read_csv(out["event"])
    assert events["onset"].tolist().count(9) == 1 and events.loc[events["onset"] == 9, "frames"].item() == 0
    for onset, duration in ((0, 1.2), (1, 2), (2.5, 0.5)):
        inside = faces_df[(faces_df["time_s"] >= onset) & (faces_df["time_s"] < onset + duration)]
        assert_close(events[events["onset"] == onset][["track_id", "frames", "mean_happy", "share_happy"]],
                     reference(inside, ["track_id"])[["track_id", "frames", "mean_happy", "share_happy"]],
                     ["track_id"])  # fmt: skip


def test_a_damaged_table_is_left_out_with_one_line(run: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (run / "broken.parquet").write_bytes(b"not parquet at all")
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(tmp_path / "x.csv"), "--by", "video"])
    assert res.exit_code == 0, res.output
    assert [r for r in caplog.records if "broken.parquet" in r.getMessage() and "skipped" in r.getMessage()]
    assert len(pd.read_csv(tmp_path / "x.csv")) == 2


def test_the_events_own_columns_are_carried_as_written(run: Path, tmp_path: Path) -> None:
    """A subject ``01`` stays ``01`` (not 1), a number column stays numbers, ``n/a`` is an empty cell."""
    events = tmp_path / "events.tsv"
    events.write_text("onset\tduration\ttrial_type\tsubject\tresponse_time\tstim\n"
                      "0\t1\tx\t01\t0.5\tface_01.png\n1\t1\ty\t02\tn/a\tface_02.png\n")  # fmt: skip
    out = tmp_path / "e.csv"
    res = CliRunner().invoke(app, ["export", str(run), "-o", str(out), "--by", "event", "--events", str(events)])
    assert res.exit_code == 0, res.output
    with open(out, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {r["subject"] for r in rows} == {"01", "02"} and {r["stim"] for r in rows} == {"face_01.png", "face_02.png"}
    assert {r["response_time"] for r in rows} == {"0.5", ""}
    parquet = tmp_path / "e.parquet"
    CliRunner().invoke(app, ["export", str(run), "-o", str(parquet), "--by", "event", "--events", str(events)])
    assert pq.read_table(parquet).schema.field("response_time").type == pa.float64()
