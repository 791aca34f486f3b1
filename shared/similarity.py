"""Similarity percentages from face-descriptor distances, two ways.

`calibrated` (the default): when the index is built, each celebrity's photos are matched
against all the *other* celebrities, which is what a newcomer's best match looks like in
a gallery of this size; the manifest keeps those best-match distances as quantiles. A
face at distance d from a celebrity then scores the share of those best look-alikes
that are farther than d: "closer than X% of people's best look-alikes in this gallery".
A stranger's best match spreads over the whole range whatever the gallery's size, and
the 2nd and 3rd matches are read on the same scale.

`seed`: distances between a face and celebrities it is *not* are modelled as a normal
distribution N(mean, std), also stored in the manifest, and a face at distance d scores
1 - CDF(d), the share of people who would be farther from that celebrity. A best match
is the far low tail of that distribution, so in a large gallery nearly every answer
reads 100% (docs/similarity.md).

Both are clamped to [floor, 1] so that a poor match still reads as a small number, not 0.
A best match closer than `SAME_PERSON_DISTANCE` may be the person themself and is said so.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from typing import get_args

import numpy as np

from shared.config import SimilarityMethod


@dataclass(frozen=True)
class DistanceStats:
    """Mean and standard deviation of distances between different people."""

    mean: float
    std: float
    pairs: int = 0  # how many distances they were computed from


def similarity(distance: float, stats: DistanceStats, floor: float = 0.01) -> float:
    """Share of people who look less like the celebrity than a face at `distance` does.

    Monotonically non-increasing in `distance`, always within [floor, 1].
    """
    if not math.isfinite(distance):
        return floor
    z = (distance - stats.mean) / (max(stats.std, 1e-9) * math.sqrt(2.0))
    share = 0.5 * math.erfc(z)  # 1 - CDF of the normal distribution
    return min(1.0, max(floor, share))


def distance_stats(descriptors: np.ndarray, labels: np.ndarray, max_pairs: int = 200_000,
                   seed: int = 0) -> DistanceStats:
    """Distance statistics over pairs of descriptors that belong to different celebrities.

    Uses every pair when there are at most `max_pairs`, otherwise a uniform random
    sample of `max_pairs` pairs (deterministic for a given `seed`).
    """
    descriptors = np.asarray(descriptors, dtype=np.float64)
    labels = np.asarray(labels)
    n = len(descriptors)
    if n < 2:
        raise ValueError("need at least two descriptors to measure distances")
    if n * (n - 1) // 2 <= max_pairs:
        first, second = np.triu_indices(n, k=1)
    else:
        rng = np.random.default_rng(seed)
        first = rng.integers(0, n, size=max_pairs)
        second = rng.integers(0, n, size=max_pairs)
    keep = labels[first] != labels[second]
    first, second = first[keep], second[keep]
    if len(first) == 0:
        raise ValueError("need descriptors of at least two different celebrities")
    distances = np.linalg.norm(descriptors[first] - descriptors[second], axis=1)
    return DistanceStats(mean=float(distances.mean()), std=float(distances.std()),
                         pairs=len(distances))


# -- the calibrated score -----------------------------------------------------------------

SEED: SimilarityMethod = "seed"
CALIBRATED: SimilarityMethod = "calibrated"
METHODS: tuple[str, ...] = get_args(SimilarityMethod)
# A best match closer than this is said to maybe be the person themself: below dlib's
# 0.6, because in a large gallery a stranger's nearest celebrity is often closer than 0.6
# (measured on ../shared/faces and synthetic galleries in docs/similarity.md).
SAME_PERSON_DISTANCE = 0.5
CALIBRATION_LEVELS = 101  # stored quantiles: every percent from 0% to 100%


@dataclass(frozen=True)
class Calibration:
    """Best-match distances of people who are not in the gallery, as sorted quantiles.

    `distances[i]` is the quantile at level i / (len - 1); `samples` says how many best
    matches they were computed from.
    """

    distances: tuple[float, ...]
    samples: int = 0

    def __post_init__(self) -> None:
        values = tuple(float(d) for d in self.distances)
        if len(values) < 2 or any(b < a for a, b in itertools.pairwise(values)):
            raise ValueError("a calibration needs at least two sorted distances")
        object.__setattr__(self, "distances", values)

    @functools.cached_property
    def curve(self) -> tuple[np.ndarray, np.ndarray]:
        """The quantiles and their levels as arrays, made once: building them from the
        tuple on every call was most of the time a query spent scoring."""
        return (np.asarray(self.distances, dtype=np.float64),
                np.linspace(0.0, 1.0, len(self.distances)))


def calibration_from(best_distances: np.ndarray, levels: int = CALIBRATION_LEVELS) -> Calibration:
    """Sorted quantiles of best-match distances (one per stranger face)."""
    values = np.asarray(best_distances, dtype=np.float64)
    values = values[np.isfinite(values)]
    if len(values) == 0:
        raise ValueError("need at least one finite best-match distance")
    quantiles = np.quantile(values, np.linspace(0.0, 1.0, levels))
    return Calibration(distances=tuple(float(q) for q in quantiles), samples=len(values))


def calibrated_similarity(distance: float, calibration: Calibration,
                          floor: float = 0.01) -> float:
    """Share of strangers' best look-alikes in the gallery that are farther than `distance`.

    The empirical distribution is interpolated linearly between the stored quantiles.
    Monotonically non-increasing in `distance`, always within [floor, 1].
    """
    if not math.isfinite(distance):
        return floor
    distances, levels = calibration.curve
    below = float(np.interp(distance, distances, levels))
    return min(1.0, max(floor, 1.0 - below))


@dataclass(frozen=True)
class Scorer:
    """How an index turns a distance into the answer's percentage and the themself rule."""

    method: SimilarityMethod  # the formula in use
    stats: DistanceStats
    calibration: Calibration | None = None
    floor: float = 0.01
    same_person: float = SAME_PERSON_DISTANCE

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown similarity method {self.method!r}: "
                             f"use one of {', '.join(METHODS)}")
        if self.method == CALIBRATED and self.calibration is None:
            raise ValueError("the calibrated similarity needs a calibration")

    def similarity(self, distance: float) -> float:
        if self.method == SEED:
            return similarity(distance, self.stats, self.floor)
        assert self.calibration is not None
        return calibrated_similarity(distance, self.calibration, self.floor)

    def themself(self, distance: float) -> bool:
        """Whether a best match this close may be the person themself."""
        return distance < self.same_person
