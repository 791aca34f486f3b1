import numpy as np
import pytest
from PIL import Image

from benchmarks.crowds import overlap
from shared.detection import DEFAULT_DETECTION, OFF, DetectionSettings
from shared.faces import DetectionPlan, detection_plan, face_quality, find_faces, locate_faces
from shared.images import ImageError, decode_image


def test_plan_upsamples_small_photos_like_the_classic_pipeline():
    assert detection_plan(480, 640) == DetectionPlan(scale=1.0, upsample=1)
    assert detection_plan(120, 96) == DetectionPlan(scale=1.0, upsample=1)


def test_plan_scales_large_photos_down_to_the_smallest_wanted_face():
    plan = detection_plan(960, 1280)  # smallest wanted face: 1280 / 16 = 80 px
    assert plan == DetectionPlan(scale=1.0, upsample=0)
    photos = DEFAULT_DETECTION.photo_rule_only()  # 1/16 at any size, as for photos
    plan = detection_plan(3000, 4000, photos)  # 250 px faces -> scaled to 80 px
    assert plan.upsample == 0 and plan.scale == pytest.approx(80 / 250)
    plan = detection_plan(3000, 4000)  # a file: 1/48, 83 px faces -> scaled to 80 px
    assert plan.upsample == 0 and plan.scale == pytest.approx(80 / (4000 / 48))
    plan = detection_plan(600, 800)  # 50 px -> needs 1.6x: upsample on a 0.8 copy
    assert plan.upsample == 1 and plan.scale == pytest.approx(0.8)


def test_detection_defaults_are_the_settings_defaults():
    from shared.config import Settings

    # One declaration: the bot's settings and the pipeline's default are the same object.
    assert Settings().detection is DEFAULT_DETECTION
    assert (DEFAULT_DETECTION.min_face_px, DEFAULT_DETECTION.min_face_fraction) == (40, 1 / 16)
    assert DEFAULT_DETECTION.max_image_pixels == 40_000_000
    # 40 px floor up to 640 px, then 1/16 of the side; the coarse pass looks for 1/8.
    assert DEFAULT_DETECTION.smallest_face(320) == 40.0
    assert DEFAULT_DETECTION.smallest_face(1280) == 80.0
    assert DEFAULT_DETECTION.smallest_face(1280, coarse=True) == 160.0
    assert detection_plan(960, 1280, coarse=True) == DetectionPlan(scale=0.5, upsample=0)


def test_coarse_pass_off_is_one_value_from_the_environment_to_the_builder(monkeypatch):
    from index_builder.embedding import EmbedOptions
    from shared.config import Settings
    from shared.detection import BUILDER_DETECTION

    assert DEFAULT_DETECTION.coarse and not BUILDER_DETECTION.coarse
    assert BUILDER_DETECTION.coarse_face_fraction == OFF
    monkeypatch.setenv("LOOKALIKE_COARSE_FACE_FRACTION", "0")
    monkeypatch.setenv("LOOKALIKE_MIN_FACE_PX", "32")
    from_env = Settings.from_env().detection
    assert from_env == DetectionSettings(min_face_px=32, coarse_face_fraction=OFF)
    assert not from_env.coarse
    options = EmbedOptions("photos", "cache")
    assert options.detection == BUILDER_DETECTION
    assert EmbedOptions.from_json(options.to_json()) == options
    # The builder's cache namespace changes with what changes a result, and only then.
    coarse = EmbedOptions("photos", "cache", detection=DEFAULT_DETECTION)
    assert coarse.namespace() != options.namespace()
    assert EmbedOptions("elsewhere", "cache2").namespace() == options.namespace()


def test_quality_measures_roll_and_eye_distance():
    # Eyes level, 60 px apart: upright.
    points = ((130.0, 100.0), (110.0, 100.0), (50.0, 100.0), (70.0, 100.0), (90.0, 140.0))
    quality = face_quality((40, 60, 140, 160), points, 1.5)
    assert quality.width == 100 and quality.height == 100
    assert quality.eye_distance == pytest.approx(60.0)
    assert quality.roll_degrees == pytest.approx(0.0)
    # The right eye 60 px lower: a 45 degree tilt.
    tilted = ((130.0, 160.0), (110.0, 160.0), (50.0, 100.0), (70.0, 100.0), (90.0, 140.0))
    assert face_quality((40, 60, 140, 160), tilted, 1.0).roll_degrees == pytest.approx(45.0)


def test_hard_files_give_at_least_the_expected_faces(faces_dir, expected, models):
    for name, info in expected.items():
        if "info" not in info:
            continue
        image = decode_image((faces_dir / name).read_bytes())
        scan = find_faces(image, models)
        wanted = info["dlib_hog_faces_upsample1"]
        assert len(scan.faces) >= wanted, name
        if "noface" in name or "tiny" in name:
            assert scan.faces == [], name
        areas = [f.quality.width * f.quality.height for f in scan.faces]
        assert areas == sorted(areas, reverse=True), f"{name}: not largest first"
        for face in scan.faces:
            assert face.descriptor.shape == (128,) and face.descriptor.dtype == np.float32
            assert np.isfinite(face.descriptor).all()
            left, top, right, bottom = face.box
            assert 0 <= left < right <= scan.image.shape[1]
            assert 0 <= top < bottom <= scan.image.shape[0]


@pytest.mark.parametrize("name", ["derived_rot90.jpg", "derived_rot180.jpg"])
def test_turned_photos_yield_their_face(faces_dir, models, name):
    image = decode_image((faces_dir / "hard" / name).read_bytes())
    scan = find_faces(image, models)
    assert len(scan.faces) == 1 and scan.rotation != 0
    assert abs(scan.faces[0].quality.roll_degrees) < 20
    assert find_faces(image, models, try_rotations=False).faces == []


def test_upright_face_quality(faces_dir, models):
    image = decode_image((faces_dir / "hard" / "small_obama.jpg").read_bytes())
    face = find_faces(image, models).faces[0]
    assert abs(face.quality.roll_degrees) < 15
    assert 0.25 * face.quality.width < face.quality.eye_distance < 0.7 * face.quality.width
    assert face.quality.score > 0


def test_descriptors_come_from_full_resolution(faces_dir, models):
    # The same face found on a downscaled plan gives nearly the same descriptor as on
    # the classic full-resolution plan.
    image = decode_image((faces_dir / "hard" / "obama_1080p.jpg").read_bytes())
    fast = find_faces(image, models).faces[0]
    classic = find_faces(image, models, detection=DetectionSettings(min_face_fraction=0.0)).faces[0]
    assert np.linalg.norm(fast.descriptor - classic.descriptor) < 0.15


def test_broken_files_raise_typed_errors(faces_dir):
    for name in ("broken_empty.jpg", "broken_not_an_image.jpg", "broken_truncated.jpg"):
        with pytest.raises(ImageError):
            decode_image((faces_dir / "hard" / name).read_bytes())


# Detections of the fine pass that are not faces (looked at), so the coarse pass may
# miss them: photo, and the left and top of the box.
NOT_FACES = {("labelled/deepface_p08/img23.jpg", 1794, 534): "a blurred painted sun, 0.13"}


def _photos(faces_dir):
    for path in sorted(faces_dir.rglob("*")):
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp", ".gif"):
            try:
                yield path, decode_image(path.read_bytes())
            except ImageError:
                continue


def test_coarse_pass_loses_no_face_of_the_fine_pass(faces_dir, models):
    # On every readable photo of ../shared/faces (README, "Two names"): each face the fine
    # pass alone finds is also found coarse-to-fine (same place), and the coarse pass alone
    # decides most photos.
    coarse_only = photos = 0
    for photo, image in _photos(faces_dir):
        photos += 1
        fine = locate_faces(models, image, DEFAULT_DETECTION.fine_only())
        both = locate_faces(models, image)
        for box, _ in fine:
            if (photo.relative_to(faces_dir).as_posix(), box[0], box[1]) in NOT_FACES:
                continue
            assert any(overlap(box, other) > 0.5 for other, _ in both), (photo, box)
        coarse_only += both != fine  # boxes from the coarse scale differ from the fine ones
    assert coarse_only > photos // 2


def test_every_face_of_the_classic_pipeline_is_found(faces_dir, models):
    # The classic pipeline: dlib's detector on the colour image upsampled once. Ours
    # detects on a smaller grayscale copy (shared/faces.py); on the 800 px photos the
    # webhook picks, it must find every face the classic one finds.
    found = 0
    for photo, image in _photos(faces_dir):
        scale = 800 / max(image.shape[:2])
        if scale < 1:
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
            image = np.asarray(Image.fromarray(image).resize(size, Image.LANCZOS))
        if min(image.shape[:2]) < 2:
            continue
        ours = locate_faces(models, image)
        for rect in models.detector(image, 1):
            box = (rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1)
            assert any(overlap(box, other) > 0.3 for other, _ in ours), (photo, box)
            found += 1
    assert found > 100
