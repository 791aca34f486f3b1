"""The one configuration object, read from environment variables.

Every field has a default that makes the local demo work; production sets the
variables in the function's deployment (see `infra/`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_GALLERY = REPO_ROOT / "demo" / "gallery"


@dataclass(frozen=True)
class Settings:
    # Where the celebrity index lives: a local directory or gs://bucket/prefix,
    # either an index builder output root (followed through its pointer) or one version.
    index_uri: str = str(DEMO_GALLERY)
    # Images with more pixels than this are refused before decoding (decompression bombs).
    max_image_pixels: int = 40_000_000
    # Faces smaller than both limits may be missed; see shared/faces.py for how they set the
    # detection scale.
    min_face_px: int = 40
    min_face_fraction: float = 1 / 16
    # dlib detector score threshold (0 is dlib's default).
    detect_threshold: float = 0.0
    # Celebrities listed per face.
    top_k: int = 3
    # Similarity is never reported below this share.
    similarity_floor: float = 0.01

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from `LOOKALIKE_*` variables, e.g. LOOKALIKE_INDEX_URI."""
        values = {}
        for f in fields(cls):
            raw = os.environ.get("LOOKALIKE_" + f.name.upper())
            if raw is None:
                continue
            kind = type(f.default)
            values[f.name] = kind(raw) if kind is not bool else raw.lower() in ("1", "true", "yes")
        return cls(**values)
