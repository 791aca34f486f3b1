"""Which instruction-set extensions the machine's CPU lacks.

The worker may be deployed with dlib and nmslib wheels compiled for AVX2 and FMA
(infra/deploy.sh, WORKER_WHEELS=fast). On a CPU without them the first vector
instruction kills the process with SIGILL somewhere inside dlib; checking the CPU's flags
first turns that into an error that names the cause (see shared/assets.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def missing_cpu_flags(required: Iterable[str], cpuinfo: str | None = None) -> list[str]:
    """The flags of `required` (e.g. "avx2", "fma") that the CPU does not have, in order.

    `cpuinfo` is the text of /proc/cpuinfo, read from the machine when None. Where that
    file does not exist or has no "flags" line (not Linux, not x86), the CPU's flags are
    unknown and nothing is reported missing: the check is meant to catch a wrong
    deployment, and it must not stop a machine it cannot inspect.
    """
    wanted = [flag.strip().lower() for flag in required if flag.strip()]
    if not wanted:
        return []
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return []
    present = _flags(cpuinfo)
    if present is None:
        return []
    return [flag for flag in wanted if flag not in present]


def _flags(cpuinfo: str) -> set[str] | None:
    """The flags of the first processor listed (all cores of a machine share them)."""
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == "flags":
            return set(value.lower().split())
    return None
