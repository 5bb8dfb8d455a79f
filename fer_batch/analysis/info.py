"""What a table records of the models that made it: typed, so resume, the report and ``render`` read fields, not
nested dict keys. Here, in the analysis layer, because the classifier and the detector describe themselves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class MemberInfo:
    """One model of an ensemble: which file, and the crop it was given (``CropSpec.as_dict``)."""

    id: str
    sha256: str
    crop: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.sha256, "crop": self.crop}


@dataclass(frozen=True)
class ModelInfo:
    """The emotion classifier that made a table: enough to reproduce its numbers, and what ``--resume`` compares
    (``sha256``, ``spec_sha256``, ``labels``: the files' content, not their names)."""

    id: str
    sha256: str
    labels: list[str]
    spec_sha256: str | None = None
    tta: str | None = None
    members: list[MemberInfo] = dataclasses.field(default_factory=list)
    quality: dict[str, Any] | None = None  # what ``quality`` means for it (``analysis.quality.describe``)

    KEYS: ClassVar[tuple[str, ...]] = ("id", "sha256", "spec_sha256", "labels", "tta", "members", "quality")

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, keys in their historical order."""
        d = {k: getattr(self, k) for k in self.KEYS}
        d["members"] = [m.as_dict() for m in self.members]  # shallow: this runs for every table written
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelInfo:
        """From a table's JSON (keys added later ignored; ``KeyError``/``TypeError`` where required ones lack)."""
        members = [MemberInfo(id=m["id"], sha256=m["sha256"], crop=m.get("crop")) for m in d.get("members") or []]
        return cls(id=d["id"], sha256=d["sha256"], labels=list(d["labels"]), spec_sha256=d.get("spec_sha256"),
                   tta=d.get("tta"), members=members, quality=d.get("quality"))  # fmt: skip


@dataclass(frozen=True)
class DetectorInfo:
    """The face detector that made a table (``--resume`` compares its file's checksum)."""

    id: str
    sha256: str

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.sha256}
