"""Command line: `python -m index_builder harvest | build | publish | remove | versions |
activate | catalog`.

Exit codes: 0 done, 1 bad input or nothing to publish, 2 storage or a Wikimedia service
unavailable (run again: a harvest resumes where it stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

from index_builder.assemble import DUPLICATE_DISTANCE
from index_builder.build import (
    HNSW_PARAMS,
    BuildConfig,
    BuildError,
    format_summary,
    run_build,
    version_name,
)
from index_builder.catalog import CatalogError, catalog_from_ids
from index_builder.commons import DEFAULT_COMMONS_API_URL, DEFAULT_WIDTH
from index_builder.engines import ENGINES, SUBMITTED, EngineChoice
from index_builder.harvest import PAGE_SIZE, HarvestConfig, HarvestError, run_harvest
from index_builder.harvest import format_summary as format_harvest
from index_builder.photos import list_photos
from index_builder.polite_http import Politeness
from index_builder.publish import DEFAULT_KEEP, PublishError, activate, list_versions, publish
from index_builder.quality import QualityFilter
from index_builder.remove import RemoveError, run_remove
from index_builder.wikidata import DEFAULT_SPARQL_URL, check_languages, is_qid
from shared.index import CelebrityIndex
from shared.index_versions import read_pointer
from shared.manifest import MANIFEST_FILE, IndexMismatch
from shared.storage import StoreError, open_store


def _build(args: argparse.Namespace) -> int:
    defaults = QualityFilter()
    config = BuildConfig(
        catalog=Path(args.catalog), photos=args.photos, out=args.out, cache=args.cache,
        engine=EngineChoice(args.engine, args.workers, args.dask_address, args.spark_master),
        jitters=args.jitters,
        rule=QualityFilter(
            min_eye_distance=(args.min_eye_distance if args.min_eye_distance is not None
                              else defaults.min_eye_distance),
            max_roll_degrees=(args.max_roll if args.max_roll is not None
                              else defaults.max_roll_degrees)),
        duplicate_distance=args.duplicate_distance,
        hnsw={**HNSW_PARAMS, "M": args.hnsw_m, "efConstruction": args.hnsw_ef_construction,
              "efSearch": args.hnsw_ef_search},
        keep=args.keep, progress=not args.no_progress)
    result = run_build(config, log=lambda line: print(line, file=sys.stderr))
    print(format_summary(result, args.out))
    return 0


def _harvest(args: argparse.Namespace) -> int:
    config = HarvestConfig(
        catalog_out=Path(args.catalog_out), photos=args.photos,
        politeness=Politeness(contact=args.contact, workers=args.workers,
                              backoff=args.backoff, max_mbps=args.max_mbps),
        limit=args.limit, min_sitelinks=args.min_sitelinks, occupations=args.occupation,
        languages=check_languages([x.strip() for x in args.languages.split(",") if x.strip()]),
        exclude=args.exclude, sparql_url=args.sparql_url,
        commons_api_url=args.commons_api_url, width=args.width, page_size=args.page_size,
        progress=not args.no_progress)
    result = run_harvest(config, log=lambda line: print(line, file=sys.stderr))
    print(format_harvest(result, config))
    return 0


def _remove(args: argparse.Namespace) -> int:
    bad = [i for i in args.ids if not is_qid(i)]
    if bad:
        raise ValueError(f"not Wikidata ids (Q...): {', '.join(bad)}")
    result = run_remove(args.out, args.ids, photos=args.photos or "", keep=args.keep)
    print(f"exclusion list {args.out}/excluded.txt: {result.listed} added")
    if args.photos:
        print(f"photos: {result.photos_deleted} deleted from {args.photos}")
    if result.version is None:
        print("none of them is in the current version: nothing to publish")
    else:
        assert result.switch is not None
        print(f"version {result.version} published without {', '.join(result.removed)}"
              + ("" if result.switch.switched else
                 f" (not current: the newer {result.switch.current} stays current)"))
    return 0


# A version published with --first is named as if built at this time, so that any later
# build sorts after it and replaces it (the newer name wins, index_builder.publish).
FIRST_VERSION_TIME = datetime(1970, 1, 1, tzinfo=UTC)


def _publish(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    if not (directory / MANIFEST_FILE).is_file():
        raise PublishError(f"{directory} is not an index version (no {MANIFEST_FILE})")
    store = open_store(args.out)
    if args.first:
        current = read_pointer(store)
        if current is not None:
            print(f"{args.out}: has version {current}; nothing published")
            return 0
    name = version_name(CelebrityIndex.load(directory),
                        FIRST_VERSION_TIME if args.first else datetime.now(UTC))
    result = publish(store, directory, name, keep=args.keep)
    print(f"{args.out}: published {name}; current version is {result.current}")
    return 0


def _versions(args: argparse.Namespace) -> int:
    infos = list_versions(open_store(args.out))
    if not infos:
        print(f"no versions in {args.out}")
    for info in infos:
        mark = "*" if info.current else " "
        if info.manifest is None:
            print(f"{mark} {info.name}  incomplete ({info.files} files, no manifest)")
            continue
        m = info.manifest
        recall = m.recall or {}
        print(f"{mark} {info.name}  {m.created}  {m.celebrities} celebrities, {m.entries} "
              f"entries, recall@1 {recall.get('at_1', float('nan')):.3f}"
              + ("  (current)" if info.current else ""))
    return 0


def _activate(args: argparse.Namespace) -> int:
    result = activate(open_store(args.out), args.version)
    print(f"{args.out}: current version is now {result.current}")
    return 0


def _catalog(args: argparse.Namespace) -> int:
    listing = list_photos(open_store(args.photos))
    print(json.dumps(catalog_from_ids([c for _, c in listing.photos]), indent=1,
                     ensure_ascii=False))
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="python -m index_builder", description=__doc__)
    commands = main.add_subparsers(dest="command", required=True)

    harvest = commands.add_parser(
        "harvest", help="people from Wikidata, photos and credits from Wikimedia Commons: "
        "a catalogue and a photo folder for build (docs/catalog.md)")
    harvest.add_argument("--catalog-out", required=True, help="catalogue to write (JSON)")
    harvest.add_argument("--photos", required=True, help="photo store: directory or gs://...")
    harvest.add_argument("--contact", required=True,
                         help="operator's URL or e-mail, sent in the User-Agent as "
                         "Wikimedia's policy asks")
    harvest.add_argument("--limit", type=int, default=1000,
                         help="people to read, most linked first (default 1000)")
    harvest.add_argument("--min-sitelinks", type=int, default=10,
                         help="fewest Wikimedia sitelinks a person needs (default 10)")
    harvest.add_argument("--occupation", action="append", default=[], metavar="QID",
                         help="only people with this occupation (P106); repeatable")
    harvest.add_argument("--languages", default="en,ru",
                         help="names and Wikipedia links in these languages (default en,ru)")
    harvest.add_argument("--exclude", action="append", default=[], metavar="FILE",
                         help="opt-out list (one Q-id a line; path or gs://); repeatable; "
                         "`remove` keeps one at <out>/excluded.txt")
    harvest.add_argument("--sparql-url", default=DEFAULT_SPARQL_URL)
    harvest.add_argument("--commons-api-url", default=DEFAULT_COMMONS_API_URL)
    harvest.add_argument("--workers", type=int, default=2,
                         help="parallel downloads (default 2, Wikimedia's robot policy)")
    harvest.add_argument("--width", type=int, default=DEFAULT_WIDTH,
                         help=f"thumbnail width in pixels (default {DEFAULT_WIDTH})")
    harvest.add_argument("--max-mbps", type=float, default=Politeness.max_mbps,
                         help="download budget in megabits a second (default %(default)s, "
                         "Wikimedia's robot policy; 0: none)")
    harvest.add_argument("--backoff", type=float, default=Politeness.backoff,
                         help="seconds before the first retry without Retry-After; doubled "
                         "each time (default %(default)s)")
    harvest.add_argument("--page-size", type=int, default=PAGE_SIZE,
                         help="people per Wikidata query (default %(default)s; smaller if "
                         "the service times out)")
    harvest.add_argument("--no-progress", action="store_true", help="no progress bars")
    harvest.set_defaults(run=_harvest)

    remove = commands.add_parser(
        "remove", help="publish a version without these people and add them to the "
        "exclusion list the next harvest reads")
    remove.add_argument("--out", required=True, help="output root: directory or gs://...")
    remove.add_argument("--photos", help="also delete their photos from this photo store")
    remove.add_argument("--keep", type=int, default=DEFAULT_KEEP)
    remove.add_argument("ids", nargs="+", metavar="ID", help="Wikidata ids (Q...)")
    remove.set_defaults(run=_remove)

    build = commands.add_parser("build", help="build an index version and publish it")
    build.add_argument("--catalog", required=True, help="celebrities: a JSON list or CSV file")
    build.add_argument("--photos", required=True,
                       help="directory or gs://bucket/prefix of <id>/<any>.jpg or <id>.jpg")
    build.add_argument("--out", required=True, help="output root: directory or gs://...")
    build.add_argument("--engine", choices=ENGINES, default="native")
    build.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    build.add_argument("--jitters", type=int, default=10,
                       help="dlib num_jitters per photo (default 10)")
    build.add_argument("--cache", default="", help="embedding cache (default: <out>/cache)")
    build.add_argument("--keep", type=int, default=DEFAULT_KEEP,
                       help=f"versions to keep (default {DEFAULT_KEEP})")
    build.add_argument("--dask-address", default="", help="Dask scheduler (default: local)")
    build.add_argument("--spark-master", default="",
                       help=f"Spark master (default: local[N]); {SUBMITTED}: the one "
                            "spark-submit set, as on Dataproc")
    build.add_argument("--min-eye-distance", type=float, help="pixels between the eyes")
    build.add_argument("--max-roll", type=float, help="head roll in degrees")
    build.add_argument("--duplicate-distance", type=float, default=DUPLICATE_DISTANCE)
    build.add_argument("--hnsw-m", type=int, default=HNSW_PARAMS["M"])
    build.add_argument("--hnsw-ef-construction", type=int,
                       default=HNSW_PARAMS["efConstruction"])
    build.add_argument("--hnsw-ef-search", type=int, default=HNSW_PARAMS["efSearch"])
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.set_defaults(run=_build)

    put = commands.add_parser("publish", help="publish a built index directory as a version")
    put.add_argument("directory", help="an index version directory (e.g. demo/gallery)")
    put.add_argument("--out", required=True, help="output root: directory or gs://...")
    put.add_argument("--first", action="store_true",
                     help="only when there is no current version, as the oldest version "
                          "(any build replaces it): infra/setup.sh's demo gallery")
    put.add_argument("--keep", type=int, default=DEFAULT_KEEP,
                     help=f"versions to keep (default {DEFAULT_KEEP})")
    put.set_defaults(run=_publish)

    versions = commands.add_parser("versions", help="list versions, marking the current one")
    versions.add_argument("--out", required=True)
    versions.set_defaults(run=_versions)

    switch = commands.add_parser("activate", help="make an existing version current (rollback)")
    switch.add_argument("--out", required=True)
    switch.add_argument("version")
    switch.set_defaults(run=_activate)

    catalog = commands.add_parser("catalog", help="print a catalogue made from photo folder "
                                  "names (id = folder, name = folder with spaces)")
    catalog.add_argument("--photos", required=True)
    catalog.set_defaults(run=_catalog)
    return main


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if getattr(args, "workers", 0) < 0 or getattr(args, "jitters", 0) < 0:
        parser().error("--workers and --jitters must not be negative")
    try:
        return args.run(args)
    except (CatalogError, BuildError, PublishError, IndexMismatch, RemoveError,
            ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except HarvestError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: whatever was stored is kept; a harvest run again resumes",
              file=sys.stderr)
        return 130
    except StoreError as exc:
        print(f"error: storage unavailable, nothing was switched: {exc}", file=sys.stderr)
        return 2
