"""What a benchmark ran on: CPU model, cores and load, printed above its figures so that
numbers taken on a shared machine can be read for what they are."""

from __future__ import annotations

import os
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path

# What the deploy gives a worker with a large index (from HUGE_PAGES_FROM_ENTRIES entries,
# infra/config.sh): large malloc blocks, the index graph among them, in transparent huge
# pages.
from shared.worker_size import HUGE_PAGES as WORKER_GLIBC_TUNABLES


def as_the_worker_runs(module: str, argv: Sequence[str] | None = None) -> None:
    """Start this benchmark again with a large index's GLIBC_TUNABLES unless the variable
    is set (glibc reads it once, at process start); set it empty to measure without."""
    if "GLIBC_TUNABLES" in os.environ:
        return
    args = list(sys.argv[1:] if argv is None else argv)
    os.execve(sys.executable, [sys.executable, "-m", module, *args],
              {**os.environ, "GLIBC_TUNABLES": WORKER_GLIBC_TUNABLES})


def compile_sources() -> None:
    """Byte-compile the project's modules in place, as the deployment's build does (Google's
    Python buildpack for functions runs compileall over the source): a new worker or child
    process started with PYTHONDONTWRITEBYTECODE would otherwise compile them each time."""
    import compileall

    from shared.config import REPO_ROOT

    compileall.compile_file(REPO_ROOT / "main.py", quiet=2)
    for folder in ("functions", "shared", "benchmarks", "index_builder"):
        compileall.compile_dir(REPO_ROOT / folder, quiet=2)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def describe() -> str:
    """One line: CPU model, usable cores and the 1/5/15-minute load averages."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    tunables = os.environ.get("GLIBC_TUNABLES")
    return (f"machine: {cpu_model()}, {cores} cores, load average {load}"
            + (f", GLIBC_TUNABLES={tunables}" if tunables else ""))


def p99(values: Sequence[float]) -> float:
    """The 99th percentile (the largest value when there are fewer than 100)."""
    if len(values) < 100:
        return max(values)
    return statistics.quantiles(values, n=100)[98]
