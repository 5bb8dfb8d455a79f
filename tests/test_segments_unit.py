"""Segment planning and joining as units: plans from frame times alone, the parts a join keeps, and the stitching of
track ids on hand-made part tables (no video, no model)."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fer_batch.options import Options
from fer_batch.runs.jobs import Job
from fer_batch.runs.result import InputResult, Tally
from fer_batch.runs.segments import (
    PREROLL_FRAMES,
    PREROLL_S,
    Segment,
    _Stitcher,
    _usable_parts,
    plan_segments,
    scan_times,
    segments_for,
)
from fer_batch.types import Status

JOB = Job(source=Path("/in/long.mp4"), name="long.mp4", table=Path("/out/long.parquet"), annotated=None)


def at_fps(start: float, end: float, fps: float = 10.0) -> list[float]:
    return [round(start + i / fps, 6) for i in range(round((end - start) * fps))]


def test_ranges_of_s_seconds_each_starting_on_a_scan_frame_with_enough_preroll() -> None:
    times = at_fps(0, 30)
    parts = segments_for(JOB, times, Options(), 10.0)
    assert parts is not None
    assert [(p.k, p.keep_from, p.end) for p in parts] == [(0, None, 10.0), (1, 10.0, 20.0), (2, 20.0, None)]
    assert [p.span for p in parts] == [(0.0, 10.0), (10.0, 20.0), (20.0, 30.0)]
    assert [p.job.table.name for p in parts] == ["part-00000.segment", "part-00001.segment", "part-00002.segment"]
    assert len({p.job.table.parent for p in parts}) == 1 and parts[0].job.table.parent != JOB.table.parent
    scans = dict(scan_times(times, Options()))  # time -> analysed frames before it, in the whole-video run
    assert parts[0].options.sampling.start is None
    for p in parts[1:]:
        start = p.options.sampling.start
        assert start in scans and p.keep_from is not None
        assert start <= p.keep_from - PREROLL_S
        kept_at = max(n for t, n in scans.items() if t < p.keep_from)  # the last scan before the kept range
        assert scans[start] <= kept_at - PREROLL_FRAMES
    # the latest such scan (every 0.5 s by default)
    assert [p.options.sampling.start for p in parts] == [None, 7.0, 17.0]


def test_with_start_every_part_is_analysed_from_start_as_the_whole_run_is() -> None:
    parts = segments_for(JOB, at_fps(0, 30), Options.of(start=4.2), 10.0)
    assert parts is not None
    assert [(p.keep_from, p.options.sampling.start, p.end) for p in parts] == [(None, 4.2, 10.0), (10.0, 4.2, 20.0),
                                                                       (20.0, 4.2, None)]  # fmt: skip
    assert parts[0].span == (4.2, 10.0)


def test_with_end_the_last_part_ends_there() -> None:
    parts = segments_for(JOB, at_fps(0, 30), Options.of(end=15.0), 10.0)
    assert parts is not None
    assert [(p.keep_from, p.end, p.span) for p in parts] == [(None, 10.0, (0.0, 10.0)), (10.0, 15.0, (10.0, 15.0))]
    assert [p.options.sampling.end for p in parts] == [10.0, 15.0]


def test_a_gap_longer_than_a_range_makes_no_empty_part() -> None:
    times = at_fps(0, 5) + at_fps(25, 30)  # nothing between 5 s and 25 s (a variable-rate recording paused)
    parts = segments_for(JOB, times, Options(), 10.0)
    assert parts is not None
    assert [(p.k, p.keep_from, p.end) for p in parts] == [(0, None, 10.0), (2, 20.0, None)]
    # its pre-roll lies before the gap: the last scan with 3 s and 20 analysed frames before the kept range
    assert parts[1].options.sampling.start == 2.5


def test_a_video_within_one_range_is_not_split() -> None:
    assert segments_for(JOB, at_fps(0, 9.9), Options(), 10.0) is None
    assert segments_for(JOB, at_fps(0, 30), Options.of(start=21.0), 10.0) is None


@pytest.mark.parametrize("seconds", [0.0, -1.0, math.nan])
def test_segment_seconds_must_be_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        plan_segments(JOB, Options(), seconds)


# --- which parts a join keeps ------------------------------------------------------------------------------------


def seg(k: int, seconds: float = 10.0) -> Segment:
    part = Job(source=JOB.source, name=JOB.name, table=Path(f"/out/.long.segments/part-{k:05d}.segment"),
               annotated=None)  # fmt: skip
    keep = None if k == 0 else k * seconds
    span = (k * seconds, (k + 1) * seconds)
    return Segment(job=part, k=k, keep_from=keep, end=span[1], options=Options(), span=span)


def res(status: Status, error: str | None = None) -> InputResult:
    return InputResult(path=str(JOB.source), status=status, error=error)


def usable(*results: InputResult) -> tuple[list[int], Status, str | None]:
    out = Tally()
    use = _usable_parts([seg(k) for k in range(len(results))], list(results), out)
    return [s.k for s, _ in use], out.status, out.error


def test_a_join_keeps_every_part_that_finished() -> None:
    assert usable(res(Status.OK), res(Status.OK), res(Status.OK)) == ([0, 1, 2], Status.OK, None)


def test_a_failed_part_ends_the_table_there() -> None:
    got = usable(res(Status.OK), res(Status.FAILED, "v.mp4: damaged"), res(Status.OK))
    assert got == ([0], Status.PARTIAL, "segment from 10 s: v.mp4: damaged")


def test_a_partial_part_is_kept_and_ends_the_table() -> None:
    got = usable(res(Status.OK), res(Status.PARTIAL, "stream broken"), res(Status.OK))
    assert got == ([0, 1], Status.PARTIAL, "stream broken")


def test_a_failed_first_part_fails_the_video() -> None:
    assert usable(res(Status.FAILED, "v.mp4: no frame"), res(Status.OK)) == ([], Status.FAILED, "v.mp4: no frame")


# --- stitching track ids -----------------------------------------------------------------------------------------


def part_table(rows: list[tuple[int, int | None, float]]) -> pa.Table:
    """Rows (frame, track_id, x) at 10 fps: a 20-px face at (x, 10), or no face where the track is None."""
    face = [None if t is None else 0 for _, t, _ in rows]
    return pa.table({
        "frame": pa.array([f for f, _, _ in rows], pa.int64()),
        "time_s": pa.array([f / 10 for f, _, _ in rows], pa.float64()),
        "face": pa.array(face, pa.int32()),
        "track_id": pa.array([t for _, t, _ in rows], pa.int64()),
        "x": pa.array([None if t is None else x for _, t, x in rows], pa.float32()),
        "y": pa.array([None if t is None else 10.0 for _, t, _ in rows], pa.float32()),
        "w": pa.array([None if t is None else 20.0 for _, t, _ in rows], pa.float32()),
        "h": pa.array([None if t is None else 20.0 for _, t, _ in rows], pa.float32()),
    })  # fmt: skip


def written(tmp_path: Path, k: int, keep_from: float | None, rows: list[tuple[int, int | None, float]]) -> Segment:
    path = tmp_path / f"part-{k}.segment"
    pq.write_table(part_table(rows), path)
    part = Job(source=JOB.source, name=JOB.name, table=path, annotated=None)
    return Segment(job=part, k=k, keep_from=keep_from, end=None, options=Options(), span=(0.0, 0.0))


def test_the_stitcher_drops_the_preroll_and_carries_track_ids_across_the_boundary(tmp_path: Path) -> None:
    # part 0: track 0 at x=10 on frames 0-9, track 1 at x=60 from frame 5
    first = [(f, 0, 10.0) for f in range(10)] + [(f, 1, 60.0) for f in range(5, 10)]
    # part 1 analysed from frame 5 (pre-roll 5-9), its tracker numbered the faces the other way round; a third face
    # appears at x=110 on frame 12, and frame 14 has no face
    second = ([(f, 1, 10.0) for f in range(5, 14)] + [(f, 0, 60.0) for f in range(5, 14)]
              + [(f, 2, 110.0) for f in range(12, 14)] + [(14, None, 0.0)])  # fmt: skip
    stitcher = _Stitcher()
    a = stitcher.add(written(tmp_path, 0, None, first))
    b = stitcher.add(written(tmp_path, 1, 1.0, second))
    assert a.num_rows == len(first) and a["track_id"].to_pylist() == [t for _, t, _ in first]
    kept = sorted(zip(b["frame"].to_pylist(), b["x"].to_pylist(), b["track_id"].to_pylist(), strict=True),
                  key=lambda r: (r[0], r[1] is None, r[1] or 0))  # fmt: skip
    assert min(f for f, _, _ in kept) == 10  # the pre-roll's rows are dropped
    ids_at = {x: {t for _, xx, t in kept if xx == x} for x in (10.0, 60.0, 110.0)}
    assert ids_at == {10.0: {0}, 60.0: {1}, 110.0: {2}}  # same faces, same ids; the new face a new id
    assert (14, None, None) in kept  # a frame without a face keeps its null track


def test_a_face_that_moved_away_across_the_boundary_gets_a_new_id(tmp_path: Path) -> None:
    first = [(f, 0, 10.0) for f in range(10)]
    second = [(f, 0, 200.0) for f in range(5, 15)]  # never overlaps the face of part 0
    stitcher = _Stitcher()
    stitcher.add(written(tmp_path, 0, None, first))
    b = stitcher.add(written(tmp_path, 1, 1.0, second))
    assert set(b["track_id"].to_pylist()) == {1}
