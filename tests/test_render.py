"""The reply picture: a row per face, its best match's photo and percentage."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from shared.faces import Face, FaceQuality, FaceScan
from shared.index import Celebrity, Match
from shared.matching import FaceMatches, PhotoMatches
from shared.render import render_matches

TILE = 96
GREY = (200, 200, 200)  # the placeholder a match without a photo gets


def answer(themself: bool) -> PhotoMatches:
    face = Face(box=(20, 20, 60, 60), landmarks=(), descriptor=np.zeros(128, np.float32),
                quality=FaceQuality(40, 40, 3.0, 0.0, 1.0))
    matches = [Match(Celebrity("c1", "Ada Lovelace"), 0.3, 0.97, themself=themself),
               Match(Celebrity("c2", "Alan Turing"), 0.5, 0.7)]
    return PhotoMatches(FaceScan(np.zeros((100, 100, 3), np.uint8), 0, [face]),
                        [FaceMatches(face, matches)])


def match_tile(themself: bool) -> np.ndarray:
    picture = np.asarray(render_matches(answer(themself), tile=TILE))
    assert picture.shape == (TILE, 2 * TILE, 3)
    return picture[:, TILE:]


def test_a_best_match_carries_its_percentage() -> None:
    tile = match_tile(themself=False)
    assert (tile != GREY).any(axis=2).sum() > 100  # the badge over the placeholder


def test_a_match_that_may_be_the_person_has_no_percentage_as_in_the_caption() -> None:
    tile = match_tile(themself=True)
    assert (tile == GREY).all()


def gallery_picture(size: tuple[int, int]) -> bytes:
    """A picture with a left half and a right half of different colours, as JPEG."""
    canvas = Image.new("RGB", size, (30, 90, 200))
    canvas.paste((220, 60, 40), (size[0] // 2, 0, size[0], size[1]))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_a_tile_sized_gallery_picture_is_shown_as_decoded() -> None:
    data = gallery_picture((TILE, TILE))
    shown = np.asarray(render_matches(answer(themself=True), lambda _: data, tile=TILE))
    decoded = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    assert (shown[:, TILE:] == decoded).all()


def test_a_larger_gallery_picture_is_fitted_to_the_tile() -> None:
    # 3:2 -> the middle square, scaled down: the colour border lands mid-tile.
    data = gallery_picture((3 * TILE, 2 * TILE))
    tile = np.asarray(render_matches(answer(themself=True), lambda _: data, tile=TILE))[:, TILE:]
    assert tile[:, :TILE // 2 - 4, 2].mean() > 150  # blue on the left
    assert tile[:, TILE // 2 + 4:, 0].mean() > 150  # red on the right


def test_the_users_face_is_cropped_around_the_face_with_a_margin() -> None:
    result = answer(themself=True)
    result.scan.image[20:60, 20:60] = 255  # the face box, white on black
    face = np.asarray(render_matches(result, tile=TILE))[:, :TILE].mean(axis=2)
    # The 40 px face plus 0.6 of it on each side: 88 px scaled to the tile, face mid-tile.
    middle, margin = face[TILE // 2, TILE // 2], face[TILE // 2, 2]
    assert middle > 240 and margin < 15
