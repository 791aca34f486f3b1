"""Large files (photos sent as files): faces down to 1/48 of the longest side are found,
and every face the seed's pipeline (upsample 1 on the full image) finds.

The images are built here: real faces of ../shared/faces cut out and pasted small on
large canvases (benchmarks/crowds.py).
"""

import numpy as np
import pytest

from benchmarks.crowds import crowd, face_cuts, overlap
from shared.detection import DEFAULT_DETECTION, OFF, DetectionSettings
from shared.faces import DetectionPlan, detection_plan, find_faces, locate_faces

# dlib's distance below which two faces are taken for the same person.
SAME_PERSON = 0.6


@pytest.fixture(scope="module")
def cuts(faces_dir, models):
    found = face_cuts(models, faces_dir)
    assert len(found) >= 12
    return found


def test_large_images_look_for_a_48th_of_their_side():
    detection = DEFAULT_DETECTION
    assert detection.large_image_side == 1280 and detection.large_face_fraction == 1 / 48
    # Photos up to 1280 px keep the photos' rule, larger images (files) go to 1/48 but
    # not below min_face_px.
    assert detection.smallest_face(1280) == 80.0
    assert detection.smallest_face(1600) == 40.0
    assert detection.smallest_face(6000) == 125.0
    assert detection.smallest_face(6000, coarse=True) == 750.0
    assert detection_plan(4000, 6000) == DetectionPlan(scale=pytest.approx(80 / 125), upsample=0)
    assert detection_plan(1280, 1920) == DetectionPlan(scale=1.0, upsample=1)
    assert detection_plan(960, 1280) == DetectionPlan(scale=1.0, upsample=0)
    # OFF keeps the photos' fraction for every size: the index builder's choice.
    assert DEFAULT_DETECTION.photo_rule_only().smallest_face(6000) == 375.0
    from shared.detection import BUILDER_DETECTION
    assert BUILDER_DETECTION.large_face_fraction == OFF


def test_large_image_rule_reads_from_the_environment(monkeypatch):
    from shared.config import Settings

    monkeypatch.setenv("LOOKALIKE_LARGE_FACE_FRACTION", "0")
    monkeypatch.setenv("LOOKALIKE_LARGE_IMAGE_SIDE", "2000")
    assert Settings.from_env().detection == DetectionSettings(large_image_side=2000,
                                                              large_face_fraction=OFF)


@pytest.mark.parametrize(("width", "height", "count"),
                         [(6000, 4000, 24), (3000, 4000, 16), (8000, 5000, 16)])
def test_a_crowd_of_48th_faces_is_found_in_a_large_file(cuts, models, width, height, count):
    # A 24 MP landscape, a 12 MP portrait and a 40 MP file (the pixel limit), each face
    # 1/48 of the longest side.
    face_px = round(max(width, height) / 48)
    group = crowd(cuts, width, height, face_px, count)
    scan = find_faces(group.image, models)
    assert len(scan.faces) == count and scan.rotation == 0
    for box, person in zip(group.boxes, group.people, strict=True):
        matches = [face for face in scan.faces if overlap(box, face.box) > 0.3]
        assert len(matches) == 1, (person.person, box)
        # The small face is described on the full-resolution file: the same person.
        distance = np.linalg.norm(matches[0].descriptor - person.descriptor)
        assert distance < SAME_PERSON, (person.person, box, distance)
    # The photos' rule (1/16 of the side) finds none of them.
    assert locate_faces(models, group.image, DEFAULT_DETECTION.photo_rule_only()) == []


def test_every_face_the_seed_finds_in_a_file_just_over_the_photo_sizes(cuts, models):
    # At 1920 px, 1/48 of the side is the seed's 40 px floor: faces of 44 px, which the
    # seed's pipeline finds on the colour image upsampled once.
    group = crowd(cuts, 1920, 1280, 44, 18, seed=1)
    ours = locate_faces(models, group.image)
    seed = models.detector(group.image, 1)
    assert len(seed) >= 16
    for rect in seed:
        box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
        assert any(overlap(box, other) > 0.3 for other, _ in ours), box
    assert all(any(overlap(box, other) > 0.3 for other, _ in ours) for box in group.boxes)
