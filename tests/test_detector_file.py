"""The saved frontal face detector (shared/frontal_face_detector.svm) is dlib's own
detector: same bytes as dlib writes it, same faces and scores, and a damaged copy is
never used."""

from __future__ import annotations

from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image

from shared import models as models_module
from shared.models import DETECTOR_FILE, frontal_face_detector


def boxes_and_scores(detector: object, image: np.ndarray) -> list[tuple]:
    rects, scores, kinds = detector.run(image, 1, 0.0)
    return [(r.left(), r.top(), r.right(), r.bottom(), round(s, 6), k)
            for r, s, k in zip(rects, scores, kinds, strict=True)]


def test_saved_detector_is_the_bytes_dlib_writes(tmp_path: Path) -> None:
    written = tmp_path / "detector.svm"
    dlib.get_frontal_face_detector().save(str(written))
    assert written.read_bytes() == DETECTOR_FILE.read_bytes()


def test_saved_detector_finds_the_same_faces(labelled: dict[str, list[Path]]) -> None:
    saved, built = frontal_face_detector(dlib), dlib.get_frontal_face_detector()
    photos = [paths[0] for paths in list(labelled.values())[:4]]
    found = 0
    for path in photos:
        with Image.open(path) as opened:
            image = np.asarray(opened.convert("RGB"))
        ours = boxes_and_scores(saved, image)
        assert ours == boxes_and_scores(built, image)
        found += len(ours)
    assert found >= len(photos)


@pytest.mark.parametrize("content", [b"", b"not a detector", None])
def test_damaged_or_missing_copy_falls_back_to_dlib(tmp_path: Path, monkeypatch,
                                                     content: bytes | None) -> None:
    damaged = tmp_path / "frontal_face_detector.svm"
    if content is not None:
        damaged.write_bytes(content)
    monkeypatch.setattr(models_module, "DETECTOR_FILE", damaged)
    calls = []
    real = dlib.get_frontal_face_detector

    class Spy:
        def __getattr__(self, name: str) -> object:
            return getattr(dlib, name)

        def get_frontal_face_detector(self) -> object:
            calls.append(1)
            return real()

    detector = frontal_face_detector(Spy())
    assert calls == [1]
    assert isinstance(detector, dlib.fhog_object_detector)
