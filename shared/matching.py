"""From photo bytes to look-alikes: decode, find faces, query the index.

Pure orchestration of the core modules, shared by the CLI and the worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.config import Settings, SimilarityMethod
from shared.faces import Face, FaceScan, find_faces
from shared.images import decode_image
from shared.index import CelebrityIndex, Match
from shared.models import FaceModels
from shared.people import article_url, credit, names
from shared.similarity import CALIBRATED


@dataclass(frozen=True)
class FaceMatches:
    face: Face
    matches: list[Match]


@dataclass(frozen=True)
class PhotoMatches:
    scan: FaceScan
    faces: list[FaceMatches]  # largest face first
    method: SimilarityMethod = CALIBRATED  # how similarities were computed
    skipped: int = 0  # closer look-alikes left out before each face's matches ("More")
    more: bool = False  # some face has look-alikes after these


def match_scan(scan: FaceScan, index: CelebrityIndex, top_k: int = 3,
               floor: float = 0.01, method: SimilarityMethod = CALIBRATED,
               sex: str | None = None, skip: int = 0) -> PhotoMatches:
    """The look-alikes ranked `skip + 1` to `skip + top_k` of every face, only those of
    `sex` when given; one more is asked for to tell whether there are more."""
    found = [index.query(face.descriptor, skip + top_k + 1, floor, method, sex=sex)
             for face in scan.faces]
    faces = [FaceMatches(face, matches[skip:skip + top_k])
             for face, matches in zip(scan.faces, found, strict=True)]
    return PhotoMatches(scan=scan, faces=faces, method=index.scorer(method, floor).method,
                        skipped=skip,
                        more=any(len(matches) > skip + top_k for matches in found))


def match_photo(data: bytes, index: CelebrityIndex, models: FaceModels | None = None,
                settings: Settings | None = None, sex: str | None = None,
                skip: int = 0) -> PhotoMatches:
    """Look-alikes of every face in a photo (ranked after `skip`, of `sex` when given).
    Raises `shared.images.ImageError`."""
    settings = settings or Settings()
    image = decode_image(data, settings.detection.max_image_pixels)
    scan = find_faces(image, models, detection=settings.detection)
    return match_scan(scan, index, settings.top_k, settings.similarity_floor,
                      settings.similarity, sex, skip)


def match_json(match: Match, language_code: str | None = None) -> dict[str, Any]:
    """One match as JSON: id, name, distance, similarity, themself (the best match may be
    the person), and the index's `names`, `url` (the Wikipedia article in
    `language_code`, else English) and `credit` when it has them."""
    celebrity = match.celebrity
    record: dict[str, Any] = {"id": celebrity.id, "name": celebrity.name,
                              "distance": round(match.distance, 4),
                              "similarity": round(match.similarity, 4),
                              "themself": match.themself}
    if names(celebrity):
        record["names"] = names(celebrity)
    if url := article_url(celebrity, language_code):
        record["url"] = url
    if found := credit(celebrity):
        record["credit"] = found.to_json()
    return record


def matches_json(result: PhotoMatches, language_code: str | None = None) -> list[dict[str, Any]]:
    """The faces of a result as plain JSON-ready data (boxes as [left, top, right, bottom])."""
    return [{"box": list(item.face.box),
             "matches": [match_json(m, language_code) for m in item.matches]}
            for item in result.faces]
