"""Similarity percentages from face-descriptor distances.

Distances between a face and celebrities it is *not* are modelled as a normal
distribution N(mean, std), measured when the index is built and stored in its
manifest. The similarity of a face to a celebrity at distance d is 1 - CDF(d): the
share of people who would be farther from that celebrity, i.e. look less like them.
It is clamped to [floor, 1] so that a poor match still reads as a small number, not 0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
