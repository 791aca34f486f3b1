"""Every benchmark behind docs/performance.md, one after the other (`make bench`).

    python -m benchmarks [--million] [--only NAME ...]

Each runs in its own interpreter (a fresh process, as its figures assume) with its
default settings; their tables are printed as they come, then issue 17's goals 1-4 in
one table (goal, target, measured median, met), from the figures each benchmark
records (benchmarks/goals.py). `--million` adds the 1M-entry index to the index query
and cold start benchmarks (its graph is built once and cached): goal 4. The dlib build
comparison (benchmarks.dlib_builds) needs other environments and runs on its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.goals import GOALS_DIR_VARIABLE, collected, table
from benchmarks.machine import describe
from shared.config import REPO_ROOT

BENCHMARKS = {
    "pipeline": ["benchmarks.pipeline"],
    "large_files": ["benchmarks.large_files"],
    "build_rate": ["benchmarks.build_rate"],
    "index_query": ["benchmarks.index_query"],
    "cold_start": ["benchmarks.cold_start"],
    "stack_latency": ["benchmarks.stack_latency"],
    "bot_api_photo": ["benchmarks.bot_api_photo"],
    "webhook": ["benchmarks.webhook"],
    "webhook_load": ["benchmarks.webhook_load"],
    "burst": ["benchmarks.burst"],
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
    goals_dir = Path(tempfile.mkdtemp(prefix="bench-goals-"))
    for name, command in BENCHMARKS.items():
        if args.only and name not in args.only:
            continue
        extra = ["--million"] if name in ("index_query", "cold_start") and args.million else []
        print(f"\n=== {name}", flush=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", *command, *extra], cwd=REPO_ROOT,
                              check=False, env={**os.environ,
                                                GOALS_DIR_VARIABLE: str(goals_dir)})
        print(f"=== {name}: {time.monotonic() - started:.0f} s"
              + ("" if done.returncode == 0 else f", FAILED with exit code {done.returncode}"),
              flush=True)
        if done.returncode != 0:
            failed.append(name)
    print("\n=== issue 17's goals (medians of the runs above)")
    figures = collected(goals_dir)
    shutil.rmtree(goals_dir, ignore_errors=True)
    print(table(figures) if figures else "no goal measured")
    measured = {figure.goal.split()[0] for figure in figures}
    for goal in ("1", "2", "3", "4"):
        if goal not in measured:
            print(f"goal {goal}: not measured in this run"
                  + (" (the 1M-entry index: --million)" if goal == "4" else ""))
    print(f"\n{describe()}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
