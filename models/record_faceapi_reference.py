"""Record face-api.js' own outputs: the reference that ``tests/test_models_exact.py`` holds the face-api ONNX file to.

Why: ``convert_faceapi.py`` rebuilds FaceExpressionNet by hand, so the only trustworthy check is the original
JavaScript model. Node and the npm packages are too foreign to be project or test dependencies, so this is run
once, in a throwaway folder, and the result is committed as ``tests/data/faceapi_reference.npz``: 112x112 RGB
uint8 crops (so face-api's pad-to-square and resize leave them untouched; the JS side checks that) made from
public-domain / CC0 images that scikit-image ships (``astronaut``: NASA, public domain; ``camera``: CC0 by Lav
Varshney), varied by crop jitter, scale, rotation, flips, brightness/contrast, colour, blur and noise, plus
random-noise and constant images; and face-api's probabilities for them. Rerun it with::

    mkdir -p /tmp/faceapi-ref && (cd /tmp/faceapi-ref && npm init -y && npm install face-api.js@0.22.2)
    python models/record_faceapi_reference.py face-api.js/weights --node-modules /tmp/faceapi-ref/node_modules

``face-api.js@0.22.2`` pins ``@tensorflow/tfjs-core`` 1.7.0, whose CPU backend runs in plain Node.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import skimage
import skimage.data

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "tests" / "data" / "faceapi_reference.npz"
JS = HERE / "record_faceapi_reference.js"
SHARD_SHA256 = "9a9840f2cf1f4c7eab95f197512569345c00d2426754d4608b92af30e0300f3d"
SIZE = 112
SEED = 20251126
MIN_MARGIN = 1e-3  # crops whose top-2 probabilities are closer than this would make argmax checks flaky
# Face boxes (x1, y1, x2, y2), as in record_reference.py; astronaut's is the Haar cascade's own detection.
ASTRONAUT_FACE = (177, 66, 272, 161)
CAMERA_FACE = (176, 108, 266, 198)  # the cameraman, in profile
WANT = {"astronaut": 36, "camera": 14, "noise": 4}  # ~25-35 kB per compressed crop: the npz stays < 1.5 MB


def augment(rgb: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> np.ndarray:
    """One 112x112 crop around ``box``: random jitter, scale, rotation, flip, photometric change, blur, noise."""
    x1, y1, x2, y2 = box
    size = (x2 - x1) * rng.uniform(0.85, 1.45)
    cx = (x1 + x2) / 2 + rng.uniform(-0.12, 0.12) * (x2 - x1)
    cy = (y1 + y2) / 2 + rng.uniform(-0.12, 0.12) * (y2 - y1)
    angle = 0.0 if rng.random() < 0.35 else rng.uniform(-15, 15)
    if angle == 0.0 and rng.random() < 0.5:
        # the pipeline's own path: slice the box, then cv2.resize (bilinear)
        a, b, s = int(round(cx - size / 2)), int(round(cy - size / 2)), int(round(size))
        crop = cv2.resize(rgb[max(b, 0) : b + s, max(a, 0) : a + s], (SIZE, SIZE))
    else:
        m = cv2.getRotationMatrix2D((cx, cy), angle, SIZE / size)
        m[:, 2] += (SIZE / 2 - cx, SIZE / 2 - cy)
        crop = cv2.warpAffine(rgb, m, (SIZE, SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    alpha, beta = rng.uniform(0.6, 1.4), rng.uniform(-40, 40)
    out = crop.astype(np.float64) * alpha + beta + rng.uniform(-12, 12, 3)  # brightness, contrast, colour cast
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.2:
        out = out + rng.normal(0, 4, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def noise_image(rng: np.random.Generator, k: int) -> np.ndarray:
    """Pixel noise (even k) or blotchy noise (odd k: a random 7x7 image upscaled), both far from any face."""
    if k % 2 == 0:
        return rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
    return cv2.resize(small, (SIZE, SIZE), interpolation=cv2.INTER_CUBIC)


def candidates(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Twice as many crops per source as wanted (the ambiguous ones are dropped later), plus constant images."""
    astronaut = skimage.data.astronaut()
    camera = cv2.cvtColor(skimage.data.camera(), cv2.COLOR_GRAY2RGB)
    crops: list[np.ndarray] = []
    sources: list[str] = []
    for name, rgb, box in (("astronaut", astronaut, ASTRONAUT_FACE), ("camera", camera, CAMERA_FACE)):
        x1, y1, x2, y2 = box
        crops.append(cv2.resize(rgb[y1:y2, x1:x2], (SIZE, SIZE)))  # the plain box first
        crops.extend(augment(rgb, box, rng) for _ in range(2 * WANT[name] - 1))
        sources.extend([name] * (2 * WANT[name]))
    crops.extend(noise_image(rng, k) for k in range(2 * WANT["noise"]))
    sources.extend(["noise"] * (2 * WANT["noise"]))
    for value in ((0, 0, 0), (255, 255, 255), (123, 117, 104)):  # the ends of the range and the mean colour
        crops.append(np.full((SIZE, SIZE, 3), value, np.uint8))
        sources.append("constant")
    return np.stack(crops), np.array(sources)


def run_faceapi(crops: np.ndarray, weights: Path, node_modules: Path) -> tuple[np.ndarray, dict[str, object]]:
    """face-api.js' probabilities for ``crops`` (network order) and what the JS side reports about the run."""
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "crops.u8"
        np.ascontiguousarray(crops).tofile(raw)
        prefix = Path(tmp) / "out"
        env = {**os.environ, "NODE_PATH": str(node_modules)}
        cmd = ["node", str(JS), str(weights), str(raw), str(len(crops)), str(prefix)]
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
        probs = np.fromfile(f"{prefix}.f32", dtype="<f4").reshape(len(crops), 7)
        info = json.loads(Path(f"{prefix}.json").read_text())
    if info["max_preprocessing_diff"] != 0:
        raise RuntimeError(f"face-api's toBatchTensor changed 112x112 crops by {info['max_preprocessing_diff']}")
    return probs.astype(np.float32), info


def margin(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def select(probs: np.ndarray, sources: np.ndarray) -> np.ndarray:
    """Indices of the first ``WANT[source]`` unambiguous candidates per source, and every constant image."""
    ok = margin(probs) >= MIN_MARGIN
    keep = []
    for name, want in WANT.items():
        idx = np.flatnonzero((sources == name) & ok)[:want]
        if len(idx) < want:
            raise RuntimeError(f"only {len(idx)} unambiguous {name} crops")
        keep.extend(idx.tolist())
    keep.extend(np.flatnonzero(sources == "constant").tolist())
    return np.array(keep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="folder with face-api.js' face_expression_model-* files")
    parser.add_argument("--node-modules", type=Path, default=Path("/tmp/faceapi-ref/node_modules"))
    args = parser.parse_args(argv)
    digest = hashlib.sha256((args.weights / "face_expression_model-shard1").read_bytes()).hexdigest()
    if digest != SHARD_SHA256:
        print(f"{args.weights}: shard sha256 {digest}, expected {SHARD_SHA256}", file=sys.stderr)
        return 1
    crops, sources = candidates(np.random.default_rng(SEED))
    probs, info = run_faceapi(crops, args.weights, args.node_modules)
    keep = select(probs, sources)
    versions = {
        **info["versions"],  # type: ignore[dict-item]
        "python": platform.python_version(),
        "numpy": np.__version__,
        "opencv": cv2.__version__,
        "scikit-image": skimage.__version__,
    }
    np.savez_compressed(
        OUT,
        crops=crops[keep],
        probs=probs[keep],
        source=sources[keep],
        labels=np.array(info["labels"]),
        shard_sha256=np.array(digest),
        versions=np.array(json.dumps(versions, sort_keys=True)),
    )
    counts = {str(s): int((sources[keep] == s).sum()) for s in np.unique(sources[keep])}
    print(
        f"{OUT}: {len(keep)} crops {counts}, {OUT.stat().st_size} bytes; argmax "
        f"{np.bincount(probs[keep].argmax(1), minlength=7).tolist()}, min margin {margin(probs[keep]).min():.2e} "
        f"(constants included); versions {json.dumps(versions, sort_keys=True)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
