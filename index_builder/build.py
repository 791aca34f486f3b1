"""One build: catalogue and photos in, a published index version and a report out.

    list photos -> per-photo step (engine) -> collapse near-duplicates -> HNSW index
    -> recall -> stage version locally -> publish (upload, switch pointer, prune)
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from index_builder.assemble import (
    DUPLICATE_DISTANCE,
    best_per_group,
    collapse_near_duplicates,
    measure_recall,
)
from index_builder.catalog import Catalog, load_catalog
from index_builder.embedding import FAILED, OK, REJECTED, EmbedOptions, cache_key, descriptor_array
from index_builder.engines import EngineChoice, run_step
from index_builder.photos import list_photos
from index_builder.publish import DEFAULT_KEEP, IO_THREADS, SwitchResult, publish
from index_builder.quality import QualityFilter
from shared.index import DEFAULT_HNSW, CelebrityIndex
from shared.storage import Store, open_store

# Chosen with benchmarks/hnsw_params.py and benchmarks/index_query.py on 12,000 synthetic
# celebrities (docs/index_builder.md, docs/performance.md); defined in shared/index.py.
HNSW_PARAMS = DEFAULT_HNSW
REPORT_FILE = "report.json"


class BuildError(Exception):
    """Nothing can be published (no usable photo, too many storage failures)."""


@dataclass(frozen=True)
class BuildConfig:
    catalog: Path
    photos: str
    out: str
    cache: str = ""  # empty: <out>/cache
    engine: EngineChoice = field(default_factory=EngineChoice)
    jitters: int = 10  # num_jitters of the seed, the earlier bot (README, "Two names")
    rule: QualityFilter = field(default_factory=QualityFilter)
    duplicate_distance: float = DUPLICATE_DISTANCE
    hnsw: dict[str, Any] = field(default_factory=lambda: dict(HNSW_PARAMS))
    keep: int = DEFAULT_KEEP
    recall_sample: int = 1000
    max_failed_share: float = 0.01  # more photos than this failing on storage: no publish
    progress: bool = True

    @property
    def cache_uri(self) -> str:
        return self.cache or self.out.rstrip("/") + "/cache"


@dataclass
class BuildResult:
    version: str
    switch: SwitchResult
    summary: dict[str, Any]  # as saved in the version's manifest (build.summary)
    report: dict[str, Any]  # as saved in the version's report.json
    publish_seconds: float = 0.0  # after the summary was saved: not part of it


def _bar(config: BuildConfig, total: int, desc: str, unit: str) -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, disable=not config.progress, leave=False,
                dynamic_ncols=True)


def _photo_name(celebrity_id: str, taken: set[str]) -> str:
    """A file name for a celebrity's photo that is safe everywhere and unique."""
    slug = re.sub(r"[^A-Za-z0-9_.-]", "_", celebrity_id).strip(".") or "celebrity"
    if slug != celebrity_id or slug.lower() in taken:
        slug = f"{slug[:60]}-{hashlib.sha1(celebrity_id.encode()).hexdigest()[:8]}"
    taken.add(slug.lower())
    return f"photos/{slug}.jpg"


def plan_rows(catalog: Catalog, photos: Store) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Photos that belong to catalogue entries, and what was found besides them."""
    listing = list_photos(photos)
    known = catalog.ids()
    rows = [(key, celebrity) for key, celebrity in listing.photos if celebrity in known]
    unknown: dict[str, list[str]] = {}
    for key, celebrity in listing.photos:
        if celebrity not in known:
            unknown.setdefault(celebrity, []).append(key)
    with_photos = {celebrity for _, celebrity in rows}
    found = {
        "photos_listed": len(listing.photos),
        "ignored_files": listing.ignored,
        "unknown_ids": unknown,
        "celebrities_without_photos": [c.id for c in catalog.celebrities
                                       if c.id not in with_photos],
    }
    return pd.DataFrame(rows, columns=["photo", "celebrity"]), found


def _copy_crops(config: BuildConfig, namespace: str, chosen: dict[str, str],
                stage: Path) -> None:
    """Copy each indexed celebrity's face crop (photo file -> cache hash) into the version."""
    cache = open_store(config.cache_uri)

    def copy(item: tuple[str, str]) -> None:
        name, digest = item
        target = stage / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(cache.read(cache_key(namespace, digest, "jpg")))
        bar.update(1)

    with _bar(config, len(chosen), "photos shown in replies", "photo") as bar, \
            ThreadPoolExecutor(IO_THREADS) as pool:
        list(pool.map(copy, sorted(chosen.items())))


def assemble(config: BuildConfig, catalog: Catalog, results: pd.DataFrame, stage: Path,
             namespace: str) -> tuple[CelebrityIndex, dict[str, Any]]:
    """Build and save the index of the accepted photos into `stage`."""
    accepted = results[results["status"] == OK].reset_index(drop=True)
    if accepted.empty:
        raise BuildError("no photo passed the quality filter: nothing to index")
    rows = catalog.ids()
    accepted = accepted.assign(row=accepted["celebrity"].map(rows))
    accepted = accepted.sort_values(["row", "photo"], kind="stable").reset_index(drop=True)
    descriptors = descriptor_array(accepted["descriptor"].tolist())
    keep = collapse_near_duplicates(descriptors, accepted["row"], accepted["eye_distance"],
                                    config.duplicate_distance)
    duplicates = accepted.loc[~keep, ["photo", "celebrity"]].to_dict("records")
    accepted, descriptors = accepted[keep].reset_index(drop=True), descriptors[keep]

    indexed_rows = sorted(set(accepted["row"].tolist()))
    new_row = {old: new for new, old in enumerate(indexed_rows)}
    best = best_per_group(accepted["row"].tolist(), accepted["eye_distance"].tolist())
    taken: set[str] = set()
    celebrities, crops = [], {}
    for old in indexed_rows:
        celebrity = catalog.celebrities[old]
        name = _photo_name(celebrity.id, taken)
        crops[name] = str(accepted.loc[best[old], "sha256"])
        celebrities.append(replace(celebrity, photo=name))
    _copy_crops(config, namespace, crops, stage)
    index = CelebrityIndex.build(descriptors, [new_row[r] for r in accepted["row"]],
                                 celebrities, hnsw=config.hnsw,
                                 threads=config.engine.worker_count)
    return index, {"duplicates": duplicates}


def _summary(results: pd.DataFrame, found: dict[str, Any], index: CelebrityIndex,
             duplicates: int, step_seconds: float, seconds: float) -> dict[str, Any]:
    fresh = results[~results["from_cache"] & (results["status"] != FAILED)]
    rejected = results[results["status"] == REJECTED]
    return {
        "photos_seen": found["photos_listed"] + len(found["ignored_files"]),
        "photos_of_catalogue": len(results),
        "embedded": len(fresh),
        "cached": int(results["from_cache"].sum()),
        "accepted": int((results["status"] == OK).sum()),
        "rejected": dict(sorted(Counter(rejected["reason"]).items())),
        "failed": int((results["status"] == FAILED).sum()),
        "duplicates_collapsed": duplicates,
        "celebrities_indexed": len(index.celebrities),
        "entries": len(index),
        "recall": dict(index.manifest.recall),
        "build_seconds": round(seconds, 1),
        "step_seconds": round(step_seconds, 1),
    }


def version_name(index: CelebrityIndex, now: datetime) -> str:
    """`<UTC timestamp>-<content hash>`: sorts by time, tells builds apart."""
    digest = hashlib.sha256()
    digest.update(index.descriptors.tobytes())
    digest.update(index.entry_celebrity.tobytes())
    digest.update(json.dumps([c.to_record() for c in index.celebrities], sort_keys=True,
                             ensure_ascii=False).encode())
    return f"{now:%Y%m%dT%H%M%SZ}-{digest.hexdigest()[:8]}"


def run_build(config: BuildConfig, log: Callable[[str], None] = print) -> BuildResult:
    """Build an index version from the catalogue and photos, publish it and say what was
    done: the summary returned is the one saved in the version's manifest."""
    started, now = time.monotonic(), datetime.now(UTC)
    catalog, rows, found = _plan(config, log)
    options = EmbedOptions(photos_uri=config.photos, cache_uri=config.cache_uri,
                           jitters=config.jitters, rule=config.rule)
    step_started = time.monotonic()
    results = _embed(config, rows, options)
    step_seconds = time.monotonic() - step_started
    with tempfile.TemporaryDirectory(prefix="index-version-") as tmp:
        stage = Path(tmp)
        index, extra = assemble(config, catalog, results, stage, options.namespace())
        index.manifest.recall = measure_recall(index, config.recall_sample)
        report = _report(config, catalog, rows, found, results, index, extra["duplicates"])
        summary = _summary(results, found, index, len(extra["duplicates"]), step_seconds,
                           time.monotonic() - started)
        name = version_name(index, now)
        index.manifest.build = _build_notes(config, options, name, summary)
        _stage(index, report, stage)
        publish_started = time.monotonic()
        switch = _publish(config, stage, name)
    return BuildResult(name, switch, summary, report,
                       publish_seconds=round(time.monotonic() - publish_started, 1))


def _plan(config: BuildConfig,
          log: Callable[[str], None]) -> tuple[Catalog, pd.DataFrame, dict[str, Any]]:
    """The catalogue and the photos of its celebrities; BuildError when there are none."""
    catalog = load_catalog(config.catalog)
    rows, found = plan_rows(catalog, open_store(config.photos))
    log(f"catalogue: {len(catalog.celebrities)} celebrities"
        f" ({len(catalog.problems)} rows skipped); photos: {found['photos_listed']} listed,"
        f" {len(rows)} of catalogue celebrities")
    if found["photos_listed"] == 0:
        raise BuildError(f"no photos found in {config.photos} "
                         "(expected <id>/<any>.jpg or <id>.jpg)")
    if rows.empty:
        raise BuildError(f"none of the {found['photos_listed']} photos belongs to a catalogue "
                         "celebrity (a photo's id is its folder name or file stem)")
    return catalog, rows, found


def _embed(config: BuildConfig, rows: pd.DataFrame, options: EmbedOptions) -> pd.DataFrame:
    """The per-photo step on the engine; BuildError when too many photos failed on storage."""
    with _bar(config, len(rows), f"photos ({config.engine.name})", "photo") as bar:
        results = run_step(rows, options.to_json(), config.engine, bar.update)
    failed = results[results["status"] == FAILED]
    if len(failed) > config.max_failed_share * max(1, len(results)):
        raise BuildError(f"{len(failed)} of {len(results)} photos could not be read or cached "
                         "(storage errors after retries): nothing published, run again later")
    return results


def _report(config: BuildConfig, catalog: Catalog, rows: pd.DataFrame, found: dict[str, Any],
            results: pd.DataFrame, index: CelebrityIndex,
            duplicates: list[dict[str, Any]]) -> dict[str, Any]:
    """What the version's report.json lists: skipped rows, unknown ids, rejected photos."""
    problems = results[results["status"] != OK]
    indexed = {c.id for c in index.celebrities}
    return {
        "catalogue": {"file": str(config.catalog), "celebrities": len(catalog.celebrities),
                      "skipped_rows": catalog.problems},
        "photos": config.photos,
        **found,
        "celebrities_without_usable_photos": sorted(set(rows["celebrity"]) - indexed),
        "rejected": problems[["photo", "celebrity", "reason"]].to_dict("records"),
        "duplicates_collapsed": duplicates,
    }


def _build_notes(config: BuildConfig, options: EmbedOptions, name: str,
                 summary: dict[str, Any]) -> dict[str, Any]:
    """The manifest's `build`: how the version was made, its name and its summary."""
    return {
        "engine": config.engine.name, "workers": config.engine.worker_count,
        "num_jitters": config.jitters, "quality_filter": config.rule.to_dict(),
        "duplicate_distance": config.duplicate_distance,
        "distance_stats": "mean/std of distances between entries of different "
                          "celebrities: all pairs up to 200,000, else a seeded "
                          "random sample of 200,000 pairs",
        "recall": "HNSW vs exact search, leave-self-out, on a seeded sample",
        "calibration": "quantiles of each entry's distance to the nearest other "
                       "celebrity: all entries up to 2,000, else a seeded sample",
        "catalog": str(config.catalog), "photos": config.photos,
        "cache_namespace": options.namespace(), "summary": summary, "version": name,
    }


def _stage(index: CelebrityIndex, report: dict[str, Any], stage: Path) -> None:
    """Write the version into `stage` (beside the crops `assemble` put there), its
    manifest last and once."""
    (stage / REPORT_FILE).write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    index.save(stage)


def _publish(config: BuildConfig, stage: Path, name: str) -> SwitchResult:
    files = sum(1 for p in stage.rglob("*") if p.is_file())
    with _bar(config, files, "upload", "file") as bar:
        return publish(open_store(config.out), stage, name, config.keep, bar.update)


def format_summary(result: BuildResult, out: str) -> str:
    s = result.summary
    rejected = ", ".join(f"{reason} {count}" for reason, count in s["rejected"].items()) or "none"
    recall = s["recall"]
    lines = [
        f"version {result.version} published to {out}"
        + ("" if result.switch.switched else
           f" (not current: the newer {result.switch.current} stays current)"),
        f"photos: {s['photos_seen']} seen, {s['photos_of_catalogue']} of catalogue celebrities,"
        f" {s['embedded']} embedded, {s['cached']} from cache, {s['accepted']} accepted,"
        f" {s['failed']} failed",
        f"rejected: {rejected}; near-duplicates collapsed: {s['duplicates_collapsed']}",
        f"unknown ids: {len(result.report['unknown_ids'])},"
        f" celebrities without photos: {len(result.report['celebrities_without_photos'])},"
        f" without usable photos: {len(result.report['celebrities_without_usable_photos'])}",
        f"index: {s['celebrities_indexed']} celebrities, {s['entries']} entries;"
        f" recall@1 {recall.get('at_1', 1.0):.3f}, recall@10 {recall.get('at_10', 1.0):.3f}"
        f" ({int(recall.get('queries', 0))} queries)",
        f"time: {s['build_seconds']:.1f} s (per-photo step {s['step_seconds']:.1f} s),"
        f" then {result.publish_seconds:.1f} s to publish",
    ]
    return "\n".join(lines)
