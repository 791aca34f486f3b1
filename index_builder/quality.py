"""Which face of a gallery photo, if any, is good enough to represent its celebrity.

A gallery photo must show one clear face: exactly one, or one whose box is at least
`dominance` times wider than every other (a star in front of a blurred crowd). The face
must be big enough for a reliable descriptor (inter-eye distance) and roughly upright
(head roll); a photo that fails is rejected with a reason, never guessed at.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from shared.faces import Face

NO_FACE = "no_face"
SEVERAL_FACES = "several_faces"
SMALL_FACE = "small_face"
TILTED_HEAD = "tilted_head"


@dataclass(frozen=True)
class QualityFilter:
    # dlib aligns faces to a 150 px chip; below ~24 px between the eyes (a ~60 px face)
    # the chip is mostly upsampling blur. The labelled photos measure 47 px at least.
    min_eye_distance: float = 24.0
    # The 5-point alignment straightens moderate roll; beyond this the landmarks are
    # unreliable. The labelled photos measure 16° at most.
    max_roll_degrees: float = 25.0
    # The largest face wins over others only when this many times wider than each.
    dominance: float = 2.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose_face(faces: Sequence[Face], rule: QualityFilter) -> tuple[Face | None, str]:
    """The face to index and "" or None and the rejection reason. `faces` largest first."""
    if not faces:
        return None, NO_FACE
    face = faces[0]
    if len(faces) > 1 and face.quality.width < rule.dominance * faces[1].quality.width:
        return None, SEVERAL_FACES
    if face.quality.eye_distance < rule.min_eye_distance:
        return None, SMALL_FACE
    if abs(face.quality.roll_degrees) > rule.max_roll_degrees:
        return None, TILTED_HEAD
    return face, ""
