"""Recall and query time of the HNSW graph for M, efConstruction and efSearch, on
synthetic face-like descriptors at the scale of a real catalogue.

    python -m benchmarks.hnsw_params [--celebrities 12000] [--queries 1000]

Descriptors: each celebrity is a random centre and each photo the centre plus noise,
scaled so that distances match dlib's ResNet descriptors on the labelled photos (same
person 0.35 on average, different people 0.90). Each celebrity has 1-3 photos (2 on
average). By default the data varies in all 128 dimensions, the worst case for a graph
index; `--intrinsic D` keeps it in a random D-dimensional subspace (48 matches the
spread of stranger distances measured on real descriptors, 0.09). Queries are new
photos of random celebrities.

For each setting: build seconds, recall@1 and recall@10 of the graph against exact
search, how often the top celebrity is the right one (graph / exact), and the median
query time of `CelebrityIndex.query` (graph candidates, exact re-ranking, grouping).
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from index_builder.assemble import exact_neighbours, recall_at
from shared.index import Celebrity, CelebrityIndex

SAME_PERSON, STRANGERS = 0.35, 0.90
DIMENSIONS = 128


def synthetic_gallery(celebrities: int, queries: int, intrinsic: int = DIMENSIONS,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Entries, their celebrity rows, query descriptors and the queries' celebrities.

    With `intrinsic` below 128, centres and noise lie in a random subspace of that many
    dimensions (an optimistic bound: real descriptors are in between).
    """
    rng = np.random.default_rng(seed)
    noise = SAME_PERSON / np.sqrt(2 * intrinsic)
    spread = np.sqrt((STRANGERS / np.sqrt(2 * intrinsic)) ** 2 - noise**2)
    centres = rng.normal(scale=spread, size=(celebrities, intrinsic))
    photos = rng.integers(1, 4, size=celebrities)
    entries = np.repeat(np.arange(celebrities), photos)
    descriptors = centres[entries] + rng.normal(scale=noise, size=(len(entries), intrinsic))
    asked = rng.integers(0, celebrities, size=queries)
    probes = centres[asked] + rng.normal(scale=noise, size=(queries, intrinsic))
    basis = np.linalg.qr(rng.normal(size=(DIMENSIONS, intrinsic)))[0]  # orthonormal columns
    return ((descriptors @ basis.T).astype(np.float32), entries.astype(np.int32),
            (probes @ basis.T).astype(np.float32), asked)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celebrities", type=int, default=12_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--m", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--ef-construction", type=int, nargs="+", default=[100, 200, 400])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    parser.add_argument("--intrinsic", type=int, default=DIMENSIONS,
                        help="dimensions the data really varies in (default 128: worst case)")
    parser.add_argument("--threads", type=int, default=0, help="build threads (0: all cores)")
    args = parser.parse_args()

    descriptors, entries, probes, asked = synthetic_gallery(args.celebrities, args.queries,
                                                             args.intrinsic)
    celebrities = [Celebrity(str(i), str(i)) for i in range(args.celebrities)]
    exact = exact_neighbours(descriptors, probes, 10)
    exact_right = float(np.mean(entries[exact[:, 0]] == asked))
    print(f"{len(descriptors)} entries of {args.celebrities} celebrities "
          f"({args.intrinsic} intrinsic dimensions), "
          f"{args.queries} queries; exact search names the right celebrity for "
          f"{exact_right:.1%}")
    print("| M | efConstruction | build s | efSearch | recall@1 | recall@10 | right top-1 "
          "| query ms |")
    print("|---|---|---|---|---|---|---|---|")
    for m in args.m:
        for construction in args.ef_construction:
            start = time.perf_counter()
            index = CelebrityIndex.build(descriptors, entries, celebrities, threads=args.threads,
                                         hnsw={"M": m, "efConstruction": construction})
            built = time.perf_counter() - start
            for search in args.ef_search:
                # Same graph, another efSearch: set on the graph directly (no rebuild).
                index._hnsw.setQueryTimeParams({"efSearch": search})
                found = [index.graph_neighbours(p, 10) for p in probes]
                times = []
                right = 0
                for probe, celebrity in zip(probes, asked, strict=True):
                    began = time.perf_counter()
                    best = index.query(probe, k=3)[0]
                    times.append((time.perf_counter() - began) * 1000)
                    right += best.celebrity.id == str(celebrity)
                print(f"| {m} | {construction} | {built:.1f} | {search} "
                      f"| {recall_at(found, exact, 1):.3f} | {recall_at(found, exact, 10):.3f} "
                      f"| {right / len(probes):.3f} | {statistics.median(times):.3f} |",
                      flush=True)


if __name__ == "__main__":
    main()
