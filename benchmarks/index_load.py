"""Loading an index directory in a new process: the worker's way against the earlier one.

    python -m benchmarks.index_load DIRECTORY [--runs 3]

DIRECTORY is an index version as the worker's cache holds it (for instance the million-
entry index of `benchmarks.index_query --million`, under ~/.cache/lookalike-bench/).
Each run is a fresh interpreter, modes alternating:

- `now`: `CelebrityIndex.load` as the worker calls it: the descriptors from the graph
  file (descriptors.npy hidden from it), placeholders for nmslib, celebrity records
  mapped, the hashes checked on other threads;
- `before`: the earlier load: descriptors.npy read whole, every celebrity record parsed
  (celebrities.json, or celebrities.jsonl line by line), the descriptors copied into
  nmslib before its graph file is read, the hashes checked one file after another.

Each prints the load time and the process's peak RSS (VmHWM) beyond what the imports
took; medians over the runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("now", "before")


def vm_hwm_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def load_now(directory: Path) -> int:
    from shared.index import CelebrityIndex

    # The worker's cache has no descriptors.npy: a view of the directory without it.
    with tempfile.TemporaryDirectory(prefix="index-load-") as tmp:
        view = Path(tmp)
        for file in directory.iterdir():
            if file.is_file() and file.name != "descriptors.npy":
                (view / file.name).symlink_to(file)
        index = CelebrityIndex.load(view)
        return len(index)


def load_before(directory: Path) -> int:
    import numpy as np

    from shared.celebrities import Celebrity
    from shared.index import _new_hnsw
    from shared.manifest import Manifest
    from shared.models import file_sha256

    manifest = Manifest.read(directory)
    for name in manifest.files:
        file_sha256(directory / name)
    descriptors = np.load(directory / "descriptors.npy")
    np.load(directory / "entries.npy")
    if (directory / "celebrities.json").is_file():
        records = json.loads((directory / "celebrities.json").read_text())
    else:
        records = [json.loads(line) for line in
                   (directory / "celebrities.jsonl").read_text().splitlines()]
    [Celebrity.from_record(r) for r in records]
    graph = _new_hnsw(manifest.hnsw)
    graph.addDataPointBatch(descriptors)
    graph.loadIndex(str(directory / "hnsw.bin"), load_data=False)
    return len(descriptors)


def child(mode: str, directory: Path) -> dict[str, float]:
    from shared.index import import_nmslib

    import_nmslib()
    before = vm_hwm_mib()
    started = time.perf_counter()
    entries = (load_now if mode == "now" else load_before)(directory)
    return {"seconds": time.perf_counter() - started, "entries": entries,
            "peak_mib": vm_hwm_mib() - before}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", type=Path)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.directory)))
        return
    from benchmarks.machine import describe
    from shared.config import REPO_ROOT

    print(describe())
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for _ in range(args.runs):
        for mode in MODES:
            done = subprocess.run([sys.executable, "-m", "benchmarks.index_load", "--child",
                                   mode, str(args.directory)], cwd=REPO_ROOT, env=os.environ,
                                  capture_output=True, text=True, check=True)
            results[mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
    entries = int(results["now"][0]["entries"])
    print(f"{args.directory}: {entries:,} entries; {args.runs} runs per mode, medians")
    print("| load | seconds | runs | peak RSS beyond imports, MiB |")
    print("|---|---:|---|---:|")
    for mode in MODES:
        times = [r["seconds"] for r in results[mode]]
        peak = statistics.median(r["peak_mib"] for r in results[mode])
        print(f"| {mode} | {statistics.median(times):.2f} | "
              f"{', '.join(f'{t:.2f}' for t in times)} | {peak:.0f} |")
    print(describe())


if __name__ == "__main__":
    main()
