"""Produce ``models/centerface_int8.onnx``: the bundled CenterFace with int8 convolutions, for faster full scans.

Why: a full-frame scan at the default 864x480 (720p input, ``--min-face 24``) is the largest single cost of the
analysis, and it is pure convolution; with 8-bit weights and activations onnxruntime runs it in about 0.77 of the
time on x86 CPUs. The scan only has to find faces, which it still does (``benchmarks/recall.py --detector
centerface-int8``); the boxes the tables keep between scans still come from the float model.

Steps: ``models/centerface.onnx`` raised to opset 13 (per-channel quantisation needs it), onnxruntime's
``quant_pre_process`` (no symbolic shapes: the input's height and width stay free), then ``quantize_static`` with
QLinearConv operators, uint8 activations, int8 per-channel weights and ``reduce_range`` (7-bit weights: without
AVX-VNNI, x86's 8-bit multiply-add saturates on full-range weights and loses faces), MinMax ranges from frames of
the two clips ``benchmarks/make_clip.py`` makes (never from the photo recall is scored on), at the default scan
size. It records the file's sha256 in ``models/manifest.json``. Rerun it with::

    python models/quantize_centerface.py

(onnx and onnxruntime as pinned in the manifest entry's ``source``; other versions may give other bytes.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx

HERE = Path(__file__).resolve().parent
FLOAT, OUT = HERE / "centerface.onnx", HERE / "centerface_int8.onnx"
CALIB_FRAMES = 15  # per clip, spread over it
SCAN_SIZE = (864, 480)  # the default scan of a 1280x720 frame (det_size 640 raised by min_face 24)


def calibration_frames(folder: Path) -> list[np.ndarray]:
    """NCHW float frames of the generated face and crowd clips at the default scan size."""
    import av

    sys.path.insert(0, str(HERE.parent / "benchmarks"))
    from make_clip import make_crowd_clip, make_face_clip

    clips = [(folder / "face.mp4", make_face_clip), (folder / "crowd.mp4", make_crowd_clip)]
    out = []
    for path, make in clips:
        n = make(path)
        step = max(1, n // CALIB_FRAMES)
        with av.open(str(path)) as c:
            for i, f in enumerate(c.decode(video=0)):
                if i % step == 0:
                    rgb = f.reformat(width=SCAN_SIZE[0], height=SCAN_SIZE[1], format="rgb24").to_ndarray()
                    out.append(rgb.transpose(2, 0, 1)[None].astype(np.float32))
    return out


def quantize(src: Path, dst: Path, frames: list[np.ndarray], work: Path) -> None:
    """``src`` as an int8 QOperator model at ``dst``, its activation ranges from ``frames``."""
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = version_converter.convert_version(onnx.load(str(src)), 13)
    for k, node in enumerate(model.graph.node):
        node.name = node.name or f"{node.op_type}_{k}"
    opset13, pre = work / "op13.onnx", work / "pre.onnx"
    onnx.save(model, str(opset13))
    quant_pre_process(str(opset13), str(pre), skip_symbolic_shape=True)
    name = model.graph.input[0].name

    class Frames(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter({name: x} for x in frames)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    quantize_static(str(pre), str(dst), Frames(), quant_format=QuantFormat.QOperator,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    reduce_range=True, calibrate_method=CalibrationMethod.MinMax)  # fmt: skip


def record(path: Path) -> str:
    """Write the int8 entry (after the float one) into manifest.json; returns the sha256."""
    import onnxruntime

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    manifest_path = HERE / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    base = next(e for e in manifest if e["id"] == "centerface")
    derived = {"model": "centerface", "sha256": base["sha256"], "script": "models/quantize_centerface.py",
               "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}  # fmt: skip
    entry = {**base, "id": "centerface-int8", "file": path.name, "sha256": digest,
             "source": {**base["source"], "derived": derived}}  # fmt: skip
    manifest = [e for e in manifest if e["id"] != "centerface-int8"]
    manifest.insert(manifest.index(base) + 1, entry)
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=OUT, help="another path: build there, leave the manifest alone")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        quantize(FLOAT, a.out, calibration_frames(Path(tmp)), Path(tmp))
    digest = record(a.out) if a.out.resolve() == OUT else hashlib.sha256(a.out.read_bytes()).hexdigest()
    print(f"{a.out}: sha256 {digest}")


if __name__ == "__main__":
    main()
