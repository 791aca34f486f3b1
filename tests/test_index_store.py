"""Fetching published index versions from Cloud Storage (fake-gcs-server) into a cache."""

import json

import numpy as np
import pytest

from index_builder.publish import activate, publish
from shared.index import Celebrity, CelebrityIndex
from shared.index_store import (
    CelebrityPhotos,
    current_version,
    fetch_current,
    fetch_index,
    load_current,
    prune_cache,
)
from shared.manifest import IndexMismatch
from shared.storage import open_store


def _publish(tmp_path, store, version: str, names: list[str],
             pictures: dict[str, bytes] | None = None) -> None:
    rng = np.random.default_rng(len(names))
    pictures = pictures or {}
    index = CelebrityIndex.build(
        rng.normal(size=(len(names), 128)).astype(np.float32), list(range(len(names))),
        [Celebrity(id=n, name=n.title(), photo=f"photos/{n}.jpg" if n in pictures else None)
         for n in names])
    local = index.save(tmp_path / version)
    for name, data in pictures.items():
        (local / "photos").mkdir(exist_ok=True)
        (local / "photos" / f"{name}.jpg").write_bytes(data)
    publish(store, local, version)


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


def test_pictures_are_fetched_on_first_use_and_kept(tmp_path, gcs_bucket):
    uri = f"gs://{gcs_bucket}/index"
    store = open_store(uri)
    _publish(tmp_path, store, "v1", ["ann", "bob", "cy"],
             pictures={"ann": b"ann's picture", "bob": b"bob's picture"})
    version, directory = fetch_current(uri, tmp_path / "cache", photos=False)
    assert version == "v1" and not (directory / "photos").exists()
    index = CelebrityIndex.load(directory)
    ann, bob, cy = index.celebrities
    photos = CelebrityPhotos(directory, uri, version)

    assert photos(ann) == b"ann's picture"
    assert (directory / "photos" / "ann.jpg").read_bytes() == b"ann's picture"
    store.delete("versions/v1/photos/ann.jpg")
    assert photos(ann) == b"ann's picture"  # from the cache, not from storage
    assert photos(cy) is None  # a celebrity without a picture
    store.delete("versions/v1/photos/bob.jpg")
    assert photos(bob) is None  # listed but gone from storage: a placeholder, no error
    assert photos(Celebrity(id="x", name="X", photo="../../manifest.json")) is None
    assert sorted(p.name for p in (directory / "photos").iterdir()) == ["ann.jpg"]


def test_a_pruned_version_gets_no_pictures_written_back(tmp_path, gcs_bucket):
    # A reply still using an old version after a refresh pruned it from the cache must
    # not leave a half directory that would block fetching that version again (rollback).
    uri = f"gs://{gcs_bucket}/index"
    store = open_store(uri)
    _publish(tmp_path, store, "v1", ["ann", "bob"], pictures={"ann": b"ann v1"})
    _, old = fetch_current(uri, tmp_path / "cache", photos=False)
    photos = CelebrityPhotos(old, uri, "v1")
    _publish(tmp_path, store, "v2", ["ann", "bob", "cy"])
    _, new = fetch_current(uri, tmp_path / "cache", photos=False)
    prune_cache(tmp_path / "cache", keep=new)
    assert photos(Celebrity(id="ann", name="Ann", photo="photos/ann.jpg")) == b"ann v1"
    assert not old.exists()
    activate(store, "v1")  # roll back
    version, again = fetch_current(uri, tmp_path / "cache", photos=False)
    assert version == "v1" and CelebrityIndex.load(again).manifest.celebrities == 2


def test_local_indexes_read_their_pictures_in_place(tmp_path):
    index = CelebrityIndex.build(np.eye(2, 128, dtype=np.float32), [0, 1],
                                 [Celebrity(id="a", name="A", photo="photos/a.jpg"),
                                  Celebrity(id="b", name="B", photo="photos/b.jpg")])
    directory = index.save(tmp_path / "v")
    (directory / "photos").mkdir()
    (directory / "photos" / "a.jpg").write_bytes(b"a")
    photos = CelebrityPhotos(directory, tmp_path / "v")
    assert [photos(c) for c in index.celebrities] == [b"a", None]


def test_a_version_without_pictures_is_fetched_by_its_manifest(tmp_path, gcs_bucket):
    uri = f"gs://{gcs_bucket}/index"
    store = open_store(uri)
    with pytest.raises(IndexMismatch, match=r"no manifest\.json"):
        fetch_current(uri, tmp_path / "cache", photos=False)
    _publish(tmp_path, store, "v1", ["ann", "bob"], pictures={"ann": b"a"})
    store.write("versions/v1/stray.bin", b"not named by the manifest")
    _, directory = fetch_current(uri, tmp_path / "cache", photos=False)
    assert sorted(p.name for p in directory.iterdir()) == [
        "celebrities.jsonl", "celebrities.rows.npy", "descriptors.npy", "entries.npy",
        "hnsw.bin", "manifest.json"]
    assert CelebrityIndex.load(directory).manifest.photos == 1

    manifest = json.loads(store.read("versions/v1/manifest.json"))
    manifest["files"]["../../current.json"] = "0" * 64
    store.write("versions/v2/manifest.json", json.dumps(manifest).encode())
    store.write("current.json", json.dumps({"version": "v2"}).encode())
    with pytest.raises(IndexMismatch, match="outside its version"):
        fetch_current(uri, tmp_path / "cache", photos=False)
    assert not (tmp_path / "cache" / "v2").exists()


def test_a_worker_loads_a_version_in_slices_without_its_descriptors(tmp_path, gcs_bucket,
                                                                    monkeypatch):
    """The graph file holds the descriptors; files over a slice come in parallel ranges."""
    import shared.storage

    monkeypatch.setattr(shared.storage, "SLICE_BYTES", 64 * 1024)  # hnsw.bin: ~8 slices
    uri = f"gs://{gcs_bucket}/index"
    store = open_store(uri)
    names = [f"p{i:03d}" for i in range(600)]
    _publish(tmp_path, store, "v1", names)
    version, index, _ = load_current(uri, tmp_path / "cache")
    assert version == "v1" and not (tmp_path / "cache" / "v1" / "descriptors.npy").exists()
    assert (tmp_path / "cache" / "v1" / "hnsw.bin").read_bytes() == (
        tmp_path / "v1" / "hnsw.bin").read_bytes()
    built = CelebrityIndex.load(tmp_path / "v1")
    np.testing.assert_array_equal(index.descriptors, built.descriptors)
    for row in (0, 299, 599):
        assert index.query(built.descriptors[row], 1)[0].celebrity.id == names[row]


def test_sliced_downloads_copy_whole_objects_and_refuse_missing_ones(tmp_path, gcs_bucket,
                                                                    monkeypatch):
    import shared.storage
    from shared.storage import NotFound

    monkeypatch.setattr(shared.storage, "SLICE_BYTES", 64 * 1024)
    store = open_store(f"gs://{gcs_bucket}/data")
    payload = np.random.default_rng(0).bytes(300_001)
    store.write("big.bin", payload)
    pieces: list[bytes] = []
    store.download("big.bin", tmp_path / "big.bin", sliced=True,
                   reader=lambda piece: pieces.append(bytes(piece)))
    assert (tmp_path / "big.bin").read_bytes() == payload == b"".join(pieces)
    store.write("small.bin", payload[:1000])
    store.download("small.bin", tmp_path / "small.bin", sliced=True)  # one read
    assert (tmp_path / "small.bin").read_bytes() == payload[:1000]
    with pytest.raises(NotFound):
        store.download("absent.bin", tmp_path / "absent.bin", sliced=True)
    assert not (tmp_path / "absent.bin").exists()


def test_a_worker_loads_the_graph_as_it_downloads(tmp_path, gcs_bucket, monkeypatch, caplog):
    """The graph loads from the slices as they land, hashed on the way; what is left in
    the cache is the version alone."""
    import shared.index_store
    import shared.storage
    from shared.graph_stream import GraphStream

    finished = []

    class Recorded(GraphStream):
        def finish(self):
            finished.append(super().finish())
            return finished[-1]

    monkeypatch.setattr(shared.storage, "SLICE_BYTES", 64 * 1024)
    monkeypatch.setattr(shared.index_store, "GraphStream", Recorded)
    uri = f"gs://{gcs_bucket}/index"
    store = open_store(uri)
    names = [f"p{i:03d}" for i in range(600)]
    _publish(tmp_path, store, "v1", names)
    with caplog.at_level("WARNING"):
        _, index, _ = load_current(uri, tmp_path / "cache")
    assert not caplog.records
    assert len(finished) == 1 and finished[0][1] == index.manifest.files["hnsw.bin"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["v1"]
    built = CelebrityIndex.load(tmp_path / "v1")
    for row in (0, 299, 599):
        assert index.query(built.descriptors[row], 1)[0].celebrity.id == names[row]

    load_current(uri, tmp_path / "cache")  # cached: read from the file, no stream
    assert len(finished) == 1


def test_a_download_failing_mid_graph_leaves_nothing_and_the_next_load_works(
        tmp_path, gcs_bucket, monkeypatch):
    import shared.storage
    from shared.storage import GcsStore, StoreError

    monkeypatch.setattr(shared.storage, "SLICE_BYTES", 64 * 1024)
    uri = f"gs://{gcs_bucket}/index"
    _publish(tmp_path, open_store(uri), "v1", [f"p{i:03d}" for i in range(600)])
    real = GcsStore._download_sliced

    def failing(self, key, target, reader):
        if reader is None:
            return real(self, key, target, reader)
        pieces = []

        def then_fail(piece):
            pieces.append(piece)
            reader(piece)
            if len(pieces) == 2:
                raise StoreError("connection reset")
        return real(self, key, target, then_fail)

    monkeypatch.setattr(GcsStore, "_download_sliced", failing)
    with pytest.raises(StoreError, match="connection reset"):
        load_current(uri, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    monkeypatch.setattr(GcsStore, "_download_sliced", real)
    version, index, _ = load_current(uri, tmp_path / "cache")
    assert version == "v1" and len(index) == 600


def test_a_graph_that_does_not_load_as_it_comes_loads_from_the_file(
        tmp_path, gcs_bucket, monkeypatch, caplog):
    import shared.index_store
    from shared.graph_stream import GraphStream, GraphStreamError

    class Failing(GraphStream):
        def finish(self):
            super().finish()
            raise GraphStreamError("the graph did not load: no pipes here")

    monkeypatch.setattr(shared.index_store, "GraphStream", Failing)
    uri = f"gs://{gcs_bucket}/index"
    _publish(tmp_path, open_store(uri), "v1", ["ann", "bob", "cy"])
    with caplog.at_level("WARNING"):
        _, index, _ = load_current(uri, tmp_path / "cache")
    assert "loading the file" in caplog.text and "no pipes here" in caplog.text
    assert index.query(CelebrityIndex.load(tmp_path / "v1").descriptors[2], 1)[0] \
        .celebrity.id == "cy"


def test_a_sliced_download_whose_checksum_differs_is_refused(tmp_path, gcs_bucket,
                                                             monkeypatch):
    import base64

    from google.cloud.storage import Blob

    import shared.storage
    from shared.storage import StoreError

    monkeypatch.setattr(shared.storage, "SLICE_BYTES", 64 * 1024)
    store = open_store(f"gs://{gcs_bucket}/data")
    store.write("big.bin", np.random.default_rng(1).bytes(200_000))
    monkeypatch.setattr(Blob, "crc32c", property(lambda blob: base64.b64encode(b"\0" * 4)))
    with pytest.raises(StoreError, match="CRC32C"):
        store.download("big.bin", tmp_path / "big.bin", sliced=True)
    assert list(tmp_path.iterdir()) == []


def test_without_named_pipes_the_graph_loads_from_its_file(tmp_path, gcs_bucket,
                                                           monkeypatch, caplog):
    import errno
    import os

    import shared.graph_stream

    def refused(path, mode=0o666):
        raise OSError(errno.EPERM, "Operation not permitted", str(path))

    monkeypatch.setattr(shared.graph_stream.os, "mkfifo", refused)
    uri = f"gs://{gcs_bucket}/index"
    _publish(tmp_path, open_store(uri), "v1", ["ann", "bob", "cy"])
    with caplog.at_level("WARNING"):
        version, index, _ = load_current(uri, tmp_path / "cache")
    assert "cannot load as it downloads" in caplog.text
    assert version == "v1" and index.query(CelebrityIndex.load(tmp_path / "v1")
                                           .descriptors[1], 1)[0].celebrity.id == "bob"
    assert os.listdir(tmp_path / "cache") == ["v1"]
