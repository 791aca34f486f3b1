"""The worker's size for an index: its memory, its vCPU and whether malloc uses huge pages.

Cloud Run sizes an instance when the function is deployed and glibc reads its tunables
when the process starts, before the worker knows its index, so all three are the
deploy's choice: `infra/deploy.sh worker` runs this module on the current version's
manifest (`python -m shared.worker_size --help`). The worker applies the same memory
rule to each version it loads and logs a warning when its instance is too small for it
(a later, larger version than the deploy sized for).

The memory rule, from the million-entry gallery measured in docs/performance.md ("A
million-entry gallery, served"): an instance holds a base (the process, the model files
and a decoded photo) and each loaded index version, whose graph is in memory and again
as files in /tmp, which Cloud Run counts as memory; a refresh holds two versions for a
moment. The memory is the smallest size of `MEMORY_SIZES_GIB` that holds that, with the
fewest vCPU Cloud Run allows for it.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
GIB = 1 << 30
# The process without its index (264 MiB peak with the 12k index), the model files in
# /tmp (31 MiB) and a decoded 40 MP photo in a few copies (120 MB each), rounded up.
BASE_BYTES = 768 * MIB
# One loaded version per entry at hnsw M 48: ~1.0 GiB of process memory and 0.95 GiB of
# files per million entries, rounded up.
BYTES_PER_ENTRY = 2_100
MEASURED_M = 48
# Each unit of M adds two 4-byte links per entry to the graph's lowest layer, which is
# held twice (in memory and as the file in /tmp).
BYTES_PER_ENTRY_PER_M = 16
# The current version and, while a refresh loads it, the next.
VERSIONS_HELD = 2
# Memory sizes the rule picks from; the smallest is the size without an index.
MEMORY_SIZES_GIB = (2, 4, 8, 16, 32)
# Cloud Run's fewest vCPU for a memory size: (up to GiB, vCPU); 32 GiB is its largest.
MIN_CPU = ((4, 1), (8, 2), (16, 4), (24, 6), (32, 8))
HUGE_PAGES = "glibc.malloc.hugetlb=1"
# The instance's memory limit: cgroup v2, as in Cloud Run's second generation execution
# environment, then cgroup v1; "max" or a value of 2^60 or more means none.
CGROUP_MEMORY_LIMITS = (Path("/sys/fs/cgroup/memory.max"),
                        Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"))

_UNITS = {"": 10**6, "k": 10**3, "kb": 10**3, "ki": 1 << 10, "kib": 1 << 10,
          "m": 10**6, "mb": 10**6, "mi": MIB, "mib": MIB,
          "g": 10**9, "gb": 10**9, "gi": GIB, "gib": GIB}


class SizeError(ValueError):
    """A size that cannot be deployed; the message says why."""


@dataclass(frozen=True)
class WorkerSize:
    memory: str  # as gcloud takes it, e.g. "8Gi"
    cpu: str
    glibc_tunables: str  # empty: glibc's defaults
    reasons: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def version_bytes(entries: int, m: int | None = None) -> int:
    """Memory one loaded version of `entries` entries takes, its files in /tmp included."""
    per_entry = BYTES_PER_ENTRY + BYTES_PER_ENTRY_PER_M * ((m or MEASURED_M) - MEASURED_M)
    return entries * max(per_entry, 0)


def memory_needed(entries: int, m: int | None = None) -> int:
    """Memory an instance needs to serve and refresh an index of `entries` entries."""
    return BASE_BYTES + VERSIONS_HELD * version_bytes(entries, m)


def hnsw_m(hnsw: Mapping[str, Any]) -> int | None:
    """The graph's M from a manifest's `hnsw` parameters, None when it has none."""
    m = hnsw.get("M")
    return m if isinstance(m, int) and m > 0 else None


def parse_memory(text: str) -> int:
    """Bytes of a memory size as gcloud takes it (`8Gi`, `512Mi`, `2GB`; no unit: MB)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", text)
    unit = match and _UNITS.get(match.group(2).lower())
    if not match or unit is None:
        raise SizeError(f"{text!r} is not a memory size like 8Gi or 512Mi")
    return round(float(match.group(1)) * unit)


def min_cpu(memory: int) -> int:
    """The fewest vCPU Cloud Run allows with `memory` bytes."""
    for up_to_gib, cpu in MIN_CPU:
        if memory <= up_to_gib * GIB:
            return cpu
    raise SizeError(f"{gib(memory)} is more memory than Cloud Run offers "
                    f"({MIN_CPU[-1][0]} GiB at most)")


def gib(size: int) -> str:
    """A size for people: GiB with one decimal, MiB below 1 GiB."""
    return f"{size / GIB:.1f} GiB" if size >= GIB else f"{size / MIB:.0f} MiB"


def choose(entries: int | None, m: int | None = None, *, huge_pages_from: int,
           version: str | None = None, memory: str | None = None, cpu: str | None = None,
           glibc_tunables: str | None = None) -> WorkerSize:
    """The worker's size for an index of `entries` entries (None: no index yet).

    `memory`, `cpu` and `glibc_tunables` are the operator's explicit choices, kept as
    they are; the others follow the rule. Raises `SizeError` when no size fits.
    """
    reasons: list[str] = []
    warnings: list[str] = []
    needed = memory_needed(entries or 0, m)
    if entries is None:
        reasons.append("no index yet: the smallest size")
    else:
        per_version = version_bytes(entries, m)
        reasons.append(
            f"index {version or '(one version)'}: {entries:,} entries, hnsw M {m or '?'}; "
            f"needs about {gib(needed)} ({gib(BASE_BYTES)} for the process, models and a "
            f"photo, {gib(per_version)} per loaded version, two during a refresh)")
    if memory is None:
        fits = [size for size in MEMORY_SIZES_GIB if size * GIB >= needed]
        if not fits:
            raise SizeError(f"the index needs about {gib(needed)}, more than the largest "
                            f"worker ({MEMORY_SIZES_GIB[-1]} GiB)")
        memory = f"{fits[0]}Gi"
        reasons.append(f"memory {memory}: the smallest of "
                       f"{', '.join(f'{s}Gi' for s in MEMORY_SIZES_GIB)} that holds it")
    else:
        reasons.append(f"memory {memory}: set by WORKER_MEMORY")
        if parse_memory(memory) < needed:
            warnings.append(f"WORKER_MEMORY={memory} is less than the index needs (about "
                            f"{gib(needed)}): a refresh may run the instance out of memory")
    fewest = min_cpu(parse_memory(memory))
    if cpu is None:
        cpu = str(fewest)
        reasons.append(f"{cpu} vCPU: the fewest Cloud Run allows with {memory}")
    else:
        reasons.append(f"{cpu} vCPU: set by WORKER_CPU")
        try:
            too_few = float(cpu) < fewest
        except ValueError:
            raise SizeError(f"WORKER_CPU={cpu!r} is not a number of vCPU") from None
        if too_few:
            raise SizeError(f"WORKER_CPU={cpu} is too few for {memory}: Cloud Run needs "
                            f"{fewest} vCPU with it; set WORKER_MEMORY too, or leave "
                            "WORKER_CPU to the rule")
    if glibc_tunables is None:
        big = entries is not None and entries >= huge_pages_from
        glibc_tunables = HUGE_PAGES if big else ""
        if entries is None:
            reasons.append("huge pages off: no index")
        else:
            reasons.append(f"huge pages {'on' if big else 'off'}: {entries:,} entries "
                           f"{'>=' if big else '<'} HUGE_PAGES_FROM_ENTRIES "
                           f"({huge_pages_from:,})")
    else:
        reasons.append(f"GLIBC_TUNABLES={glibc_tunables!r}: set by WORKER_GLIBC_TUNABLES")
    return WorkerSize(memory, cpu, glibc_tunables, tuple(reasons), tuple(warnings))


def undersized(entries: int, m: int | None, limit: int | None) -> str | None:
    """Why an instance of `limit` bytes (None: unknown) is too small for an index of
    `entries` entries, or None when it is not."""
    needed = memory_needed(entries, m)
    if limit is None or needed <= limit:
        return None
    return (f"{entries:,} entries need about {gib(needed)} with a refresh's second "
            f"version; this instance has {gib(limit)}: redeploy the worker "
            "(infra/deploy.sh worker sizes it from the current index)")


def instance_memory_limit(paths: tuple[Path, ...] = CGROUP_MEMORY_LIMITS) -> int | None:
    """This instance's memory limit in bytes, None when there is none or it is unknown."""
    for path in paths:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() and int(text) < 1 << 60 else None
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse  # here: the worker imports this module for the rule alone

    parser = argparse.ArgumentParser(
        prog="python -m shared.worker_size",
        description="Print the worker's size for an index manifest (read from standard "
                    "input with --manifest -) as memory=, cpu=, glibc_tunables=, reason= "
                    "and warning= lines.")
    parser.add_argument("--manifest", help="a manifest.json file, - for standard input; "
                                           "without it: no index yet")
    parser.add_argument("--version", help="the version the manifest belongs to")
    parser.add_argument("--huge-pages-from", type=int, required=True, metavar="ENTRIES")
    parser.add_argument("--memory", help="the operator's memory, kept")
    parser.add_argument("--cpu", help="the operator's vCPU, kept")
    parser.add_argument("--glibc-tunables", help="the operator's GLIBC_TUNABLES, kept")
    args = parser.parse_args(argv)
    entries = m = None
    if args.manifest is not None:
        # Imported here: the manifest's checks pull in numpy, which a size for no index
        # does not need.
        from shared.manifest import IndexMismatch, Manifest

        text = sys.stdin.read() if args.manifest == "-" else Path(args.manifest).read_text()
        try:
            manifest = Manifest.from_json(text)
        except IndexMismatch as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        entries, m = manifest.entries, hnsw_m(manifest.hnsw)
    try:
        size = choose(entries, m, huge_pages_from=args.huge_pages_from, version=args.version,
                      memory=args.memory, cpu=args.cpu, glibc_tunables=args.glibc_tunables)
    except SizeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"memory={size.memory}\ncpu={size.cpu}\nglibc_tunables={size.glibc_tunables}")
    for reason in size.reasons:
        print(f"reason={reason}")
    for warning in size.warnings:
        print(f"warning={warning}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
