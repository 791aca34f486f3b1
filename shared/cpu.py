"""What the machine's CPU can do: the instruction-set extensions it lacks, and the
OpenBLAS kernels that suit it.

The worker may be deployed with dlib and nmslib wheels compiled for AVX2 and FMA
(infra/deploy.sh, WORKER_WHEELS=fast). On a CPU without them the first vector
instruction kills the process with SIGILL somewhere inside dlib; checking the CPU's flags
first turns that into an error that names the cause (see functions/worker_assets.py).

The OpenBLAS inside the dlib wheel chooses its matrix kernels by CPU model, from tables
of its release (0.3.21); a newer model falls back to generic SSE3 kernels ("Prescott"),
much slower per descriptor on this project's machines (docs/performance.md). The kernels
depend on the instruction set, not the model, so `choose_blas_kernels` names them from
the flags.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
AVX512 = frozenset({"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"})


def missing_cpu_flags(required: Iterable[str], cpuinfo: str | None = None) -> list[str]:
    """The flags of `required` (e.g. "avx2", "fma") that the CPU does not have, in order.

    `cpuinfo` is the text of /proc/cpuinfo, read from the machine when None. Where that
    file does not exist or has no "flags" line (not Linux, not x86), the CPU's flags are
    unknown and nothing is reported missing: the check is meant to catch a wrong
    deployment, and it must not stop a machine it cannot inspect.
    """
    wanted = [flag.strip().lower() for flag in required if flag.strip()]
    present = cpu_flags(cpuinfo) if wanted else None
    if present is None:
        return []
    return [flag for flag in wanted if flag not in present]


def cpu_flags(cpuinfo: str | None = None) -> set[str] | None:
    """The flags of the first processor listed in `cpuinfo` (all cores of a machine share
    them), read from /proc/cpuinfo when None; None when they cannot be known."""
    if cpuinfo is None:
        try:
            cpuinfo = CPUINFO.read_text(errors="replace")
        except OSError:
            return None
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() == "flags":
            return set(value.lower().split())
    return None


def blas_core_type(cpuinfo: str | None = None) -> str | None:
    """OpenBLAS's name for the kernels this CPU runs best ("SkylakeX" with AVX-512,
    "Haswell" with AVX2 and FMA), or None to leave OpenBLAS its own choice."""
    flags = cpu_flags(cpuinfo)
    if flags is None:
        return None
    if flags >= AVX512:
        return "SkylakeX"
    if {"avx2", "fma"} <= flags:
        return "Haswell"
    return None


def choose_blas_kernels() -> str | None:
    """Set OPENBLAS_CORETYPE from the CPU's flags, unless it is set; returns the kernels
    named, None when it named none.

    OpenBLAS reads the variable once, when its library loads, so this must run before
    the first `import dlib`: the entry points (main.py, `python -m index_builder`, the
    tests' conftest) call it before anything else, and `load_models` again. Named after
    dlib has loaded, the kernels change nothing, and a warning says so.
    """
    if os.environ.get("OPENBLAS_CORETYPE"):
        return None
    core = blas_core_type()
    if core:
        os.environ["OPENBLAS_CORETYPE"] = core
        if "dlib" in sys.modules:
            logging.getLogger(__name__).warning(
                "OPENBLAS_CORETYPE=%s was set after dlib was imported: dlib's OpenBLAS keeps "
                "the kernels it chose (slower descriptors on CPUs newer than it); call "
                "shared.cpu.choose_blas_kernels() before the first import of dlib", core)
    return core
