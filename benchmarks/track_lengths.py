"""How long tracks stay visible in analysed runs: the measurement behind ``MIN_TRACK_S`` (fer_batch.outputs.aggregate).

A summary must not headline a false face, and false faces are brief; a real person in a recording stays. This
prints every track's visible time (the summary's ``time_visible_s``) per video, and for a few candidate minimums how
many tracks, face-rows and videos' headlines they would leave out.

    fer-batch analyze ../shared/media/videos -o /tmp/tracks -q
    python benchmarks/track_lengths.py /tmp/tracks [more run folders]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fer_batch.outputs.summary import summarize  # noqa: E402

CANDIDATES = (0.25, 0.5, 1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders written by fer-batch analyze")
    args = parser.parse_args()
    parts = [summarize(run, plots=False, min_track_s=0.0).assign(run=str(run)) for run in args.runs]
    summary = pd.concat(parts, ignore_index=True)
    tracks = summary[summary["scope"] == "track"]
    videos = summary[summary["scope"] == "video"]
    pd.set_option("display.width", 160)
    print(tracks[["run", "video", "track_id", "frames", "time_visible_s", "emotion"]]
          .sort_values("time_visible_s").to_string(index=False))  # fmt: skip
    print(f"\n{len(videos)} videos, {len(tracks)} tracks, {int((videos['faces'] > 0).sum())} videos with a face")
    print("min_track_s  tracks_left_out  face_rows_left_out  videos_left_without_a_counted_track")
    for m in CANDIDATES:  # the summary's own rule (a track seen throughout a shorter video or photo still counts)
        ruled = pd.concat([summarize(run, plots=False, min_track_s=m) for run in args.runs], ignore_index=True)
        short = ruled[(ruled["scope"] == "track") & (ruled["counted"] == False)]  # noqa: E712 - nullable column
        lost = ruled[(ruled["scope"] == "video") & (ruled["tracks"] > 0) & (ruled["counted_tracks"] == 0)]
        print(f"{m:11.2f}  {len(short):15d}  {int(short['faces'].sum()):18d}  {len(lost):35d}")

if __name__ == "__main__":
    main()
