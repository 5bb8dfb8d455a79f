"""Fakes that tests pass through the code's seams instead of monkeypatching module globals.

- ``FakeDetector``: fixed boxes on every frame (a ``Detector``; ``FakeRegionDetector`` is a ``RegionDetector``), and
  a record of which frames it scanned, so a test can see the engine's schedule without a model.
- ``FakeClassifier``: fixed probabilities for every face (a ``FaceClassifier``), no onnxruntime session.
- ``FakeClock``: a ``Clock`` whose ``sleep`` moves its time on at once; also callable, for seams that take a
  ``Callable[[], float]`` (the manifest writer, progress).

Pass them as ``Analyzer(options, models=fake_models())``, ``run_video(..., models=...)``,
``run_webcam(..., clock=..., models=...)``, ``RealtimeFile(path, clock=...)``, ``ManifestWriter(out, clock=...)``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np

from fer_batch.analysis.classify import FER7
from fer_batch.analysis.info import ModelInfo
from fer_batch.types import Faces, Frames

BOX = (10.0, 8.0, 50.0, 56.0)  # x1, y1, x2, y2 in pixels: inside every clip the tests make (96x64 and larger)


class FakeDetector:
    """The same boxes on every frame it is given; ``scanned`` lists the frame indices of each call."""

    id = "fake-detector"
    sha256 = "0" * 64

    def __init__(self, boxes: tuple[tuple[float, float, float, float], ...] = (BOX,)) -> None:
        self.boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        self.scanned: list[list[int]] = []

    def __call__(self, frames: Frames) -> Faces:
        self.scanned.append([int(i) for i in frames.index])
        return self._faces(np.asarray(frames.index, dtype=np.int64))

    def _faces(self, index: np.ndarray) -> Faces:
        n, k = len(index), len(self.boxes)
        return Faces(
            frame=np.repeat(index, k),
            boxes=np.tile(self.boxes, (n, 1)),
            scores=np.full(n * k, 0.9, dtype=np.float32),
            landmarks=np.full((n * k, 5, 2), np.nan, dtype=np.float32),
            track_id=np.full(n * k, -1, dtype=np.int64),
        )


class FakeRegionDetector(FakeDetector):
    """A ``FakeDetector`` that can also look in regions: ``regions_on`` lists the frame indices it did so on."""

    def __init__(self, boxes: tuple[tuple[float, float, float, float], ...] = (BOX,)) -> None:
        super().__init__(boxes)
        self.regions_on: list[int] = []

    def regions(self, frames: Frames, j: int, boxes: np.ndarray) -> Faces:
        index = int(frames.index[j])
        self.regions_on.append(index)
        return self._faces(np.array([index], dtype=np.int64))


class FakeClassifier:
    """The same probabilities for every face (FER2013's seven labels, ``happy`` the likeliest by default).

    ``on_call(n)`` runs before the ``n``-th call (from 1) returns: a test makes analysis slow, or stops a run there.
    """

    labels = list(FER7)
    needs_color = False
    provider = "FakeExecutionProvider"

    def __init__(self, probs: tuple[float, ...] = (0.05, 0.05, 0.05, 0.6, 0.1, 0.05, 0.1),
                 on_call: Callable[[int], None] | None = None) -> None:  # fmt: skip
        self.probs = np.asarray(probs, dtype=np.float32)
        self.on_call = on_call
        self.calls = 0

    def describe(self) -> ModelInfo:
        return ModelInfo(id="fake-classifier", sha256="1" * 64, labels=self.labels)

    def __call__(self, frames: Frames, faces: Faces) -> Faces:
        self.calls += 1
        if self.on_call is not None:
            self.on_call(self.calls)
        n = len(faces)
        return faces.replace(probs=np.tile(self.probs, (n, 1)), pose=np.full((n, 3), np.nan, np.float32),
                             sharpness=np.ones(n, np.float32), quality=np.ones(n, np.float32))  # fmt: skip

    def many(self, items: list[tuple[Frames, Faces]]) -> list[Faces]:
        return [self(frames, faces) for frames, faces in items]


def fake_models(regions: bool = False) -> tuple[FakeDetector, FakeClassifier]:
    """A fresh detector (a region detector with ``regions``) and classifier, for ``models=``."""
    return (FakeRegionDetector() if regions else FakeDetector()), FakeClassifier()


class FakeClock:
    """Time that passes only when told: ``sleep`` and ``advance`` move it on at once (thread-safe)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept = 0.0

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def __call__(self) -> float:
        return self.monotonic()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._now += max(0.0, seconds)
            self.slept += max(0.0, seconds)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._now += seconds
