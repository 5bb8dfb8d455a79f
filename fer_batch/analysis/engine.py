"""The analysis engine: detect → track → classify on windows of decoded frames, with the detector's schedule.

Why windows: the faces of ``batch_size`` analysed frames are classified in one onnxruntime call, which is where
batching pays; detection and tracking stay per frame so results never depend on the window size. The engine
knows nothing of files: ``runs.one_input`` feeds it a video's frames, ``live`` a camera's.
"""

from __future__ import annotations

import enum
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fer_batch.analysis.classify import Classifier, FaceClassifier, Fingerprint, fingerprint, member_specs
from fer_batch.analysis.detect import Detector, RegionDetector, make_detector, nms
from fer_batch.analysis.models import cores
from fer_batch.analysis.track import Smoother, Tracker
from fer_batch.options import Options
from fer_batch.types import Decoded, Faces, Frames

REGION_MEMORY = 3  # detector frames whose faces are looked for again in regions

Models = tuple[Detector, FaceClassifier]  # what an ``Analyzer`` runs: a detector and an emotion classifier


def models_for(options: Options) -> tuple[Detector, Classifier]:
    """Detector and classifier for these options, loaded once per process (folder runs and segments reuse them)."""
    # only the settings the models read make a new pair (``Options.model_key``); the files' content is part of the
    # key, so a model or spec replaced at the same path is loaded again
    return _load_models(options.model_key(), fingerprint(member_specs(options)))


@lru_cache(maxsize=4)
def _load_models(options: Options, content: Fingerprint) -> tuple[Detector, Classifier]:
    return make_detector(options), Classifier(options)


def unload_models() -> None:
    """Forget the models loaded so far (after an allocation failure: onnxruntime's arena keeps what it grew to)."""
    _load_models.cache_clear()


@dataclass(frozen=True)
class Analysis:
    """What ``Analyzer.process`` found in one window: its analysed frames, their faces, smoothed probabilities."""

    frames: Frames
    faces: Faces
    smoothed: np.ndarray | None  # (faces, labels) when --smooth is on


class Action(enum.Enum):
    """What the detector does on one analysed frame."""

    SCAN = enum.auto()  # the full frame
    REGIONS = enum.auto()  # small regions around the faces found since the last scan
    CARRY = enum.auto()  # nothing: the tracker carries the boxes (frames skipped by --detect-every)


@dataclass(frozen=True)
class Planned:
    """A window whose detector actions are decided and whose full scans may still be running in another thread."""

    frames: Frames
    plan: list[Action]  # per analysed frame
    scans: Future[Faces]  # the faces of the frames planned ``Action.SCAN``


class ScanSchedule:
    """What the detector does on each analysed frame (an ``Action``): scan the full frame, look in regions, or carry.

    Why a class of its own: the schedule depends only on the stream (analysed-frame count and times), never on
    how frames fall into windows, and the segment planner replays it to start each segment on a frame where the
    whole-video run scans, so both must use this one rule.
    """

    def __init__(self, detect_every: int, scan_interval: float, regions: bool) -> None:
        self.detect_every, self.scan_interval, self.regions = detect_every, scan_interval, regions
        self.analysed = 0  # analysed frames so far, to pick the ones the detector runs on
        self.last_scan: float | None = None  # time of the last full-frame scan

    def next(self, t: float, has_planes: bool) -> Action:
        """The action for the next analysed frame, at ``t`` seconds.

        Regions are cut from the decoded planes; frames without them (photos, camera frames) are scanned whole, as
        is every detector frame of a detector that cannot look in regions.
        """
        n, self.analysed = self.analysed, self.analysed + 1
        if n % self.detect_every:
            return Action.CARRY
        due = self.last_scan is None or t - self.last_scan >= self.scan_interval - 1e-9
        if due or not has_planes or not self.regions:
            self.last_scan = t
            return Action.SCAN
        return Action.REGIONS


class Analyzer:
    """Runs detect → track → classify on windows of decoded frames of one video (or camera).

    ``models`` replace the ones ``options`` name (tests pass fakes: ``tests/fakes.py``); the schedule, tracker
    and smoother are this class's own either way.
    """

    def __init__(self, options: Options, models: Models | None = None) -> None:
        if options.runtime.threads is None:
            options = options.replace(threads=cores())
        self.options = options
        self.detector: Detector
        self.classifier: FaceClassifier
        self.detector, self.classifier = models if models is not None else models_for(options)
        self.labels = self.classifier.labels
        # once, not per reset: a runtime-checkable protocol's isinstance is slow, and a photo batch resets per photo
        self.region_detector = self.detector if isinstance(self.detector, RegionDetector) else None
        self.reset()

    def reset(self) -> None:
        """Forget the input so far (tracks, smoothing, scan schedule): the next frames start another input, as
        in a new ``Analyzer`` (a batch of photos uses one, without looking its models up again for each)."""
        options = self.options
        self.tracker = Tracker()
        self.smoother = Smoother(options.tracking.smooth) if options.tracking.smooth else None
        self.schedule = ScanSchedule(
            options.tracking.detect_every, options.tracking.scan_interval, self.region_detector is not None
        )
        self._recent: list[np.ndarray] = []  # boxes found on the latest detector frames, newest first

    def process(self, items: list[Decoded]) -> Analysis:
        """Faces of the analysed items (in order) with track ids and probabilities, and smoothed probabilities."""
        return self.classify(self.detect(items))

    def detect(self, items: list[Decoded]) -> Analysis:
        """The analysed frames of ``items`` and their faces with track ids, not yet classified."""
        return self.track(self.plan(items))

    def plan(self, items: list[Decoded], scan_pool: Executor | None = None) -> Planned:
        """The analysed frames of ``items`` and what the detector does on each; full scans start here.

        Per analysed frame, in order: a full-frame scan (the first frame, then at least every ``scan_interval``
        seconds), or detection in regions around the faces found since the last scan (the other detector frames),
        or boxes carried by the tracker (frames skipped by ``--detect-every``). The schedule depends only on the
        stream, never on how frames fall into windows, so results do not depend on the batch size. A scan needs
        nothing but its frame, so with ``scan_pool`` it runs there while the previous window is tracked.
        """
        frames = Frames.from_decoded(items, colour=self.classifier.needs_color)
        assert frames.yuv is not None
        plan = [self.schedule.next(float(t), p is not None) for t, p in zip(frames.time_s, frames.yuv, strict=True)]
        scan_pos = np.array([j for j, p in enumerate(plan) if p is Action.SCAN], dtype=np.int64)
        scans: Future[Faces] = Future()
        if not len(scan_pos):
            scans.set_result(Faces())
        elif scan_pool is not None:
            scans = scan_pool.submit(self.detector, frames.subset(scan_pos))
        else:
            scans.set_result(self.detector(frames.subset(scan_pos)))
        return Planned(frames, plan, scans)

    def track(self, planned: Planned) -> Analysis:
        """Faces of a planned window with track ids: its scans' faces, regions between them, the tracker's boxes."""
        frames, plan = planned.frames, planned.plan
        if not len(frames):
            return Analysis(frames, Faces(), None)
        scans = planned.scans.result()
        w, h = frames.size
        per_frame = []
        for j, idx in enumerate(frames.index):
            if plan[j] is Action.SCAN:
                found = scans.of_frame(int(idx))
                self._recent = [found.boxes]
                per_frame.append(self.tracker.update(found))
            elif plan[j] is Action.REGIONS and self.region_detector is not None:
                found = self.region_detector.regions(frames, j, self._regions())
                self._recent = [found.boxes, *self._recent][:REGION_MEMORY]
                per_frame.append(self.tracker.update(found))
            else:
                per_frame.append(self.tracker.predict(int(idx), w, h))
        return Analysis(frames, Faces.concat(per_frame), None)

    def classify(self, detected: Analysis) -> Analysis:
        """``detected`` with probabilities (and smoothed probabilities under ``--smooth``).

        Why apart from ``detect``: classification needs nothing from the next window and the next window's
        detection nothing from it, so ``run_video`` runs the two on different cores; windows reach this method in
        order, which the smoother's state along each track relies on.
        """
        if not len(detected.frames):
            return detected
        faces = self.classifier(detected.frames, detected.faces)
        smoothed = self.smoother(faces) if self.smoother is not None else None
        return Analysis(detected.frames, faces, smoothed)

    def _regions(self) -> np.ndarray:
        """Boxes to look around: the faces found on the last few detector frames since the last full scan.

        Why not the tracker's predictions: they depend on the whole history of the video, while these depend only
        on the frames since the last scan, so a video split into segments that start at a scan frame gives the
        same boxes and probabilities as the unsplit run. A face missed in one region is looked for again where
        it was last seen (``REGION_MEMORY`` frames), and re-found by the next scan at the latest.
        """
        boxes = np.concatenate(self._recent) if self._recent else np.zeros((0, 4), np.float32)
        if len(boxes) > 1:  # the newest box of each face comes first and wins
            boxes = boxes[nms(boxes, -np.arange(len(boxes), dtype=np.float32), 0.3)]
        return boxes
