"""From photo bytes to look-alikes: decode, find faces, query the index.

Pure orchestration of the core modules, shared by the CLI and the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.config import Settings
from shared.faces import Face, FaceScan, find_faces
from shared.images import decode_image
from shared.index import CelebrityIndex, Match
from shared.models import FaceModels


@dataclass(frozen=True)
class FaceMatches:
    face: Face
    matches: list[Match]


@dataclass(frozen=True)
class PhotoMatches:
    scan: FaceScan
    faces: list[FaceMatches]  # largest face first


def match_scan(scan: FaceScan, index: CelebrityIndex, top_k: int = 3,
               floor: float = 0.01) -> PhotoMatches:
    faces = [FaceMatches(face, index.query(face.descriptor, top_k, floor)) for face in scan.faces]
    return PhotoMatches(scan=scan, faces=faces)


def match_photo(data: bytes, index: CelebrityIndex, models: FaceModels | None = None,
                settings: Settings | None = None) -> PhotoMatches:
    """Look-alikes of every face in a photo. Raises `shared.images.ImageError`."""
    settings = settings or Settings()
    image = decode_image(data, settings.detection.max_image_pixels)
    scan = find_faces(image, models, detection=settings.detection)
    return match_scan(scan, index, settings.top_k, settings.similarity_floor)


def matches_json(result: PhotoMatches) -> list[dict[str, Any]]:
    """The faces of a result as plain JSON-ready data (boxes as [left, top, right, bottom])."""
    return [
        {
            "box": list(item.face.box),
            "matches": [
                {"id": m.celebrity.id, "name": m.celebrity.name,
                 "distance": round(m.distance, 4), "similarity": round(m.similarity, 4)}
                for m in item.matches
            ],
        }
        for item in result.faces
    ]
