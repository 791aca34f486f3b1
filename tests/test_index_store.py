"""Fetching published index versions from Cloud Storage (fake-gcs-server) into a cache."""

import json

import numpy as np
import pytest

from shared.index import Celebrity, CelebrityIndex
from shared.index_store import current_version, fetch_index, prune_cache
from shared.manifest import IndexMismatch
from shared.storage import open_store


def _publish(tmp_path, store, version: str, names: list[str]) -> None:
    rng = np.random.default_rng(len(names))
    index = CelebrityIndex.build(rng.normal(size=(len(names), 128)).astype(np.float32),
                                 list(range(len(names))),
                                 [Celebrity(id=n, name=n.title()) for n in names])
    local = index.save(tmp_path / version)
    for file in local.iterdir():
        store.write(f"versions/{version}/{file.name}", file.read_bytes())
    store.write("current.json", json.dumps({"version": version}).encode())


def test_fetch_follows_the_pointer_and_caches(tmp_path, gcs_bucket):
    uri = f"gs://{gcs_bucket}/index"
    store = open_store(uri)
    assert current_version(uri) is None
    with pytest.raises(IndexMismatch):
        fetch_index(uri, tmp_path / "cache")
    _publish(tmp_path, store, "v1", ["ann", "bob"])
    first = fetch_index(uri, tmp_path / "cache")
    assert first.name == "v1" and CelebrityIndex.load(first).celebrities[1].name == "Bob"
    (first / "marker").write_text("cached")
    assert fetch_index(uri, tmp_path / "cache") == first  # no second download
    assert (first / "marker").exists()

    _publish(tmp_path, store, "v2", ["ann", "bob", "cy"])
    assert current_version(uri) == "v2"
    second = fetch_index(uri, tmp_path / "cache")
    assert len(CelebrityIndex.load(second).celebrities) == 3
    prune_cache(tmp_path / "cache", keep=second)
    assert not first.exists() and second.exists()


def test_fetch_a_version_directory_directly(tmp_path, gcs_bucket):
    store = open_store(f"gs://{gcs_bucket}/root")
    _publish(tmp_path, store, "v7", ["ann", "bob"])
    direct = fetch_index(f"gs://{gcs_bucket}/root/versions/v7", tmp_path / "cache")
    assert CelebrityIndex.load(direct).manifest.celebrities == 2


def test_bad_pointer_is_refused(tmp_path, gcs_bucket):
    store = open_store(f"gs://{gcs_bucket}/x")
    store.write("current.json", b'{"version": "../../etc"}')
    with pytest.raises(IndexMismatch, match="invalid version"):
        fetch_index(f"gs://{gcs_bucket}/x", tmp_path)
