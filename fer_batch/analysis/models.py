"""Model manifest, checksum verification and onnxruntime sessions.

Why here: the models ship inside the package (no run-time download); every consumer goes through this module so
the sha256 check, the choice of execution provider and the thread count are made once and the same way.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from fer_batch.analysis.model_checks import as_probabilities, check_values, read_spec
from fer_batch.errors import ModelError, ModelOutputError, describe

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parents[1]  # fer_batch/
# Installed wheels carry the models inside the package; a source checkout keeps them in <repo>/models.
_CANDIDATE_DIRS = (_PACKAGE_DIR / "_models", _PACKAGE_DIR.parent / "models")

REQUIRED_KEYS = ("id", "task", "file", "sha256", "source", "license", "input")
INPUT_KEYS = ("layout", "height", "width", "channels", "color", "scale", "offset", "mean", "std")


def models_dir() -> Path:
    """The folder holding manifest.json and the ONNX files."""
    for d in _CANDIDATE_DIRS:
        if (d / "manifest.json").is_file():
            return d
    raise ModelError(f"no models/manifest.json found (looked in {', '.join(map(str, _CANDIDATE_DIRS))})")


def load_manifest() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = json.loads((models_dir() / "manifest.json").read_text())
    return entries


@dataclass(frozen=True)
class ModelSpec:
    """One manifest entry with the file it points at resolved."""

    entry: dict[str, Any]
    path: Path

    @property
    def id(self) -> str:
        return str(self.entry["id"])

    @property
    def sha256(self) -> str:
        return str(self.entry["sha256"])

    @property
    def labels(self) -> list[str]:
        return list(self.entry.get("labels", []))

    @property
    def input(self) -> dict[str, Any]:
        return dict(self.entry["input"])

    @property
    def output(self) -> str:
        """"probabilities" (the default) or "logits": what the model's outputs are (a softmax turns logits into the
        former)."""
        return str(self.entry.get("output", "probabilities"))

    @property
    def spec_sha256(self) -> str:
        """A checksum of what the entry says about using the model (input transform, labels, crop, output kind),
        leaving out where it came from, so a spec moved or renamed keeps its tables and an edited one does not."""
        kept = {k: v for k, v in self.entry.items() if k not in ("id", "file", "source", "license", "sha256")}
        return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()

    def transform(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel (a, b) such that a pixel v in 0..255 is fed as v * a + b.

        Folds the manifest's ``(v*scale + offset - mean[c]) / std[c]`` into one multiply-add.
        """
        inp = self.entry["input"]
        mean = np.asarray(inp["mean"], dtype=np.float64)
        std = np.asarray(inp["std"], dtype=np.float64)
        a = float(inp["scale"]) / std
        b = (float(inp["offset"]) - mean) / std
        return a.astype(np.float32), b.astype(np.float32)


def validate_entry(entry: dict[str, Any], where: str) -> None:
    """Fail with one clear line when a manifest entry lacks what the pipeline reads."""
    missing = [k for k in REQUIRED_KEYS if k not in entry]
    missing += [f"input.{k}" for k in INPUT_KEYS if k not in entry.get("input", {})]
    if entry.get("task") == "emotion" and not entry.get("labels"):
        missing.append("labels")
    if missing:
        raise ModelError(f"{where}: model spec lacks {', '.join(missing)}")
    check_values(entry, where)


def file_sha256(path: Path) -> str:
    """The file's sha256, cached while its identity, size and mtime stay the same (a file replaced at the same path
    in a long-lived process is hashed again: ``--resume`` compares what made a table, not where it was)."""
    st = Path(path).stat()
    return _sha256_of(Path(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


@lru_cache(maxsize=64)
def _sha256_of(path: Path, dev: int, ino: int, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def combined_sha256(parts: list[str]) -> str:
    """One checksum for an ensemble: the sha256 of its members' checksums in order."""
    return hashlib.sha256("+".join(parts).encode()).hexdigest()


def resolve(model: str, spec_path: str | None = None, task: str = "emotion") -> ModelSpec:
    """Find a model by manifest id, or a user's ONNX file described by a JSON spec, and verify it."""
    if spec_path is not None or model.endswith(".onnx"):
        if spec_path is None:
            raise ModelError(f"{model}: a custom model needs --model-spec SPEC.json (a manifest entry)")
        entry = read_spec(spec_path)
        entry.setdefault("id", Path(model).stem)
        entry.setdefault("task", task)
        entry.setdefault("file", Path(model).name)
        entry.setdefault("source", {"path": str(model)})
        entry.setdefault("license", "unknown")
        path = Path(model)
        if not path.is_file():
            raise ModelError(f"{model}: model file not found")
        entry.setdefault("sha256", file_sha256(path.resolve()))
        validate_entry(entry, spec_path)
    else:
        entries = {e["id"]: e for e in load_manifest()}
        if model not in entries:
            raise ModelError(f"unknown model {model!r}; known: {', '.join(sorted(entries))}")
        entry = entries[model]
        validate_entry(entry, f"manifest entry {model}")
        path = models_dir() / entry["file"]
        if not path.is_file():
            raise ModelError(f"{path}: model file missing")
    if entry.get("task") != task:
        raise ModelError(f"{model}: is a {entry.get('task')!r} model, expected {task!r}")
    actual = file_sha256(path.resolve())
    if actual != entry["sha256"]:
        raise ModelError(f"{path}: sha256 {actual} does not match the manifest's {entry['sha256']}")
    return ModelSpec(entry=entry, path=path)


@dataclass(frozen=True)
class ModelCheck:
    """One bundled model as ``fer-batch models`` lists it: what it is, where it lies, whether its checksum holds."""

    id: str
    task: str
    license: str
    file: Path
    sha256_ok: bool


def check_all() -> list[ModelCheck]:
    """One check per manifest model."""
    checks = []
    for entry in load_manifest():
        path = models_dir() / entry["file"]
        ok = path.is_file() and file_sha256(path.resolve()) == entry["sha256"]
        checks.append(ModelCheck(id=entry["id"], task=entry["task"], license=entry["license"], file=path, sha256_ok=ok))
    return checks


def choose_providers(device: str) -> list[str]:
    """Execution providers for ``device``, checked against what this onnxruntime build offers."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise ModelError(
                f"--device cuda: onnxruntime offers no CUDAExecutionProvider here (available: {', '.join(available)});"
                " replace onnxruntime with onnxruntime-gpu on a machine with an NVIDIA GPU (README, GPU)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "auto":
        return (["CUDAExecutionProvider"] if "CUDAExecutionProvider" in available else []) + ["CPUExecutionProvider"]
    raise ModelError(f"unknown device {device!r}")


_logged_providers: set[str] = set()


def check_classifier(model: str, spec_path: str | None) -> ModelSpec:
    """Resolve an emotion model and, for a custom one, run it once on a blank face.

    Why: a file that is not ONNX, takes another input, or gives a different number of outputs than its spec has
    labels would otherwise fail every input one by one (or, worse, fill the label columns with the wrong numbers).
    """
    spec = resolve(model, spec_path, task="emotion")
    if spec_path is None and not model.endswith(".onnx"):
        return spec  # a bundled model: its checksum vouches for it
    inp = spec.input
    c, h, w = int(inp["channels"]), int(inp["height"]), int(inp["width"])
    x = np.zeros((2, h, w, c), np.float32)  # a blank face and one of noise, through the spec's transform
    x[1] = np.random.default_rng(0).integers(0, 256, (h, w, c))
    a, b = spec.transform()
    x = x * a + b
    if inp["layout"] == "NCHW":
        x = x.transpose(0, 3, 1, 2)
    try:
        sess = session(spec.path, "cpu", threads=1)
        out = run_batched(sess, np.ascontiguousarray(x))
    except Exception as e:  # noqa: BLE001 — onnxruntime raises its own classes for every kind of bad model
        reason = describe(e)[:300]
        raise ModelError(f"{model}: cannot run as described by {spec_path}: {reason}") from None
    n = out.shape[1]
    if n != len(spec.labels):
        raise ModelError(f"{model}: gives {n} outputs per face, but {spec_path} names {len(spec.labels)} labels")
    try:
        as_probabilities(out, spec.output, model)
    except ModelOutputError as e:
        raise ModelError(f"{e} (checked before the run, as {spec_path} describes it)") from None
    return spec


def fixed_batch(sess: Any) -> int | None:
    """The batch size a model's input is fixed to (many exports say 1), or None where it takes any."""
    dim = sess.get_inputs()[0].shape[0] if sess.get_inputs()[0].shape else None
    return dim if isinstance(dim, int) and dim >= 1 else None


def run_batched(sess: Any, x: np.ndarray, fixed: int | None = None) -> np.ndarray:
    """The model's first output (faces, ...) for ``x``; a model fixed to batches of N gets them, the last padded."""
    fixed = fixed if fixed is not None else fixed_batch(sess)
    name = sess.get_inputs()[0].name
    if fixed is None or len(x) == fixed:
        return np.asarray(sess.run(None, {name: x})[0], dtype=np.float32).reshape(len(x), -1)
    parts = []
    for lo in range(0, len(x), fixed):
        chunk = x[lo : lo + fixed]
        pad = np.concatenate([chunk, np.zeros((fixed - len(chunk), *x.shape[1:]), x.dtype)]) if len(chunk) < fixed \
            else chunk  # fmt: skip
        parts.append(np.asarray(sess.run(None, {name: pad})[0], dtype=np.float32).reshape(fixed, -1)[: len(chunk)])
    return np.concatenate(parts)


@dataclass(frozen=True)
class StageThreads:
    """onnxruntime intra-op threads of each model session of a job that owns ``cores`` cores.

    Why split: the pipeline runs the decoder, full-frame scans, detection around known faces and the classifier in
    threads of their own (``pipeline.py``), so the cores are kept busy by stages overlapping, which costs nothing,
    rather than by splitting each call over threads, which costs CPU (1 vs 2 threads, measured per call: a
    864x480 scan 83 vs 95 ms CPU, a 96x96 region 2.2 vs 2.7 ms, a 112x112 face 1.9 vs 2.4 ms). Full scans are big
    convolutions that scale, so beyond two cores they get half of them and the classifier a quarter; regions are too
    small to gain from a second thread.
    """

    scan: int | None
    regions: int | None
    classify: int | None

    @classmethod
    def of(cls, cores: int | None, scanning: bool = True) -> StageThreads:
        """The split for ``cores`` (None: each session takes onnxruntime's default, as a bare session would).

        Without a detector network (``--detector none``: the image is the face) the classifier has no stage to
        overlap with but decoding, so it takes every core: a folder of 1,000 face crops ran 3.99x a bare
        read-and-classify loop's wall time on one classifier thread (``benchmarks/crops_folder.py``)."""
        if cores is None:
            return cls(None, None, None)
        if not scanning:
            return cls(scan=None, regions=None, classify=cores)
        return cls(scan=max(1, cores // 2), regions=1, classify=max(1, cores // 4))


def session(path: Path, device: str = "auto", threads: int | None = None) -> Any:
    """An onnxruntime session with a fixed thread count, so parallel jobs do not oversubscribe the cores."""
    import onnxruntime as ort

    ort.set_default_logger_severity(3)  # errors reach the user as one line each, not as onnxruntime's log dumps
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    # idle worker threads would busy-wait on cores the decoder thread needs (measured: 110 -> 147 fps at 720p)
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=choose_providers(device))
    provider = sess.get_providers()[0]
    if provider not in _logged_providers:
        _logged_providers.add(provider)
        log.info("onnxruntime runs on %s", provider)
    return sess


def cores() -> int:
    """The cores this process may use (respects affinity masks set by a scheduler)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
