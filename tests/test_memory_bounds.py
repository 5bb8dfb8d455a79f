"""Memory has a ceiling: frame size checked from the header, windows sized by bytes, allocation failures contained."""

from __future__ import annotations

import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import REPO, one_face, write_clip

import fer_batch
from fer_batch.analysis import engine as pipeline
from fer_batch.analysis.detect.scan_size import MAX_SCAN_PIXELS, small_size
from fer_batch.media.imagesize import image_size
from fer_batch.media.probe import VideoInfo
from fer_batch.runs.one_input import WINDOW_BYTES, WINDOWS_IN_FLIGHT, window_sizes


def png_bomb(path: Path, width: int, height: int) -> None:
    """A valid grayscale PNG of ``width`` x ``height`` black pixels: a few hundred KB that decode to gigabytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


@pytest.mark.slow
def test_a_decompression_bomb_is_refused_from_its_header_in_bounded_memory(tmp_path: Path) -> None:
    bomb = tmp_path / "in" / "bomb.png"
    bomb.parent.mkdir()
    png_bomb(bomb, 16000, 16000)  # 250 KB on disk, 768 MB as BGR, 23 GB peak when analysed
    assert bomb.stat().st_size < 1_000_000
    write_clip(bomb.parent / "fine.mp4", n=3, faces=one_face)
    def run(folder: Path, out: Path) -> tuple[dict[str, tuple[str, str | None]], int]:
        code = (
            "import resource, sys, fer_batch\n"
            f"res = fer_batch.analyze_many([{str(folder)!r}], {str(out)!r})\n"
            "print({r.path.rsplit('/', 1)[-1]: (r.status, r.error) for r in res})\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
        )
        proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        results_line, peak_kib = proc.stdout.strip().splitlines()[-2:]
        return eval(results_line), int(peak_kib)  # noqa: S307 — our own child's repr of plain tuples

    results, peak_kib = run(bomb.parent, tmp_path / "out")
    assert results["bomb.png"][0] == "failed" and "--max-pixels" in results["bomb.png"][1]
    assert results["fine.mp4"][0] == "ok"
    alone = tmp_path / "alone"
    alone.mkdir()
    (bomb.parent / "fine.mp4").rename(alone / "fine.mp4")
    _, base_kib = run(alone, tmp_path / "out2")  # the same process without the bomb: models, libraries, one clip
    assert peak_kib - base_kib < 200 * 1024  # decoding the bomb alone would take 768 MB for the BGR image


@pytest.mark.parametrize("ext", [".png", ".jpg", ".bmp", ".tif", ".webp", ".ppm", ".gif"])
def test_image_headers_give_the_size_without_decoding(tmp_path: Path, ext: str) -> None:
    img = np.zeros((37, 53, 3), np.uint8)
    path = tmp_path / f"x{ext}"
    if ext == ".gif":
        import av

        with av.open(str(path), "w") as out:
            s = out.add_stream("gif", rate=1)
            s.width, s.height, s.pix_fmt = 53, 37, "rgb8"
            f = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="rgb8")
            out.mux(s.encode(f))
            out.mux(s.encode())
    else:
        assert cv2.imwrite(str(path), img)
    assert image_size(path) == (53, 37)


def test_max_pixels_refuses_large_frames_and_the_run_goes_on(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    write_clip(src / "big.mp4", n=3, size=(320, 240))
    write_clip(src / "small.mp4", n=3, size=(96, 64))
    res = {Path(r.path).name: r for r in fer_batch.analyze_many(src, tmp_path / "out", max_pixels=96 * 64)}
    assert res["big.mp4"].status == "failed" and "320x240" in res["big.mp4"].error
    assert res["small.mp4"].status == "ok"


@pytest.mark.parametrize(("w", "h"), [(1280, 720), (3840, 2160), (7680, 4320), (15360, 8640)])
@pytest.mark.parametrize("render", [False, True])
def test_windows_are_sized_by_bytes(w: int, h: int, render: bool) -> None:
    info = VideoInfo(width=w, height=h, rotation=0, fps=30.0, duration_s=10.0, frames=300)
    sizes = window_sizes(info, 32, render)
    per_frame = w * h * 1.5  # the 4:2:0 planes every crop is cut from
    assert sizes.batch >= 1 and sizes.queue >= 2
    # three windows are in flight at once (scanned, tracked, finished): together within the budget
    assert WINDOWS_IN_FLIGHT * sizes.batch * per_frame <= max(WINDOW_BYTES, WINDOWS_IN_FLIGHT * per_frame)
    assert sizes.queue * per_frame <= max(WINDOW_BYTES, 2 * per_frame)
    if render:
        held = WINDOWS_IN_FLIGHT * sizes.hold * per_frame
        assert held <= max(WINDOW_BYTES, WINDOWS_IN_FLIGHT * sizes.batch * per_frame)
    if w * h <= 1280 * 720:
        assert sizes.batch == 32  # ordinary videos keep the measured default


def test_min_face_never_raises_a_scan_beyond_the_cap() -> None:
    for w, h in [(7680, 4320), (16000, 16000)]:
        sw, sh = small_size(w, h, 640, min_face=24)
        assert sw * sh <= MAX_SCAN_PIXELS * 1.05  # multiples of 32 round up a little
    assert small_size(1280, 720, 640, min_face=24) == (864, 480)  # unchanged below the cap


@pytest.mark.slow
def test_an_allocation_failure_does_not_poison_the_inputs_after_it(tmp_path: Path, monkeypatch) -> None:
    """Like onnxruntime's arena after a huge request, the cached classifier keeps failing once it has failed; the
    failed input must drop it, so the next inputs get a fresh one."""
    src = tmp_path / "in"
    src.mkdir()
    for name in ("a_huge.mp4", "b.mp4", "c.mp4"):
        write_clip(src / name, n=3, faces=one_face)
    real_predict = pipeline.Classifier.predict_crops

    def predict(self, member, crops):
        if getattr(self, "poisoned", False) or pipeline_state["first"]:
            pipeline_state["first"] = False
            self.poisoned = True
            raise MemoryError("std::bad_alloc")
        return real_predict(self, member, crops)

    pipeline_state = {"first": True}
    pipeline._load_models.cache_clear()
    monkeypatch.setattr(pipeline.Classifier, "predict_crops", predict)
    res = {Path(r.path).name: r for r in fer_batch.analyze_many(src, tmp_path / "out")}
    pipeline._load_models.cache_clear()
    assert res["a_huge.mp4"].status == "failed" and "out of memory" in res["a_huge.mp4"].error
    assert res["b.mp4"].status == "ok" and res["c.mp4"].status == "ok"

