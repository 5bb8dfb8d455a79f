"""How well ``yaw``, ``pitch`` and ``roll`` (``fer_batch.analysis.quality.pose``) measure head pose, on faces turned
by known angles.

roll: real photos (the astronaut of scikit-image, and with ``--data`` the first images of muxspace-dev's classes,
real news photos) turned clockwise by known angles; every turned copy goes through the real ``analyze`` path
(CenterFace's landmarks) and the error is |(roll of the turned copy - roll of the original) - angle|. Exact
ground truth: the photo is turned, nothing else changes.

yaw and pitch: no labelled head-pose data is at hand, so two honest half-measures:
(1) synthetic: a 3-D five-point face (eye, nose and mouth positions of an average adult, in mm, with the nose tip
    in front of the eye plane; each face's proportions varied by up to ±20 %) turned by known yaw and pitch and
    projected through a pinhole camera at 60 cm: measures the geometric model and its constants, not the detector;
(2) real photos mirrored: a mirrored face must get the opposite yaw, so |yaw + yaw of the mirror| / 2 is a lower
    bound of the real error from the detector's landmarks, and the spread of yaw on CK+'s posed, camera-facing faces
    (upscaled 4x so CenterFace finds them) is the error at a known angle of about 0.

    python benchmarks/pose.py --data ../shared/data/expressions
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import fer_batch  # noqa: E402
from fer_batch.analysis import quality  # noqa: E402

ROLLS = (-40, -25, -10, 10, 25, 40)
TURNS = (0, 15, 30, 45, 60)
# eyes (pupils), nose tip and mouth corners of an average adult face in mm (x right, y up, z towards the camera)
TEMPLATE = np.array([[-32, 35, 0], [32, 35, 0], [0, 0, 24], [-25, -35, -5], [25, -35, -5]], np.float64)


def photos(data: Path | None, per_class: int) -> list[tuple[str, np.ndarray]]:
    """(name, BGR image) of the faces to turn: the astronaut, and real faces from muxspace-dev."""
    from skimage import data as skdata

    out = [("astronaut", cv2.cvtColor(skdata.astronaut()[0:300, 100:360], cv2.COLOR_RGB2BGR))]
    if data is not None:
        for label_dir in sorted((data / "muxspace-dev").iterdir()):
            for f in sorted(label_dir.iterdir())[:per_class]:
                out.append((f"{label_dir.name}/{f.name}", cv2.imread(str(f))))
    return out


def turned(img: np.ndarray, degrees: float) -> np.ndarray:
    """``img`` on a canvas 1.6 times its size (edges repeated), turned clockwise on screen by ``degrees``."""
    h, w = img.shape[:2]
    pad = int(0.3 * max(h, w))
    big = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    m = cv2.getRotationMatrix2D((big.shape[1] / 2, big.shape[0] / 2), -degrees, 1.0)
    return cv2.warpAffine(big, m, (big.shape[1], big.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def pose_of(img: np.ndarray, tmp: Path) -> np.ndarray | None:
    """yaw, pitch, roll of the largest face CenterFace finds in ``img`` (through ``analyze_video``), or None."""
    path = tmp / "face.png"
    cv2.imwrite(str(path), img)
    df = fer_batch.analyze_video(path)
    df = df[df["face"] == 0]
    return df[["yaw", "pitch", "roll"]].to_numpy(np.float64)[0] if len(df) else None


def roll_errors(faces: list[tuple[str, np.ndarray]], tmp: Path) -> dict[int, list[float]]:
    errors: dict[int, list[float]] = {a: [] for a in ROLLS}
    for _, img in faces:
        base = pose_of(turned(img, 0), tmp)
        if base is None:
            continue
        for a in ROLLS:
            got = pose_of(turned(img, a), tmp)
            if got is not None:
                errors[a].append(abs((got[2] - base[2] - a + 180) % 360 - 180))
    return errors


def project(points: np.ndarray, yaw: float, pitch: float, distance: float = 600.0, f: float = 800.0) -> np.ndarray:
    """Image positions (x right, y down) of 3-D ``points`` turned by yaw (nose to image right) and pitch (up)."""
    y, p = math.radians(yaw), math.radians(pitch)
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), math.sin(p)], [0, -math.sin(p), math.cos(p)]])
    q = points @ (ry @ rx).T
    z = distance - q[:, 2]
    return np.stack([f * q[:, 0] / z, -f * q[:, 1] / z], axis=1)


def synthetic(n: int = 400) -> dict[str, dict[int, float]]:
    """Mean absolute yaw and pitch error (degrees) on varied synthetic faces, per true angle."""
    rng = np.random.default_rng(0)
    out: dict[str, dict[int, float]] = {"yaw": {}, "pitch": {}}
    for angle in TURNS:
        errs: dict[str, list[float]] = {"yaw": [], "pitch": []}
        for _ in range(n):
            face = TEMPLATE * rng.uniform(0.8, 1.2, size=(1, 3))  # width, height and depth varied apart
            other = rng.uniform(-10, 10)
            for axis in ("yaw", "pitch"):
                yaw, pitch = (angle, other) if axis == "yaw" else (other, angle)
                sign = rng.choice([-1, 1])
                yaw, pitch = (yaw * sign, pitch) if axis == "yaw" else (yaw, pitch * sign)
                got = quality.pose(project(face, yaw, pitch)[None])[0]
                errs[axis].append(abs(got[0] - yaw) if axis == "yaw" else abs(got[1] - pitch))
        for axis in errs:
            out[axis][angle] = float(np.mean(errs[axis]))
    return out


def ck_frontal(data: Path, tmp: Path, limit: int) -> np.ndarray:
    """yaw, pitch of CK+ faces (posed, facing the camera), upscaled 4x so that CenterFace finds them."""
    got = []
    for f in sorted((data / "ckplus48").glob("*/*.png"))[:: max(1, 981 // limit)]:
        img = cv2.resize(cv2.imread(str(f)), (192, 192), interpolation=cv2.INTER_CUBIC)
        p = pose_of(cv2.copyMakeBorder(img, 48, 48, 48, 48, cv2.BORDER_REPLICATE), tmp)
        if p is not None:
            got.append(p[:2])
    return np.array(got).reshape(-1, 2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, help="the labelled sets (../shared/data/expressions), for real faces")
    ap.add_argument("--per-class", type=int, default=4, help="muxspace-dev images per class to turn")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="fer-pose-") as t:
        tmp = Path(t)
        faces = photos(args.data, args.per_class)
        errors = roll_errors(faces, tmp)
        print(f"roll, real photos turned by a known angle ({len(faces)} photos; found / turned copies):")
        for a, e in errors.items():
            print(f"  {a:+4d}°: mean |error| {np.mean(e):.2f}°, max {np.max(e):.2f}° ({len(e)}/{len(faces)})")
        mirrored = []
        for _, img in faces:
            a, b = pose_of(turned(img, 0), tmp), pose_of(turned(img, 0)[:, ::-1].copy(), tmp)
            if a is not None and b is not None:
                mirrored.append(abs(a[0] + b[0]) / 2)
        print(f"yaw, real photos and their mirror images: mean |yaw + mirrored yaw| / 2 = {np.mean(mirrored):.2f}°, "
              f"max {np.max(mirrored):.2f}° ({len(mirrored)} photos)")  # fmt: skip
        if args.data is not None:
            ck = ck_frontal(args.data, tmp, 100)
            med = np.median(np.abs(ck), axis=0)
            print(f"CK+ posed frontal faces ({len(ck)}): median |yaw| {med[0]:.1f}°, median |pitch| {med[1]:.1f}°, "
                  f"mean yaw {ck[:, 0].mean():+.1f}°, mean pitch {ck[:, 1].mean():+.1f}°")  # fmt: skip
    syn = synthetic()
    print("yaw / pitch, synthetic 3-D faces (proportions ±20 %, the other angle ±10°), mean |error| by true angle:")
    for axis, by in syn.items():
        print(f"  {axis}: " + ", ".join(f"{a}°: {e:.1f}°" for a, e in by.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
