"""A table's own record (Parquet key ``fer_batch``, JSON): what made it, from which source, and how it ended.

Why apart from the table's rows: resume, segment joins, ``render``, ``export`` and the report read only this, and
its JSON keys are a contract with tables written by earlier versions (``as_dict``/``from_dict`` keep them).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Union

import pyarrow as pa
import pyarrow.parquet as pq

from fer_batch._version import __version__
from fer_batch.analysis.info import DetectorInfo, ModelInfo
from fer_batch.types import Status

if TYPE_CHECKING:
    from fer_batch.analysis.engine import Analyzer
    from fer_batch.options import Options

META_KEY = b"fer_batch"


@dataclass(frozen=True)
class FileSource:
    """A recording on disk as it was when reading began: ``--resume`` compares size and mtime; the report and
    ``render`` find it by its (absolute) path."""

    path: str
    size: int | None = None
    mtime: float | None = None


@dataclass(frozen=True)
class CameraSource:
    """A live camera (or a file played at real-time pace): what ``webcam`` was told and what the device said."""

    camera: str
    description: str | None = None
    nominal_fps: float | None = None


Source = Union[FileSource, CameraSource]


def source_from_dict(d: dict[str, Any]) -> Source:
    """The source a table's JSON records (a camera's has ``camera``, a file's ``path``); keys added later ignored."""
    kind: type[FileSource] | type[CameraSource] = CameraSource if "camera" in d else FileSource
    known = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class AnnotatedVideo:
    """The annotated MP4 written with a table: the report plays it only while its size and mtime are these (one
    left by an earlier run with other options would show other faces under this table's name)."""

    path: str  # its name, beside the table
    size: int
    mtime_ns: int
    scale: float | str | None = None  # the --annotate-scale asked for ("auto" or a factor); None: not recorded

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "scale": self.scale}

    def is_at(self, path: Path) -> bool:
        """The file at ``path`` is this video (same size and mtime as recorded); False where there is none."""
        try:
            st = path.stat()
        except OSError:
            return False
        return (self.size, self.mtime_ns) == (st.st_size, st.st_mtime_ns)


ANNOTATED_SUFFIX = ".annotated.mp4"


def annotated_path(table: Path) -> Path:
    """Where a table's annotated video lies: ``a.parquet`` -> ``a.annotated.mp4``, beside it."""
    return table.with_name(table.name.removesuffix(".parquet") + ANNOTATED_SUFFIX)


@dataclass(frozen=True)
class TableMeta:
    """What a table's Parquet metadata (key ``fer_batch``, JSON) records: enough to reproduce the run, to resume
    safely and to draw the table again. One type for the three writers (a video, a camera, joined segments) and
    the readers (resume, segment resume, ``render``).
    """

    version: str
    options: dict[str, Any]
    source: Source
    model: ModelInfo | None = None
    detector: DetectorInfo | None = None
    provider: str | None = None
    width: int | None = None
    height: int | None = None
    rotation: int | None = None
    fps: float | None = None
    duration_s: float | None = None
    frames_decoded: int = 0
    frames_analysed: int = 0
    faces: int = 0
    status: Status = Status.OK  # OK or PARTIAL: a failed input leaves no table
    error: str | None = None
    annotated: AnnotatedVideo | None = None
    # a camera's table only (``clock`` is always set there)
    frames_captured: int | None = None
    clock: str | None = None
    started_at: str | None = None
    stopped_by: str | None = None
    recording: str | None = None
    # how a video's table was made: the parts' [start, end) seconds when it was split (--segment-seconds), else None
    segments: list[list[float]] | None = None
    segment_runs: list[dict[str, Any]] | None = None  # a joined table only: each part's range, frames and wall time

    CAMERA: ClassVar[tuple[str, ...]] = ("frames_captured", "clock", "started_at", "stopped_by", "recording")

    @property
    def labels(self) -> list[str] | None:
        return self.model.labels if self.model is not None else None

    @classmethod
    def made_by(cls, analyzer: Analyzer, options: Options, source: Source, **recorded: Any) -> TableMeta:
        """The one builder of a new table's metadata (a video's, a camera's): what every table records of the run
        that made it — version, the options as given, the models and where they ran — plus what its writer
        ``recorded``. (Joined segments take their first part's, ``replace``-d.)"""
        return cls(version=__version__, options=options.as_dict(), source=source,
                   model=analyzer.classifier.describe(),
                   detector=DetectorInfo(id=analyzer.detector.id, sha256=analyzer.detector.sha256),
                   provider=analyzer.classifier.provider, **recorded)  # fmt: skip

    def replace(self, **changes: Any) -> TableMeta:
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The JSON object: a camera's fields only in a camera's table; ``segments`` (null when not split) in a
        file's table, ``segment_runs`` only in a joined one."""
        # shallow: the values are plain JSON containers already, and ``asdict``'s deep copy cost a millisecond a
        # table (seconds over a folder of photos)
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["source"] = dataclasses.asdict(self.source)
        d["model"] = self.model.as_dict() if self.model is not None else None
        d["detector"] = self.detector.as_dict() if self.detector is not None else None
        d["annotated"] = self.annotated.as_dict() if self.annotated is not None else None
        if self.clock is None:
            for name in self.CAMERA:
                d.pop(name)
        else:
            d.pop("segments")
        if self.segment_runs is None:
            d.pop("segment_runs")
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TableMeta | None:
        """The metadata of a table; None where required fields are missing (not ours, or too old to trust)."""
        known = {f.name for f in dataclasses.fields(cls)}
        try:
            fields = {k: v for k, v in d.items() if k in known}
            fields["source"] = source_from_dict(fields["source"])
            fields["status"] = Status(fields.get("status", "ok"))
            if fields.get("model") is not None:
                fields["model"] = ModelInfo.from_dict(fields["model"])
            if fields.get("detector") is not None:
                fields["detector"] = DetectorInfo(id=fields["detector"]["id"], sha256=fields["detector"]["sha256"])
            if fields.get("annotated") is not None:
                a = fields["annotated"]
                fields["annotated"] = AnnotatedVideo(path=a["path"], size=a["size"], mtime_ns=a["mtime_ns"],
                                                     scale=a.get("scale"))  # fmt: skip
            return cls(**fields)
        except (TypeError, KeyError, AttributeError, ValueError):
            return None


def read_metadata(path: Path) -> dict[str, Any] | None:
    """The ``fer_batch`` metadata of a table as JSON, or None if it is not a complete table of ours."""
    try:
        meta = pq.read_metadata(path).metadata or {}
    except (OSError, pa.ArrowException):
        return None
    raw = meta.get(META_KEY)
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def read_table_meta(path: Path) -> TableMeta | None:
    """The ``fer_batch`` metadata of a table, or None if it is not a complete table of ours."""
    raw = read_metadata(path)
    return TableMeta.from_dict(raw) if isinstance(raw, dict) else None
