"""Emotion classification: all faces of a window cropped into one batch per model and scored in one call each.

A classifier is one bundled model, or an ensemble (``--model a+b``) whose members' probabilities are averaged;
``--tta flip`` averages each model with its mirrored crop. Each member cuts its crops with its own geometry
(``fer_batch.analysis.crop``), so models trained on different crops can be combined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from fer_batch.analysis import models, quality
from fer_batch.analysis.crop import WHOLE, CropSpec, Planes, crop_one
from fer_batch.analysis.info import MemberInfo, ModelInfo
from fer_batch.analysis.model_checks import as_probabilities
from fer_batch.errors import ModelError
from fer_batch.options import Options
from fer_batch.planes import Luma
from fer_batch.types import Faces, Frames

# FER2013's seven classes in its order: tables of models with these labels always have their columns in this order
FER7 = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# faces per onnxruntime call: beyond 8, a 112x112 network's activations outgrow the CPU caches and each face costs
# more (face-api-expression, 1 thread: 1.7 ms a face in calls of 1-8, 2.1-2.3 ms in calls of 32)
RUN_FACES = 8


def member_ids(model: str) -> list[str]:
    """The models that ``--model`` names: one id or path, or bundled ids joined by ``+``."""
    if model.endswith(".onnx") or "+" not in model:
        return [model]
    return [m.strip() for m in model.split("+")]


class Member:
    """One ONNX emotion model: its crop geometry, pixel transform and session."""

    def __init__(self, spec: models.ModelSpec, options: Options) -> None:
        self.spec = spec
        inp = spec.input
        self.height, self.width = int(inp["height"]), int(inp["width"])
        self.color, self.layout = inp["color"], inp["layout"]
        self.a, self.b = spec.transform()
        self.crop = (
            WHOLE
            if options.detection.detector == "none"
            else CropSpec.from_entry(spec.entry, options.classification.crop_margin)
        )
        self.output = spec.output  # "probabilities" or "logits" (e.g. the ONNX model zoo's FER+, without a softmax)
        threads = models.StageThreads.of(options.runtime.threads, scanning=options.detection.detector != "none")
        self.session = models.session(spec.path, options.runtime.device, threads.classify)
        self.input_name = self.session.get_inputs()[0].name
        self.fixed = models.fixed_batch(self.session)  # exports fixed to a batch of 1 get one face a call

    def crops(self, frames: Frames, faces: Faces) -> np.ndarray:
        """uint8 crops (n, H, W[, C]) of every face, in the channel order the model reads."""
        pos = {int(f): j for j, f in enumerate(frames.index)}
        shape = (len(faces), self.height, self.width) + (() if self.color == "gray" else (3,))
        out = np.empty(shape, dtype=np.uint8)
        for i, f in enumerate(faces.frame):
            image = self._source(frames, pos[int(f)])
            out[i] = crop_one(image, faces.boxes[i], faces.landmarks[i], self.crop, (self.width, self.height))
        if self.color == "rgb":
            out = out[..., ::-1]
        return out

    def _source(self, frames: Frames, j: int) -> np.ndarray | Luma | Planes:
        """What frame ``j``'s crops are cut from: the gray image, or for colour the decoded planes where they exist.

        Why planes first: only the faces are converted to BGR, and a table does not depend on whether something
        else (``--annotate``) asked for the whole frame in BGR.
        """
        if self.color == "gray":
            return frames.gray[j]
        planes = frames.yuv[j] if frames.yuv is not None else None
        if planes is not None:
            return planes
        bgr = frames.bgr[j] if frames.bgr is not None else None
        if bgr is None:
            raise ValueError(f"frame {int(frames.index[j])} has neither planes nor a BGR image for a colour model")
        return bgr

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Probabilities (n, labels) for uint8 crops, with the manifest's pixel transform, ``RUN_FACES`` a call.

        Raises ``ModelOutputError`` where the outputs are non-finite or not the probabilities the spec promises.
        """
        if len(crops) > RUN_FACES:
            return np.concatenate([self.predict(crops[lo : lo + RUN_FACES]) for lo in range(0, len(crops), RUN_FACES)])
        out = models.run_batched(self.session, self.network_input(crops), self.fixed)
        return as_probabilities(out, self.output, self.spec.id)  # non-finite or non-probabilities: the input fails

    def network_input(self, crops: np.ndarray) -> np.ndarray:
        """float32 ``crops * a + b`` in the model's layout, written once into a contiguous array.

        Why not ``astype``, then the transform, then a transposed copy: three passes over the batch, the first
        reading the channel-reversed view of ``crops`` (RGB models) element by element, cost 0.2 ms a 112x112
        face, a sixth of the network; one multiply and one add per channel plane give the same float32 values.
        """
        x4 = crops if crops.ndim == 4 else crops[..., None]
        n, h, w, c = x4.shape
        if self.layout != "NCHW":
            x: np.ndarray = np.multiply(x4, self.a, dtype=np.float32)
            x += self.b
            return x
        x = np.empty((n, c, h, w), dtype=np.float32)
        for k in range(c):
            np.multiply(x4[..., k], self.a[k], out=x[:, k])
            x[:, k] += self.b[k]
        return x


def member_specs(options: Options) -> list[models.ModelSpec]:
    """The verified manifest entries of the models ``options`` names (no session is made)."""
    ids = member_ids(options.classification.model)
    return [
        models.resolve(m, options.classification.model_spec if len(ids) == 1 else None, task="emotion") for m in ids
    ]


@dataclass(frozen=True)
class Fingerprint:
    """What ties a table to the classifier that made it: checksums of the model files and of their specs, and the
    label order. ``--resume`` compares it with the table's ``ModelInfo``, so it is computed without sessions."""

    sha256: str
    spec_sha256: str
    labels: tuple[str, ...]


def fingerprint(specs: list[models.ModelSpec]) -> Fingerprint:
    """The fingerprint of the classifier these specs make (one model, or an ensemble's combined checksums)."""
    sha = specs[0].sha256 if len(specs) == 1 else models.combined_sha256([s.sha256 for s in specs])
    spec_sha = specs[0].spec_sha256 if len(specs) == 1 else models.combined_sha256([s.spec_sha256 for s in specs])
    return Fingerprint(sha256=sha, spec_sha256=spec_sha, labels=tuple(_common_labels(specs)))


class FaceClassifier(Protocol):
    """What the analysis engine and a table's metadata need of an emotion classifier (``Classifier``, a fake)."""

    labels: list[str]

    @property
    def needs_color(self) -> bool: ...

    @property
    def provider(self) -> str: ...

    def describe(self) -> ModelInfo: ...

    def __call__(self, frames: Frames, faces: Faces) -> Faces: ...

    def many(self, items: list[tuple[Frames, Faces]]) -> list[Faces]: ...


class Classifier:
    """``Classifier(options)(frames, faces) -> faces`` with ``probs`` filled, one row per face."""

    def __init__(self, options: Options) -> None:
        specs = member_specs(options)
        self.fingerprint = fingerprint(specs)
        self.labels = list(self.fingerprint.labels)
        self.members = [Member(s, options) for s in specs]
        # each member's columns in the classifier's label order
        self._order = [np.array([s.labels.index(lab) for lab in self.labels]) for s in specs]
        self.tta = options.classification.tta
        self.id = "+".join(s.id for s in specs)
        self.sha256 = self.fingerprint.sha256
        self.session = self.members[0].session  # the provider in use is the same for every member
        # fitted for the bundled ensemble with its own crops: another crop margin moves every feature it reads
        self.calibration = (
            quality.calibration_for(self.id, self.tta) if options.classification.crop_margin is None else None
        )

    @property
    def needs_color(self) -> bool:
        return any(m.color != "gray" for m in self.members)

    @property
    def provider(self) -> str:
        """The onnxruntime execution provider the models run on (the same for every member)."""
        return str(self.session.get_providers()[0])

    def describe(self) -> ModelInfo:
        """What the table's metadata records about the classifier: enough to reproduce its numbers."""
        return ModelInfo(id=self.id, sha256=self.sha256, spec_sha256=self.fingerprint.spec_sha256,
                         labels=self.labels, tta=self.tta,
                         members=[MemberInfo(id=m.spec.id, sha256=m.spec.sha256, crop=m.crop.as_dict())
                                  for m in self.members],
                         quality=quality.describe(self.calibration))  # fmt: skip

    def predict_crops(self, member: int, crops: np.ndarray) -> np.ndarray:
        """One member's probabilities for its crops, in the classifier's label order, mirrored too under TTA."""
        probs = self.members[member].predict(crops)[:, self._order[member]]
        if self.tta == "flip":
            probs = (probs + self.predict_mirrored(member, crops)) / 2
        return probs

    def predict_mirrored(self, member: int, crops: np.ndarray) -> np.ndarray:
        """One member's probabilities for the mirror images of its crops, in the classifier's label order: what
        ``--tta flip`` averages in, and what ``quality`` reads (an answer that changes when the face is mirrored
        is less often right)."""
        return self.members[member].predict(np.ascontiguousarray(crops[:, :, ::-1]))[:, self._order[member]]

    def __call__(self, frames: Frames, faces: Faces) -> Faces:
        """``faces`` with probabilities, and the signals of how far to trust them: pose, sharpness, quality."""
        return self.many([(frames, faces)])[0]

    def many(self, items: list[tuple[Frames, Faces]]) -> list[Faces]:
        """``__call__`` for several (frames, faces) pairs (photos of different sizes), each member's crops of all
        of them scored in one batch: a folder of photos pays for batched network calls, not one call per photo.
        Each face's probabilities are those it gets alone (the networks score each crop on its own)."""
        crops = [[m.crops(fr, fa) for fr, fa in items] for m in self.members]
        joined = [c[0] if len(c) == 1 else np.concatenate(c) for c in crops]  # a video's window: no copy
        each = [self.predict_crops(k, c) if len(c) else None for k, c in enumerate(joined)]
        # the calibrated quality also reads some members' answers on the mirrored face, averaged with the plain
        # ones exactly as ``--tta flip`` averages them (the fitting script reads them from such tables)
        mirrored = quality.MIRRORED if self.calibration is not None else ()
        both = [(each[k] + self.predict_mirrored(k, joined[k])) / 2 for k in mirrored if each[k] is not None]
        ends = np.cumsum([0] + [len(fa) for _, fa in items])
        return [self._scored(fr, fa, [e[ends[i] : ends[i + 1]] for e in each if e is not None],
                             [b[ends[i] : ends[i + 1]] for b in both])
                for i, (fr, fa) in enumerate(items)]  # fmt: skip

    def _scored(self, frames: Frames, faces: Faces, each: list[np.ndarray], both: list[np.ndarray]) -> Faces:
        """``faces`` with the members' probabilities ``each`` averaged, and the trust signals computed (``both``:
        those of the members ``quality`` reads on the mirrored face, averaged with it, where it is calibrated)."""
        if not len(faces):
            empty = np.zeros(0, dtype=np.float32)
            return faces.replace(probs=np.zeros((0, len(self.labels)), dtype=np.float32),
                                 pose=np.zeros((0, 3), np.float32), sharpness=empty, quality=empty)  # fmt: skip
        total = each[0].copy()
        for more in each[1:]:  # in member order, as the tables always summed them
            total += more
        probs = (total / len(self.members)).astype(np.float32)
        pos = {int(f): j for j, f in enumerate(frames.index)}
        look = quality.Look.of([(frames.gray[pos[int(f)]], b) for f, b in zip(faces.frame, faces.boxes, strict=True)])
        angles = quality.pose(faces.landmarks)
        q = quality.quality(probs, each, both, faces.boxes, angles, look, self.calibration)
        return faces.replace(probs=probs, pose=angles, sharpness=look.sharpness, quality=q)


def _common_labels(specs: list[models.ModelSpec]) -> list[str]:
    """The label order of the classifier: FER2013's when the models have its seven classes, else the model's own."""
    first = specs[0].labels
    for s in specs[1:]:
        if set(s.labels) != set(first):
            raise ModelError(
                f"ensemble members must have the same labels: {specs[0].id} has {first}, {s.id} has {s.labels}"
            )
    return list(FER7) if set(first) == set(FER7) else first
