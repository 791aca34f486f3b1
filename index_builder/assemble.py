"""Pure steps between the per-photo results and the index: near-duplicate collapse,
representative photos and recall of the HNSW graph against exact search."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.index import CelebrityIndex

# Between the distances of re-encoded, rescaled, cropped or brightened copies of one
# photo and those of two different photos of one person, as measured on the labelled
# photos (docs/index_builder.md). Copies below this distance keep one entry.
DUPLICATE_DISTANCE = 0.18


def collapse_near_duplicates(descriptors: np.ndarray, groups: npt.ArrayLike,
                             preference: npt.ArrayLike,
                             threshold: float = DUPLICATE_DISTANCE) -> np.ndarray:
    """Rows to keep: within each group, drop a descriptor closer than `threshold` to one
    already kept, visiting rows by descending `preference` (ties by row)."""
    descriptors = np.asarray(descriptors, dtype=np.float32)
    group_of = np.asarray(groups)
    weight = np.asarray(preference, dtype=np.float64)
    keep = np.zeros(len(descriptors), dtype=bool)
    for group in np.unique(group_of):
        rows = np.flatnonzero(group_of == group)
        rows = rows[np.lexsort((rows, -weight[rows]))]
        kept: list[int] = []
        for row in rows:
            if not kept or np.linalg.norm(descriptors[kept] - descriptors[row], axis=1).min() \
                    >= threshold:
                kept.append(int(row))
        keep[kept] = True
    return keep


def best_per_group(groups: Sequence[int], preference: Sequence[float]) -> dict[int, int]:
    """group -> row with the highest preference (first row on ties)."""
    best: dict[int, int] = {}
    for row, (group, value) in enumerate(zip(groups, preference, strict=True)):
        group = int(group)
        if group not in best or value > preference[best[group]]:
            best[group] = row
    return best


def exact_neighbours(descriptors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Row ids of the k nearest descriptors of each query, nearest first (brute force)."""
    data = np.asarray(descriptors, dtype=np.float64)
    norms = (data * data).sum(axis=1)
    result = []
    for start in range(0, len(queries), 256):
        block = np.asarray(queries[start:start + 256], dtype=np.float64)
        distances = norms[None, :] - 2.0 * block @ data.T
        top = np.argpartition(distances, min(k, len(data) - 1), axis=1)[:, :k]
        order = np.take_along_axis(distances, top, axis=1).argsort(axis=1, kind="stable")
        result.append(np.take_along_axis(top, order, axis=1))
    return np.concatenate(result)


def recall_at(graph_ids: Sequence[Sequence[int]], exact_ids: np.ndarray, k: int) -> float:
    """Mean share of the exact k nearest found among the graph's k nearest."""
    shares = [len(set(list(found)[:k]) & set(exact[:k].tolist())) / k
              for found, exact in zip(graph_ids, exact_ids, strict=True)]
    return float(np.mean(shares)) if shares else 1.0


def measure_recall(index: CelebrityIndex, sample: int = 1000, seed: int = 0,
                   ks: tuple[int, ...] = (1, 10)) -> dict[str, float]:
    """Recall@k of the index's HNSW graph against exact search.

    Queries are up to `sample` indexed descriptors, each looking for its neighbours other
    than itself (a query that is in the index would otherwise find itself trivially).
    Also reports how often the nearest other entry belongs to the same celebrity, a
    sanity check of the gallery itself (it needs celebrities with several photos).
    """
    descriptors, entries = index.descriptors, index.entry_celebrity
    n = len(descriptors)
    if n < 2:
        return {"queries": 0.0}
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    k = min(max(ks), n - 1)
    exact = exact_neighbours(descriptors, descriptors[rows], k + 1)
    found, truth = [], []
    for row, exact_row in zip(rows.tolist(), exact, strict=True):
        ids = index.graph_neighbours(descriptors[row], k + 1)
        found.append([i for i in ids.tolist() if i != row][:k])
        truth.append(np.array([i for i in exact_row.tolist() if i != row][:k]))
    result = {f"at_{size}": round(recall_at(found, np.array(truth), min(size, k)), 4)
              for size in ks}
    result["queries"] = float(len(rows))
    # Only celebrities with several entries can have a nearest neighbour of their own.
    counts = np.bincount(entries)
    several = counts[entries[rows]] >= 2
    if several.any():
        nearest = np.array([t[0] for t in truth])[several]
        result["nearest_same_celebrity"] = round(
            float(np.mean(entries[nearest] == entries[rows][several])), 4)
    return result
