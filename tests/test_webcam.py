"""``fer-batch webcam`` without a camera: a generated clip played at real-time pace stands in for it."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest
from fakes import FakeClassifier, FakeClock, FakeDetector

from fer_batch._atomic import TMP_MARK
from fer_batch.errors import CameraError
from fer_batch.live.capture import LatestFrame
from fer_batch.live.recorder import draw
from fer_batch.live.session import output_paths, run_webcam
from fer_batch.live.sources import Captured, RealtimeFile, open_source, redact
from fer_batch.options import Options
from fer_batch.outputs.draw import Painter
from fer_batch.outputs.metadata import read_metadata
from fer_batch.types import Faces

REPO = Path(__file__).resolve().parents[1]
FPS = 10


def _write_clip(path: Path, seconds: float) -> None:
    """160x120 H.264 at 10 fps with the astronaut's face drifting sideways (a face the detector finds)."""
    from skimage import data

    face = cv2.resize(np.ascontiguousarray(data.astronaut()[0:300, 100:340, ::-1]), (100, 125))[:120]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for i in range(round(seconds * FPS)):
            img = np.full((120, 160, 3), 90, np.uint8)
            x = 20 + i % 20
            img[:, x : x + 100] = face
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="bgr24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


@pytest.fixture(scope="session")
def clip11(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 s, so a ``--seconds 10`` run is stopped by the clock, not by the clip's end."""
    path = tmp_path_factory.mktemp("webcam") / "clip11.mp4"
    _write_clip(path, 11.0)
    return path


@pytest.fixture(scope="session")
def clip2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("webcam") / "clip2.mp4"
    _write_clip(path, 2.0)
    return path


def _recording(path: Path) -> tuple[str, list[float]]:
    """Codec name and frame times of a recording, decoded to the end (so an unplayable file fails here)."""
    with av.open(str(path)) as c:
        codec = c.streams.video[0].codec_context.name
        times = [float(f.pts * f.time_base) for f in c.decode(video=0)]
    return codec, times


def _no_leftovers(out: Path) -> None:
    assert not [p.name for p in out.iterdir() if TMP_MARK in p.name]


@pytest.mark.slow  # a model on up to 100 frames: a second or two
def test_ten_seconds_at_real_time_pace(clip11: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """A 10 s session, preview asked for on a machine without a display, on a fake clock: the file's frames are
    released as their times fall due without waiting for them, so the capture is exact and the test is fast."""
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    out = tmp_path / "out"
    clock = FakeClock()
    with caplog.at_level(logging.INFO, logger="fer_batch"):
        r = run_webcam(RealtimeFile(clip11, clock=clock), out, Options(), seconds=10, annotate=True, preview=True,
                       clock=clock)  # fmt: skip
    assert sum("preview" in rec.getMessage() for rec in caplog.records) == 1  # one notice, no window
    assert clock.slept == pytest.approx(10.0)  # paced: the source waited for each frame's time (10 s, the last)
    tables = list(out.glob("webcam-*.parquet"))
    assert tables == [r.table] and re.fullmatch(r"webcam-\d{8}-\d{6}\.parquet", r.table.name)
    _no_leftovers(out)
    meta = read_metadata(r.table)
    assert meta is not None and meta["stopped_by"] == "seconds" == r.stopped_by and meta["status"] == "ok"
    assert meta["frames_captured"] == r.frames_captured == 100  # every frame before 10 s, at 10 fps
    codec, rec_t = _recording(tables[0].with_name(tables[0].stem + ".annotated.mp4"))
    assert codec == "h264" and np.allclose(rec_t, np.arange(100) / FPS, atol=1e-3)  # capture times are the PTS
    df = pq.read_table(tables[0]).to_pandas()
    frames = df.drop_duplicates("frame")
    t = frames["time_s"].to_numpy()
    assert np.all(np.diff(t) > 0) and np.all(np.diff(frames["frame"].to_numpy()) > 0)
    assert frames["frame"].iloc[-1] == 99 and meta["frames_analysed"] == len(frames)  # the newest is analysed last
    np.testing.assert_allclose(np.asarray(rec_t)[frames["frame"].to_numpy()], t, atol=1e-3)  # same timestamps
    assert df["emotion"].notna().mean() > 0.9  # the face is found and classified


def test_a_file_is_released_at_its_frames_times_and_late_frames_at_once(clip2: Path) -> None:
    """``RealtimeFile`` paces itself on its clock: each frame when its PTS falls due, none dropped when late."""
    clock = FakeClock()
    source = RealtimeFile(clip2, clock=clock)
    t0 = clock.monotonic()
    try:
        got = [source.read()[2] - t0 for _ in range(5)]
        assert got == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4]) and clock.slept == pytest.approx(0.4)
        clock.advance(1.0)  # the reader fell a second behind: frames 5-14 were due by now
        late = [source.read() for _ in range(10)]
        assert all(ok for ok, _, _ in late) and clock.slept == pytest.approx(0.4)  # released at once, in order
        assert source.read()[2] - t0 == pytest.approx(1.5)  # frame 15 waits for its time again
    finally:
        source.close()


def _models(sleep_s: float = 0.0, interrupt_at: int | None = None) -> tuple[FakeDetector, FakeClassifier]:
    """Fake models whose analysis takes ``sleep_s`` a frame, or is interrupted (Ctrl-C) at call ``interrupt_at``."""

    def on_call(n: int) -> None:
        if n == interrupt_at:
            raise KeyboardInterrupt
        time.sleep(sleep_s)

    return FakeDetector(), FakeClassifier(on_call=on_call)


@pytest.mark.slow
def test_slow_analysis_skips_to_newest_frame_records_all(clip2: Path, tmp_path: Path,
                                                          ) -> None:  # fmt: skip
    models = _models(sleep_s=0.25)  # 2.5 frame intervals per analysis
    r = run_webcam(RealtimeFile(clip2), tmp_path, Options(), annotate=True, models=models)
    assert r.stopped_by == "source" and r.frames_captured == 20
    df = pq.read_table(r.table).to_pandas()
    analysed = df["frame"].drop_duplicates().to_numpy()
    assert len(analysed) == r.frames_analysed < r.frames_captured
    assert np.diff(analysed).max() > 1 and analysed[-1] == 19  # gaps, and the newest frame is taken
    assert read_metadata(r.table)["frames_analysed"] == len(analysed)  # type: ignore[index]
    assert r.recording is not None and len(_recording(r.recording)[1]) == 20


def test_keyboard_interrupt_mid_run_keeps_a_complete_table(clip2: Path, tmp_path: Path,
                                                           ) -> None:  # fmt: skip
    models = _models(interrupt_at=4)
    r = run_webcam(RealtimeFile(clip2), tmp_path, Options(), annotate=True, preview=False, models=models)
    assert r.stopped_by == "interrupt" and r.frames_analysed == 3
    _no_leftovers(tmp_path)
    meta = read_metadata(r.table)
    assert meta is not None and meta["stopped_by"] == "interrupt" and meta["frames_analysed"] == 3
    frames = pq.read_table(r.table).column("frame").to_numpy()
    assert len(np.unique(frames)) == 3 and np.all(np.diff(frames) >= 0)  # the three analysed frames, in order
    assert r.recording is not None and len(_recording(r.recording)[1]) == r.frames_captured >= 3


@pytest.mark.slow
def test_ctrl_c_finishes_table_and_recording(clip11: Path, tmp_path: Path) -> None:
    """A real SIGINT to the CLI process once it is recording: exit 0, table and recording complete."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "fer_batch.cli", "webcam", "--camera", str(clip11), "--out", str(out), "--annotate",
           "--no-preview"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not list(out.glob(f"*.annotated.mp4{TMP_MARK}*")):  # the recorder opens its file on the first frame
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    (table,) = out.glob("webcam-*.parquet")
    _no_leftovers(out)
    meta = read_metadata(table)
    assert meta is not None and meta["stopped_by"] == "interrupt"
    assert 1 <= meta["frames_captured"] < 110
    # the table is readable and complete (it may be empty: the signal can beat the first analysis)
    assert len(np.unique(pq.read_table(table).column("frame").to_numpy())) == meta["frames_analysed"]
    _, rec_t = _recording(table.with_name(table.stem + ".annotated.mp4"))
    assert len(rec_t) == meta["frames_captured"]


def test_sigterm_stops_like_ctrl_c(clip2: Path, tmp_path: Path) -> None:
    """SIGTERM mid-run (raised in-process); a fallback handler turns a missing handler into a failure, not a kill."""

    def unhandled(signum: int, frame: object) -> None:
        raise AssertionError("SIGTERM reached the previous handler: the run did not install its own")

    previous = signal.signal(signal.SIGTERM, unhandled)
    try:
        def on_call(n: int) -> None:  # while the third frame is analysed
            if n == 3:
                signal.raise_signal(signal.SIGTERM)

        models = FakeDetector(), FakeClassifier(on_call=on_call)
        r = run_webcam(RealtimeFile(clip2), tmp_path, Options(), annotate=True, models=models)
        assert signal.getsignal(signal.SIGTERM) is unhandled  # restored after the run
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert r.stopped_by == "terminate" and r.frames_analysed == 3  # the frame in analysis is finished and kept
    assert read_metadata(r.table)["frames_analysed"] == 3  # type: ignore[index]
    assert r.recording is not None and len(_recording(r.recording)[1]) == r.frames_captured
    _no_leftovers(tmp_path)


@pytest.mark.slow
def test_missing_camera_index_exits_1_with_one_line(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "fer_batch.cli", "webcam", "--camera", "99", "--out", str(tmp_path / "o")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120, env={**os.environ, "DISPLAY": ""})
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot open camera 99 (tried "), proc.stderr
    if sys.platform.startswith("linux"):
        assert "/dev/video99 via V4L2" in lines[0]
    assert not (tmp_path / "o").exists()  # nothing was started, so nothing was written


def test_open_source_says_what_it_tried(tmp_path: Path) -> None:
    with pytest.raises(CameraError, match=r"cannot open camera /dev/video98 \(tried /dev/video98 via V4L2\)"):
        open_source("/dev/video98")
    with pytest.raises(CameraError, match="no such file"):
        open_source(str(tmp_path / "missing.mp4"))
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(CameraError, match="tried it as a video file"):
        open_source(str(junk))
    assert redact("rtsp://user:secret@cam.local:554/live") == "rtsp://cam.local:554/live"
    assert redact("http://cam.local/stream") == "http://cam.local/stream"


def test_mailbox_hands_over_only_the_newest_frame() -> None:
    box = LatestFrame()
    img = np.zeros((2, 2, 3), np.uint8)
    for i in range(3):
        box.put(Captured(i, i / 10, img))
    item = box.take(timeout=1)
    assert item is not None and item.index == 2
    box.close()
    assert box.take(timeout=5) is None and box.closed


def test_draw_marks_faces_and_leaves_the_frame_alone() -> None:
    labels = ["angry", "happy"]
    bgr = np.full((240, 320, 3), 100, np.uint8)
    faces = Faces(frame=np.array([0]), boxes=np.array([[100, 60, 180, 160]], np.float32),
                  scores=np.ones(1, np.float32), landmarks=np.zeros((1, 5, 2), np.float32), track_id=np.array([3]),
                  probs=np.array([[0.2, 0.8]], np.float32))  # fmt: skip
    out = draw(bgr, faces, Painter(labels, 320, 240), "camera 30.0 fps")
    assert np.all(bgr == 100)
    assert np.any(out[60:160, 98] != 100)  # the outline, just left of the box
    assert np.all(out[60:160, 100:180] == 100)  # nothing drawn over the face
    assert np.any(out[-5:, :40] != 100)  # the caption
    # a face in the bottom-left corner: the caption moves to the next free corner, and never covers a face
    low = faces.replace(boxes=np.array([[0, 150, 120, 240]], np.float32))
    out = draw(bgr, low, Painter(labels, 320, 240), "camera 30.0 fps")
    assert np.all(out[150:240, 0:120] == 100) and np.any(out[-5:, -40:] != 100)
    everywhere = faces.replace(frame=np.zeros(4, int), boxes=np.array(
        [[0, 200, 140, 240], [180, 200, 320, 240], [0, 0, 140, 40], [180, 0, 320, 40]], np.float32),
        scores=np.ones(4, np.float32), landmarks=np.zeros((4, 5, 2), np.float32), track_id=np.arange(4),
        probs=np.tile([0.2, 0.8], (4, 1)).astype(np.float32))  # fmt: skip
    out = draw(bgr, everywhere, Painter(labels, 320, 240), "camera 30.0 fps")
    for x1, y1, x2, y2 in everywhere.boxes.astype(int):
        assert np.all(out[y1:y2, x1:x2] == 100)  # no caption at all rather than over a face


def test_output_names_never_overwrite(tmp_path: Path) -> None:
    from datetime import datetime

    now = datetime(2024, 5, 6, 7, 8, 9)
    table, rec = output_paths(tmp_path, annotate=True, now=now)
    assert table.name == "webcam-20240506-070809.parquet" and rec is not None
    assert rec.name == "webcam-20240506-070809.annotated.mp4"
    table.touch()
    table2, rec2 = output_paths(tmp_path, annotate=False, now=now)
    assert table2.name == "webcam-20240506-070809-1.parquet" and rec2 is None
