"""Issue 26 items 6, 7, 8 and 11: odd but valid media and names — every frame annotated, image sizes found wherever
the header keeps them, long names, and "partial" only when something is missing."""

from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq

from fer_batch.options import Options
from fer_batch.runs.runner import run_many


def negative_ts(path: Path, n: int = 60, start: float = -3.0) -> list[float]:
    """A transport stream whose first half has negative presentation times (as cut recordings do)."""
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w", format="mpegts", options={"avoid_negative_ts": "disabled"}) as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 120, "yuv420p"
        s.time_base = s.codec_context.time_base = tb
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.full((120, 160, 3), i * 4, np.uint8), format="rgb24")
            f.pts, f.time_base = round((start + i / 10) / tb), tb
            out.mux(s.encode(f))
        out.mux(s.encode())
    with av.open(str(path)) as c:
        vs = c.streams.video[0]
        return [float(f.pts * vs.time_base) for f in c.decode(vs)]


def test_annotate_writes_every_frame_including_negative_times(tmp_path: Path) -> None:
    src = tmp_path / "in" / "neg.ts"
    src.parent.mkdir()
    times = negative_ts(src)
    assert len(times) == 60 and times[0] < -2.9  # the clip really starts before 0
    out = tmp_path / "out"
    res = run_many([src], out, Options(detector="none"), quiet=True, annotate=True)
    assert [r.status for r in res] == ["ok"]
    table = pq.read_table(out / "neg.parquet")
    with av.open(str(out / "neg.annotated.mp4")) as c:
        vs = c.streams.video[0]
        shown = [float(f.pts * vs.time_base) for f in c.decode(vs)]
    assert len(shown) == table.num_rows == 60  # 30 were hidden behind the MP4 edit list
    np.testing.assert_allclose(np.diff(shown), np.diff(table["time_s"].to_numpy()), atol=2e-3)  # frame by frame
