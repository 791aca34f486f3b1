"""Reply texts: look-alike captions within Telegram's limits, in the user's language."""

from __future__ import annotations

import numpy as np
import pytest

from shared.faces import Face, FaceQuality, FaceScan
from shared.index import Celebrity, Match
from shared.matching import FaceMatches, PhotoMatches
from shared.replies import CAPTION_LIMIT, matches_text, problem_text
from shared.texts import text


def result(faces: int, names: tuple[str, ...] = ("Ada Lovelace", "Alan Turing", "Grace Hopper"),
           with_matches: bool = True) -> PhotoMatches:
    items = []
    for number in range(faces):
        face = Face(box=(10 * number, 0, 10 * number + 9, 9), landmarks=(),
                    descriptor=np.zeros(128, np.float32),
                    quality=FaceQuality(9, 9, 3.0, 0.0, 1.0))
        matches = [Match(Celebrity(f"c{rank}", name), 0.3 + rank / 10, 0.97 - rank * 0.2)
                   for rank, name in enumerate(names)] if with_matches else []
        items.append(FaceMatches(face, matches))
    return PhotoMatches(FaceScan(np.zeros((10, 10, 3), np.uint8), 0, [i.face for i in items]),
                        items)


def test_one_face_lists_top_three_with_percent() -> None:
    caption = matches_text(result(1), "en")
    assert caption.splitlines() == ["Looks like:", "1. Ada Lovelace — 97%",
                                    "2. Alan Turing — 77%", "3. Grace Hopper — 57%"]


def test_several_faces_are_numbered_like_the_picture() -> None:
    caption = matches_text(result(2), "en")
    assert caption.startswith("Face 1:\n1. Ada Lovelace — 97%")
    assert "\n\nFace 2:\n1. Ada Lovelace" in caption


def test_russian() -> None:
    caption = matches_text(result(2), "ru-RU")
    assert caption.startswith("Лицо 1:") and "Лицо 2:" in caption
    assert problem_text("no_face", "ru") == text("no_face", "ru") != text("no_face", "en")


@pytest.mark.parametrize("faces", [5, 12, 40])
def test_many_faces_fit_the_caption_and_say_how_many_more(faces: int) -> None:
    names = ("A" * 200, "B" * 200, "C" * 200)  # long names are cut too
    caption = matches_text(result(faces, names), "en")
    assert len(caption) <= CAPTION_LIMIT
    shown = caption.count("Face ")
    assert 1 <= shown < faces
    assert caption.endswith(f"…and {faces - shown} more faces.")


def test_max_faces_matches_the_picture_rows() -> None:
    caption = matches_text(result(6), "en", max_faces=4)
    assert caption.count("Face ") == 4 and caption.endswith("…and 2 more faces.")


def test_no_match_is_refused_and_problems_have_answers() -> None:
    with pytest.raises(ValueError):
        matches_text(result(1, with_matches=False), "en")
    for code in ("no_face", "unreadable_image", "image_too_large", "file_too_large",
                 "download_failed", "no_match"):
        assert problem_text(code, "en") == text(code, "en")
    assert problem_text("something_new", "en") == text("unreadable_image", "en")
