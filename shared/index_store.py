"""Finding the current index version in a store and bringing it to a local directory.

The index builder publishes `<root>/versions/<name>/` and then switches
`<root>/current.json` ({"version": "<name>"}). Readers here follow the pointer; a URI
without a pointer is taken to be one version directory. Versions are immutable, so a
version already in the local cache is used as it is; a download lands in a temporary
directory that is renamed into place only when complete, so a crash never leaves a
half index that looks whole (the hashes in the manifest are checked on load too).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from shared.index import POINTER_FILE, VERSIONS_DIR, resolve_index_dir
from shared.manifest import MANIFEST_FILE, IndexMismatch
from shared.storage import NotFound, Store, open_store

# Downloads are latency-bound and a version holds a photo per celebrity: many at once.
DOWNLOAD_THREADS = 16


def is_remote(uri: str | Path) -> bool:
    return str(uri).startswith("gs://")


def read_pointer(store: Store) -> str | None:
    """The version `current.json` names, or None when the store has no pointer."""
    try:
        raw = store.read(POINTER_FILE)
    except NotFound:
        return None
    try:
        version = json.loads(raw)["version"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise IndexMismatch(f"{store.uri}/{POINTER_FILE} is not a valid pointer: {exc}") from None
    if not isinstance(version, str) or "/" in version or version in ("", ".", ".."):
        raise IndexMismatch(f"{store.uri}/{POINTER_FILE} names an invalid version {version!r}")
    return version


def current_version(uri: str | Path) -> str | None:
    """The version the pointer at `uri` names (a cheap read: one small object)."""
    return read_pointer(open_store(uri))


def fetch_index(uri: str | Path, cache_dir: str | Path) -> Path:
    """A local directory holding the current index version of `uri` (see `fetch_current`)."""
    return fetch_current(uri, cache_dir)[1]


def fetch_current(uri: str | Path, cache_dir: str | Path) -> tuple[str | None, Path]:
    """The version the pointer at `uri` names (None without a pointer) and a local
    directory holding it, from one read of the pointer.

    Local URIs are used in place. For `gs://` URIs the version's files are downloaded
    into `cache_dir/<version>/` once; later calls for the same version cost one read of
    the pointer. Raises `shared.storage.StoreError` when storage is unavailable (worth
    retrying) and `IndexMismatch` when there is no index at `uri`.
    """
    if not is_remote(uri):
        directory = resolve_index_dir(uri)
        return (directory.name if directory != Path(uri) else None), directory
    store = open_store(uri)
    version = read_pointer(store)
    prefix = f"{VERSIONS_DIR}/{version}/" if version else ""
    name = version or "direct-" + hashlib.sha256(str(uri).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    if (target / MANIFEST_FILE).is_file():
        return version, target
    keys = [k for k in store.list(prefix) if not (version is None and k.startswith(
        (VERSIONS_DIR + "/", POINTER_FILE)))]
    if not any(k == prefix + MANIFEST_FILE for k in keys):
        raise IndexMismatch(f"no index at {store.uri}/{prefix} (no {MANIFEST_FILE})")
    partial = cache_dir / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:  # re-raises the first failure
            list(pool.map(lambda key: store.download(key, partial / key[len(prefix):]), keys))
        cache_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(partial, target)
        except OSError:
            if not (target / MANIFEST_FILE).is_file():  # not a concurrent fetch that won
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return version, target


def prune_cache(cache_dir: str | Path, keep: Path) -> None:
    """Delete cached versions other than `keep` (after a newer version was loaded)."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return
    for child in cache_dir.iterdir():
        if child.resolve() != Path(keep).resolve() and not child.name.startswith("."):
            with contextlib.suppress(OSError):
                shutil.rmtree(child)
