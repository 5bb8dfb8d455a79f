"""`fer-batch report`: the page's content from a generated run, self-contained, and as a real browser shows it."""

from __future__ import annotations

import base64
import fractions
import os
import shutil
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import av
import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import REPO, astronaut_face, write_clip
from typer.testing import CliRunner

import fer_batch
from fer_batch.cli import app
from fer_batch.media.probe import probe
from fer_batch.media.reader import FrameReader, ReaderImages
from fer_batch.options import Options
from fer_batch.outputs.report import PAGES_DIR, REPORT, THUMB_PX, THUMBS_PER_TRACK, grab_frames, write_report
from fer_batch.outputs.report import parts as report_mod
from fer_batch.outputs.summary import summarize_table


def _two_faces(i: int) -> list[tuple[int, int, int]]:
    """A face from frame 3 to 7 and again from 14 (a new track), a second one from frame 6 to 17."""
    out = []
    if 3 <= i <= 7 or i >= 14:
        out.append((20 + 4 * i, 40, 90))
    if 6 <= i <= 17:
        out.append((200, 100 - 2 * i, 80))
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with the bundled sample, a clip of two people (three tracks) in a subfolder, a photo and a broken
    file; smoothed columns and annotated videos, as a user would ask for them."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(REPO / "samples" / "astronaut.mp4", src / "astronaut.mp4")
    (src / "sub").mkdir()
    write_clip(src / "sub" / "two.mp4", size=(320, 240), n=20, faces=_two_faces)
    photo = np.full((240, 320, 3), 90, np.uint8)
    photo[60:180, 100:220] = astronaut_face(120)[..., ::-1]
    cv2.imwrite(str(src / "photo.jpg"), photo)
    (src / "broken.mp4").write_bytes(b"this is not a video")
    out = tmp_path_factory.mktemp("run")
    results = fer_batch.analyze_many([src], out, smooth=0.5, annotate=True)
    assert sorted(r.status for r in results) == ["failed", "ok", "ok", "ok"]
    assert write_report(out) == out / REPORT
    return out


class Page(HTMLParser):
    """The parts of a report page the tests look at: sections, tracks, images, links, failures."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.sections: list[str] = []
        self.tracks: dict[str, list[int]] = {}
        self.images: list[dict[str, str | None]] = []  # with the section and track they are in
        self.links: list[str] = []
        self.failures: list[str] = []
        self.index_rows = 0
        self._video: str | None = None
        self._track: str | None = None
        self._in_failure = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "section":
            self._video = a.get("data-video")
            self.sections.append(str(self._video))
            self.tracks[str(self._video)] = []
        elif tag == "div" and a.get("class") == "track":
            self._track = a.get("data-track")
            self.tracks[str(self._video)].append(int(str(self._track)))
        elif tag == "img":
            self.images.append({"video": self._video, "track": self._track, "class": a.get("class"),
                                "src": a.get("src")})  # fmt: skip
        elif tag == "tr" and a.get("class") == "video-row":
            self.index_rows += 1
        elif tag == "ul" and a.get("class") == "failures":
            self._in_failure = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._video = self._track = None
        elif tag == "ul":
            self._in_failure = False

    def handle_data(self, data: str) -> None:
        if self._in_failure:
            self.failures.append(data)


def _decode(uri: str) -> np.ndarray:
    assert uri.startswith(("data:image/png;base64,", "data:image/jpeg;base64,")), uri[:40]
    img = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


@pytest.mark.slow
def test_page_shows_every_video_its_tracks_and_the_failure(run: Path) -> None:
    page = Page((run / REPORT).read_text(encoding="utf-8"))
    df = fer_batch.load(run)
    assert sorted(page.sections) == sorted(df["video"].unique()) == ["astronaut.mp4", "photo.jpg", "sub/two.mp4"]
    assert page.index_rows == 4  # three inputs with a table and the input that failed
    for video, vdf in df[df["video"] != "photo.jpg"].groupby("video"):
        summary = summarize_table(vdf)
        tracks = summary[summary["scope"] == "track"]
        assert page.tracks[video] == sorted(tracks["track_id"].astype(int))
        for _, t in tracks.iterrows():
            imgs = [i for i in page.images if i["video"] == video and i["track"] == str(t["track_id"])]
            timelines = [_decode(str(i["src"])) for i in imgs if i["class"] == "timeline"]
            thumbs = [_decode(str(i["src"])) for i in imgs if i["class"] == "thumb"]
            assert len(timelines) == 1
            assert timelines[0].shape[:2] == (145, 720)  # a fixed size, whatever the video's length
            assert len(thumbs) == min(THUMBS_PER_TRACK, int(t["frames"]))
            assert all(th.shape[0] == THUMB_PX for th in thumbs)
    manifest = pd.read_parquet(run / "manifest.parquet")
    broken = manifest[manifest["status"] == "failed"].iloc[0]
    failures = " ".join(page.failures)
    assert broken["path"] in failures and broken["error"] in failures


@pytest.mark.slow
def test_a_photo_shows_its_faces_and_their_probabilities(run: Path) -> None:
    """One analysed frame has no time line: each face gets its thumbnail (cut from the image) and its label."""
    text = (run / REPORT).read_text(encoding="utf-8")
    page = Page(text)
    faces = fer_batch.load(run).query("video == 'photo.jpg' and face.notna()")
    assert len(faces) == 1 and page.tracks["photo.jpg"] == faces["track_id"].astype(int).tolist()
    imgs = [i for i in page.images if i["video"] == "photo.jpg"]
    assert [i["class"] for i in imgs] == ["thumb"]
    thumb = _decode(str(imgs[0]["src"]))
    assert thumb.shape[0] == THUMB_PX and thumb.std() > 20  # the face, not the flat grey around it
    label = faces["emotion"].iloc[0]
    assert f"{label} {faces[label].iloc[0]:.0%}" in text  # its probability, written in its bar


def test_thumbnails_show_the_tracked_face(run: Path) -> None:
    """The sample's one face: every thumbnail of its track looks like the astronaut's face crop, not background."""
    page = Page((run / REPORT).read_text(encoding="utf-8"))
    thumbs = [_decode(str(i["src"])) for i in page.images if i["video"] == "astronaut.mp4" and i["class"] == "thumb"]
    assert thumbs
    meta_box = fer_batch.load(run).query("video == 'astronaut.mp4' and face == 0").iloc[0]
    with av.open(str(REPO / "samples" / "astronaut.mp4")) as c:
        first = next(c.decode(video=0)).to_ndarray(format="bgr24")
    x, y, w, h = (int(meta_box[k]) for k in ("x", "y", "w", "h"))
    face = cv2.resize(first[y : y + h, x : x + w], (32, 32)).astype(np.float32)
    corners = cv2.resize(first[:h, :w], (32, 32)).astype(np.float32)  # the flag, not a face
    for th in thumbs:
        th_h, th_w = th.shape[:2]
        centre = cv2.resize(th[th_h // 7 : th_h - th_h // 7, th_w // 7 : th_w - th_w // 7], (32, 32)).astype(np.float32)
        # measured: thumbnails 0.41-0.48 of the way to the flag with float scans, 0.46-0.56 with int8 scans (whose
        # first box, the template, sits 4 px higher); background crops 0.80-1.9, the face 30 px off 0.67
        assert np.abs(centre - face).mean() < 0.6 * np.abs(centre - corners).mean()


def test_nothing_comes_from_the_network(run: Path) -> None:
    text = (run / REPORT).read_text(encoding="utf-8")
    page = Page(text)
    assert "://" not in text  # no URL with a scheme: not in a link, an image, a style, nor the text
    assert not {"script", "link", "iframe", "object", "embed"} & set(page.tags)
    for target in page.links:
        if target.startswith(("data:image/png;base64,", "data:image/jpeg;base64,", "#")):
            continue
        assert (run / unquote(target.split("#")[0])).is_file(), target  # relative, and there
    videos = [t for t in page.links if ".annotated.mp4" in t]
    want = ["astronaut.annotated.mp4", "photo.annotated.mp4", "sub/two.annotated.mp4"]
    assert sorted(v.split("#")[0] for v in videos) == want


@pytest.mark.slow
def test_a_large_run_gets_an_index_and_a_page_per_video(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    write_report(copy, pages_above=1)
    index = Page((copy / REPORT).read_text(encoding="utf-8"))
    assert index.sections == [] and index.index_rows == 4
    pages = sorted(t for t in index.links if t.startswith(PAGES_DIR + "/"))
    assert len(pages) == 3
    for target in pages:
        page = Page((copy / unquote(target)).read_text(encoding="utf-8"))
        assert len(page.sections) == 1 and page.images
        for link in page.links:
            if not link.startswith("data:"):
                assert (copy / PAGES_DIR / unquote(link.split("#")[0])).resolve().is_file(), link
    write_report(copy)  # the run is small again: one page, and the per-video pages of before are gone
    assert not (copy / PAGES_DIR).exists()
    assert len(Page((copy / REPORT).read_text(encoding="utf-8")).sections) == 3


def test_a_missing_source_is_said_on_the_page(clip, tmp_path: Path) -> None:  # noqa: ANN001
    path, _ = clip("gone.mp4", size=(320, 240), n=10, faces=lambda i: [(60, 50, 100)])
    out = tmp_path / "run"
    fer_batch.analyze_many([path], out)
    path.unlink()
    text = write_report(out).read_text(encoding="utf-8")
    page = Page(text)
    assert "is not there any more" in text and str(path) in text
    assert [i["class"] for i in page.images] == ["timeline"]  # the timeline still, no thumbnail


def test_a_damaged_table_is_one_failure_and_the_rest_is_reported(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "sub" / "damaged.parquet").write_bytes(b"PAR1 not really a table")
    page = Page(write_report(copy).read_text(encoding="utf-8"))
    assert len(page.sections) == 3 and page.index_rows == 5
    assert any("sub/damaged.parquet" in f for f in page.failures)
    assert any("unreadable table" in f for f in page.failures)


def test_report_is_replaced_whole_or_not_at_all(run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    before = (copy / REPORT).read_bytes()

    def broken(*args: object, **kwargs: object) -> str:
        raise RuntimeError("drawing failed")

    monkeypatch.setattr(report_mod, "timeline_png", broken)
    with pytest.raises(RuntimeError):
        write_report(copy)
    assert (copy / REPORT).read_bytes() == before
    assert not [p for p in copy.rglob("*") if ".tmp-" in p.name]


def _gop_clip(path: Path, n: int, rotation: int) -> None:
    """A clip with a keyframe every 10 frames (so seeks land between thumbnails) and changing content."""
    rng = np.random.default_rng(1)
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=10)
        s.width, s.height, s.pix_fmt = 160, 96, "yuv420p"
        s.codec_context.gop_size = 10
        s.time_base = s.codec_context.time_base = tb
        s.set_display_rotation(rotation)
        for i in range(n):
            img = np.kron(rng.integers(0, 255, (6, 10, 3)), np.ones((16, 16, 1))).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i * 100, tb
            out.mux(s.encode(frame))
        out.mux(s.encode())


def test_grab_frames_equals_the_analysed_frames(tmp_path: Path) -> None:
    """Frames cut for thumbnails (seeking, out of order, rotated) are the frames the analysis saw at those times."""
    path = tmp_path / "gop.mp4"
    _gop_clip(path, 80, rotation=90)
    info = probe(path)
    want_times = [7.9, 0.0, 3.3, 3.4, 0.5, 6.0]
    reference = {d.time_s: d.bgr for d in FrameReader(path, info, Options(), images=ReaderImages.ALL)}
    got = grab_frames(path, want_times, info.rotation)
    assert sorted(got) == sorted(want_times)
    for t in want_times:
        ref = reference[min(reference, key=lambda r: abs(r - t))]
        assert got[t].shape == ref.shape == (160, 96, 3)  # displayed (turned) frame
        assert np.abs(got[t][..., ::-1].astype(int) - ref.astype(int)).mean() < 0.5


@pytest.mark.slow
def test_cli_report_and_analyze_report(run: Path, tmp_path: Path, clip) -> None:  # noqa: ANN001
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns(REPORT))
    res = CliRunner().invoke(app, ["report", str(copy), "--thumbnails", "1"])
    assert res.exit_code == 0, res.output
    assert (copy / REPORT).is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert CliRunner().invoke(app, ["report", str(empty)]).exit_code == 2
    assert CliRunner().invoke(app, ["report", str(tmp_path / "missing")]).exit_code == 2
    # analyze --report: the report at the end, failures in it, and the exit code still says something failed
    path, _ = clip("one.mp4", size=(160, 120), n=5)
    bad = path.with_name("bad.mp4")
    bad.write_bytes(b"\0" * 100)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["analyze", str(path), str(bad), "--out", str(out), "--report", "-q"])
    assert res.exit_code == 1, res.output
    page = Page((out / REPORT).read_text(encoding="utf-8"))
    assert page.sections == ["one.mp4"] and any(str(bad) in f for f in page.failures)


# --- in a real browser -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> str:
    """Headless Chromium (Debian's `chromium`); the test is skipped, saying so, where there is none, unless
    FER_BATCH_REQUIRE_CHROMIUM=1 (set by .ci/run once it installed it) makes that a failure."""
    from browser import find_chromium

    exe = find_chromium()
    if exe is None or shutil.which("bash") is None:
        reason = ("no chromium (or no bash to start it) on PATH: the real-browser test of the report did not run "
                  "(apt-get install chromium)")  # fmt: skip
        if os.environ.get("FER_BATCH_REQUIRE_CHROMIUM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return exe


DOM = """(() => {
  const imgs = [...document.images];
  return {
    videos: [...document.querySelectorAll("section.video")].map(s => ({
      name: s.dataset.video,
      tracks: [...s.querySelectorAll(".track")].map(t => ({
        timelines: [...t.querySelectorAll("img.timeline")].map(i => i.naturalWidth),
        thumbs: [...t.querySelectorAll("img.thumb")].map(i => i.naturalWidth)})),
    })),
    broken: imgs.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
    images: imgs.length,
  };
})()"""

VIDEOS = """Promise.all([...document.querySelectorAll("video")].map(v => new Promise(done => {
  const report = () => done({duration: v.duration, error: v.error && v.error.code});
  if (v.readyState >= 1) return report();
  v.addEventListener("loadedmetadata", report); v.addEventListener("error", report); setTimeout(report, 15000);
})))"""


@pytest.mark.slow
def test_report_in_chromium(run: Path, chromium: str, tmp_path: Path) -> None:
    from browser import Browser

    df = fer_batch.load(run)
    with Browser(chromium, tmp_path / "profile") as browser:
        tab = browser.open((run / REPORT).resolve().as_uri())
        dom = browser.evaluate(tab, DOM)
        videos = browser.evaluate(tab, VIDEOS)
        shot = tmp_path / "report.png"
        browser.screenshot(tab, shot)
        errors, requests = browser.console_errors(tab), browser.requests(tab)
    assert sorted(v["name"] for v in dom["videos"]) == sorted(df["video"].unique())
    for v in dom["videos"]:
        n_tracks = df[df["video"] == v["name"]]["track_id"].nunique()
        assert len(v["tracks"]) == n_tracks
        timelines = 0 if v["name"] == "photo.jpg" else 1  # a photo has no time line
        assert all(len(t["timelines"]) == timelines and min(t["timelines"], default=1) > 0 for t in v["tracks"])
        assert all(t["thumbs"] and min(t["thumbs"]) > 0 for t in v["tracks"])
    assert dom["broken"] == [] and dom["images"] > 0
    assert [round(v["duration"]) for v in videos] == [4, 0, 2]  # the photo's: one frame
    assert all(v["error"] is None for v in videos)
    assert errors == []
    assert all(u.startswith(("file:", "data:")) for u in requests), [u[:80] for u in requests]
    img = cv2.imread(str(shot))
    assert img is not None and img.shape[0] > 1000 and img.std() > 20  # a long page with something drawn on it


# where the page is wider than the screen, and what sticks out of it other than inside a box that scrolls
FIT = """(() => {
  const view = document.documentElement.clientWidth;
  const scrolls = e => { for (let p = e.parentElement; p; p = p.parentElement) {
    if (getComputedStyle(p).overflowX === "auto") return p.getBoundingClientRect().right <= view + 0.5; }
    return false; };
  return {
    page: document.documentElement.scrollWidth, view,
    cut: [...document.body.querySelectorAll("*")].filter(e => {
      const r = e.getBoundingClientRect();
      return (r.right > view + 0.5 || r.left < -0.5) && !scrolls(e); }).map(e => e.tagName + "." + e.className),
    timelines: [...document.querySelectorAll("img.timeline")].map(i => i.getBoundingClientRect().width),
    players: [...document.querySelectorAll("video")].map(v => v.getBoundingClientRect().width),
  };
})()"""


@pytest.mark.slow
@pytest.mark.parametrize("width", [390, 1280])
def test_report_fits_a_phone_and_a_desktop(run: Path, chromium: str, tmp_path: Path, width: int) -> None:
    """At a phone's 390 px nothing is cut: the page is exactly as wide as the screen, tables scroll inside their
    own box, timelines and players scale to the width. The one-page report and a per-video page, both."""
    from browser import Browser

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    write_report(copy, pages_above=1)
    pages = [run / REPORT, copy / REPORT, next((copy / PAGES_DIR).glob("*.html"))]
    with Browser(chromium, tmp_path / "profile", size=(width, 900)) as browser:
        for k, path in enumerate(pages):
            tab = browser.open(path.resolve().as_uri(), phone=(width, 844) if width < 600 else None)
            fit = browser.evaluate(tab, FIT)
            browser.screenshot(tab, tmp_path / f"report-{width}-{k}.png")  # to look at: pytest --basetemp
            assert fit["view"] == width, fit
            assert fit["page"] == width, (path.name, fit)
            assert fit["cut"] == [], (path.name, fit["cut"])
            assert all(0.5 * min(width - 60, 720) <= w <= min(width, 720) for w in fit["timelines"]), fit
            assert all(w <= width for w in fit["players"]), fit
            assert browser.console_errors(tab) == []
