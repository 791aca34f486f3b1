"""Object storage behind one small interface: a local directory or a Cloud Storage prefix.

Keys are '/'-separated paths below the store's root. Writes can be made conditional on
the object's generation (Cloud Storage preconditions): `if_generation=0` means "only if
absent", which makes create-only markers and safe pointer switches possible. The local
store mimics generations with a counter kept beside each object so the same code paths
run and test without the cloud.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse

from shared.instance import Lazy


class StoreError(Exception):
    """Storage is unavailable or failed; worth retrying."""


class PreconditionFailed(Exception):
    """A conditional write lost: the object exists, or changed since it was read."""


class NotFound(Exception):
    """The object does not exist."""


# Called with an object's bytes in order while it downloads (see `Store.download`).
Reader = Callable[[memoryview], None]
# How much of a downloaded file a `Reader` is handed at once.
READ_BYTES = 2**20


class Store(Protocol):
    uri: str

    def read(self, key: str) -> bytes: ...

    def generation(self, key: str) -> int:
        """The object's current generation, 0 when it does not exist."""
        ...

    def write(self, key: str, data: bytes, *, if_generation: int | None = None,
              content_type: str | None = None) -> int:
        """Write an object; returns its new generation. Raises PreconditionFailed."""
        ...

    def list(self, prefix: str = "") -> Iterator[str]: ...

    def delete(self, key: str) -> None: ...

    def download(self, key: str, target: Path, *, sliced: bool = False,
                 reader: Reader | None = None) -> None:
        """Copy an object to a local file (`sliced`: a large one, in parallel ranges).

        `reader`, when given, is handed the object's bytes in order as they arrive, from
        the calling thread, so that a consumer (the index's graph loader) can start
        before the last slice lands. An exception it raises ends the download.
        """
        ...


def open_store(uri: str | Path) -> Store:
    """`gs://bucket/prefix` opens Cloud Storage; anything else is a local directory."""
    text = str(uri)
    if text.startswith("gs://"):
        parsed = urlparse(text)
        return GcsStore(parsed.netloc, parsed.path.strip("/"))
    return LocalStore(Path(text))


class LocalStore:
    _lock = threading.Lock()

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise ValueError(f"invalid key {key!r}")
        return self.root.joinpath(*parts)

    def _gen_path(self, key: str) -> Path:
        path = self._path(key)
        return path.with_name(f".{path.name}.generation")

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise NotFound(key) from None

    def generation(self, key: str) -> int:
        if not self._path(key).is_file():
            return 0
        try:
            return int(self._gen_path(key).read_text())
        except (FileNotFoundError, ValueError):
            return 1

    def write(self, key: str, data: bytes, *, if_generation: int | None = None,
              content_type: str | None = None) -> int:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            current = self.generation(key)
            if if_generation is not None and current != if_generation:
                raise PreconditionFailed(f"{key}: generation {current}, expected {if_generation}")
            temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            temporary.write_bytes(data)
            os.replace(temporary, path)  # readers see the old or the new object, never half
            self._gen_path(key).write_text(str(current + 1))
            return current + 1

    def list(self, prefix: str = "") -> Iterator[str]:
        # Walk only the prefix's folder: an index root also holds a large embedding cache.
        base = self._path(prefix.rsplit("/", 1)[0]) if "/" in prefix else self.root
        if not base.is_dir():
            return
        for path in sorted(base.rglob("*")):
            if path.is_file() and not path.name.startswith("."):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    yield key

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)
        self._gen_path(key).unlink(missing_ok=True)

    def download(self, key: str, target: Path, *, sliced: bool = False,
                 reader: Reader | None = None) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.read(key)
        target.write_bytes(data)
        if reader is not None:
            view = memoryview(data)
            for start in range(0, len(view), READ_BYTES):
                reader(view[start:start + READ_BYTES])


# Sliced downloads (index files of hundreds of MB): slice size and slices at once; more
# than four added nothing against the local emulator (docs/performance.md, "A million-
# entry gallery, served").
SLICE_BYTES = 32 * 2**20
SLICES = 4
# Seconds to connect, and between bytes, of one ranged read (the library's default).
GCS_TIMEOUT = 60

# How long one Cloud Storage call may keep retrying; None keeps the client library's
# 120 s. A worker sets it short: with storage away, failing in seconds lets Pub/Sub
# redeliver the job, instead of holding the push (and the instance) for minutes.
_retry_seconds: float | None = None


def set_retry_seconds(seconds: float | None) -> None:
    """Bound the retries of every Cloud Storage call in this process."""
    global _retry_seconds
    _retry_seconds = seconds


def _retry(conditional: bool = False):
    """The retry policy for one call (`conditional`: retried only when a generation
    precondition makes a repeated write safe, as the library does for uploads)."""
    from google.cloud.storage import retry

    if _retry_seconds is None:
        return retry.DEFAULT_RETRY_IF_GENERATION_SPECIFIED if conditional \
            else retry.DEFAULT_RETRY
    bounded = retry.DEFAULT_RETRY.with_timeout(_retry_seconds)
    if conditional:
        return retry.ConditionalRetryPolicy(bounded, retry.is_generation_specified,
                                            ["query_params"])
    return bounded


def _new_gcs_client():
    """A Cloud Storage client (honours STORAGE_EMULATOR_HOST for the local emulator)."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT", "local"),
                              credentials=AnonymousCredentials())
    return storage.Client()


# The process's one Cloud Storage client: `gcs_client()` makes it on first use.
gcs_client = Lazy(_new_gcs_client)


class GcsStore:
    def __init__(self, bucket: str, prefix: str = "", client=None) -> None:
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"gs://{bucket}/{self.prefix}".rstrip("/")
        self._client = client

    @property
    def bucket(self):
        return (self._client or gcs_client()).bucket(self.bucket_name)

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, action):
        from google.api_core import exceptions

        try:
            return action()
        except exceptions.PreconditionFailed as exc:
            raise PreconditionFailed(str(exc)) from None
        except exceptions.NotFound as exc:
            raise NotFound(str(exc)) from None
        except (exceptions.GoogleAPIError, OSError) as exc:
            raise StoreError(f"{self.uri}: {exc}") from exc

    def read(self, key: str) -> bytes:
        return self._call(lambda: self.bucket.blob(self._name(key)).download_as_bytes(
            retry=_retry()))

    def generation(self, key: str) -> int:
        blob = self._call(lambda: self.bucket.get_blob(self._name(key), retry=_retry()))
        return int(blob.generation) if blob is not None else 0

    def write(self, key: str, data: bytes, *, if_generation: int | None = None,
              content_type: str | None = None) -> int:
        blob = self.bucket.blob(self._name(key))
        self._call(lambda: blob.upload_from_string(
            data, content_type=content_type or "application/octet-stream",
            if_generation_match=if_generation, retry=_retry(conditional=True)))
        return int(blob.generation or 0)

    def list(self, prefix: str = "") -> Iterator[str]:
        start = len(self.prefix) + 1 if self.prefix else 0
        blobs = self._call(lambda: list(
            (self._client or gcs_client()).list_blobs(self.bucket_name,
                                                      prefix=self._name(prefix),
                                                      retry=_retry())))
        for blob in blobs:
            yield blob.name[start:]

    def delete(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            self._call(lambda: self.bucket.blob(self._name(key)).delete(retry=_retry()))

    def download(self, key: str, target: Path, *, sliced: bool = False,
                 reader: Reader | None = None) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        temporary = target.with_name(f".{target.name}.part")
        try:
            if sliced or reader is not None:
                self._call(lambda: self._download_sliced(key, temporary, reader))
            else:
                self._call(lambda: _download_whole(self.bucket.blob(self._name(key)),
                                                   temporary))
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        os.replace(temporary, target)

    def _download_sliced(self, key: str, target: Path, reader: Reader | None) -> None:
        """Ranged reads of SLICE_BYTES, SLICES at a time, written in place; each slice,
        once it and those before it are complete, is read back in order for the CRC32C
        of the whole object (checked against the one Cloud Storage keeps) and `reader`.

        By hand rather than `transfer_manager.download_chunks_concurrently`, which does
        the same ranged reads but returns only when every slice is done: the index's
        graph loads from the bytes in order while later slices are still on the way.
        """
        import google_crc32c  # google-cloud-storage's own dependency for its checksums

        client = self._client or gcs_client()
        blob = client.bucket(self.bucket_name).get_blob(self._name(key), retry=_retry())
        if blob is None:
            raise NotFound(key)
        size = int(blob.size or 0)
        starts = range(0, size, SLICE_BYTES)
        checksum = google_crc32c.Checksum()
        # Generation-pinned, so every slice is of the same object; a ranged read has no
        # whole-object hash to check: the CRC32C below covers them all. Each slice is
        # retried on its own, as the library retries a download.
        url = _pinned_media_link(blob)
        fetch = _retry()(lambda start: _fetch_range(client._http, url, target, start,
                                                    min(start + SLICE_BYTES, size)))

        with open(target, "wb") as handle:
            handle.truncate(size)
        with ThreadPoolExecutor(SLICES) as pool, open(target, "rb") as written:
            slices = [pool.submit(fetch, start) for start in starts]
            try:
                for start, done in zip(starts, slices, strict=True):
                    done.result()  # the first failure, in order
                    end = min(start + SLICE_BYTES, size)
                    for offset in range(start, end, READ_BYTES):
                        piece = os.pread(written.fileno(), min(READ_BYTES, end - offset),
                                         offset)
                        checksum.update(piece)
                        if reader is not None:
                            reader(memoryview(piece))
            except BaseException:
                for waiting in slices:
                    waiting.cancel()
                raise
        expected = blob.crc32c
        if expected and base64.b64decode(expected) != checksum.digest():
            raise StoreError(f"{self.uri}/{key}: the CRC32C of the download differs from "
                             "the object's (corrupted in transit)")


def _pinned_media_link(blob) -> str:
    """The object's download address (`mediaLink`, as the library downloads it), naming
    its generation."""
    url = blob.media_link
    if blob.generation and "generation=" not in url:
        url += ("&" if "?" in url else "?") + f"generation={int(blob.generation)}"
    return url


def _fetch_range(session, url: str, target: Path, start: int, end: int) -> None:
    """Bytes [start, end) of the object at `url` (`session`: the client's authorized
    one), written at `start` in `target`.

    By hand rather than the library's ranged `Blob.download_to_file`: that streams the
    body in 8 KiB pieces, a Python loop per piece that at an index's size was the
    download's bottleneck, in CPU and in speed (docs/performance.md, "Downloads in 1 MiB
    pieces"); the library has no setting for it. Failures raise what the
    library's retry policy retries (urllib3's, `http.client.IncompleteRead`) or the
    `google.api_core` error of the HTTP status.
    """
    from google.api_core import exceptions

    # The stored bytes, whatever the object's Content-Encoding: they are what the CRC32C
    # covers (as the library's raw downloads).
    headers = {"Range": f"bytes={start}-{end - 1}", "Accept-Encoding": "gzip"}
    with session.get(url, headers=headers, stream=True, timeout=GCS_TIMEOUT) as response:
        if response.status_code >= 400:
            raise exceptions.from_http_response(response)
        length = int(response.headers.get("Content-Length", -1))
        whole = response.status_code == 200 and start == 0 and length == end
        if response.status_code != 206 and not whole:
            raise StoreError(f"a ranged read of {url} got HTTP {response.status_code} "
                             f"({length} bytes) instead of bytes {start}-{end - 1}")
        raw = response.raw
        raw.decode_content = False
        with open(target, "r+b") as handle:
            handle.seek(start)
            left = end - start
            while left:
                piece = raw.read(min(READ_BYTES, left))
                if not piece:
                    raise http.client.IncompleteRead(b"", left)
                handle.write(piece)
                left -= len(piece)


def _download_whole(blob, target: Path) -> None:
    """The object in one read. Not the library's `download_to_filename`, which then sets
    the file's modification time from the object's: a date parsed (the first parse
    imports strptime) on a new instance's way to its first answer, for nothing."""
    try:
        with target.open("wb") as file:
            blob.download_to_file(file, retry=_retry())
    except BaseException:
        target.unlink(missing_ok=True)
        raise
