"""`index_builder harvest` against the local Wikidata/Commons stand-in: time, bytes and
requests per 1,000 people.

    python -m benchmarks.harvest [--people N] [--repeat R] [--workers W] [--max-mbps M]

The stand-in (stack/wikimedia.py, in this process) serves N synthetic people whose
pictures cycle through the photos of demo/photos; their thumbnails are made before the
clock starts, so the figures are the harvester's and HTTP's, not the stand-in's resizing.
Each repeat harvests into an empty photo folder (a first run), then runs again over the
full folder (a rerun that fetches nothing). Prints medians over the repeats, scaled to
1,000 people, and the requests by kind (the same every run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks.machine import describe
from index_builder.harvest import HarvestConfig, run_harvest
from index_builder.polite_http import Politeness
from shared.config import REPO_ROOT
from stack.wikimedia import WikimediaServer, World

WIDTH = 960


def harvest(server: WikimediaServer, root: Path, people: int, workers: int,
            max_mbps: float) -> dict:
    config = HarvestConfig(
        catalog_out=root / "catalog.json", photos=str(root / "photos"),
        politeness=Politeness(contact="benchmark@example.org", workers=workers,
                              max_mbps=max_mbps),
        limit=people, min_sitelinks=0, sparql_url=server.sparql_url,
        commons_api_url=server.api_url, width=WIDTH, progress=False)
    started = time.monotonic()
    result = run_harvest(config, log=lambda _: None)
    summary = dict(result.summary)
    summary["wall"] = time.monotonic() - started
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-mbps", type=float, default=0.0,
                        help="download budget (default none: measure the harvester itself)")
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    world = World.synthetic(args.people, REPO_ROOT / "demo" / "photos")
    with WikimediaServer(world) as server:
        for title in world.pictures:
            server.thumbnail(title, WIDTH)
        first, again = [], []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory(prefix="harvest-bench-") as tmp:
                first.append(harvest(server, Path(tmp), args.people, args.workers,
                                     args.max_mbps))
                again.append(harvest(server, Path(tmp), args.people, args.workers,
                                     args.max_mbps))
    per = 1000 / args.people
    print(f"harvest of {args.people} people, {args.workers} download workers, thumbnails "
          f"{WIDTH} px wide at most (demo photos: 512 px at most), "
          + (f"download budget {args.max_mbps:g} Mbps" if args.max_mbps else "no download budget")
          + f"; medians of {args.repeat} runs, "
          "per 1,000 people")
    print("| run | time s | photo MB | MB received | requests | catalogued |")
    print("|---|---|---|---|---|---|")
    for name, runs in (("first (empty store)", first), ("rerun (all stored)", again)):
        seconds = statistics.median(r["wall"] for r in runs) * per
        photo_mb = statistics.median(r["photo_bytes"] for r in runs) / 1e6 * per
        received = statistics.median(r["bytes_received"] for r in runs) / 1e6 * per
        requests = statistics.median(sum(r["requests"].values()) for r in runs) * per
        print(f"| {name} | {seconds:.1f} | {photo_mb:.1f} | {received:.1f} | {requests:.0f} "
              f"| {runs[0]['catalogued']} of {runs[0]['found']} |")
    for name, runs in (("first", first), ("rerun", again)):
        kinds = ", ".join(f"{kind} {count * per:.1f}"
                          for kind, count in sorted(runs[0]["requests"].items()))
        print(f"requests per 1,000 people, {name}: {kinds}")
    print(describe())


if __name__ == "__main__":
    main()
