"""The manifest of an index directory: what it contains and what it was built with.

A worker refuses an index whose schema or models differ from its own, because
descriptors from other models are not comparable, and one whose files do not match
their recorded hashes (a partial or corrupt download).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Defined with the version pointer, whose readers raise it too without loading numpy;
# imported from here by everything that reads an index.
from shared.index_versions import IndexMismatch as IndexMismatch
from shared.models import model_identity
from shared.similarity import Calibration, DistanceStats

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"


@dataclass
class Manifest:
    entries: int
    celebrities: int
    hnsw: dict[str, Any]
    distance_stats: DistanceStats
    files: dict[str, str]  # file name -> sha256
    schema_version: int = SCHEMA_VERSION
    models: dict[str, Any] = field(default_factory=model_identity)
    created: str = field(
        default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    photos: int = 0  # celebrities with a photo to show
    recall: dict[str, float] = field(default_factory=dict)
    build: dict[str, Any] = field(default_factory=dict)  # free-form notes from the builder
    # Strangers' best-match distances (shared/similarity.py); indexes built before it
    # have none and are scored with the seed's formula.
    calibration: Calibration | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise IndexMismatch(f"{MANIFEST_FILE} is not valid JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise IndexMismatch(f"{MANIFEST_FILE} is not a JSON object")
        version = raw.get("schema_version")
        if version != SCHEMA_VERSION:
            raise IndexMismatch(f"index schema version {version!r} is not supported; this code "
                                f"reads version {SCHEMA_VERSION}: rebuild the index")
        try:
            raw["distance_stats"] = DistanceStats(**raw["distance_stats"])
            if raw.get("calibration") is not None:
                raw["calibration"] = Calibration(**raw["calibration"])
            return cls(**raw)
        except (KeyError, TypeError, ValueError) as exc:
            raise IndexMismatch(f"{MANIFEST_FILE} is incomplete or malformed: {exc}") from None

    def check_models(self) -> None:
        """Refuse an index built with other models than the ones this code runs."""
        expected = model_identity()
        if self.models != expected:
            raise IndexMismatch(
                "the index was built with other face models "
                f"({json.dumps(self.models, sort_keys=True)}) than this code uses "
                f"({json.dumps(expected, sort_keys=True)}): rebuild the index")

    def write(self, directory: Path) -> None:
        (directory / MANIFEST_FILE).write_text(self.to_json())

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_FILE
        if not path.is_file():
            raise IndexMismatch(f"{directory} has no {MANIFEST_FILE}: not an index directory")
        return cls.from_json(path.read_text())
