"""Finding the current index version in a store and bringing it to a local directory.

The index builder publishes `<root>/versions/<name>/` and then switches the pointer
`<root>/current.json` (shared/index_versions.py). Readers here follow the pointer; a URI
without a pointer is taken to be one version directory. Versions are immutable, so a
version already in the local cache is used as it is; a download lands in a temporary
directory that is renamed into place only when complete, so a crash never leaves a
half index that looks whole (the hashes in the manifest are checked on load too).

A version's celebrity pictures (one per celebrity, ~20 KB each) need not come with it:
`fetch_current(..., photos=False)` brings the data files only, and `CelebrityPhotos`
fetches each picture the first time a reply shows it. With 12,000 celebrities that is the
difference between a cold start of about a second and one of half a minute.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from shared.graph_stream import GraphStream, GraphStreamError
from shared.index import DESCRIPTORS_FILE, GRAPH_FILE, Celebrity, CelebrityIndex
from shared.index_versions import IndexMismatch, read_pointer, resolve_index_dir, version_prefix
from shared.manifest import MANIFEST_FILE, Manifest
from shared.storage import NotFound, Reader, Store, StoreError, open_store

log = logging.getLogger(__name__)
PHOTOS_DIR = "photos"

# Downloads are latency-bound and a version holds a photo per celebrity: many at once.
DOWNLOAD_THREADS = 16


def is_remote(uri: str | Path) -> bool:
    return str(uri).startswith("gs://")


def current_version(uri: str | Path) -> str | None:
    """The version the pointer at `uri` names (a cheap read: one small object)."""
    return read_pointer(open_store(uri))


def fetch_index(uri: str | Path, cache_dir: str | Path) -> Path:
    """A local directory holding the current index version of `uri` (see `fetch_current`)."""
    return fetch_current(uri, cache_dir)[1]


# Given a version's manifest and the directory it downloads into, readers for some of its
# files (by name), handed each file's bytes in order as it downloads.
Readers = Callable[[Manifest, Path], Mapping[str, Reader]]


def fetch_current(uri: str | Path, cache_dir: str | Path, *, photos: bool = True,
                  skip: Collection[str] = (),
                  readers: Readers | None = None) -> tuple[str | None, Path]:
    """The version the pointer at `uri` names (None without a pointer) and a local
    directory holding it, from one read of the pointer.

    Local URIs are used in place. For `gs://` URIs the version's files are downloaded
    into `cache_dir/<version>/` once; later calls for the same version cost one read of
    the pointer. What is downloaded: the manifest, the files it names but `skip`
    (large ones in parallel slices) and, unless `photos=False` (see `CelebrityPhotos`),
    the celebrity pictures; `readers` are handed the files they ask for as they come
    (called only when the version is downloaded, not when it is in the cache). Raises
    `shared.storage.StoreError` when storage is unavailable (worth retrying) and
    `IndexMismatch` when there is no index at `uri`.
    """
    if not is_remote(uri):
        directory = resolve_index_dir(uri)
        return (directory.name if directory != Path(uri) else None), directory
    store = open_store(uri)
    version = read_pointer(store)
    prefix = version_prefix(version)
    name = version or "direct-" + hashlib.sha256(str(uri).encode()).hexdigest()[:16]
    cache_dir = Path(cache_dir)
    target = cache_dir / name
    if (target / MANIFEST_FILE).is_file():
        return version, target
    partial = cache_dir / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        manifest, data = _data_keys(store, prefix, partial)
        data = [key for key in data if key[len(prefix):] not in skip]
        reading = readers(manifest, partial) if readers is not None else {}
        pictures = list(store.list(f"{prefix}{PHOTOS_DIR}/")) if photos else []
        with ThreadPoolExecutor(DOWNLOAD_THREADS) as pool:  # re-raises the first failure
            list(pool.map(lambda key: store.download(
                key, partial / key[len(prefix):], sliced=key in data,
                reader=reading.get(key[len(prefix):])), data + pictures))
        cache_dir.mkdir(parents=True, exist_ok=True)
        if target.is_dir() and not (target / MANIFEST_FILE).exists():
            shutil.rmtree(target, ignore_errors=True)  # a leftover without its manifest
        try:
            os.rename(partial, target)
        except OSError:
            if not (target / MANIFEST_FILE).is_file():  # not a concurrent fetch that won
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return version, target


def load_current(uri: str | Path,
                 cache_dir: str | Path) -> tuple[str | None, CelebrityIndex, CelebrityPhotos]:
    """The current index version of `uri` loaded, with its version and its pictures,
    which stay in storage until a reply shows them (see `fetch_current`). The
    descriptors stay there too: the graph file holds them (`CelebrityIndex.load`).

    A version that downloads loads its graph as the file comes (shared/graph_stream.py);
    should that fail, the graph loads from the downloaded file instead."""
    streams: list[GraphStream] = []

    def stream_graph(manifest: Manifest, partial: Path) -> dict[str, Reader]:
        try:
            streams.append(GraphStream(manifest, partial.with_name(partial.name + ".graph")))
        except OSError as exc:  # no named pipes here: the graph loads from its file
            log.warning("the graph cannot load as it downloads: %s", exc)
            return {}
        return {GRAPH_FILE: streams[-1]}

    try:
        version, directory = fetch_current(uri, cache_dir, photos=False,
                                           skip={DESCRIPTORS_FILE}, readers=stream_graph)
        graph, hashes = None, {}
        if streams:
            try:
                graph, hashes[GRAPH_FILE] = streams[0].finish()
            except GraphStreamError as exc:
                log.warning("the graph did not load as it downloaded; loading the file: %s",
                            exc)
        index = CelebrityIndex.load(directory, graph=graph, hashes=hashes)
    finally:
        for stream in streams:
            stream.close()
    return version, index, CelebrityPhotos(directory, uri, version)


def _data_keys(store: Store, prefix: str, partial: Path) -> tuple[Manifest, list[str]]:
    """The version's manifest and the keys of the files it names, with the manifest written
    into `partial`. Not found by listing the version: that lists its pictures too, and
    12,000 of them took 0.25 s and 350 MB of the worker's memory here."""
    try:
        raw = store.read(prefix + MANIFEST_FILE)
    except NotFound:
        raise IndexMismatch(f"no index at {store.uri}/{prefix} (no {MANIFEST_FILE})") from None
    try:
        manifest = Manifest.from_json(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise IndexMismatch(f"{store.uri}/{prefix}{MANIFEST_FILE} is not text") from None
    files = manifest.files
    if not isinstance(files, dict) or not all(
            isinstance(n, str) and n and "/" not in n and n not in (".", "..") for n in files):
        raise IndexMismatch(f"{store.uri}/{prefix}{MANIFEST_FILE} names files outside its "
                            "version")
    partial.mkdir(parents=True)
    (partial / MANIFEST_FILE).write_bytes(raw)
    return manifest, [prefix + n for n in files]


class CelebrityPhotos:
    """The pictures shown in replies, for one index version; a `shared.render.PhotoLoader`.

    Pictures are read from the version's local directory. When the index lives in Cloud
    Storage and was fetched without its pictures, a missing one is downloaded on first
    use and kept beside the other files of that version for the next reply. A picture
    that cannot be had gives None (the reply shows a placeholder), never an exception:
    the look-alike's name matters more than its picture.
    """

    def __init__(self, directory: Path, uri: str | Path | None = None,
                 version: str | None = None) -> None:
        self.directory = Path(directory)
        self._store = open_store(uri) if uri is not None and is_remote(uri) else None
        self._prefix = version_prefix(version)

    def __call__(self, celebrity: Celebrity) -> bytes | None:
        name = celebrity.photo
        if not name or ".." in PurePosixPath(name).parts or name.startswith("/"):
            return None
        path = self.directory / name
        with contextlib.suppress(OSError):
            return path.read_bytes()
        if self._store is None:
            return None
        try:
            data = self._store.read(self._prefix + name)
        except (NotFound, StoreError) as exc:
            log.warning("no picture for %s: %s", celebrity.id, exc)
            return None
        self._keep(path, data)
        return data

    def _keep(self, path: Path, data: bytes) -> None:
        # Only into a version directory still in the cache (a refresh may have pruned it);
        # written whole, then renamed, so a reader never sees half a picture.
        if not (self.directory / MANIFEST_FILE).is_file():
            return
        partial = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(data)
            os.replace(partial, path)
        except OSError as exc:
            log.warning("could not keep picture %s: %s", path, exc)
            partial.unlink(missing_ok=True)


def prune_cache(cache_dir: str | Path, keep: Path) -> None:
    """Delete cached versions other than `keep` (after a newer version was loaded)."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir():
        return
    for child in cache_dir.iterdir():
        if child.resolve() != Path(keep).resolve() and not child.name.startswith("."):
            with contextlib.suppress(OSError):
                shutil.rmtree(child)
