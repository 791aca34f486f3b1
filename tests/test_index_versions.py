"""Version names, their prefixes and the pointer file, in a local store."""

import subprocess
import sys

import pytest

from shared.index_versions import (
    POINTER_FILE,
    IndexMismatch,
    is_version_name,
    parse_pointer,
    pointer_bytes,
    read_pointer,
    resolve_index_dir,
    version_names,
    version_prefix,
)
from shared.manifest import IndexMismatch as ManifestIndexMismatch
from shared.storage import open_store
from tests.conftest import REPO


@pytest.mark.parametrize("name", ["20261123T000457Z-63bc3824", "v1", "demo", "a..b", "v.1"])
def test_a_version_name_is_one_path_segment(name):
    assert is_version_name(name)
    assert version_prefix(name) == f"versions/{name}/"
    assert parse_pointer(pointer_bytes(name), "p") == name


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "../../etc", "/abs", "v1/",
                                  None, 7, ["v1"]])
def test_anything_else_is_not_a_version_name(name):
    assert not is_version_name(name)
    with pytest.raises(ValueError, match="not a version name"):
        pointer_bytes(name)
    if name is not None:
        with pytest.raises(ValueError, match="not a version name"):
            version_prefix(name)


def test_a_uri_that_is_itself_a_version_has_no_prefix():
    assert version_prefix(None) == ""


def test_pointer_round_trip_in_a_store(tmp_path):
    store = open_store(tmp_path)
    assert read_pointer(store) is None  # no pointer: nothing published yet
    store.write(POINTER_FILE, pointer_bytes("20260101T000000Z-abc"))
    assert read_pointer(store) == "20260101T000000Z-abc"
    assert (tmp_path / "current.json").read_text() == '{"version": "20260101T000000Z-abc"}'
    store.write(POINTER_FILE, pointer_bytes("v2"))
    assert read_pointer(store) == "v2"


@pytest.mark.parametrize(("raw", "reason"), [
    (b"{not json", "is not a valid pointer"),
    (b"\xff\xfe", "is not a valid pointer"),
    (b'{"name": "v1"}', "is not a valid pointer"),
    (b'["v1"]', "is not a valid pointer"),
    (b'{"version": "../../etc"}', "names an invalid version '../../etc'"),
    (b'{"version": ""}', "names an invalid version ''"),
    (b'{"version": 3}', "names an invalid version 3"),
    (b'{"version": null}', "names an invalid version None"),
])
def test_a_bad_pointer_is_refused_with_its_place_and_reason(tmp_path, raw, reason):
    store = open_store(tmp_path)
    store.write(POINTER_FILE, raw)
    with pytest.raises(IndexMismatch, match=rf"^{tmp_path}/current\.json {reason}"):
        read_pointer(store)
    with pytest.raises(IndexMismatch, match=reason):
        resolve_index_dir(tmp_path)


def test_index_mismatch_is_the_one_the_manifest_raises():
    assert IndexMismatch is ManifestIndexMismatch


def test_resolve_follows_the_pointer_or_takes_the_directory(tmp_path):
    (tmp_path / "versions" / "v1").mkdir(parents=True)
    assert resolve_index_dir(tmp_path) == tmp_path  # no pointer: a version directory itself
    (tmp_path / "current.json").write_bytes(pointer_bytes("v1"))
    assert resolve_index_dir(tmp_path) == tmp_path / "versions" / "v1"
    with pytest.raises(IndexMismatch, match="does not exist"):
        resolve_index_dir(tmp_path / "nowhere")


def test_version_names_from_keys():
    keys = ["current.json", "versions/b/manifest.json", "versions/a/photos/x.jpg",
            "versions/b/hnsw.bin", "versions/stray", "cache/versions/c/x"]
    assert version_names(keys) == ["a", "b"]


def test_importing_it_loads_no_numerical_code():
    # The stack and benchmarks read and write the layout; only the index itself needs numpy.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, shared.index_versions; "
         "print(sorted(m for m in ('numpy', 'dlib', 'nmslib') if m in sys.modules))"],
        capture_output=True, text=True, cwd=REPO, check=True)
    assert loaded.stdout.strip() == "[]"
