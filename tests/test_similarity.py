import itertools
import math

import numpy as np
import pytest

from shared.similarity import DistanceStats, distance_stats, similarity

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
