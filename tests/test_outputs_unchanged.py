"""A restructuring changes no output: the same commands, run by this checkout and by a reference commit, write the
same files — tables (rows and metadata), manifest, annotated videos, summary, PNGs and the report.

The reference is the last commit whose outputs changed on purpose. A commit that changes behaviour on purpose moves
``REFERENCE`` in a commit of its own, so every pure refactor in between is proved byte-for-byte against it. Only
what cannot repeat is set aside: wall-clock durations, modification times and the report's "written" stamp.
"""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO, astronaut_face, one_face, write_clip

REFERENCE = "e3999edf25ebe56437224cb9b13df8cfb2394abd"

pytestmark = pytest.mark.slow

VOLATILE_KEYS = {"wall_s", "mtime_ns"}
VOLATILE_HTML = [
    re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC"),  # when the report was written
    re.compile(r"\d+(\.\d+)? s</td>"),  # wall-clock seconds per input
]


def reference_checkout(dest: Path) -> Path:
    """The reference commit's tree, extracted from this repository's history (skip where there is none)."""
    try:
        data = subprocess.run(["git", "-C", str(REPO), "archive", REFERENCE], capture_output=True, check=True,
                              timeout=120).stdout  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        pytest.skip(f"the reference commit {REFERENCE[:7]} is not in this history (sdist, shallow clone)")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def cli(checkout: Path, *args: str) -> None:
    """Run the command line of ``checkout`` (its own package, first on ``sys.path``)."""
    r = subprocess.run([sys.executable, "-m", "fer_batch.cli", *args], cwd=checkout, capture_output=True, text=True,
                       timeout=600)  # fmt: skip
    assert r.returncode == 0, (checkout, args, r.stderr)


def produce(checkout: Path, inputs: Path, out: Path) -> None:
    cli(checkout, "analyze", str(inputs), "--out", str(out), "--annotate", "--report", "--smooth", "0.3", "-q")
    photos = inputs.parent / "photos"  # not annotated: the batched photo path
    cli(checkout, "analyze", str(photos), "--out", str(out / "photos"), "--smooth", "0.3", "-q")
    cli(checkout, "analyze", str(photos), "--out", str(out / "crops"), "--detector", "none", "--min-quality", "0.2",
        "-q")
    cli(checkout, "summary", str(out))
    cli(checkout, "render", str(inputs / "two.mp4"), str(out / "two.parquet"), "-o", str(out / "rendered.mp4"), "-q")


def scrub(value: object) -> object:
    """Metadata with what cannot repeat set aside."""
    if isinstance(value, dict):
        return {k: ("<volatile>" if k in VOLATILE_KEYS else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


def parquet_view(path: Path) -> tuple[object, ...]:
    table = pq.read_table(path)
    stored = {**(table.schema.metadata or {}), **(pq.read_metadata(path).metadata or {})}  # the file's own record too
    meta = {k.decode(): v.decode() for k, v in stored.items()}
    parsed = {k: scrub(json.loads(v)) if v[:1] in "{[" else v for k, v in meta.items()}
    data = table.replace_schema_metadata(None)
    if "wall_s" in data.column_names:
        data = data.drop(["wall_s"])
    dictionaries = {name: data.column(name).combine_chunks().dictionary.to_pylist() for name in data.column_names
                    if pa.types.is_dictionary(data.schema.field(name).type)}  # a label column's categories, in order
    return data.to_pydict(), str(data.schema), dictionaries, parsed


def file_view(path: Path) -> object:
    if path.suffix == ".parquet":
        return parquet_view(path)
    if path.suffix == ".html":
        text = path.read_text()
        for pattern in VOLATILE_HTML:
            text = pattern.sub("<volatile>", text)
        return text
    return path.read_bytes()


def outputs(out: Path) -> dict[str, object]:
    return {str(p.relative_to(out)): file_view(p) for p in sorted(out.rglob("*")) if p.is_file()
            and not p.name.startswith(".fer-batch.lock")}  # fmt: skip


def photo_inputs(folder: Path) -> None:
    """Face crops of three sizes, a face in a larger photo and one without a face."""
    import cv2
    import numpy as np

    (folder / "sub").mkdir(parents=True)
    for side, name in ((48, "a.png"), (96, "sub/b.jpg"), (150, "c.png")):
        cv2.imwrite(str(folder / name), cv2.cvtColor(astronaut_face(side), cv2.COLOR_RGB2BGR))
    scene = np.full((240, 320, 3), 100, np.uint8)
    scene[60:180, 100:220] = cv2.cvtColor(astronaut_face(120), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(folder / "scene.jpg"), scene)
    cv2.imwrite(str(folder / "blank.png"), np.full((120, 160, 3), 200, np.uint8))


def test_every_output_is_identical_to_the_reference_commit(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "astronaut.mp4").write_bytes((REPO / "samples" / "astronaut.mp4").read_bytes())
    write_clip(inputs / "two.mp4", n=24, fps=12, audio=True, rotation=90,
               faces=lambda i: [*one_face(i), (200, 120, 70)])  # fmt: skip
    photo_inputs(tmp_path / "photos")
    ref = reference_checkout(tmp_path / "ref")
    out = tmp_path / "out"  # one path for both runs: tables and manifests record where they were written
    produce(ref, inputs, out)
    before = outputs(out)
    (tmp_path / "out").rename(tmp_path / "out_ref")
    produce(REPO, inputs, out)
    after = outputs(out)
    assert sorted(after) == sorted(before)
    for name in before:
        assert after[name] == before[name], f"{name} differs from the reference commit {REFERENCE[:7]}"
