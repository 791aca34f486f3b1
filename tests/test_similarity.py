import itertools
import math

import numpy as np
import pytest

from shared.config import Settings
from shared.similarity import (
    CALIBRATED,
    CALIBRATION_LEVELS,
    SAME_PERSON_DISTANCE,
    SEED,
    Calibration,
    DistanceStats,
    Scorer,
    calibrated_similarity,
    calibration_from,
    distance_stats,
    similarity,
)

STATS = DistanceStats(mean=0.9, std=0.09)


def test_similarity_is_monotonic_and_bounded():
    distances = np.linspace(0.0, 2.0, 401)
    values = [similarity(float(d), STATS, floor=0.01) for d in distances]
    assert all(0.01 <= v <= 1.0 for v in values)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] > 0.999 and values[-1] == 0.01


def test_similarity_at_the_mean_is_one_half():
    assert similarity(0.9, STATS) == pytest.approx(0.5)
    # One standard deviation closer than strangers on average: 84% look less alike.
    assert similarity(0.81, STATS) == pytest.approx(0.8413, abs=1e-4)


def test_floor_and_non_finite_distances():
    assert similarity(5.0, STATS, floor=0.05) == 0.05
    assert similarity(math.nan, STATS, floor=0.02) == 0.02
    assert similarity(math.inf, STATS) == 0.01


def test_distance_stats_use_only_pairs_of_different_people():
    descriptors = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [3.0, 4.0]])
    stats = distance_stats(descriptors, np.array([0, 0, 1, 1]))
    assert stats.mean == pytest.approx(5.0) and stats.std == pytest.approx(0.0)
    assert stats.pairs == 4


def test_distance_stats_sample_large_sets_deterministically():
    rng = np.random.default_rng(1)
    descriptors = rng.normal(size=(3000, 8))
    labels = np.arange(3000)
    a = distance_stats(descriptors, labels, max_pairs=5000, seed=3)
    b = distance_stats(descriptors, labels, max_pairs=5000, seed=3)
    assert a == b and 4000 < a.pairs <= 5000
    assert a.mean == pytest.approx(4.0, rel=0.05)  # E|x-y| for 8-d N(0, 2I) is about 3.9


def test_distance_stats_need_two_people():
    with pytest.raises(ValueError):
        distance_stats(np.zeros((3, 4)), np.array([1, 1, 1]))


# -- the seed's numbers, exactly as the seed bot computed them (demo gallery statistics) ---

DEMO_STATS = DistanceStats(mean=0.8671913217340053, std=0.08628704857252155, pairs=452)


@pytest.mark.parametrize(("distance", "expected"), [
    (0.0, 1.0), (0.3, 0.9999999999753952), (0.5, 0.9999895691456029),
    (0.6, 0.9990210337109563), (0.685, 0.9826334395922639), (0.75, 0.9127929956111294),
    (0.8671913217340053, 0.5), (0.95, 0.16860603542008828), (1.2, 0.01), (2.0, 0.01)])
def test_seed_reproduces_the_seed_bots_numbers(distance, expected):
    assert similarity(distance, DEMO_STATS) == expected
    assert Scorer(SEED, DEMO_STATS, CALIBRATION).similarity(distance) == expected


# -- the calibrated score ---------------------------------------------------------------

CALIBRATION = calibration_from(np.random.default_rng(0).normal(0.65, 0.04, size=2000))


def test_calibrated_similarity_is_monotonic_and_bounded():
    distances = np.linspace(-1.0, 3.0, 2001)
    values = [calibrated_similarity(float(d), CALIBRATION, floor=0.01) for d in distances]
    assert all(0.01 <= v <= 1.0 for v in values)
    assert all(a >= b for a, b in itertools.pairwise(values))
    assert values[0] == 1.0 and values[-1] == 0.01
    assert calibrated_similarity(math.nan, CALIBRATION) == 0.01
    assert calibrated_similarity(math.inf, CALIBRATION, floor=0.05) == 0.05


def test_calibrated_similarity_is_the_share_of_farther_best_matches():
    best = np.arange(1, 1001) / 1000  # strangers' best matches at 0.001 ... 1.0
    calibration = calibration_from(best)
    assert len(calibration.distances) == CALIBRATION_LEVELS and calibration.samples == 1000
    for distance in (0.1, 0.25, 0.5, 0.9):
        share = float(np.mean(best > distance))
        assert calibrated_similarity(distance, calibration) == pytest.approx(share, abs=0.002)


def test_a_strangers_best_match_spreads_over_the_range():
    rng = np.random.default_rng(4)
    strangers = rng.normal(0.65, 0.04, size=5000)  # drawn like the calibration's
    scores = np.array([calibrated_similarity(float(d), CALIBRATION) for d in strangers])
    assert 0.45 < np.median(scores) < 0.55 and 0.85 < np.percentile(scores, 90) < 0.95


def test_calibration_needs_sorted_distances():
    with pytest.raises(ValueError):
        Calibration(distances=(0.7, 0.6))
    with pytest.raises(ValueError):
        Calibration(distances=(0.7,))
    with pytest.raises(ValueError):
        calibration_from(np.array([math.nan]))


def test_scorer_methods_and_the_person_themself():
    calibrated = Scorer(CALIBRATED, DEMO_STATS, CALIBRATION)
    assert calibrated.similarity(0.65) == pytest.approx(0.5, abs=0.02)
    assert calibrated.themself(SAME_PERSON_DISTANCE - 0.01)
    assert not calibrated.themself(SAME_PERSON_DISTANCE)
    with pytest.raises(ValueError):
        Scorer(CALIBRATED, DEMO_STATS, None)
    with pytest.raises(ValueError):
        Scorer("gauss", DEMO_STATS, CALIBRATION)  # type: ignore[arg-type]


def test_the_setting_names_a_method(monkeypatch):
    assert Settings().similarity == CALIBRATED
    monkeypatch.setenv("LOOKALIKE_SIMILARITY", "seed")
    assert Settings.from_env().similarity == SEED
    monkeypatch.setenv("LOOKALIKE_SIMILARITY", "normal")
    with pytest.raises(ValueError, match="LOOKALIKE_SIMILARITY"):
        Settings.from_env()
