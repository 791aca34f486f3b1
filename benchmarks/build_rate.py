"""Photos per second per core of the index builder's per-photo step, at `--jitters 10`
(the builder's default, as the seed) and 0, and what that makes of a build of 100k and
1M photos on Dataproc Serverless.

    python -m benchmarks.build_rate [--limit N]

The step is `describe_photo` (index_builder/embedding.py): decode, find every face (the
builder's detection), the descriptor with its jitters, the quality filter and the face
crop, in this one process (one core), on the photos of ../shared/faces/labelled as they
are stored (reading from and writing to storage are left out). Beside the wall time, the
process's CPU time: on a busy machine the nearer guess of a quiet core.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

from benchmarks.machine import describe
from benchmarks.pipeline import DEFAULT_CORPUS
from index_builder.embedding import EmbedOptions, describe_photo

# Dataproc Serverless for Spark, standard tier, us-central1 (cloud.google.com/dataproc-
# serverless/pricing, read on 2026-12-02): $0.06 per DCU-hour; a vCPU counts 0.6 DCU
# and each GB of memory up to 8 GB per vCPU 0.1 DCU, so a 4-core executor with 16 GB is
# 4 DCU, $0.24 an hour, $0.06 per core-hour. The driver (4 DCU) runs the whole batch.
USD_PER_DCU_HOUR = 0.06
DCU_PER_CORE = 1.0  # 0.6 for the vCPU + 4 GB x 0.1
DRIVER_DCU = 4.0


@dataclass(frozen=True)
class Rate:
    photos: int
    wall_s: float
    cpu_s: float

    @property
    def per_core(self) -> float:
        """Photos per CPU-second: per core when the core is not shared."""
        return self.photos / self.cpu_s


def measure(photos: list[bytes], jitters: int) -> Rate:
    options = EmbedOptions("unused", "unused", jitters=jitters)
    describe_photo(photos[0], options)  # warm-up: models loaded once per process
    start, start_cpu = time.perf_counter(), time.process_time()
    for data in photos:
        describe_photo(data, options)
    return Rate(len(photos), time.perf_counter() - start, time.process_time() - start_cpu)


def projection(photos: int, per_core: float, cores: int) -> str:
    """Hours and dollars of the per-photo step on `cores` executor cores."""
    hours = photos / per_core / cores / 3600
    dollars = hours * (cores * DCU_PER_CORE + DRIVER_DCU) * USD_PER_DCU_HOUR
    return f"{photos:,} photos on {cores} cores: {hours:.2f} h, ${dollars:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=0, help="photos (default: all)")
    args = parser.parse_args()
    labelled = DEFAULT_CORPUS / "labelled"
    if not labelled.is_dir():
        print(f"skipped: the face photos are not at {labelled}")
        return
    print(describe(), flush=True)
    paths = sorted(p for p in labelled.rglob("*") if p.is_file())
    photos = [p.read_bytes() for p in paths[:args.limit or None]]
    for jitters in (0, 10):
        rate = measure(photos, jitters)
        print(f"--jitters {jitters}: {rate.photos} photos in {rate.wall_s:.1f} s "
              f"({rate.photos / rate.wall_s:.2f}/s wall), CPU {rate.cpu_s:.1f} s: "
              f"{rate.per_core:.2f} photos per second per core", flush=True)
        for total, cores in ((100_000, 32), (1_000_000, 32), (1_000_000, 128)):
            print(f"    {projection(total, rate.per_core, cores)}")
    print(describe())


if __name__ == "__main__":
    main()
