"""`harvest`: people from Wikidata, their pictures and credits from Commons, a catalogue out.

    page of people (WDQS, most-linked first) -> details (labels, birth, sex, articles)
    -> leave out opt-outs, minors, people without a date of birth or a name
    -> imageinfo, 50 files a request (thumbnail URL, SHA-1, licence, author)
    -> download what the photo store lacks (bounded, retried) -> catalogue

Photos land at `<photos>/<Q-id>/<file stem>-<sha1>-w<width>.<ext>` as each arrives, so
an interrupted run keeps everything it fetched, and a rerun downloads only files whose
name is not in the store yet: new people, a changed picture (new SHA-1), another width.
A person's older pictures are deleted once the new one is stored; the pictures of
opted-out people and minors are deleted whenever a run meets them. The catalogue is
written last, whole, in popularity order.
"""

from __future__ import annotations

import io
import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from index_builder.commons import (
    DEFAULT_COMMONS_API_URL,
    DEFAULT_WIDTH,
    TITLES_PER_REQUEST,
    FileInfo,
    imageinfo_params,
    parse_imageinfo,
)
from index_builder.exclusions import read_exclusions
from index_builder.polite_http import HttpFailure, PoliteClient, Politeness
from index_builder.wikidata import (
    DEFAULT_SPARQL_URL,
    Keyset,
    Person,
    details_query,
    is_adult,
    page_query,
    parse_details,
    parse_page,
)
from shared.storage import Store, StoreError, open_store

PAGE_SIZE = 5000  # rows per page query: a light query, well inside WDQS's 60 s
DETAILS_BATCH = 200  # items per details query (labels, birth, sex, articles)
_FORMATS = {"JPEG": ("jpg", "image/jpeg"), "PNG": ("png", "image/png"),
            "WEBP": ("webp", "image/webp"), "GIF": ("gif", "image/gif")}
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


class HarvestError(Exception):
    """The harvest cannot go on (the query service keeps failing); a rerun resumes."""


@dataclass(frozen=True)
class HarvestConfig:
    catalog_out: Path
    photos: str
    politeness: Politeness
    limit: int = 1000
    min_sitelinks: int = 10
    occupations: list[str] = field(default_factory=list)
    languages: list[str] = field(default_factory=lambda: ["en", "ru"])
    exclude: list[str] = field(default_factory=list)  # exclusion list files
    sparql_url: str = DEFAULT_SPARQL_URL
    commons_api_url: str = DEFAULT_COMMONS_API_URL
    width: int = DEFAULT_WIDTH
    page_size: int = PAGE_SIZE
    progress: bool = True


@dataclass
class HarvestResult:
    catalogue: list[dict[str, Any]]
    summary: dict[str, Any]


def photo_stem(qid: str, file: FileInfo, width: int) -> str:
    """`<Q-id>/<title slug>-<sha1[:10]>-w<width>`: a new file or width gets a new name."""
    name = file.title.split(":", 1)[-1].rsplit(".", 1)[0]
    slug = _SLUG.sub("_", name).strip("._")[:80] or "photo"
    return f"{qid}/{slug}-{file.sha1[:10]}-w{width}"


def check_picture(data: bytes) -> tuple[str, str]:
    """(extension, content type) of a complete picture; ValueError(reason) otherwise."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind = image.format or ""
            image.load()  # decodes everything: a cut-short file fails here
    except UnidentifiedImageError:
        raise ValueError("not_an_image") from None
    except (OSError, SyntaxError, Image.DecompressionBombError):
        raise ValueError("truncated") from None
    if kind not in _FORMATS:
        raise ValueError("not_an_image")
    return _FORMATS[kind]


class _Harvest:
    def __init__(self, config: HarvestConfig, log: Callable[[str], None]) -> None:
        self.config = config
        self.log = log
        self.client = PoliteClient(config.politeness)
        self.store: Store = open_store(config.photos)
        self.excluded: set[str] = set()
        for uri in config.exclude:
            self.excluded |= read_exclusions(uri)
        self.today = datetime.now(UTC).date()
        self.found = 0
        self.left_out: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.fetched = 0
        self.already = 0
        self.photo_bytes = 0
        self.deleted = 0
        self._lock = threading.Lock()  # downloads run in threads and count as they go
        self.catalogue: list[dict[str, Any]] = []
        self.seen: set[str] = set()  # a person whose sitelinks change mid-run may come twice
        self.existing: dict[str, set[str]] = defaultdict(set)  # Q-id -> keys in the store
        for key in self.store.list(""):
            if key.count("/") == 1:
                self.existing[key.split("/", 1)[0]].add(key)

    def _bar(self, desc: str, unit: str, total: int | None = None) -> tqdm:
        return tqdm(total=total, desc=desc, unit=unit, disable=not self.config.progress,
                    leave=False, dynamic_ncols=True)

    def _drop_photos(self, qid: str, keep: str | None = None) -> None:
        for key in sorted(self.existing.get(qid, set())):
            if key != keep:
                self.store.delete(key)
                self.existing[qid].discard(key)
                self.deleted += 1

    # -- who --------------------------------------------------------------------------

    def _details(self, rows: list[tuple[str, int, Keyset]]) -> dict[str, Person]:
        people = {qid: Person(qid, links) for qid, links, _ in rows}
        qids = list(people)
        for start in range(0, len(qids), DETAILS_BATCH):
            batch = qids[start:start + DETAILS_BATCH]
            result = self.client.sparql(self.config.sparql_url,
                                        details_query(batch, self.config.languages))
            parse_details(result, people)
        return people

    def _admissible(self, people: dict[str, Person]) -> list[Person]:
        kept = []
        for person in people.values():
            reason = None
            if person.id in self.excluded:
                reason = "opted_out"
            else:
                adult = is_adult(person.births, self.today)
                if adult is False:
                    reason = "minor"
                elif adult is None:
                    reason = "no_birth_date"
                elif person.name(self.config.languages) is None:
                    reason = "no_name"
                elif person.image() is None:
                    reason = "no_image"
            if reason is None:
                kept.append(person)
                continue
            self.left_out[reason] += 1
            if reason in ("opted_out", "minor"):
                self._drop_photos(person.id)
        return kept

    # -- which picture ----------------------------------------------------------------

    def _describe(self, titles: list[str]) -> dict[str, FileInfo]:
        """imageinfo for `titles`, 50 a request, following `continue` when the API cuts
        a batch's answer short."""
        files: dict[str, FileInfo] = {}
        with self._bar("licences", "file", len(titles)) as bar:
            for start in range(0, len(titles), TITLES_PER_REQUEST):
                batch = titles[start:start + TITLES_PER_REQUEST]
                params = imageinfo_params(batch, self.config.width)
                pages: dict[str, dict[str, Any]] = {}
                normalized: list[dict[str, Any]] = []
                try:
                    while True:
                        result = self.client.action_api(self.config.commons_api_url, params)
                        query = result.get("query") or {}
                        normalized += query.get("normalized", [])
                        for page in query.get("pages", []):
                            seen = pages.setdefault(page.get("title"), page)
                            if seen is not page and page.get("imageinfo"):
                                seen["imageinfo"] = page["imageinfo"]
                        if "continue" not in result:
                            break
                        params = {**params, **result["continue"]}
                except HttpFailure as exc:
                    self.log(f"Commons API: {exc}")
                    self.failed[f"api_{exc.reason}"] += len(batch)
                    bar.update(len(batch))
                    continue
                usable, unusable = parse_imageinfo(
                    {"query": {"normalized": normalized, "pages": list(pages.values())}},
                    batch)
                files.update(usable)
                for problem in unusable:
                    self.left_out[problem.reason] += 1
                bar.update(len(batch))
        return files

    # -- fetching ---------------------------------------------------------------------

    def _fetch(self, qid: str, file: FileInfo, stem: str) -> str | None:
        """Download one thumbnail into the store; its key, or None (counted) on failure."""
        try:
            data, _ = self.client.get_bytes("photo", file.thumb_url)
            extension, content_type = check_picture(data)
        except (HttpFailure, ValueError) as exc:
            self._fail(exc.reason if isinstance(exc, HttpFailure) else str(exc))
            return None
        key = f"{stem}.{extension}"
        try:
            self.store.write(key, data, content_type=content_type)
        except StoreError as exc:
            self.log(f"photo store: {exc}")
            self._fail("storage_error")
            return None
        with self._lock:
            self.photo_bytes += len(data)
            self.fetched += 1
        return key

    def _fail(self, reason: str) -> None:
        with self._lock:
            self.failed[reason] += 1

    def _photos(self, people: list[Person], files: dict[str, FileInfo]) -> dict[str, str]:
        """Q-id -> key of the person's picture in the store, fetching what is missing."""
        keys: dict[str, str] = {}
        wanted: list[tuple[str, FileInfo, str]] = []
        for person in people:
            file = files.get(person.image() or "")
            if file is None:
                continue
            stem = photo_stem(person.id, file, self.config.width)
            have = [k for k in self.existing.get(person.id, set())
                    if k.rsplit(".", 1)[0] == stem]
            if have:
                keys[person.id] = have[0]
                self.already += 1
            else:
                wanted.append((person.id, file, stem))
        with self._bar("photos", "photo", len(wanted)) as bar, \
                ThreadPoolExecutor(max(1, self.config.politeness.workers)) as pool:
            def fetch(item: tuple[str, FileInfo, str]) -> tuple[str, str | None]:
                key = self._fetch(*item)
                bar.update(1)
                return item[0], key

            for qid, key in pool.map(fetch, wanted):
                if key is not None:
                    keys[qid] = key
                    self.existing[qid].add(key)
        for qid, key in keys.items():
            self._drop_photos(qid, keep=key)
        return keys

    # -- the run ----------------------------------------------------------------------

    def _record(self, person: Person, file: FileInfo) -> dict[str, Any]:
        languages = self.config.languages
        record: dict[str, Any] = {
            "id": person.id, "name": person.name(languages),
            "names": person.names(languages), "sex": person.sex,
            "links": {lang: person.links[lang] for lang in languages if lang in person.links},
            "popularity": person.popularity,
        }
        if person.births:
            record["birth"] = max(person.births, key=lambda b: (b.year, b.month, b.day)).iso()
        record["credit"] = file.credit
        if file.restrictions:
            record["restrictions"] = list(file.restrictions)
        return record

    def _page(self, rows: list[tuple[str, int, Keyset]], bar: tqdm) -> None:
        bar.update(len(rows))
        rows = [row for row in rows if row[0] not in self.seen]
        self.seen.update(qid for qid, _, _ in rows)
        self.found += len(rows)
        if not rows:
            return
        people = self._admissible(self._details(rows))
        files = self._describe(sorted({p.image() or "" for p in people}))
        keys = self._photos(people, files)
        for person in people:
            if person.id in keys:
                self.catalogue.append(self._record(person, files[person.image() or ""]))

    def run(self) -> HarvestResult:
        started = time.monotonic()
        config = self.config
        for qid in sorted(self.excluded & set(self.existing)):
            self._drop_photos(qid)
        after: Keyset | None = None
        remaining = config.limit
        with self._bar("people", "person", config.limit) as bar:
            while remaining > 0:
                size = min(config.page_size, remaining)
                query = page_query(size, config.min_sitelinks, config.occupations, after)
                try:
                    rows = parse_page(self.client.sparql(config.sparql_url, query))[:size]
                    if not rows:
                        break
                    self._page(rows, bar)
                except HttpFailure as exc:
                    raise HarvestError(f"Wikidata Query Service: {exc}; the photos fetched so "
                                       "far are kept, run again to resume") from None
                after = rows[-1][2]
                remaining -= len(rows)
                if len(rows) < size:
                    break
        write_catalogue(config.catalog_out, self.catalogue)
        traffic = self.client.traffic
        summary = {
            "found": self.found,
            "catalogued": len(self.catalogue),
            "left_out": dict(sorted(self.left_out.items())),
            "fetched": self.fetched,
            "already_stored": self.already,
            "failed": dict(sorted(self.failed.items())),
            "photo_bytes": self.photo_bytes,
            "deleted_photos": self.deleted,
            "restricted": dict(sorted(Counter(
                r for record in self.catalogue for r in record.get("restrictions", [])
            ).items())),
            "requests": dict(sorted(traffic.requests.items())),
            "retries": dict(sorted(traffic.retries.items())),
            "bytes_received": traffic.bytes,
            "seconds": round(time.monotonic() - started, 1),
        }
        return HarvestResult(self.catalogue, summary)


def write_catalogue(path: Path, records: list[dict[str, Any]]) -> None:
    """Write the catalogue whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n",
                         encoding="utf-8")
    os.replace(temporary, path)


def run_harvest(config: HarvestConfig, log: Callable[[str], None] = print) -> HarvestResult:
    if config.limit < 1 or config.page_size < 1 or config.width < 1:
        raise ValueError("--limit, the page size and --width must be positive")
    return _Harvest(config, log).run()


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in counts.items()) or "none"


def format_summary(result: HarvestResult, config: HarvestConfig) -> str:
    s = result.summary
    return "\n".join([
        f"catalogue: {s['catalogued']} people written to {config.catalog_out}",
        f"people: {s['found']} found, left out: {_counts(s['left_out'])}",
        f"photos: {s['fetched']} fetched ({s['photo_bytes'] / 1e6:.1f} MB), "
        f"{s['already_stored']} already in {config.photos}, failed: {_counts(s['failed'])}; "
        f"{s['deleted_photos']} old or withdrawn photos deleted",
        f"requests: {_counts(s['requests'])}; retries: {_counts(s['retries'])}; "
        f"{s['bytes_received'] / 1e6:.1f} MB received",
        f"restrictions beyond copyright (Commons templates): {_counts(s['restricted'])}",
        f"time: {s['seconds']:.1f} s",
        "faces are checked by `build`, whose summary counts pictures without a usable face",
    ])
