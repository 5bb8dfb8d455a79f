"""The detector's schedule (``ScanSchedule``) and the engine that follows it, with fake models: no file, no model.

Why: the schedule decides on which frames the detector scans the whole frame, looks in regions or carries the
tracker's boxes; the segment planner replays it, so it must depend only on the stream, never on windows.
"""

from __future__ import annotations

from itertools import accumulate

import numpy as np
import pytest
from fakes import FakeClassifier, FakeRegionDetector, fake_models

from fer_batch.analysis.engine import Action, Analyzer, ScanSchedule
from fer_batch.options import Options
from fer_batch.types import Decoded

S, R, C = Action.SCAN, Action.REGIONS, Action.CARRY


def actions(schedule: ScanSchedule, times: list[float], planes: bool = True) -> list[Action]:
    return [schedule.next(t, planes) for t in times]


def at_fps(n: int, fps: float = 10.0) -> list[float]:
    return [i / fps for i in range(n)]


def test_every_frame_scanned_at_a_zero_interval() -> None:
    assert actions(ScanSchedule(1, 0.0, regions=True), at_fps(5)) == [S] * 5


def test_detect_every_carries_between_detector_frames_and_looks_in_regions_between_scans() -> None:
    schedule = ScanSchedule(3, 100.0, regions=True)
    assert actions(schedule, at_fps(9)) == [S, C, C, R, C, C, R, C, C]


def test_a_scan_at_least_every_interval() -> None:
    # 10 fps, interval 0.5 s: a scan at 0, 0.5, 1.0 ... (times summed from 0.1 s steps put the third scan at
    # 0.9999999999999999 s, a hair short of the interval: the schedule allows for that)
    times = list(accumulate([0.0] + [0.1] * 11))
    assert times[10] - times[5] < 0.5
    got = actions(ScanSchedule(1, 0.5, regions=True), times)
    assert got == [S, R, R, R, R, S, R, R, R, R, S, R]


def test_a_scan_falls_due_only_on_a_detector_frame() -> None:
    # due at 0.25 s, but frames 3 and 5 are carried: the next detector frame (4) scans, and the interval restarts there
    got = actions(ScanSchedule(2, 0.25, regions=True), at_fps(10))
    assert got == [S, C, R, C, S, C, R, C, S, C]


def test_the_schedule_follows_time_not_frame_count() -> None:
    times = [0.0, 0.1, 0.2, 1.5, 1.6, 1.7]  # a gap in a variable-rate stream
    assert actions(ScanSchedule(1, 0.5, regions=True), times) == [S, R, R, S, R, R]


@pytest.mark.parametrize("planes, regions", [(False, True), (True, False)])
def test_without_planes_or_a_region_detector_every_detector_frame_is_scanned(planes: bool, regions: bool) -> None:
    got = actions(ScanSchedule(2, 100.0, regions=regions), at_fps(6), planes=planes)
    assert got == [S, C, S, C, S, C]


def test_the_first_analysed_frame_is_scanned_whatever_its_time() -> None:
    assert actions(ScanSchedule(1, 0.5, regions=True), [7.3, 7.4]) == [S, R]


# --- the engine on windows, with fake models --------------------------------------------------------------------


def decoded(n: int, fps: float = 10.0, every: int = 1) -> list[Decoded]:
    """``n`` decoded 96x64 frames with planes; every ``every``-th one analysed (as the sampler marks them)."""
    y = np.zeros((64, 96), np.uint8)
    uv = np.zeros((32, 48), np.uint8)
    return [Decoded(index=i, time_s=i / fps, analyse=i % every == 0, gray=y if i % every == 0 else None,
                    yuv=(y, uv, uv) if i % every == 0 else None) for i in range(n)]  # fmt: skip


def run_in_windows(options: Options, items: list[Decoded], window: int) -> tuple[FakeRegionDetector, list]:
    detector, classifier = FakeRegionDetector(), FakeClassifier()
    analyzer = Analyzer(options, models=(detector, classifier))
    rows = []
    for k in range(0, len(items), window):
        found = analyzer.process(items[k : k + window])
        rows += list(zip(found.faces.frame.tolist(), found.faces.track_id.tolist(), strict=True))
    return detector, rows


@pytest.mark.parametrize("window", [1, 3, 7, 40])
def test_the_engine_scans_the_same_frames_whatever_the_window_size(window: int) -> None:
    options = Options.of(detect_every=2, scan_interval=1.0)
    items = decoded(40)
    detector, rows = run_in_windows(options, items, window)
    assert [i for call in detector.scanned for i in call] == [0, 10, 20, 30]  # a scan every 1 s of detector frames
    assert detector.regions_on == [i for i in range(0, 40, 2) if i % 10]  # the other detector frames: regions
    ref_detector, ref_rows = run_in_windows(options, items, 40)
    assert rows == ref_rows and len(rows) == 40  # one face a frame (carried frames too), one track throughout
    assert {t for _, t in rows} == {0}


def test_frames_not_analysed_are_never_shown_to_the_models() -> None:
    detector, classifier = fake_models(regions=True)
    analyzer = Analyzer(Options.of(scan_interval=0.0), models=(detector, classifier))
    found = analyzer.process(decoded(9, every=3))
    assert found.frames.index.tolist() == [0, 3, 6] and found.faces.frame.tolist() == [0, 3, 6]
    assert [i for call in detector.scanned for i in call] == [0, 3, 6] and classifier.calls == 1
    np.testing.assert_allclose(found.faces.probs, np.tile(classifier.probs, (3, 1)))
