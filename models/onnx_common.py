"""What the hand-written converters in ``models/`` share: graph building, TF padding, atomic writes, the manifest.

Why: ``convert_emotion.py`` (Keras) and ``convert_faceapi.py`` (TensorFlow.js) both rebuild a TF network node by
node with ``onnx.helper``; the padding rule and the manifest update must be the same in both, so they live here
once. Only numpy and onnx are needed.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

HERE = Path(__file__).resolve().parent


@dataclass
class GraphBuilder:
    """What the layer handlers append to; shapes are static (C, H, W) per tensor, batch excluded."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    inits: list[onnx.TensorProto] = field(default_factory=list)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def const(self, name: str, array: np.ndarray) -> str:
        """Add a float32 initializer and return its name."""
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name))
        return name

    def node(self, op: str, inputs: list[str], output: str, name: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attrs))
        return output


def same_or_valid_pads(
    size: tuple[int, int],
    kernel: tuple[int, int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    padding: str,
) -> tuple[list[int], tuple[int, int]]:
    """ONNX pads [top, left, bottom, right] and the output size for a TF padding mode.

    TF's SAME puts the odd extra pixel at the bottom/right, which ONNX's symmetric-looking explicit pads
    express exactly; explicit pads avoid relying on auto_pad semantics.
    """
    begins, ends, out = [], [], []
    for n, k, s, d in zip(size, kernel, strides, dilation, strict=True):
        eff = (k - 1) * d + 1
        if padding == "same":
            o = math.ceil(n / s)
            total = max((o - 1) * s + eff - n, 0)
        elif padding == "valid":
            o = (n - eff) // s + 1
            total = 0
        else:
            raise NotImplementedError(f"padding {padding!r}")
        begins.append(total // 2)
        ends.append(total - total // 2)
        out.append(o)
    return begins + ends, (out[0], out[1])


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file so a concurrent reader never sees half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def upsert_manifest(entry: dict[str, Any], path: Path = HERE / "manifest.json") -> None:
    """Replace (or add) the entry with the same id in models/manifest.json, keeping the others.

    Keys of the old entry that the converter does not write (added by hand later) are kept, so rerunning a
    converter only refreshes what it derives.
    """
    entries = json.loads(path.read_text()) if path.exists() else []
    old = next((e for e in entries if e["id"] == entry["id"]), {})
    entries = [e for e in entries if e["id"] != entry["id"]] + [{**old, **entry}]
    entries.sort(key=lambda e: e["id"])
    write_atomic(path, (json.dumps(entries, indent=2) + "\n").encode())
