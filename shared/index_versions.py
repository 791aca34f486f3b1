"""Index versions: their names, where their files are, and the pointer to the current one.

An index root (a local directory or a Cloud Storage prefix) holds

    versions/<name>/   one index version each (see shared/index.py), never changed once written
    current.json       the pointer, {"version": "<name>"}: the version readers use

The index builder publishes versions (index_builder/publish.py); the worker and main.py
follow the pointer (shared/index_store.py). A version name is one path segment; the
builder's start with a UTC timestamp, so the later of two names is the newer build.

Only the standard library and the storage interface are imported: the stack, tests and
benchmarks publish through this layout without loading the index's numerical code.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from shared.storage import NotFound, Store

POINTER_FILE = "current.json"
VERSIONS_DIR = "versions"


class IndexMismatch(Exception):
    """An index that cannot be used (its pointer, manifest or files); the message says why."""


def is_version_name(name: object) -> bool:
    """A version name is one path segment, so its files stay under its prefix, and not a
    dot name, which local stores and the worker's cache keep for their own files."""
    return isinstance(name, str) and name != "" and "/" not in name and not name.startswith(".")


def version_prefix(name: str | None) -> str:
    """Where a version's files are under an index root (None: a URI that is itself a
    version directory, so its root)."""
    if name is None:
        return ""
    if not is_version_name(name):
        raise ValueError(f"{name!r} is not a version name")
    return f"{VERSIONS_DIR}/{name}/"


def version_names(keys: Iterable[str]) -> list[str]:
    """The versions that own any of `keys` (keys of an index root), oldest name first."""
    names = {key.split("/")[1] for key in keys
             if key.startswith(VERSIONS_DIR + "/") and key.count("/") >= 2}
    return sorted(names)


def pointer_bytes(name: str) -> bytes:
    """The pointer file naming version `name`."""
    if not is_version_name(name):
        raise ValueError(f"{name!r} is not a version name")
    return json.dumps({"version": name}).encode()


def parse_pointer(raw: bytes, where: str) -> str:
    """The version a pointer file names; `where` says which file in the error."""
    try:
        version = json.loads(raw)["version"]
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise IndexMismatch(f"{where} is not a valid pointer: {exc}") from None
    if not is_version_name(version):
        raise IndexMismatch(f"{where} names an invalid version {version!r}")
    return version


def read_pointer(store: Store) -> str | None:
    """The version `current.json` in `store` names, or None when there is no pointer."""
    try:
        raw = store.read(POINTER_FILE)
    except NotFound:
        return None
    return parse_pointer(raw, f"{store.uri}/{POINTER_FILE}")


def resolve_index_dir(path: str | Path) -> Path:
    """The local index directory at `path`: the version an index root's pointer names, or
    `path` itself when it has no pointer."""
    path = Path(path)
    pointer = path / POINTER_FILE
    if pointer.is_file():
        return path / version_prefix(parse_pointer(pointer.read_bytes(), str(pointer)))
    if not path.is_dir():
        raise IndexMismatch(f"index directory {path} does not exist")
    return path
