"""Every benchmark behind docs/performance.md, one after the other (`make bench`).

    python -m benchmarks [--million] [--only NAME ...]

Each runs in its own interpreter (a fresh process, as its figures assume) with its
default settings; their tables are printed as they come. `--million` adds the 1M-entry
index to the index query and cold start benchmarks (its graph is built once and
cached). The dlib build comparison (benchmarks.dlib_builds) needs other environments and
runs on its own.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks.machine import describe
from shared.config import REPO_ROOT

BENCHMARKS = {
    "pipeline": ["benchmarks.pipeline"],
    "large_files": ["benchmarks.large_files"],
    "build_rate": ["benchmarks.build_rate"],
    "index_query": ["benchmarks.index_query"],
    "cold_start": ["benchmarks.cold_start"],
    "webhook": ["benchmarks.webhook"],
    "webhook_load": ["benchmarks.webhook_load"],
    "harvest": ["benchmarks.harvest", "--people", "1000"],
    "jpeg": ["benchmarks.jpeg"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--million", action="store_true",
                        help="index_query and cold_start also measure about a million "
                        "entries")
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=[])
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    failed = []
    for name, command in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        extra = ["--million"] if name in ("index_query", "cold_start") and args.million else []
        print(f"\n=== {name}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", *command, *extra], cwd=REPO_ROOT,
                              check=False)
        print(f"=== {name}: {time.monotonic() - started:.0f} s"
              + ("" if done.returncode == 0 else f", FAILED with exit code {done.returncode}"),
              flush=True)
        if done.returncode != 0:
            failed.append(name)
    print(f"\n{describe()}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
