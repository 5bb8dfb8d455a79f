"""The annotated MP4: H.264 yuv420p, faststart, one frame per source frame at the source's PTS, audio kept."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 — pa.compute
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from fer_batch.cli import app
from fer_batch.media.probe import VideoInfo, probe
from fer_batch.options import Options
from fer_batch.outputs.palette import FER_COLOURS, bgr, bgr_colours
from fer_batch.outputs.render import Renderer, output_size
from fer_batch.runs.one_input import run_video
from fer_batch.types import Decoded, Faces

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
# variable frame rate: irregular gaps (ms) between frames, about 2 s in all
GAPS_MS = [33, 50, 41, 33, 67, 25, 40, 33, 100, 33, 45, 33, 60, 33, 20, 33, 80, 33, 33, 50] * 3


def _face() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut()[20:240, 140:330], (150, 170), interpolation=cv2.INTER_AREA)


def make_clip(path: Path, size: tuple[int, int] = (320, 240), audio: str = "aac", rate: int = 22050) -> Path:
    """A VFR clip with the astronaut's face moving over a grey background and a mono tone."""
    w, h = size
    face = _face()
    if face.shape[0] > h - 40:
        face = cv2.resize(face, (face.shape[1] * (h - 40) // face.shape[0], h - 40))
    pts = np.concatenate([[0], np.cumsum(GAPS_MS)])
    fmt = "mp4" if audio == "aac" else "matroska"
    with av.open(str(path), "w", format=fmt) as c:
        if w % 2 or h % 2:  # x264 cannot store odd sides in 4:2:0
            vs = c.add_stream("ffv1", rate=30)
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv444p"
        else:
            vs = c.add_stream("libx264", rate=30, options={"crf": "30", "preset": "ultrafast", "bf": "2"})
            vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.time_base = vs.codec_context.time_base = Fraction(1, 1000)
        aus = c.add_stream(audio, rate=rate)
        aus.layout = "mono"
        for i, t in enumerate(pts):
            img = np.full((h, w, 3), 90, np.uint8)
            x = 20 + i * (w - face.shape[1] - 40) // len(pts)
            img[20 : 20 + face.shape[0], x : x + face.shape[1]] = face
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = int(t), Fraction(1, 1000)
            c.mux(vs.encode(frame))
        c.mux(vs.encode())
        seconds = (pts[-1] + 40) / 1000
        n = int(rate * seconds)
        tone = 0.1 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)
        afmt = "fltp" if audio == "aac" else "s16"
        samples = tone.astype(np.float32) if audio == "aac" else (tone * 32767).astype(np.int16)
        for k in range(0, n, 1024):
            chunk = np.ascontiguousarray(samples[None, k : k + 1024])
            af = av.AudioFrame.from_ndarray(chunk, format=afmt, layout="mono")
            af.sample_rate, af.pts = rate, k
            c.mux(aus.encode(af))
        c.mux(aus.encode())
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("render") / "vfr.mp4")


def video_pts(path: Path) -> list[Fraction]:
    with av.open(str(path)) as c:
        return [f.pts * f.time_base for f in c.decode(video=0)]


def audio_duration(path: Path) -> float:
    """Seconds of audio, from the packets (first start to last end)."""
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        spans = [(p.pts, p.pts + p.duration) for p in c.demux(s) if p.size and p.pts is not None]
        return float((max(e for _, e in spans) - min(b for b, _ in spans)) * s.time_base)


def top_level_boxes(path: Path) -> list[str]:
    """The MP4's top-level box types in file order."""
    data, pos, out = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        out.append(kind.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return out


def check_output(out: Path, source: Path, size: tuple[int, int] | None = None) -> None:
    with av.open(str(out)) as c:
        v = c.streams.video[0]
        assert v.codec_context.name == "h264"
        assert v.codec_context.pix_fmt == "yuv420p"
        if size is not None:
            assert (v.codec_context.width, v.codec_context.height) == size
        assert len(c.streams.audio) == 1
    src_pts, out_pts = video_pts(source), video_pts(out)
    assert len(out_pts) == len(src_pts)
    assert out_pts == src_pts  # exact: same time base, same PTS, VFR kept
    assert abs(audio_duration(out) - audio_duration(source)) <= 0.05
    boxes = top_level_boxes(out)
    assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat")  # +faststart


def test_clip_is_vfr(clip: Path) -> None:
    gaps = np.diff([float(t) for t in video_pts(clip)])
    assert gaps.max() > 2 * gaps.min()  # otherwise the PTS checks below prove nothing about VFR


def test_run_video_annotates(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "vfr.annotated.mp4"
    result, _ = run_video(clip, Options.of(fps=5, batch_size=4), video_name="vfr.mp4",
                          table_path=tmp_path / "t.parquet",
                          annotate_path=out)  # fmt: skip
    assert result.status == "ok", result.error
    assert result.faces > 0
    check_output(out, clip, size=(640, 480))  # auto scale: a 240-px video is written twice as large
    assert not list(tmp_path.glob("*.tmp-*"))


@pytest.fixture(scope="module")
def table(clip: Path) -> Path:
    path = clip.with_name("vfr.parquet")
    result, _ = run_video(clip, Options(), video_name="vfr.mp4", table_path=path)
    assert result.status == "ok" and result.faces > 0
    return path


@pytest.mark.slow
def test_cli_render_from_table(clip: Path, table: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.mp4"
    res = CliRunner().invoke(app, ["render", str(clip), str(table), "-o", str(out), "--scale", "1"])
    assert res.exit_code == 0, res.output
    check_output(out, clip, size=(320, 240))
    # boxes are drawn: the rendered frames differ from the source where a face is, and not in the corner
    t = pq.read_table(table).to_pandas()
    row = t.dropna(subset=["x"]).iloc[0]
    with av.open(str(clip)) as a, av.open(str(out)) as b:
        fa = next(f for i, f in enumerate(a.decode(video=0)) if i == row.frame).to_ndarray(format="bgr24")
        fb = next(f for i, f in enumerate(b.decode(video=0)) if i == row.frame).to_ndarray(format="bgr24")
    x1, y1 = int(row.x), int(row.y)
    edge = np.abs(fa[y1 : y1 + int(row.h), x1 - 2].astype(int) - fb[y1 : y1 + int(row.h), x1 - 2]).mean()  # outline
    corner = np.abs(fa[-8:, -8:].astype(int) - fb[-8:, -8:]).mean()
    assert edge > 40 and corner < 8


@pytest.mark.slow
def test_cli_render_scale(clip: Path, table: Path, tmp_path: Path) -> None:
    out = tmp_path / "half.mp4"
    res = CliRunner().invoke(app, ["render", str(clip), str(table), "-o", str(out), "--scale", "0.5"])
    assert res.exit_code == 0, res.output
    check_output(out, clip, size=(160, 120))


def test_cli_render_missing_table(clip: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["render", str(clip), str(tmp_path / "none.parquet"), "-o", str(tmp_path / "o.mp4")])
    assert res.exit_code == 2
    assert not (tmp_path / "o.mp4").exists()


def test_cli_render_refuses_a_table_of_another_video(clip: Path, table: Path, tmp_path: Path) -> None:
    t = pq.read_table(table)
    shifted = t.set_column(t.column_names.index("time_s"), "time_s", pa.compute.add(t.column("time_s"), 0.5))
    pq.write_table(shifted, tmp_path / "other.parquet")
    out = tmp_path / "o.mp4"
    res = CliRunner().invoke(app, ["render", str(clip), str(tmp_path / "other.parquet"), "-o", str(out)])
    assert res.exit_code == 1
    assert "does not belong" in res.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.parquet"]


def _decoded(info: VideoInfo, times: list[float], analyse: list[bool]) -> list[Decoded]:
    img = np.full((info.height, info.width, 3), 100, np.uint8)
    return [Decoded(index=i, time_s=t, analyse=a, bgr=img) for i, (t, a) in enumerate(zip(times, analyse, strict=True))]


def test_exception_mid_run_leaves_nothing(clip: Path, tmp_path: Path) -> None:
    info = probe(clip)
    out = tmp_path / "x.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with Renderer(clip, out, info, LABELS) as rend:
            rend.write(_decoded(info, [0.0, 0.033, 0.066], [True] * 3), Faces())
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_latest_result_stays_between_sampled_frames(clip: Path, tmp_path: Path) -> None:
    """Faces of an analysed frame stay on the frames after it, until the next analysed frame replaces them."""
    info = probe(clip)
    out = tmp_path / "hold.mp4"
    times = [i / 10 for i in range(6)]
    face = Faces(frame=np.array([0]), boxes=np.array([[100, 60, 200, 180]], np.float32), scores=np.ones(1, np.float32),
                 landmarks=np.zeros((1, 5, 2), np.float32), track_id=np.array([7]),
                 probs=np.array([[0, 0, 0, 1, 0, 0, 0]], np.float32))  # fmt: skip
    with Renderer(clip, out, info, LABELS, scale=1) as rend:
        window = _decoded(info, times, [True, False, False, True, False, False])
        rend.write(window[:2], face)  # frame 0 has a face
        rend.write(window[2:], Faces())  # frame 3 is analysed and has none
    with av.open(str(out)) as c:
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(video=0)]
    assert len(frames) == 6
    happy = np.array(bgr(FER_COLOURS["happy"]))
    left_edge = [np.abs(f[90:150, 98].astype(int) - happy).sum(axis=1).mean() for f in frames]  # the outline
    assert all(d < 60 for d in left_edge[:3])  # the happy-coloured box on frames 0, 1, 2
    assert all(d > 200 for d in left_edge[3:])  # gone from frame 3 on


def test_odd_size_pcm_audio_is_padded_and_reencoded(tmp_path: Path) -> None:
    """yuv420p needs even sides (padded by one pixel); PCM audio cannot stay as it is in MP4, so it becomes AAC."""
    src = make_clip(tmp_path / "odd.mkv", size=(161, 121), audio="pcm_s16le", rate=48000)
    info = probe(src)
    out = tmp_path / "odd.mp4"
    with Renderer(src, out, info, LABELS, scale=1) as rend:
        with av.open(str(src)) as c:
            items = [Decoded(index=i, time_s=float(f.pts * f.time_base), analyse=False,
                             bgr=f.to_ndarray(format="bgr24")) for i, f in enumerate(c.decode(video=0))]  # fmt: skip
        rend.write(items, Faces())
    assert rend.audio_mode == "aac"
    check_output(out, src, size=(162, 122))
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "aac"


def test_output_size_and_palette() -> None:
    assert output_size(321, 241, 1.0) == (322, 242, 321, 241)
    assert output_size(1280, 720, 0.5) == (640, 360, 640, 360)
    assert output_size(1281, 721, 0.5)[:2] == (640, 360)
    colours = bgr_colours(["calm", "excited", "bored", "Happy"])
    assert colours[3] == bgr(FER_COLOURS["happy"])
    assert len(set(colours)) == 4


@pytest.mark.slow
def test_planes_path_draws_what_the_bgr_path_draws(clip: Path, tmp_path: Path) -> None:
    """Frames handed over as 4:2:0 planes (only the drawn rectangle converted) look like frames drawn on BGR."""
    import fer_batch.media.reader as decode
    from fer_batch.runs.one_input import run_video

    planes, bgr = tmp_path / "planes.mp4", tmp_path / "bgr.mp4"
    assert run_video(clip, Options(), video_name="c", annotate_path=planes, annotate_scale=1)[0].status == "ok"
    original = decode.FrameReader.__init__

    def bgr_only(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if kwargs.get("images") is decode.ReaderImages.RENDER:
            kwargs["images"] = decode.ReaderImages.ALL
        original(self, *args, **kwargs)

    decode.FrameReader.__init__ = bgr_only  # type: ignore[method-assign]
    try:
        assert run_video(clip, Options(), video_name="c", annotate_path=bgr, annotate_scale=1)[0].status == "ok"
    finally:
        decode.FrameReader.__init__ = original  # type: ignore[method-assign]
    with av.open(str(planes)) as a, av.open(str(bgr)) as b:
        fa = [f.to_ndarray(format="bgr24").astype(np.int16) for f in a.decode(video=0)]
        fb = [f.to_ndarray(format="bgr24").astype(np.int16) for f in b.decode(video=0)]
    assert len(fa) == len(fb) > 0
    assert max(float(np.abs(x - y).mean()) for x, y in zip(fa, fb, strict=True)) < 4.0
