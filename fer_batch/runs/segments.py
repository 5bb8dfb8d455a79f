"""Long videos split into time segments, analysed as separate tasks and joined into the one table of the video.

Why: one long video is otherwise one task, so a cluster (or a local pool) cannot spread it. Each segment starts
a little before its range, on a frame where the whole-video run makes a full-frame scan (``ScanSchedule``), so the
detector and tracker are in the same state at the segment's start as in the unsplit run; the join drops that
pre-roll and uses it to stitch track ids across the boundaries. Segments run on any executor, not only Dask.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from fer_batch._atomic import TMP_MARK, hidden_name, remove_stale
from fer_batch.analysis.engine import Action, ScanSchedule
from fer_batch.analysis.track import Tracker, iou_matrix, linear_assignment
from fer_batch.errors import DecodeError
from fer_batch.media.probe import Untimed, is_image, open_input, packet_times, video_stream
from fer_batch.media.sampling import Sampler
from fer_batch.options import Options
from fer_batch.outputs.metadata import read_table_meta
from fer_batch.outputs.table import ParquetSink
from fer_batch.runs.jobs import Job, is_complete
from fer_batch.runs.result import InputResult, Tally
from fer_batch.types import Status

SEGMENT_SUFFIX = ".segment"  # part tables: Parquet, but not named *.parquet so load() never mistakes them
STITCH_FRAMES = Tracker().max_missed + 1  # analysed frames each side of a boundary where tracks may continue
PREROLL_S = 3.0  # seconds analysed before a segment's range (rows dropped) so detector and tracker state match
PREROLL_FRAMES = 20  # and at least this many analysed frames


@dataclass(frozen=True)
class Segment:
    """One time range [keep_from, end) of a long video: a task of its own, written to a part table.

    The part is analysed from ``options.start`` (a little before ``keep_from``, on a frame where the whole-video run
    makes a full-frame scan) so that the tracker and the detection schedule are in the same state at ``keep_from``
    as in a run over the whole video; the join drops the rows before ``keep_from`` and uses them to stitch track ids.
    """

    job: Job  # the part's job: same source, ``table`` is the part file
    k: int
    keep_from: float | None  # None: from the first frame analysed (the first segment)
    end: float | None
    options: Options  # the run's options with this part's start/end
    span: tuple[float, float]  # the [start, end) seconds this part's rows cover, as the table's metadata records


def segments_dir(table: Path) -> Path:
    """The hidden folder of a table's parts (a short name where the table's name is long)."""
    return table.parent / f"{hidden_name(table.name, len('.segments'))}.segments"


def frame_times(path: Path) -> list[float] | None:
    """Presentation times of every video frame, from a demux-only pass (no decoding), or None where unknown."""
    try:
        with open_input(path) as c:
            if not c.streams.video:
                return None
            s = video_stream(c)
            tb = s.time_base  # read while the container is open: the stream's memory goes with it
            if tb is None:
                return None
            pts = [p for p, _ in packet_times(c, s)]
    except Untimed:
        return None  # only the decoder's clock knows the times: the video runs whole
    except (av.error.FFmpegError, OSError, DecodeError):
        return None  # the whole-video task reports the problem
    return [float(p * tb) for p in sorted(pts)]


def scan_times(times: list[float], options: Options) -> list[tuple[float, int]]:
    """(time, analysed-frame count before it) of the frames where a whole-video run would scan the full frame.

    Uses the decoder's sampler and the analyzer's own schedule, so a segment started on such a frame scans on the
    same frames from then on.
    """
    sampler = Sampler(options)
    decisions = [d for i, t in enumerate(times) for d in sampler.push(i, t)] + sampler.flush()
    analysed = [times[i] for i, a in decisions if a]
    schedule = ScanSchedule(options.tracking.detect_every, options.tracking.scan_interval, regions=True)
    return [(t, n) for n, t in enumerate(analysed) if schedule.next(t, True) is Action.SCAN]


def plan_segments(job: Job, options: Options, seconds: float) -> list[Segment] | None:
    """Time ranges [k·S, (k+1)·S) of presentation time covering the video (and --start/--end), or None to run whole.

    The first range is open below and the last open above, so every frame falls in exactly one range.
    """
    if not seconds > 0:
        raise ValueError("--segment-seconds must be positive")
    if is_image(job.source):
        return None
    times = frame_times(job.source)
    return segments_for(job, times, options, seconds) if times else None


def segments_for(job: Job, times: list[float], options: Options, seconds: float) -> list[Segment] | None:
    """``plan_segments`` for a video whose frames are at ``times`` (seconds, ascending): the plan from the times
    alone, so it is tested without a file."""
    lo = max(times[0], options.sampling.start or times[0])
    hi = min(times[-1], options.sampling.end) if options.sampling.end is not None else times[-1]
    # only ranges that hold a frame: a gap longer than S in a variable-rate video would be an empty part
    ks = sorted({math.floor(t / seconds + 1e-9) for t in times if lo - 1e-9 <= t <= hi + 1e-9})
    if len(ks) < 2:
        return None
    first, last = ks[0], ks[-1]
    scans = scan_times(times, options.replace(start=None, end=None)) if options.sampling.start is None else []
    folder = segments_dir(job.table)
    parts = []
    for k in ks:
        keep = None if k == first else k * seconds
        start = options.sampling.start
        if keep is not None and options.sampling.start is None:
            before = [n for t, n in scans if t < keep - 1e-9]
            n_keep = before[-1] if before else 0
            ok = [t for t, n in scans if t <= keep - PREROLL_S + 1e-9 and n <= n_keep - PREROLL_FRAMES]
            start = ok[-1] if ok else None  # None: from the beginning, as the whole-video run
        elif keep is not None:  # with --start the whole-video run's schedule begins there: so do the parts
            start = options.sampling.start
        end = options.sampling.end if k == last else (k + 1) * seconds
        # every frame of part k lies in [k·S, (k+1)·S), and within --start/--end
        span = (
            max(k * seconds, options.sampling.start or -math.inf),
            min((k + 1) * seconds, options.sampling.end or math.inf),
        )
        part = Job(source=job.source, name=job.name, table=folder / f"part-{k:05d}{SEGMENT_SUFFIX}", annotated=None)
        parts.append(Segment(job=part, k=k, keep_from=keep, end=end, options=options.replace(start=start, end=end),
                             span=span))  # fmt: skip
    return parts


def clean_all_leftovers(jobs: list[Job], segments: dict[Job, list[Segment]], resume: bool) -> None:
    """``clean_leftovers`` for every job whose folder holds a temporary file or a hidden segments folder: each
    folder is listed once, so a resumed run of thousands of inputs does not list its folder thousands of times."""
    listed: dict[Path, bool] = {}
    for job in jobs:
        folder = job.table.parent
        if folder not in listed:
            try:
                names = os.listdir(folder)
            except OSError:
                names = []
            listed[folder] = any(TMP_MARK in n or n.endswith(".segments") for n in names)
        if listed[folder]:
            clean_leftovers(job, segments.get(job), resume)


def clean_leftovers(job: Job, parts: list[Segment] | None, resume: bool) -> None:
    """Remove what a killed segmented run left for ``job`` that this run will not use.

    Why: a stopped run leaves part tables, their temporary files and the hidden folder; a rerun that does not split
    this input (or splits it otherwise, or does not resume) would otherwise leave them there for good. Finished parts
    of this run's plan stay when resuming: ``finished_part`` reuses them.
    """
    folder = segments_dir(job.table)
    remove_stale(job.table)
    if not folder.is_dir():
        return
    if parts is None or not resume:
        shutil.rmtree(folder, ignore_errors=True)
        return
    keep = {seg.job.table.name for seg in parts}
    for leftover in folder.iterdir():
        if leftover.name not in keep:
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)


def finished_part(seg: Segment) -> InputResult | None:
    """The result recorded in a part table left complete by a stopped run (``--resume``), or None."""
    if not is_complete(seg.job, seg.options):
        return None
    meta = read_table_meta(seg.job.table)
    if meta is None:
        return None
    return InputResult(path=str(seg.job.source), status=meta.status, error=meta.error,
                       frames_decoded=meta.frames_decoded, frames_analysed=meta.frames_analysed, faces=meta.faces,
                       duration_s=meta.duration_s, table=str(seg.job.table))  # fmt: skip


def _xyxy(table: pa.Table) -> np.ndarray:
    x, y = table["x"].to_numpy(zero_copy_only=False), table["y"].to_numpy(zero_copy_only=False)
    w, h = table["w"].to_numpy(zero_copy_only=False), table["h"].to_numpy(zero_copy_only=False)
    return np.stack([x, y, x + w, y + h], axis=1).astype(np.float32)


def _ids(table: pa.Table) -> np.ndarray:
    """track_id as float64 (NaN where null)."""
    ids: np.ndarray = table["track_id"].to_numpy(zero_copy_only=False).astype(np.float64)
    return ids


def stitch(prev: pa.Table, overlap: pa.Table, local_ids: set[int], next_id: int) -> tuple[dict[int, int], int]:
    """Map a part's local track ids to global ones, from the frames both parts analysed.

    ``prev`` holds the previous part's kept rows (global ids) and ``overlap`` this part's pre-roll rows of the same
    frames. On the last ``STITCH_FRAMES`` shared frames, faces are paired frame by frame by box overlap; each local
    id takes the global id it was paired with most often. Every other local id gets a new global id, in the order the
    tracker created them.
    """
    votes: dict[tuple[int, int], int] = {}
    shared = np.intersect1d(np.unique(prev["frame"].to_numpy()), np.unique(overlap["frame"].to_numpy()))
    for frame in shared[-STITCH_FRAMES:]:
        a = prev.filter(pc.equal(prev["frame"], frame))
        b = overlap.filter(pc.equal(overlap["frame"], frame))
        ia, ib = _ids(a), _ids(b)
        a, b = a.filter(pa.array(~np.isnan(ia))), b.filter(pa.array(~np.isnan(ib)))
        ia, ib = ia[~np.isnan(ia)], ib[~np.isnan(ib)]
        iou = iou_matrix(_xyxy(a), _xyxy(b))
        for i, j in linear_assignment(1.0 - iou):
            if iou[i, j] >= 0.5:
                votes[(int(ib[j]), int(ia[i]))] = votes.get((int(ib[j]), int(ia[i])), 0) + 1
    mapping: dict[int, int] = {}
    taken: set[int] = set()
    for (loc, glob), _ in sorted(votes.items(), key=lambda kv: -kv[1]):
        if loc not in mapping and glob not in taken:
            mapping[loc] = glob
            taken.add(glob)
    for tid in sorted(local_ids - set(mapping)):
        mapping[tid], next_id = next_id, next_id + 1
    return mapping, next_id


def _remap(table: pa.Table, mapping: dict[int, int]) -> pa.Table:
    col = _ids(table)
    valid = ~np.isnan(col)
    out = np.full(len(col), -1, dtype=np.int64)
    out[valid] = [mapping[int(t)] for t in col[valid]]
    arr = pa.array(out, mask=~valid, type=pa.int64())
    return table.set_column(table.schema.get_field_index("track_id"), table.schema.field("track_id"), arr)


class _Stitcher:
    """Reads the part tables in order, drops each one's pre-roll and maps its track ids to the video's ids."""

    def __init__(self) -> None:
        self.prev: pa.Table | None = None  # the latest part's kept rows that hold any row, global ids
        self.next_id = 0

    def add(self, seg: Segment) -> pa.Table:
        part = pq.read_table(seg.job.table).replace_schema_metadata(None)
        overlap = part.slice(0, 0)
        if seg.keep_from is not None:
            keep_mask = pc.greater_equal(part["time_s"], seg.keep_from - 1e-9)
            overlap, part = part.filter(pc.invert(keep_mask)), part.filter(keep_mask)
        ids = _ids(part)
        local = {int(t) for t in ids[~np.isnan(ids)]}
        if self.prev is None:
            mapping = {t: t for t in local}
            self.next_id = max(local, default=-1) + 1
        else:
            mapping, self.next_id = stitch(self.prev, overlap, local, self.next_id)
        part = _remap(part, mapping)
        if part.num_rows or self.prev is None:
            self.prev = part
        return part


def _usable_parts(parts: list[Segment], results: list[InputResult], out: Tally) -> list[tuple[Segment, InputResult]]:
    """The parts up to the first that did not finish cleanly; sets ``out``'s status and error accordingly."""
    use: list[tuple[Segment, InputResult]] = []
    for seg, res in zip(parts, results, strict=True):
        if res.status is Status.FAILED:
            if not use:
                out.set(Status.FAILED, res.error)
            else:
                out.set(Status.PARTIAL, f"segment from {seg.keep_from or 0:g} s: {res.error}")
            break
        use.append((seg, res))
        if res.status is Status.PARTIAL:
            out.set(Status.PARTIAL, res.error)
            break
    return use


def join_segments(job: Job, parts: list[Segment], results: list[InputResult], options: Options) -> InputResult:
    """Join the part tables of one video into its table, in order, track ids stitched; remove the parts.

    Runs as a task (on a worker, or locally). The table is finished by a ``ParquetSink``, like every table.
    Parts are kept up to the first that did not finish cleanly: a part that failed ends the table there
    (``partial``), as a stream that breaks midway would; if the first part failed, so does the video.
    """
    t0 = time.perf_counter()
    remove_stale(job.table)  # a join killed earlier
    out = Tally(duration_s=next((r.duration_s for r in results if r.duration_s is not None), None))
    use = _usable_parts(parts, results, out)
    if out.status is Status.FAILED:
        out.frames_decoded = max((r.frames_decoded for r in results), default=0)
        shutil.rmtree(segments_dir(job.table), ignore_errors=True)
        return out.result(job.source, sum(r.wall_s for r in results))
    first = use[0][0].job.table
    meta = read_table_meta(first)
    if meta is None:
        raise ValueError(f"{first}: a finished segment without its metadata")
    stitcher = _Stitcher()
    info = []
    with ParquetSink(job.table, [], table_schema=pq.read_schema(first).remove_metadata()) as sink:
        for seg, res in use:
            part = stitcher.add(seg)
            sink.write(part)
            analysed = len(np.unique(part["frame"].to_numpy())) if part.num_rows else 0
            out.frames_decoded = max(out.frames_decoded, res.frames_decoded)
            out.frames_analysed += analysed
            out.faces += part.num_rows - part["face"].null_count
            info.append({"from": seg.keep_from, "end": seg.end, "analysed_from": seg.options.sampling.start,
                         "frames_analysed": analysed, "wall_s": round(res.wall_s, 3)})  # fmt: skip
        sink.meta = meta.replace(options=options.as_dict(), frames_decoded=out.frames_decoded, faces=out.faces,
                                 frames_analysed=out.frames_analysed, status=out.status, error=out.error,
                                 segments=[list(seg.span) for seg in parts], segment_runs=info)  # fmt: skip
    shutil.rmtree(segments_dir(job.table), ignore_errors=True)
    return out.result(job.source, sum(r.wall_s for r in results) + time.perf_counter() - t0, job.table)
