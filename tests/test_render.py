"""The reply picture: a row per face, its best match's photo and percentage."""

from __future__ import annotations

import numpy as np

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
