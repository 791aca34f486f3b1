import json
import shutil

import numpy as np
import pytest

from shared.index import Celebrity, CelebrityIndex
from shared.index_versions import resolve_index_dir
from shared.manifest import IndexMismatch, Manifest


def _gallery(n_people=30, per_person=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_people, 128)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True) / 1.5
    descriptors = np.repeat(centres, per_person, axis=0)
    descriptors += rng.normal(scale=0.03, size=descriptors.shape).astype(np.float32)
    entries = np.repeat(np.arange(n_people), per_person)
    people = [Celebrity(id=f"c{i}", name=f"Person {i}", alias=f"P{i}" if i % 2 else None,
                        extra={"role": "actor", "n_movies": i}) for i in range(n_people)]
    return centres, descriptors, entries, people


def test_query_groups_entries_so_each_celebrity_appears_once():
    centres, descriptors, entries, people = _gallery()
    index = CelebrityIndex.build(descriptors, entries, people)
    matches = index.query(centres[7], k=5)
    ids = [m.celebrity.id for m in matches]
    assert ids[0] == "c7" and len(set(ids)) == 5
    distances = [m.distance for m in matches]
    assert distances == sorted(distances)
    exact = np.linalg.norm(descriptors[entries == 7] - centres[7], axis=1).min()
    assert distances[0] == pytest.approx(exact, abs=1e-5)
    assert matches[0].similarity > matches[-1].similarity


def test_small_gallery_returns_what_it_has():
    centres, descriptors, entries, people = _gallery(n_people=2, per_person=2)
    index = CelebrityIndex.build(descriptors, entries, people)
    assert [m.celebrity.id for m in index.query(centres[1], k=5)] == ["c1", "c0"]


def test_save_load_round_trip(tmp_path):
    centres, descriptors, entries, people = _gallery()
    built = CelebrityIndex.build(descriptors, entries, people, hnsw={"M": 8})
    built.save(tmp_path / "idx")
    loaded = CelebrityIndex.load(tmp_path / "idx")
    assert loaded.celebrities == people
    assert loaded.manifest.entries == 90 and loaded.manifest.celebrities == 30
    assert loaded.manifest.hnsw["M"] == 8
    assert loaded.stats == built.stats
    np.testing.assert_array_equal(loaded.descriptors, built.descriptors)
    for centre in centres[:10]:
        assert [(m.celebrity.id, round(m.distance, 5)) for m in loaded.query(centre, 3)] == [
            (m.celebrity.id, round(m.distance, 5)) for m in built.query(centre, 3)]


def _saved(tmp_path):
    _, descriptors, entries, people = _gallery(n_people=5)
    return CelebrityIndex.build(descriptors, entries, people).save(tmp_path / "idx")


def _edit_manifest(directory, change):
    raw = json.loads((directory / "manifest.json").read_text())
    change(raw)
    (directory / "manifest.json").write_text(json.dumps(raw))


def test_refuses_other_schema_version(tmp_path):
    directory = _saved(tmp_path)
    _edit_manifest(directory, lambda m: m.update(schema_version=99))
    with pytest.raises(IndexMismatch, match="schema version 99"):
        CelebrityIndex.load(directory)


def test_refuses_other_models(tmp_path):
    directory = _saved(tmp_path)
    _edit_manifest(directory, lambda m: m["models"]["descriptor"].update(sha256="0" * 64))
    with pytest.raises(IndexMismatch, match="other face models"):
        CelebrityIndex.load(directory)


def test_refuses_tampered_or_missing_files(tmp_path):
    directory = _saved(tmp_path)
    np.save(directory / "descriptors.npy", np.zeros((15, 128), dtype=np.float32))
    with pytest.raises(IndexMismatch, match="does not match its manifest hash"):
        CelebrityIndex.load(directory)
    (directory / "hnsw.bin").unlink()
    with pytest.raises(IndexMismatch, match="missing"):
        CelebrityIndex.load(directory)


def test_refuses_directories_that_are_not_indexes(tmp_path):
    with pytest.raises(IndexMismatch, match="does not exist"):
        CelebrityIndex.load(tmp_path / "nowhere")
    with pytest.raises(IndexMismatch, match=r"no manifest\.json"):
        CelebrityIndex.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexMismatch, match="not valid JSON"):
        Manifest.read(tmp_path)


def test_follows_the_current_pointer(tmp_path):
    directory = _saved(tmp_path)
    root = tmp_path / "root"
    shutil.move(directory, root / "versions" / "v1")
    (root / "current.json").write_text(json.dumps({"version": "v1"}))
    assert resolve_index_dir(root) == root / "versions" / "v1"
    assert CelebrityIndex.load(root).manifest.celebrities == 5
    (root / "current.json").write_text(json.dumps({"version": "../../etc"}))
    with pytest.raises(IndexMismatch, match="invalid version"):
        resolve_index_dir(root)


def test_bundled_demo_gallery_loads():
    from shared.config import DEMO_GALLERY

    index = CelebrityIndex.load(DEMO_GALLERY)
    assert index.manifest.celebrities == 18
    assert all(index.photo_path(c) for c in index.celebrities)


def test_silencing_nmslib_redirects_stderr_once_at_a_time():
    # stderr is file descriptor 2 of the whole process. Threads that import nmslib for
    # the first time together must take turns at redirecting it, or one saves the
    # /dev/null another put there and restores that: stderr gone for good.
    import subprocess
    import sys
    from pathlib import Path

    script = """
import os, sys, threading, time
from importlib.abc import MetaPathFinder
from shared.index import import_nmslib

class SlowDisk(MetaPathFinder):  # the first import takes a while: the others run meanwhile
    def find_spec(self, name, path, target=None):
        if name == "nmslib":
            time.sleep(0.2)
        return None

redirected, most = 0, 0
real_dup2 = os.dup2
def counting_dup2(source, target):
    global redirected, most
    if target == 2:
        redirected += 1 if os.path.realpath(f"/proc/self/fd/{source}") == os.devnull else -1
        most = max(most, redirected)
    return real_dup2(source, target)

sys.meta_path.insert(0, SlowDisk())
os.dup2 = counting_dup2
start = threading.Barrier(4)
def first_import():
    start.wait()
    import_nmslib()
threads = [threading.Thread(target=first_import) for _ in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
os.dup2 = real_dup2
print(most)
os.write(2, b"stderr still works\\n")
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).parent.parent,
                          capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "1"
    assert done.stderr == "stderr still works\n"
