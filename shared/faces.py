"""The face pipeline: find every face in an RGB image and describe it with 128 numbers.

dlib's HOG frontal detector scans an 80-pixel window, so it sees faces of 80 px at
upsample 0 and of 40 px at upsample 1. Instead of always upsampling the full image
(slow on large photos), the image is scaled so that the smallest face worth finding,
`max(min_face_px, min_face_fraction × longest side)`, becomes 80 px (images over
`large_image_side`, files rather than photos, use `large_face_fraction` instead:
shared/detection.py). Most photos sent
to the bot hold one or a few large faces, so a coarse pass looks first for faces of at
least `coarse_face_fraction` of the photo on a much smaller copy; the fine pass runs only
when the coarse one finds nothing, or a face near its limit (a sign of smaller faces
around it, as in group photos). Landmarks and descriptors are then computed on the
full-resolution image. The detector reads a grayscale copy: on a colour image dlib's
HOG takes the strongest gradient of three channels, a fifth of the detection time, and on
the project's face photos (`../shared/faces`, README) luminance alone finds the same
faces (docs/face_pipeline.md). When
nothing is found the image is tried at 90°, 180° and 270°, since phones often drop the
EXIF orientation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from shared.detection import DEFAULT_DETECTION, DetectionSettings
from shared.models import FaceModels, load_models

DETECTOR_WINDOW_PX = 80
# A coarse pass's faces are trusted alone when all are at least this many times its
# smallest face size: 1.5 keeps every face of the fine pass on the project's face photos
# (`../shared/faces`, README; a test checks it).
COARSE_MARGIN = 1.5
ROTATIONS = (0, 90, 180, 270)  # degrees counter-clockwise, tried in this order

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom exclusive)


@dataclass(frozen=True)
class DetectionPlan:
    """How to run the detector: resize the image by `scale`, then upsample `upsample` times."""

    scale: float
    upsample: int


@dataclass(frozen=True)
class FaceQuality:
    width: int
    height: int
    eye_distance: float  # pixels between the eye centres, full resolution
    roll_degrees: float  # head tilt in the image plane; 0 is upright
    score: float  # detector confidence


@dataclass(frozen=True)
class Face:
    box: Box
    landmarks: tuple[tuple[float, float], ...]  # dlib's 5 points: eye corners, nose
    descriptor: np.ndarray  # float32, shape (128,)
    quality: FaceQuality


@dataclass(frozen=True)
class FaceScan:
    """The faces of one photo, largest first, in the coordinates of `image`.

    `image` is the photo turned by `rotation` degrees counter-clockwise (0 unless the
    faces were only found after turning it).
    """

    image: np.ndarray
    rotation: int
    faces: list[Face]


def detection_plan(height: int, width: int,
                   detection: DetectionSettings = DEFAULT_DETECTION, *,
                   coarse: bool = False) -> DetectionPlan:
    """Choose the detection scale that makes the smallest wanted face 80 px wide, for the
    fine pass or, with `coarse`, the coarse one.

    Scales above 1 use dlib's own 2× upsampling (as the classic upsample-1 pipeline
    does) on an image first reduced by half the scale.
    """
    smallest = detection.smallest_face(max(height, width), coarse=coarse)
    scale = min(DETECTOR_WINDOW_PX / smallest, 2.0)
    if scale > 1.0:
        return DetectionPlan(scale=scale / 2.0, upsample=1)
    return DetectionPlan(scale=scale, upsample=0)


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    if abs(scale - 1.0) < 1e-3:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR,
                                                     reducing_gap=2.0))


def grayscale(image: np.ndarray) -> np.ndarray:
    """The luminance of an RGB image (ITU-R 601, as Pillow computes it)."""
    if image.ndim == 2:
        return image
    return np.asarray(Image.fromarray(image).convert("L"))


def detect_faces(models: FaceModels, image: np.ndarray, plan: DetectionPlan,
                 threshold: float) -> list[tuple[Box, float]]:
    """Run the HOG detector as planned; boxes come back in full-resolution coordinates.

    `image` may be RGB or grayscale; `locate_faces` passes grayscale.
    """
    small = resize(image, plan.scale)
    if min(small.shape[:2]) * 2 ** plan.upsample < DETECTOR_WINDOW_PX:
        # No face fits; and dlib refuses arrays with a side of 1 px (their strides).
        return []
    rects, scores, _ = models.detector.run(small, plan.upsample, threshold)
    height, width = image.shape[:2]
    found = []
    for rect, score in zip(rects, scores, strict=True):
        box = (
            max(0, round(rect.left() / plan.scale)),
            max(0, round(rect.top() / plan.scale)),
            min(width, round((rect.right() + 1) / plan.scale)),
            min(height, round((rect.bottom() + 1) / plan.scale)),
        )
        if box[2] > box[0] and box[3] > box[1]:
            found.append((box, float(score)))
    return found


def locate_faces(models: FaceModels, image: np.ndarray,
                 detection: DetectionSettings = DEFAULT_DETECTION) -> list[tuple[Box, float]]:
    """Face boxes with detector scores, coarse pass first unless `detection` turns it off
    (see the module's docstring)."""
    image = grayscale(image)
    height, width = image.shape[:2]
    threshold = detection.detect_threshold
    fine = detection_plan(height, width, detection)
    if detection.coarse:
        coarse = detection_plan(height, width, detection, coarse=True)
        if coarse != fine:
            found = detect_faces(models, image, coarse, threshold)
            limit = COARSE_MARGIN * detection.smallest_face(max(height, width), coarse=True)
            if found and min(box[2] - box[0] for box, _ in found) >= limit:
                return found
    return detect_faces(models, image, fine, threshold)


def describe_face(models: FaceModels, image: np.ndarray, box: Box, score: float = 0.0,
                  jitters: int = 0) -> Face:
    """Landmarks, quality and the 128-d descriptor of the face in `box`."""
    import dlib

    rect = dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1)
    shape = models.predictor(image, rect)
    points = tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(5))
    descriptor = np.asarray(
        models.encoder.compute_face_descriptor(image, shape, jitters), dtype=np.float32
    )
    return Face(box=box, landmarks=points, descriptor=descriptor,
                quality=face_quality(box, points, score))


def face_quality(box: Box, points: tuple[tuple[float, float], ...], score: float) -> FaceQuality:
    """Box size, inter-eye distance and roll from dlib's 5 landmarks.

    dlib's 5-point model gives the two corners of one eye (0, 1), of the other (2, 3)
    and the base of the nose (4).
    """
    first = np.mean(points[0:2], axis=0)
    second = np.mean(points[2:4], axis=0)
    # Order the eyes left to right in the image so roll is 0 for an upright face.
    left, right = (first, second) if first[0] <= second[0] else (second, first)
    dx, dy = right - left
    return FaceQuality(
        width=box[2] - box[0],
        height=box[3] - box[1],
        eye_distance=float(math.hypot(dx, dy)),
        roll_degrees=float(math.degrees(math.atan2(dy, dx))),
        score=score,
    )


def find_faces(image: np.ndarray, models: FaceModels | None = None, *, jitters: int = 0,
               detection: DetectionSettings = DEFAULT_DETECTION,
               try_rotations: bool = True) -> FaceScan:
    """Every face in an RGB uint8 image, largest first, with descriptors.

    When the upright image has no face and `try_rotations` is set, the image turned by
    90°, 180° and 270° is tried and the first turn with a face is returned.
    """
    models = models or load_models()
    rotations = ROTATIONS if try_rotations else (0,)
    # The grayscale copy is made once and turned, the colour image only when a turn has
    # a face. Turned copies are searched with the photos' rule: turns are for phones that
    # drop the EXIF orientation, and three fine scans of a faceless 24 MP file would
    # cost three times the upright one.
    gray = grayscale(image)
    for rotation in rotations:
        turns = rotation // 90
        found = locate_faces(models, _turned(gray, turns),
                             detection if turns == 0 else detection.photo_rule_only())
        if found:
            turned = _turned(image, turns)
            faces = [describe_face(models, turned, box, score, jitters) for box, score in found]
            faces.sort(key=lambda f: f.quality.width * f.quality.height, reverse=True)
            return FaceScan(image=turned, rotation=rotation, faces=faces)
    return FaceScan(image=image, rotation=0, faces=[])


def _turned(image: np.ndarray, turns: int) -> np.ndarray:
    """`image` turned by `turns` quarter turns counter-clockwise, contiguous for dlib."""
    return image if turns == 0 else np.ascontiguousarray(np.rot90(image, turns))
