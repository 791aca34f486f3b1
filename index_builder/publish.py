"""Publishing index versions to a store atomically, listing them and rolling back.

`publish(store, directory, name)` is the one way a directory becomes a version: the
builder, the local stack, tests and benchmarks all use it, on a local directory or in
Cloud Storage (the layout and the pointer: shared/index_versions.py).

A version is uploaded file by file to `versions/<name>/`, the manifest last; only then
is the pointer `current.json` switched, with a generation precondition: the switch
succeeds only if nobody switched since this publisher read the pointer. When someone
did, the newer version (by name: names start with a UTC timestamp) wins; an older build
that finishes late never replaces a newer one. Readers therefore see the old version or
the new one, never a version whose manifest is not yet written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from shared.index_versions import (
    POINTER_FILE,
    VERSIONS_DIR,
    IndexMismatch,
    is_version_name,
    pointer_bytes,
    read_pointer,
    version_names,
    version_prefix,
)
from shared.manifest import MANIFEST_FILE, Manifest
from shared.storage import PreconditionFailed, Store

DEFAULT_KEEP = 5
SWITCH_ATTEMPTS = 5
IO_THREADS = 16  # uploads and deletes are latency-bound: a version holds a photo per celebrity
_CONTENT_TYPES = {".json": "application/json", ".jpg": "image/jpeg", ".npy":
                  "application/octet-stream", ".bin": "application/octet-stream"}


class PublishError(Exception):
    """A version cannot be published or activated; the message says why."""


@dataclass(frozen=True)
class SwitchResult:
    switched: bool
    current: str  # what the pointer names afterwards


@dataclass(frozen=True)
class VersionInfo:
    name: str
    files: int
    manifest: Manifest | None  # None: incomplete (upload still running or abandoned)
    current: bool


def _check_name(name: str) -> None:
    if not is_version_name(name):
        raise PublishError(f"{name!r} is not a version name")


def upload_version(store: Store, local: Path, name: str,
                   progress: Callable[[int], object] = lambda _: None) -> int:
    """Upload a local version directory, manifest last; returns the number of files."""
    _check_name(name)
    files = sorted(p for p in local.rglob("*") if p.is_file() and not p.name.startswith("."))
    files.sort(key=lambda p: p.name == MANIFEST_FILE)  # stable: the manifest goes last
    if not files or files[-1].name != MANIFEST_FILE:
        raise PublishError(f"{local} has no {MANIFEST_FILE}: not an index version")

    def upload(file: Path) -> None:
        key = version_prefix(name) + file.relative_to(local).as_posix()
        # if_generation=0: versions are immutable, an existing object is never overwritten.
        try:
            store.write(key, file.read_bytes(), if_generation=0,
                        content_type=_CONTENT_TYPES.get(file.suffix))
        except PreconditionFailed:
            raise PublishError(f"version {name} already exists in {store.uri}") from None
        progress(1)

    with ThreadPoolExecutor(IO_THREADS) as pool:
        list(pool.map(upload, files[:-1]))  # re-raises the first failure
    upload(files[-1])
    return len(files)


def is_complete(store: Store, name: str) -> bool:
    return store.generation(version_prefix(name) + MANIFEST_FILE) > 0


def switch_pointer(store: Store, name: str, generation: int, *,
                   newer_wins: bool = True) -> SwitchResult:
    """Point `current.json` at `name` if it is still at `generation` (0: absent).

    With `newer_wins`, a version with a later name that is (or becomes) current stays:
    a build that finishes late never replaces a newer one. A lost race re-reads the
    pointer and tries again.
    """
    if not is_complete(store, name):
        raise PublishError(f"version {name} has no manifest in {store.uri}: not switching")
    for _ in range(SWITCH_ATTEMPTS):
        # Read after `generation`: if it changed since, the conditional write below fails.
        current = read_pointer(store)
        if current == name:
            return SwitchResult(True, name)
        if newer_wins and current is not None and current > name:
            return SwitchResult(False, current)
        try:
            store.write(POINTER_FILE, pointer_bytes(name), if_generation=generation,
                        content_type="application/json")
            return SwitchResult(True, name)
        except PreconditionFailed:
            generation = store.generation(POINTER_FILE)
    raise PublishError(f"the pointer in {store.uri} keeps changing; {name} was not made current")


def prune_versions(store: Store, keep: int, protect: Iterable[str] = ()) -> list[str]:
    """Delete all but the newest `keep` versions, never the current one or `protect`ed ones."""
    keys = list(store.list(VERSIONS_DIR + "/"))
    names = version_names(keys)
    spared = set(names[-keep:] if keep > 0 else []) | set(protect)
    current = read_pointer(store)
    if current:
        spared.add(current)
    doomed = [n for n in names if n not in spared]
    # The manifest goes first, so a half-deleted version reads as incomplete, never as whole.
    victims = sorted((k for k in keys if k.count("/") >= 2 and k.split("/")[1] in doomed),
                     key=lambda k: not k.endswith("/" + MANIFEST_FILE))
    manifests = [k for k in victims if k.endswith("/" + MANIFEST_FILE)]
    for key in manifests:
        store.delete(key)
    with ThreadPoolExecutor(IO_THREADS) as pool:
        list(pool.map(store.delete, victims[len(manifests):]))
    return doomed


def publish(store: Store, local: Path, name: str, keep: int = DEFAULT_KEEP,
            progress: Callable[[int], object] = lambda _: None) -> SwitchResult:
    """Upload `local` as version `name`, make it current unless a newer one is, prune."""
    generation = store.generation(POINTER_FILE)
    upload_version(store, local, name, progress)
    result = switch_pointer(store, name, generation)
    prune_versions(store, keep, protect=[name])
    return result


def list_versions(store: Store) -> list[VersionInfo]:
    keys = list(store.list(VERSIONS_DIR + "/"))
    current = read_pointer(store)
    infos = []
    for name in version_names(keys):
        prefix = version_prefix(name)
        files = sum(1 for k in keys if k.startswith(prefix))
        manifest = None
        if prefix + MANIFEST_FILE in keys:
            try:
                manifest = Manifest.from_json(store.read(prefix + MANIFEST_FILE).decode())
            except (IndexMismatch, UnicodeDecodeError):
                manifest = None
        infos.append(VersionInfo(name, files, manifest, name == current))
    return infos


def activate(store: Store, name: str) -> SwitchResult:
    """Make an existing complete version current (a rollback or roll-forward)."""
    _check_name(name)
    if not is_complete(store, name):
        known = ", ".join(version_names(store.list(VERSIONS_DIR + "/"))) or "none"
        raise PublishError(f"no complete version {name} in {store.uri} (versions: {known})")
    generation = store.generation(POINTER_FILE)
    try:
        store.write(POINTER_FILE, pointer_bytes(name), if_generation=generation,
                    content_type="application/json")
    except PreconditionFailed:
        raise PublishError("the pointer changed while activating (another publish?); "
                           f"now {read_pointer(store)}: check and run again") from None
    return SwitchResult(True, name)
