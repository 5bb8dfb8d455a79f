"""Folders of photos run in batches (``runs.photos``): the same tables, metadata and manifest rows as one photo at a
time, without the per-photo reader and network calls of one face (issue 24, item 2)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import astronaut_face

import fer_batch
from fer_batch.analysis import models
from fer_batch.options import Options
from fer_batch.outputs.metadata import read_table_meta
from fer_batch.runs import runner


def photo_folder(root: Path) -> Path:
    """Face crops of several sizes, a face inside a larger photo, a mirrored one, a damaged file and an empty one."""
    d = root / "photos"
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i, side in enumerate((40, 64, 90, 112, 150, 200, 48, 77, 130)):
        img = cv2.cvtColor(astronaut_face(side), cv2.COLOR_RGB2BGR)
        img = cv2.convertScaleAbs(img, alpha=float(rng.uniform(0.7, 1.3)), beta=float(rng.uniform(-20, 20)))
        cv2.imwrite(str(d / ("sub" if i % 3 == 0 else "") / f"face{i}.{'png' if i % 2 else 'jpg'}"), img)
    scene = np.full((360, 480, 3), 90, np.uint8)
    scene[100:260, 160:320] = cv2.cvtColor(astronaut_face(160), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(d / "scene.jpg"), scene)
    cv2.imwrite(str(d / "mirrored.png"), scene[:, ::-1])
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    (d / "empty.jpg").write_bytes(b"")
    return d


def one_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "batchable", lambda job: False)


def outputs(out: Path) -> dict[str, object]:
    """Every table's rows and metadata, and the manifest without its timings."""
    got: dict[str, object] = {}
    for t in sorted(out.rglob("*.parquet")):
        rel = str(t.relative_to(out))
        if rel == "manifest.parquet":
            m = pd.read_parquet(t).drop(columns="wall_s").sort_values("path").reset_index(drop=True)
            m["table"] = [str(Path(v).relative_to(out)) if isinstance(v, str) else None for v in m["table"]]
            # OpenCV's messages carry its clock ("[ERROR:0@0.879]"): the rest must be the same
            m["error"] = m["error"].str.replace(r"@[0-9.]+\]", "]", regex=True)
            got[rel] = m
            continue
        table = pq.read_table(t)
        got[rel] = (table.replace_schema_metadata(None), read_table_meta(t).as_dict())
    return got


def assert_same(a: dict[str, object], b: dict[str, object]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if key == "manifest.parquet":
            pd.testing.assert_frame_equal(a[key], b[key])  # type: ignore[arg-type]
        else:
            (ta, ma), (tb, mb) = a[key], b[key]  # type: ignore[misc]
            assert ta.equals(tb), key  # bit for bit: the same probabilities, boxes, quality
            assert ma == mb, key


@pytest.mark.parametrize(
    "options",
    [Options.of(detector="none", device="cpu"), Options.of(device="cpu"),
     Options.of(device="cpu", smooth=0.5, min_quality=0.3, fps=2.0)],  # fmt: skip
    ids=["detector-none", "default-detector", "smooth-min-quality-fps"],
)
def test_batched_photos_give_exactly_the_one_at_a_time_outputs(options: Options, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    folder = photo_folder(tmp_path)
    batched = runner.run_many([folder], tmp_path / "batched", options, quiet=True)
    with monkeypatch.context() as m:
        one_at_a_time(m)
        alone = runner.run_many([folder], tmp_path / "alone", options, quiet=True)
    assert sorted(r.status for r in batched) == sorted(r.status for r in alone)
    assert {r.status for r in batched} == {"ok", "failed"}
    assert_same(outputs(tmp_path / "batched"), outputs(tmp_path / "alone"))


def test_photos_share_network_calls_and_never_take_the_video_path(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    folder = tmp_path / "crops"
    folder.mkdir()
    for i in range(24):
        cv2.imwrite(str(folder / f"c{i:02d}.png"), cv2.cvtColor(astronaut_face(48 + 4 * i), cv2.COLOR_RGB2BGR))
    calls: list[int] = []
    run = models.run_batched

    def counted(session: object, x: np.ndarray, fixed: object) -> np.ndarray:
        calls.append(len(x))
        return run(session, x, fixed)

    def no_video_path(*args: object, **kwargs: object) -> None:
        raise AssertionError("a photo went through run_video")

    monkeypatch.setattr(models, "run_batched", counted)
    monkeypatch.setattr(runner, "run_video", no_video_path)
    results = runner.run_many([folder], tmp_path / "out", Options.of(detector="none", device="cpu"), quiet=True)
    assert [r.status for r in results] == ["ok"] * 24
    # full calls, faces of many photos in each: each member on the faces, the first also on their mirror images
    assert sum(calls) == 3 * 24 and len(calls) == 3 * 24 // 8
    assert len(fer_batch.load(tmp_path / "out")) == 24


def test_resume_stays_exact_per_photo(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    options, out = Options.of(detector="none", device="cpu"), tmp_path / "out"
    runner.run_many([folder], out, options, quiet=True)
    changed = folder / "face1.png"
    cv2.imwrite(str(changed), cv2.cvtColor(astronaut_face(70), cv2.COLOR_RGB2BGR))
    again = {Path(r.path).name: r.status for r in runner.run_many([folder], out, options, quiet=True)}
    assert again.pop("face1.png") == "ok"
    assert {s for n, s in again.items() if n not in ("broken.png", "empty.jpg")} == {"skipped"}
    df = fer_batch.load(out)
    assert df["video"].value_counts().max() == 1  # one row per photo, none twice


def test_temporary_files_a_killed_batch_left_are_removed(tmp_path: Path) -> None:
    folder = photo_folder(tmp_path)
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / ".face0.parquet.tmp-123-deadbeef").write_bytes(b"PAR1 half written")
    (out / ".scene.parquet.tmp-9-0badf00d").write_bytes(b"PAR1")
    results = runner.run_many([folder], out, Options.of(detector="none", device="cpu"), quiet=True)
    assert sum(r.status == "ok" for r in results) == 11
    assert not list(out.rglob("*.tmp-*"))
