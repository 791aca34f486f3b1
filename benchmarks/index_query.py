"""Query time and recall of the celebrity index at 12,000 celebrities, and opt-in at a
million entries, on synthetic face-like descriptors.

    python -m benchmarks.index_query [--celebrities 12000] [--queries 1000]
    python -m benchmarks.index_query --million      # adds the 1M-entry case (slow once)

Descriptors come from `benchmarks.hnsw_params.synthetic_gallery` (distances like dlib's:
same person 0.35, strangers 0.90; 1-3 photos per celebrity). Queries run one at a time
in one thread, as the worker asks them. For each HNSW setting it prints recall@1 and
recall@10 of the graph against exact search, and the median and p99 of

- the raw graph search (`knnQuery`, k=10), and
- `CelebrityIndex.query(descriptor, k=3)`: graph candidates, exact re-ranking, one
  result per celebrity (what the worker pays per face).

Then the same index with a `sex` field (half the celebrities "female"; then one in ten,
a rare value that takes the exact-search bound) compares the restricted query behind the
"Women only" button, and the deeper ones behind "More", with the unrestricted one.
`--restricted-only` runs just that part.

The 1M graph takes minutes to build on two cores, so it is built once and kept under
`${XDG_CACHE_HOME:-~/.cache}/lookalike-bench/` with the exact neighbours of its queries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from benchmarks.hnsw_params import synthetic_gallery
from benchmarks.machine import as_the_worker_runs, describe, p99
from index_builder.assemble import exact_neighbours, recall_at
from index_builder.build import HNSW_PARAMS
from shared.index import TYPICAL_STRANGER_DISTANCES, Celebrity, CelebrityIndex

WARM_UP = 50


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lookalike-bench"


def timed_ms(run: Callable[[np.ndarray], object], items: np.ndarray) -> list[float]:
    for item in items[:WARM_UP]:
        run(item)
    times = []
    for item in items:
        started = time.perf_counter_ns()
        run(item)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return times


def measure_row(index: CelebrityIndex, probes: np.ndarray, exact: np.ndarray,
                ef_search: int) -> dict[str, float]:
    index.set_ef_search(ef_search)
    found = [index.graph_neighbours(p, 10) for p in probes]
    graph = index._hnsw  # the raw call, without the wrapper's array conversion
    raw = timed_ms(lambda p: graph.knnQuery(p, k=10), probes)
    full = timed_ms(lambda p: index.query(p, k=3), probes)
    return {"recall1": recall_at(found, exact, 1), "recall10": recall_at(found, exact, 10),
            "raw_p50": statistics.median(raw), "raw_p99": p99(raw),
            "query_p50": statistics.median(full), "query_p99": p99(full)}


def print_header(title: str) -> None:
    print(f"\n{title}")
    print("| M | efConstruction | build s | efSearch | recall@1 | recall@10 "
          "| knnQuery p50 ms | knnQuery p99 ms | query() p50 ms | query() p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|---|")


def print_row(m: int, construction: int, built: float, ef: int, row: dict[str, float]) -> None:
    print(f"| {m} | {construction} | {built:.1f} | {ef} | {row['recall1']:.3f} "
          f"| {row['recall10']:.3f} | {row['raw_p50']:.3f} | {row['raw_p99']:.3f} "
          f"| {row['query_p50']:.3f} | {row['query_p99']:.3f} |", flush=True)


def bench_catalogue(celebrities: int, queries: int, intrinsic: int, ms: list[int],
                    constructions: list[int], searches: list[int], threads: int) -> None:
    descriptors, entries, probes, _ = synthetic_gallery(celebrities, queries, intrinsic)
    people = [Celebrity(str(i), str(i)) for i in range(celebrities)]
    exact = exact_neighbours(descriptors, probes, 10)
    print_header(f"{len(descriptors)} entries of {celebrities} celebrities "
                 f"({intrinsic} intrinsic dimensions), {queries} queries, one at a time")
    for m in ms:
        for construction in constructions:
            started = time.perf_counter()
            index = CelebrityIndex.build(descriptors, entries, people, threads=threads,
                                         stats=TYPICAL_STRANGER_DISTANCES,
                                         hnsw={"M": m, "efConstruction": construction})
            built = time.perf_counter() - started
            for ef in searches:
                print_row(m, construction, built, ef, measure_row(index, probes, exact, ef))


def bench_restricted(celebrities: int, queries: int, intrinsic: int, threads: int) -> None:
    """Unrestricted against restricted queries on one 12k graph, per share of women."""
    descriptors, entries, probes, _ = synthetic_gallery(celebrities, queries, intrinsic)
    print(f"\nrestricted queries: {len(descriptors)} entries of {celebrities} celebrities, "
          f"{queries} queries, one at a time, efSearch {HNSW_PARAMS['efSearch']}")
    print("| women | query | p50 ms | p99 ms | p50 / unrestricted k=3 |")
    print("|---|---|---|---|---|")
    for every in (2, 10):
        people = [Celebrity(str(i), str(i), extra={"sex": "female" if i % every == 0
                                                   else "male"}) for i in range(celebrities)]
        index = CelebrityIndex.build(descriptors, entries, people, threads=threads,
                                     stats=TYPICAL_STRANGER_DISTANCES)
        base = None
        for label, k, sex in (("everyone, k=3", 3, None), ("women, k=3", 3, "female"),
                              ("everyone, k=9 (More twice)", 9, None),
                              ("women, k=9 (More twice)", 9, "female"),
                              ("men, k=3", 3, "male")):
            times = timed_ms(lambda p, index=index, k=k, sex=sex: index.query(p, k=k, sex=sex),
                             probes)
            median = statistics.median(times)
            base = base or median
            print(f"| 1 in {every} | {label} | {median:.3f} | {p99(times):.3f} "
                  f"| {median / base:.2f} |", flush=True)


def million_index(celebrities: int, queries: int, intrinsic: int, m: int, construction: int,
                  threads: int) -> tuple[CelebrityIndex, np.ndarray, np.ndarray, float]:
    """The cached 1M index (built on first use), its queries, their exact neighbours and
    the build seconds (of the run that built it)."""
    shape = "" if intrinsic == 128 else f"-d{intrinsic}"
    directory = cache_root() / f"million-c{celebrities}{shape}-M{m}-efc{construction}-seed0"
    descriptors, entries, probes, _ = synthetic_gallery(celebrities, queries, intrinsic)
    exact_file = directory / f"exact-q{queries}.npy"
    built_file = directory / "build-seconds.txt"
    if (directory / "manifest.json").is_file():
        index = CelebrityIndex.load(directory, verify_files=False)
    else:
        print(f"building the {len(descriptors):,}-entry graph once (cached in {directory}) ...",
              flush=True)
        people = [Celebrity(str(i), str(i)) for i in range(celebrities)]
        started = time.perf_counter()
        index = CelebrityIndex.build(descriptors, entries, people, threads=threads,
                                     stats=TYPICAL_STRANGER_DISTANCES,
                                     hnsw={"M": m, "efConstruction": construction})
        built_file.parent.mkdir(parents=True, exist_ok=True)
        built_file.write_text(f"{time.perf_counter() - started:.1f}\n")
        index.save(directory)
    if exact_file.is_file():
        exact = np.load(exact_file)
    else:
        exact = exact_neighbours(descriptors, probes, 10)
        np.save(exact_file, exact)
    return index, probes, exact, float(built_file.read_text())


def bench_million(celebrities: int, queries: int, intrinsic: int, m: int, construction: int,
                  searches: list[int], threads: int) -> None:
    index, probes, exact, built = million_index(celebrities, queries, intrinsic, m,
                                                construction, threads)
    print_header(f"{len(index):,} entries of {celebrities:,} celebrities ({intrinsic} "
                 f"intrinsic dimensions), {queries} queries, one at a time")
    for ef in searches:
        print_row(m, construction, built, ef, measure_row(index, probes, exact, ef))


def main(argv: list[str] | None = None) -> None:
    as_the_worker_runs("benchmarks.index_query", argv)
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--celebrities", type=int, default=12_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--intrinsic", type=int, default=128,
                        help="dimensions the data really varies in (default 128: worst case)")
    parser.add_argument("--m", type=int, nargs="+", default=[16, HNSW_PARAMS["M"]])
    parser.add_argument("--ef-construction", type=int, nargs="+",
                        default=[HNSW_PARAMS["efConstruction"]])
    parser.add_argument("--ef-search", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--threads", type=int, default=0, help="build threads (0: all cores)")
    parser.add_argument("--million", action="store_true",
                        help="also measure about a million entries (500,000 celebrities)")
    parser.add_argument("--million-celebrities", type=int, default=500_000)
    parser.add_argument("--million-m", type=int, default=16)
    parser.add_argument("--million-ef-construction", type=int, default=100)
    parser.add_argument("--million-ef-search", type=int, nargs="+", default=[50, 100, 200])
    parser.add_argument("--skip-catalogue", action="store_true",
                        help="only the million case")
    parser.add_argument("--restricted-only", action="store_true",
                        help="only the restricted (by sex) against unrestricted queries")
    args = parser.parse_args(argv)
    print(describe())
    print(f"index builder default: {HNSW_PARAMS}")
    if args.restricted_only:
        bench_restricted(args.celebrities, args.queries, args.intrinsic, args.threads)
        return
    if not args.skip_catalogue:
        bench_catalogue(args.celebrities, args.queries, args.intrinsic, args.m,
                        args.ef_construction, args.ef_search, args.threads)
        bench_restricted(args.celebrities, args.queries, args.intrinsic, args.threads)
    if args.million:
        bench_million(args.million_celebrities, args.queries, args.intrinsic, args.million_m,
                      args.million_ef_construction, args.million_ef_search, args.threads)
    print(describe())


if __name__ == "__main__":
    main()
