import json
import shutil

import numpy as np
import pytest

from shared.index import Celebrity, CelebrityIndex
from shared.index_versions import resolve_index_dir
from shared.manifest import IndexMismatch, Manifest
from shared.models import file_sha256


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
    assert list(loaded.celebrities) == people
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


def _with_sex(people, sex_of):
    return [Celebrity(p.id, p.name, p.alias, p.photo, {**p.extra, **(
        {"sex": sex_of(i)} if sex_of(i) else {})}) for i, p in enumerate(people)]


def _exact_restricted(descriptors, entries, people, query, k, sex):
    """The k closest celebrities with `sex`, by brute force."""
    distances = np.linalg.norm(descriptors - query, axis=1)
    best = {}
    for entry in np.argsort(distances):
        person = people[entries[entry]]
        if person.extra.get("sex") == sex and person.id not in best:
            best[person.id] = distances[entry]
    return sorted(best, key=best.get)[:k]


@pytest.mark.parametrize("share", ["half", "rare"])
def test_a_restricted_query_returns_only_that_sex_as_exact_search_would(share):
    n = 400 if share == "half" else 1000
    centres, descriptors, entries, people = _gallery(n_people=n, seed=3)
    sex_of = ((lambda i: "female" if i % 2 else "male") if share == "half"
              else (lambda i: "female" if i % 250 == 7 else "male"))  # 4 women in 1000
    people = _with_sex(people, sex_of)
    index = CelebrityIndex.build(descriptors, entries, people)
    assert index.sexes == {"female", "male"}
    rng = np.random.default_rng(1)
    found_share = []
    for number in range(40):
        query = centres[number] + rng.normal(scale=0.05, size=128).astype(np.float32)
        for sex, k in (("female", 3), ("male", 9), ("female", 10)):
            found = [m.celebrity.id for m in index.query(query, k, sex=sex)]
            assert all(people[int(i[1:])].extra["sex"] == sex for i in found)
            expected = _exact_restricted(descriptors, entries, people, query, k, sex)
            available = sum(1 for p in people if p.extra["sex"] == sex)
            assert len(found) == len(expected) == min(k, available), (number, sex)
            assert found[0] == expected[0], (number, sex)
            found_share.append(len(set(found) & set(expected)) / len(expected))
    # The graph is approximate among strangers: most, not always all, of the exact ones.
    assert np.mean(found_share) > 0.9
    # The unrestricted query is unchanged by the field.
    assert index.query(centres[5], 3)[0].celebrity.id == "c5"


def test_a_gallery_without_sex_has_no_restricted_answers():
    centres, descriptors, entries, people = _gallery()
    index = CelebrityIndex.build(descriptors, entries, _with_sex(people, lambda i: (
        "female" if i == 3 else None)))
    assert index.sexes == {"female"}
    assert [m.celebrity.id for m in index.query(centres[0], 3, sex="female")] == ["c3"]
    assert index.query(centres[0], 3, sex="male") == []
    plain = CelebrityIndex.build(descriptors, entries, people)
    assert plain.sexes == frozenset() and plain.query(centres[0], sex="female") == []


def test_records_are_read_one_at_a_time_from_lines_with_their_sex(tmp_path):
    from shared.celebrities import RECORDS_FILE, CelebrityRecords

    centres, descriptors, entries, people = _gallery()
    people = _with_sex(people, lambda i: ("female", "male", None)[i % 3])
    people[4] = Celebrity("c4", "Zoë «Ünïcode» Ω", extra={"sex": "non-binary",
                                                            "note": "line\nbreak"})
    directory = CelebrityIndex.build(descriptors, entries, people).save(tmp_path / "idx")
    assert not (directory / "celebrities.json").exists()
    lines = (directory / RECORDS_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 30 and json.loads(lines[4])["note"] == "line\nbreak"
    loaded = CelebrityIndex.load(directory)
    assert isinstance(loaded.celebrities, CelebrityRecords)
    assert loaded.celebrities[4] == people[4] and loaded.celebrities[-1] == people[-1]
    assert loaded.celebrities[2:5] == people[2:5] and list(loaded.celebrities) == people
    assert loaded.sexes == {"female", "male", "non-binary"}
    for sex in ("female", "male", "non-binary"):
        expected = [m.celebrity for m in CelebrityIndex.build(
            descriptors, entries, people).query(centres[0], 3, sex=sex)]
        assert [m.celebrity for m in loaded.query(centres[0], 3, sex=sex)] == expected


def test_an_index_of_the_earlier_form_still_loads(tmp_path):
    """Versions written before celebrities.jsonl hold one celebrities.json."""
    centres, descriptors, entries, people = _gallery()
    people = _with_sex(people, lambda i: "female" if i % 2 else "male")
    directory = CelebrityIndex.build(descriptors, entries, people).save(tmp_path / "idx")
    (directory / "celebrities.json").write_text(json.dumps([p.to_record() for p in people]))
    for name in ("celebrities.jsonl", "celebrities.rows.npy"):
        (directory / name).unlink()
    manifest = Manifest.read(directory)
    manifest.files = {n: h for n, h in manifest.files.items() if not n.startswith("celeb")}
    manifest.files["celebrities.json"] = file_sha256(directory / "celebrities.json")
    manifest.write(directory)
    loaded = CelebrityIndex.load(directory)
    assert loaded.celebrities == people and loaded.sexes == {"female", "male"}
    assert loaded.query(centres[3], 1, sex="female")[0].celebrity.id == "c3"


def test_without_descriptors_npy_the_graph_file_gives_the_descriptors(tmp_path):
    from shared.hnsw_file import GraphLayoutError, graph_vectors

    centres, descriptors, entries, people = _gallery()
    built = CelebrityIndex.build(descriptors, entries, people, hnsw={"M": 48})
    directory = built.save(tmp_path / "idx")
    np.testing.assert_array_equal(graph_vectors(directory / "hnsw.bin", 128), descriptors)
    (directory / "descriptors.npy").unlink()
    loaded = CelebrityIndex.load(directory)
    np.testing.assert_array_equal(loaded.descriptors, descriptors)
    for centre in centres:
        assert [(m.celebrity.id, m.distance) for m in loaded.query(centre, 3)] == [
            (m.celebrity.id, m.distance) for m in built.query(centre, 3)]
    with pytest.raises(GraphLayoutError):
        graph_vectors(directory / "entries.npy", 128)
    (directory / "hnsw.bin").write_bytes((directory / "hnsw.bin").read_bytes()[:4096])
    with pytest.raises(IndexMismatch, match="malformed"):
        CelebrityIndex.load(directory, verify_files=False)
