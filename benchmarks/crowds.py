"""Large files with small real faces: the people of `../shared/faces/labelled` cut out
and pasted on a large canvas at a chosen face size, for the large-file tests and the
benchmark (benchmarks.large_files).

A face's size is the width of the box dlib's detector gives it on the source photo, so
"a face of 1/48 of the longest side" means that box, scaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from shared.detection import DEFAULT_DETECTION
from shared.faces import Box, describe_face, locate_faces
from shared.images import ImageError, decode_image
from shared.models import FaceModels

# Context kept around a face's box on each side, as a share of the box: the detector's
# window sees a little beyond the face, and a bare box on a plain canvas is not a face.
MARGIN = 0.6
PHOTO_DETECTION = DEFAULT_DETECTION.fine_only().photo_rule_only()


@dataclass(frozen=True)
class FaceCut:
    person: str
    image: np.ndarray  # RGB, the face with its margin
    box: Box  # the face's box within `image`
    descriptor: np.ndarray  # of the face in the source photo, full resolution


@dataclass(frozen=True)
class Crowd:
    image: np.ndarray  # RGB
    boxes: list[Box]  # where each face was pasted (its scaled box)
    people: list[FaceCut]  # whose face each box holds


def face_cuts(models: FaceModels, faces_dir: Path) -> list[FaceCut]:
    """One face per labelled person: from the first photo where the fine pass (at the
    photos' fraction: these faces are large) finds exactly one face with its margin
    inside the photo."""
    cuts = []
    for person in sorted(p for p in (faces_dir / "labelled").iterdir() if p.is_dir()):
        for path in sorted(person.iterdir()):
            try:
                image = decode_image(path.read_bytes())
            except ImageError:
                continue
            found = locate_faces(models, image, PHOTO_DETECTION)
            if len(found) != 1:
                continue
            box = found[0][0]
            pad = round(MARGIN * (box[2] - box[0]))
            left, top, right, bottom = box[0] - pad, box[1] - pad, box[2] + pad, box[3] + pad
            if left < 0 or top < 0 or right > image.shape[1] or bottom > image.shape[0]:
                continue
            face = describe_face(models, image, box)
            cuts.append(FaceCut(person=person.name, image=image[top:bottom, left:right].copy(),
                                box=(pad, pad, pad + box[2] - box[0], pad + box[3] - box[1]),
                                descriptor=face.descriptor))
            break
    return cuts


def crowd(cuts: list[FaceCut], width: int, height: int, face_px: int, count: int,
          seed: int = 0) -> Crowd:
    """`count` faces of `face_px` (box width) spread over a `width` × `height` canvas in
    a jittered grid, people taken in turn from `cuts`, on a smooth noisy background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = 90 + 60 * (xx / width) + 40 * (yy / height)
    background = np.stack([base, base * 0.9 + 10, base * 0.8 + 30], axis=-1)
    canvas = Image.fromarray(np.clip(background + rng.normal(0, 4, background.shape), 0, 255)
                             .astype(np.uint8))
    columns = max(1, round((count * width / height) ** 0.5))
    rows = -(-count // columns)
    cell_w, cell_h = width // columns, height // rows
    boxes, people = [], []
    for i in range(count):
        cut = cuts[i % len(cuts)]
        scale = face_px / (cut.box[2] - cut.box[0])
        size = (round(cut.image.shape[1] * scale), round(cut.image.shape[0] * scale))
        if size[0] > cell_w or size[1] > cell_h:
            raise ValueError(f"{count} faces of {face_px} px do not fit {width}x{height}")
        row, column = divmod(i, columns)
        left = column * cell_w + int(rng.integers(0, cell_w - size[0] + 1))
        top = row * cell_h + int(rng.integers(0, cell_h - size[1] + 1))
        canvas.paste(Image.fromarray(cut.image).resize(size, Image.Resampling.LANCZOS), (left, top))
        boxes.append((left + round(cut.box[0] * scale), top + round(cut.box[1] * scale),
                      left + round(cut.box[2] * scale), top + round(cut.box[3] * scale)))
        people.append(cut)
    return Crowd(image=np.asarray(canvas), boxes=boxes, people=people)


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
