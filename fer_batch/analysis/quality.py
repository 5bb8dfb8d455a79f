"""How far a face's row can be trusted: head pose from the five landmarks, sharpness, and a calibrated ``quality``.

Why here, beside the classifier: ``quality`` is an estimate of the probability that the row's ``emotion`` is right,
built from the ensemble's own margin and agreement, how its members' answers change when the face is mirrored,
the face's size in pixels, its pose and its sharpness with a small gated logistic model fitted on labelled faces
(``benchmarks/fit_quality.py``; coefficients shipped as data in ``models/quality.json``). Why gated: the kinds of
material differ in how often the ensemble is right at the same confidence, and in which member's confidence to
believe (on FER2013-style web crops the member trained on FER2013, on posed lab faces the other), so a softmax over
image statistics of the face (size, sharpness, contrast, symmetry, ...) says how much the face looks like each kind
of fitting material, and mixes one logistic model per kind by those weights. Those features exist only where the
classifier runs, so it calls ``quality``.

Pose sign convention (degrees, in the displayed frame): ``roll`` > 0 when the eye line turns clockwise on screen
(the image-right eye lower); ``yaw`` > 0 when the nose points towards the image's right; ``pitch`` > 0 when the
face tilts up (nose towards the top of the image).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # OpenCV only where sharpness is measured: the table's column names are read by light modules
    from fer_batch.analysis.crop import Planes
    from fer_batch.planes import Luma

# ``quality`` at or above which a row is called reliable: the report's and the annotated video's threshold, and the
# summaries'. Chosen by measurement on held-out labelled faces (BENCHMARKS.md, "Quality"): at 0.5, the rows kept
# are right at least about as often as not on every set, while most rows of clear faces are kept.
RELIABLE = 0.5


# A simple geometric head model (a 3-D five-point template: eyes and mouth corners on one plane, the nose tip in
# front of it). Turning the head by yaw moves the nose sideways by depth * sin(yaw) while the eye distance shrinks
# by cos(yaw), so nose offset / eye distance = NOSE_DEPTH_IOD * tan(yaw); likewise for pitch against the
# eye-to-mouth distance, from the nose's frontal height NOSE_HEIGHT (0 = eye line, 1 = mouth line).
NOSE_DEPTH_IOD = 0.42  # nose tip in front of the eye plane, in eye distances (anthropometric template)
NOSE_DEPTH_EM = 0.41  # the same depth in eye-to-mouth distances
NOSE_HEIGHT = 0.53  # the nose tip's height between the eye line (0) and the mouth line (1), frontal

SHARP_SIZE = 64  # px: faces are resized to this square before measuring sharpness, so videos compare

FEATURES = (
    "logit_top", "margin", "disagree", "logit_m0", "logit_m1", "agree",
    "logit_m0_mirror", "mirror_change_m0",
    "is_angry", "is_disgust", "is_fear", "is_happy", "is_sad", "is_surprise",
    "log_size", "log_sharpness", "log_sharpness_sq", "sharpness_x_size", "log_contrast", "brightness",
    "abs_yaw", "abs_pitch",
)  # fmt: skip
# the members whose answer on the mirrored face ``quality`` reads: the first (fer2013-minixception), whose second pass
# is the cheap one (0.6 of the two members' 2.9 s CPU per 1,000 faces) and whose mirror ranks answers best
# (BENCHMARKS.md, "Quality": held out, FER2013's AUROC 0.794 without it, 0.803 with it, 0.805 with both members')
MIRRORED = (0,)
# what the gate reads: how the face looks, not what the classifier says (see ``gate_features``)
GATE_FEATURES = (
    "log_size", "log_sharpness", "log_contrast", "brightness", "symmetry", "detail_balance", "hist_entropy", "clipped",
)  # fmt: skip


def pose(landmarks: np.ndarray) -> np.ndarray:
    """(n, 3) yaw, pitch, roll in degrees from (n, 5, 2) landmarks; NaN where a face has none."""
    lm = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    out = np.full((len(lm), 3), np.nan, dtype=np.float32)
    if not len(lm):
        return out
    eye_l, eye_r, nose, mouth_l, mouth_r = (lm[:, k] for k in range(5))
    d = eye_r - eye_l
    roll = np.arctan2(d[:, 1], d[:, 0])
    cos_r, sin_r = np.cos(-roll)[:, None], np.sin(-roll)[:, None]
    eye_mid = (eye_l + eye_r) / 2

    def upright(p: np.ndarray) -> np.ndarray:  # rotate about the eyes' midpoint so the eye line is level
        q = p - eye_mid
        return np.stack([q[:, 0] * cos_r[:, 0] - q[:, 1] * sin_r[:, 0], q[:, 0] * sin_r[:, 0] + q[:, 1] * cos_r[:, 0]],
                        axis=1)  # fmt: skip

    n, m = upright(nose), upright((mouth_l + mouth_r) / 2)
    iod = np.hypot(d[:, 0], d[:, 1])
    em = m[:, 1]  # eye line to mouth line, upright
    with np.errstate(divide="ignore", invalid="ignore"):
        t = n[:, 1] / em
        midline = m[:, 0] * t  # the face's midline at the nose's height (eye midpoint is the origin)
        yaw = np.arctan((n[:, 0] - midline) / iod / NOSE_DEPTH_IOD)
        pitch = np.arctan((NOSE_HEIGHT - t) / NOSE_DEPTH_EM)
    ok = np.isfinite(lm).all(axis=(1, 2)) & (iod > 0) & (em > 0)
    out[ok] = np.degrees(np.stack([yaw, pitch, roll], axis=1)[ok])
    return out


@dataclass(frozen=True)
class Look:
    """How each face looks, measured on its box resized to ``SHARP_SIZE`` px gray (arrays, one value per face).

    ``sharpness``: variance of the Laplacian (the table's column); ``contrast``: standard deviation of the gray
    levels; ``brightness``: their mean. Why a fixed size: the raw measures grow with resolution; on a fixed-size face
    they say how much fine detail the face itself holds, comparable across videos (a blurred or blocky face scores
    low), and a dark, washed-out or over-exposed face shows in the other two. For the gate (what kind of material
    the face resembles): ``symmetry``, the mean difference between the face and its mirror image in units of its
    contrast (an aligned frontal face is near 0, a turned, occluded or off-centre one higher); ``detail_balance``,
    the log ratio of the gradient energy of the upper and lower halves; ``hist_entropy``, the entropy of the gray
    levels over 32 bins (an equalised face is near its maximum, log 32); ``clipped``, the share of nearly black or
    white pixels.
    """

    sharpness: np.ndarray
    contrast: np.ndarray
    brightness: np.ndarray
    symmetry: np.ndarray
    detail_balance: np.ndarray
    hist_entropy: np.ndarray
    clipped: np.ndarray

    @classmethod
    def of(cls, faces: list[tuple[np.ndarray | Luma | Planes, np.ndarray]]) -> Look:
        """The look of each (image, box) pair."""
        values = np.array([look_one(image, box) for image, box in faces], np.float64).reshape(-1, len(LOOK))
        return cls(*(values[:, k].astype(np.float32) for k in range(len(LOOK))))


LOOK = ("sharpness", "contrast", "brightness", "symmetry", "detail_balance", "hist_entropy", "clipped")


def look_one(image: np.ndarray | Luma | Planes, box: np.ndarray) -> tuple[float, ...]:
    """The ``LOOK`` measures of one face, in that order (see ``Look``)."""
    import cv2

    from fer_batch.analysis.crop import CropSpec, crop_one

    spec = CropSpec(margin=0.0, square=True, align=False, shift=0.0)
    face = crop_one(image, box, np.full((5, 2), np.nan, np.float32), spec, (SHARP_SIZE, SHARP_SIZE))
    if face.ndim == 3:
        face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    f = face.astype(np.float64)
    grad = np.hypot(cv2.Sobel(f, cv2.CV_64F, 1, 0), cv2.Sobel(f, cv2.CV_64F, 0, 1))
    half = SHARP_SIZE // 2
    hist = np.bincount(face.reshape(-1) // 8, minlength=32) / face.size
    hist = hist[hist > 0]
    return (float(cv2.Laplacian(face, cv2.CV_64F).var()), float(f.std()), float(f.mean()),
            float(np.abs(f - f[:, ::-1]).mean() / (f.std() + 1)),
            float(np.log((grad[:half].mean() + 1) / (grad[half:].mean() + 1))),
            float(-(hist * np.log(hist)).sum()), float(((face < 10) | (face > 245)).mean()))  # fmt: skip


def features(probs: np.ndarray, members: list[np.ndarray], both: list[np.ndarray], boxes: np.ndarray,
             angles: np.ndarray, look: Look, fill_pose: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:  # fmt: skip
    """(n, len(FEATURES)) inputs of the logistic model, in ``FEATURES`` order (two members, seven labels).

    ``logit_top``: the ensemble's top probability as a logit; ``margin``: top minus second; ``disagree``: half the L1
    distance between the members' probabilities; ``logit_m0``/``logit_m1``: each member's probability of the
    ensemble's answer, as a logit; ``agree``: 1 where the members' answers agree; ``logit_m0_mirror``: the first
    member's probability of the answer on the mirrored face, as a logit, and ``mirror_change_m0``: half the L1
    distance between its probabilities on the face and on its mirror image (``both``: the probabilities of each
    member of ``MIRRORED`` averaged with its mirrored face's, float32, as ``--tta flip`` tables hold them; the
    mirror's are taken back out of that mean here, so that the fitting script, which reads such tables, gets the
    same numbers bit for bit);
    ``is_<label>``: the answer (the
    last label is the baseline); ``log_size``: log2 of the face's side in px; ``log_sharpness``: log1p of
    ``sharpness``, also squared and times ``log_size``; ``log_contrast``, ``brightness`` (/100); ``abs_yaw``,
    ``abs_pitch`` in tens of degrees, ``fill_pose`` where a face has no landmarks (the mean of the fitting data).
    """
    p = np.clip(np.asarray(probs, np.float64), 1e-6, 1 - 1e-6)
    n = len(p)
    top = p.argmax(axis=1)
    top2 = np.sort(p, axis=1)[:, -2:]
    m = [np.clip(np.asarray(x, np.float64), 1e-6, 1 - 1e-6) for x in members]
    at = [x[np.arange(n), top] for x in m]
    mirror = [np.clip(2 * np.asarray(b, np.float64) - np.asarray(members[k], np.float64), 1e-6, 1 - 1e-6)
              for b, k in zip(both, MIRRORED, strict=True)]  # fmt: skip
    side = face_side(boxes)
    sharp = np.log1p(np.asarray(look.sharpness, np.float64))
    yaw = np.where(np.isfinite(angles[:, 0]), np.abs(angles[:, 0]) / 10, fill_pose[0])
    pitch = np.where(np.isfinite(angles[:, 1]), np.abs(angles[:, 1]) / 10, fill_pose[1])
    cols = [_logit(top2[:, 1]), top2[:, 1] - top2[:, 0], 0.5 * np.abs(m[0] - m[1]).sum(axis=1),
            _logit(at[0]), _logit(at[1]), (m[0].argmax(axis=1) == m[1].argmax(axis=1)).astype(np.float64)]
    for x, k in zip(mirror, MIRRORED, strict=True):
        cols += [_logit(x[np.arange(n), top]), 0.5 * np.abs(x - m[k]).sum(axis=1)]
    cols += [(top == k).astype(np.float64) for k in range(p.shape[1] - 1)]
    cols += [np.log2(side), sharp, sharp**2, sharp * np.log2(side), np.log1p(np.asarray(look.contrast, np.float64)),
             np.asarray(look.brightness, np.float64) / 100, yaw, pitch]  # fmt: skip
    return np.stack(cols, axis=1)


def gate_features(boxes: np.ndarray, look: Look) -> np.ndarray:
    """(n, len(GATE_FEATURES)) inputs of the gate, in ``GATE_FEATURES`` order: log2 of the face's side in px, log1p
    of sharpness and contrast, brightness / 100, and the other ``Look`` measures as they are."""
    side = face_side(boxes)
    f = {k: np.asarray(getattr(look, k), np.float64) for k in LOOK}
    return np.stack([np.log2(side), np.log1p(f["sharpness"]), np.log1p(f["contrast"]), f["brightness"] / 100,
                     f["symmetry"], f["detail_balance"], f["hist_entropy"], f["clipped"]], axis=1)  # fmt: skip


def face_side(boxes: np.ndarray) -> np.ndarray:
    """The side in px of the square with each box's area (at least 1): the face size both models read."""
    return np.asarray(np.sqrt(np.maximum((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]), 1.0)))


def _logit(p: np.ndarray) -> np.ndarray:
    return np.asarray(np.log(p / (1 - p)))


@dataclass(frozen=True, eq=False)
class Linear:
    """Standardised linear scores, one per kind: ``((x - mean) / scale) @ coef.T + intercept``, (n, kinds)."""

    coef: np.ndarray  # (kinds, features)
    intercept: np.ndarray  # (kinds,)
    mean: np.ndarray
    scale: np.ndarray

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((x - self.mean) / self.scale @ self.coef.T + self.intercept)

    @classmethod
    def from_dict(cls, d: dict[str, Any], kinds: int, features: int) -> Linear:
        arrays = [np.asarray(d[k], np.float64) for k in ("coef", "intercept", "mean", "scale")]
        if [a.shape for a in arrays] != [(kinds, features), (kinds,), (features,), (features,)]:
            raise ValueError(f"quality.json: shapes {[a.shape for a in arrays]} do not fit {kinds} kinds of "
                             f"{features} features")  # fmt: skip
        return cls(*arrays)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k).tolist() for k in ("coef", "intercept", "mean", "scale")}


def softmax(a: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, kinds) scores."""
    e = np.exp(a - a.max(axis=1, keepdims=True))
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def mixed(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """sigmoid of the gate-weighted sum of the kinds' logistic scores, both (n, kinds)."""
    z = (weights * scores).sum(axis=1)
    return np.asarray(1 / (1 + np.exp(-np.clip(z, -30, 30))))


@dataclass(frozen=True, eq=False)
class Calibration:
    """The fitted gated logistic model and what it was fitted for (one classifier, with or without TTA; its labels
    in FER2013's order, the one-hot answer features follow them).

    ``gate``: one score per kind of fitting material (``kinds``) from ``gate_features``, softmaxed into weights;
    ``expert``: one logistic score per kind from ``features``. ``quality`` = sigmoid(sum over kinds of weight *
    score): a face that looks like FER2013's web crops is judged as they are, one like CK+'s lab faces as those.
    """

    classifier: str
    tta: str | None
    kinds: tuple[str, ...]
    gate: Linear
    expert: Linear
    fill_pose: tuple[float, float]
    fitted_on: tuple[str, ...]

    def weights(self, g: np.ndarray) -> np.ndarray:
        """(n, kinds) how much each face looks like each kind of fitting material (rows sum to 1)."""
        return softmax(self.gate(g))

    def predict(self, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        """``quality`` of faces with features ``x`` and gate features ``g``."""
        return mixed(self.weights(g), self.expert(x))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibration:
        for key, names in (("features", FEATURES), ("gate_features", GATE_FEATURES)):
            if tuple(d.get(key, ())) != names:
                raise ValueError(f"quality.json: {key} {d.get(key)} are not {list(names)}")
        kinds = tuple(d["kinds"])
        return cls(classifier=d["classifier"], tta=d.get("tta"), kinds=kinds,
                   gate=Linear.from_dict(d["gate"], len(kinds), len(GATE_FEATURES)),
                   expert=Linear.from_dict(d["expert"], len(kinds), len(FEATURES)),
                   fill_pose=(float(d["fill_pose"][0]), float(d["fill_pose"][1])),
                   fitted_on=tuple(d.get("fitted_on", ())))  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        """The JSON form ``from_dict`` reads (``models/quality.json``)."""
        return {"features": list(FEATURES), "gate_features": list(GATE_FEATURES), "classifier": self.classifier,
                "tta": self.tta, "kinds": list(self.kinds), "fill_pose": list(self.fill_pose),
                "fitted_on": list(self.fitted_on), "gate": self.gate.to_dict(),
                "expert": self.expert.to_dict()}  # fmt: skip


@lru_cache(maxsize=1)
def shipped() -> Calibration | None:
    """The calibration shipped with the package (``models/quality.json``), or None where it is absent."""
    from fer_batch.analysis.models import models_dir

    path = models_dir() / "quality.json"
    return Calibration.from_dict(json.loads(path.read_text())) if path.is_file() else None


def calibration_for(classifier: str, tta: str | None) -> Calibration | None:
    """The calibration that applies to this classifier, or None: it is fitted for one ensemble and TTA setting."""
    cal = shipped()
    return cal if cal is not None and cal.classifier == classifier and cal.tta == tta else None


def describe(cal: Calibration | None) -> dict[str, Any]:
    """What a table's metadata says ``quality`` means for its classifier."""
    if cal is None:
        return {"calibrated": False, "meaning": "the top probability (no calibration fitted for this classifier)"}
    return {"calibrated": True, "meaning": "estimated probability that emotion is right", "classifier": cal.classifier,
            "fitted_on": list(cal.fitted_on), "reliable": RELIABLE}  # fmt: skip


def quality(probs: np.ndarray, members: list[np.ndarray], both: list[np.ndarray], boxes: np.ndarray,
            angles: np.ndarray, look: Look, cal: Calibration | None) -> np.ndarray:  # fmt: skip
    """``quality`` per face: the calibrated estimate, or (no calibration for this classifier) the top probability.
    ``both``: those of each member of ``MIRRORED`` averaged with its mirrored face's (read only where calibrated)."""
    if not len(probs):
        return np.zeros(0, np.float32)
    if cal is None:
        return np.asarray(np.asarray(probs, np.float32).max(axis=1))
    x = features(probs, members, both, boxes, angles, look, cal.fill_pose)
    return cal.predict(x, gate_features(boxes, look)).astype(np.float32)

