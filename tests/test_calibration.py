"""The index measures its calibration when it is built, keeps it in its manifest, scores
with it, and says when a face may be the celebrity themself."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from shared.faces import find_faces
from shared.images import decode_image
from shared.index import Celebrity, CelebrityIndex
from shared.manifest import MANIFEST_FILE
from shared.similarity import CALIBRATED, SEED, calibrated_similarity, similarity


def _gallery(celebrities: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Face-like descriptors (different people about 0.9 apart, photos of one person about
    0.35), their celebrity rows, and the people's centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=0.056, size=(celebrities, 128))
    entries = np.repeat(np.arange(celebrities), rng.integers(1, 4, size=celebrities))
    descriptors = centres[entries] + rng.normal(scale=0.022, size=(len(entries), 128))
    return descriptors.astype(np.float32), entries, centres


def _people(count: int) -> list[Celebrity]:
    return [Celebrity(f"c{i}", f"Person {i}") for i in range(count)]


def test_the_calibration_is_each_entrys_nearest_other_celebrity():
    descriptors, entries, _ = _gallery(40)
    index = CelebrityIndex.build(descriptors, entries, _people(40))
    distances = np.linalg.norm(descriptors[:, None] - descriptors[None], axis=2)
    distances[entries[:, None] == entries[None]] = np.inf
    exact = np.sort(distances.min(axis=1))
    calibration = index.manifest.calibration
    assert calibration is not None and calibration.samples == len(descriptors)
    assert calibration.distances[0] == pytest.approx(exact[0], abs=1e-5)
    assert calibration.distances[-1] == pytest.approx(exact[-1], abs=1e-5)
    assert calibration.distances[50] == pytest.approx(np.median(exact), abs=1e-5)


def test_strangers_spread_over_the_range_where_the_seed_reads_about_100_percent():
    descriptors, entries, _ = _gallery(1500)
    index = CelebrityIndex.build(descriptors, entries, _people(1500))
    strangers = _gallery(300, seed=1)[0]  # new people drawn the same way
    calibrated = [index.query(d, 3, method=CALIBRATED) for d in strangers]
    seed = [index.query(d, 1, method=SEED)[0].similarity for d in strangers]
    best = np.array([m[0].similarity for m in calibrated])
    assert 0.3 < np.median(best) < 0.7 and np.percentile(best, 90) < 0.95
    assert np.median(seed) > 0.99  # rounds to 100% in the answer
    for matches in calibrated:  # the 2nd and 3rd matches on the same scale
        scores = [m.similarity for m in matches]
        assert scores == sorted(scores, reverse=True)
        assert all(m.similarity == calibrated_similarity(m.distance, index.manifest.calibration)
                   for m in matches)


def test_seed_method_gives_the_seed_formula_on_a_calibrated_index():
    descriptors, entries, centres = _gallery(50)
    index = CelebrityIndex.build(descriptors, entries, _people(50))
    for match in index.query(centres[3] + 0.03, 3, method=SEED):
        assert match.similarity == similarity(match.distance, index.stats)


def test_the_calibration_is_saved_and_an_index_without_one_uses_the_seed_formula(
        tmp_path, caplog):
    descriptors, entries, centres = _gallery(30)
    built = CelebrityIndex.build(descriptors, entries, _people(30))
    built.save(tmp_path)
    loaded = CelebrityIndex.load(tmp_path)
    assert loaded.manifest.calibration == built.manifest.calibration
    assert loaded.scorer(CALIBRATED).method == CALIBRATED

    manifest = json.loads((tmp_path / MANIFEST_FILE).read_text())
    del manifest["calibration"]  # as written before the calibration existed
    (tmp_path / MANIFEST_FILE).write_text(json.dumps(manifest))
    old = CelebrityIndex.load(tmp_path)
    assert old.manifest.calibration is None
    with caplog.at_level(logging.WARNING, logger="shared.index"):
        for centre in centres[:5]:
            for match in old.query(centre + 0.05, 3):
                assert match.similarity == similarity(match.distance, old.stats)
    assert len([r for r in caplog.records if "no calibration" in r.message]) == 1
    assert old.scorer(CALIBRATED).method == SEED


def test_one_celebrity_has_no_calibration():
    descriptors, entries, centres = _gallery(1)
    index = CelebrityIndex.build(descriptors, entries, _people(1))
    assert index.manifest.calibration is None
    assert index.query(centres[0], 1)[0].similarity == pytest.approx(1.0)


def test_only_a_close_best_match_may_be_the_person_themself():
    descriptors, entries, centres = _gallery(20)
    index = CelebrityIndex.build(descriptors, entries, _people(20))
    matches = index.query(centres[4], 3)
    assert matches[0].celebrity.id == "c4" and matches[0].themself
    assert not any(m.themself for m in matches[1:])
    stranger = _gallery(1, seed=9)[2][0]
    assert not index.query(stranger, 3)[0].themself


@pytest.fixture(scope="module")
def few_people(labelled, models) -> dict[str, list[np.ndarray]]:
    """Descriptors of four labelled people with three photos or more."""
    chosen = ("Barack_Obama", "Kit_Harington", "deepface_p04", "deepface_p06")
    return {person: [find_faces(decode_image(f.read_bytes()), models).faces[0].descriptor
                     for f in labelled[person]] for person in chosen}


def test_leave_one_out_says_it_may_be_the_person_and_never_someone_else(few_people):
    people = sorted(few_people)
    for person in people:
        for held_out in range(len(few_people[person])):
            rows, gallery = [], []
            for row, name in enumerate(people):
                for number, descriptor in enumerate(few_people[name]):
                    if (name, number) != (person, held_out):
                        rows.append(row)
                        gallery.append(descriptor)
            index = CelebrityIndex.build(np.stack(gallery), rows,
                                         [Celebrity(p, p) for p in people])
            best = index.query(few_people[person][held_out], 3)[0]
            assert best.celebrity.id == person and best.themself, (person, held_out)
        # Without the person in the gallery, nobody else is said to be them.
        others = [p for p in people if p != person]
        index = CelebrityIndex.build(
            np.stack([d for p in others for d in few_people[p]]),
            [row for row, p in enumerate(others) for _ in few_people[p]],
            [Celebrity(p, p) for p in others])
        for descriptor in few_people[person]:
            assert not index.query(descriptor, 3)[0].themself, person
