"""Index builder pieces without photos: catalogue, photo layout, quality filter,
near-duplicates, recall and publishing to a local store."""

import json

import numpy as np
import pytest

from index_builder.assemble import collapse_near_duplicates, measure_recall
from index_builder.catalog import CatalogError, load_catalog
from index_builder.photos import classify
from index_builder.publish import (
    PublishError,
    activate,
    list_versions,
    prune_versions,
    publish,
    switch_pointer,
)
from index_builder.quality import QualityFilter, choose_face
from shared.faces import Face, FaceQuality
from shared.index import Celebrity, CelebrityIndex
from shared.index_versions import resolve_index_dir
from shared.storage import open_store


def test_catalogue_from_json_and_csv(tmp_path):
    json_file = tmp_path / "c.json"
    json_file.write_text(json.dumps([
        {"id": 7, "name": "Ann Lee", "alias": "Annie", "role": "actor", "n_movies": 12,
         "imdb": "nm1"},
        {"id": "7", "name": "Again"},
        {"name": "no id"},
        "not an object",
        {"id": "a/b", "name": "Slash"},
    ]))
    catalog = load_catalog(json_file)
    assert [c.id for c in catalog.celebrities] == ["7"]
    ann = catalog.celebrities[0]
    assert ann.alias == "Annie" and ann.extra == {"role": "actor", "n_movies": 12, "imdb": "nm1"}
    assert [p["reason"] for p in catalog.problems] == [
        "repeated id", "missing id or name", "not an object", "invalid id"]

    csv_file = tmp_path / "c.csv"
    csv_file.write_text("id,name,alias,n_movies,country\nbob,Bob Ray,,3,UK\n,Nameless,,,\n")
    catalog = load_catalog(csv_file)
    assert catalog.celebrities == [Celebrity("bob", "Bob Ray", None, None,
                                             {"n_movies": 3, "country": "UK"})]
    assert catalog.problems == [{"row": 2, "reason": "missing id or name"}]

    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(CatalogError, match="not valid JSON"):
        load_catalog(tmp_path / "bad.json")
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "missing.json")


def test_photo_layout():
    listing = classify(["ann/1.jpg", "ann/2.PNG", "bob.jpeg", "notes.txt", "a/b/c.jpg",
                        "ann/.hidden.jpg", "cache/x/y.json"])
    assert listing.photos == [("ann/1.jpg", "ann"), ("ann/2.PNG", "ann"), ("bob.jpeg", "bob")]
    assert sorted(listing.ignored) == ["a/b/c.jpg", "ann/.hidden.jpg", "cache/x/y.json",
                                       "notes.txt"]


def _face(width: int, eye: float = 60.0, roll: float = 0.0) -> Face:
    return Face(box=(0, 0, width, width), landmarks=(), descriptor=np.zeros(128, np.float32),
                quality=FaceQuality(width, width, eye, roll, 1.0))


def test_quality_filter():
    rule = QualityFilter(min_eye_distance=24, max_roll_degrees=25, dominance=2.0)
    assert choose_face([], rule) == (None, "no_face")
    assert choose_face([_face(200)], rule)[1] == ""
    assert choose_face([_face(200), _face(150)], rule) == (None, "several_faces")
    big = _face(200)
    assert choose_face([big, _face(90)], rule) == (big, "")  # a crowd far behind
    assert choose_face([_face(200, eye=20)], rule) == (None, "small_face")
    assert choose_face([_face(200, roll=-30)], rule) == (None, "tilted_head")


def test_near_duplicates_collapse_within_a_celebrity_only():
    rng = np.random.default_rng(1)
    base = rng.normal(scale=0.05, size=(3, 128)).astype(np.float32)
    copy = base[0] + 0.004  # distance 0.045, like a re-encoded copy
    descriptors = np.stack([base[0], copy, base[1], copy, base[2]])
    groups = [0, 0, 0, 1, 1]
    preference = [10.0, 50.0, 10.0, 1.0, 1.0]
    keep = collapse_near_duplicates(descriptors, groups, preference, threshold=0.18)
    # Row 1 (sharper copy) wins over row 0; row 3 is another celebrity and stays.
    assert keep.tolist() == [False, True, True, True, True]


def test_recall_is_measured_against_exact_search():
    rng = np.random.default_rng(2)
    descriptors = rng.normal(scale=0.06, size=(400, 128)).astype(np.float32)
    celebrities = [Celebrity(str(i), str(i)) for i in range(200)]
    entries = np.repeat(np.arange(200), 2)
    good = CelebrityIndex.build(descriptors, entries, celebrities)
    recall = measure_recall(good, sample=100)
    assert recall["queries"] == 100 and recall["at_1"] >= 0.95 and recall["at_10"] >= 0.9
    poor = CelebrityIndex.build(descriptors, entries, celebrities,
                                hnsw={"M": 2, "efConstruction": 2, "efSearch": 1})
    assert measure_recall(poor, sample=100)["at_10"] < recall["at_10"]


def _stage(tmp_path, name: str, people: list[str]):
    rng = np.random.default_rng(len(people))
    index = CelebrityIndex.build(rng.normal(size=(len(people), 128)).astype(np.float32),
                                 list(range(len(people))), [Celebrity(p, p) for p in people])
    return index.save(tmp_path / "stage" / name)


def test_publish_switch_prune_and_rollback(tmp_path):
    out = tmp_path / "out"
    store = open_store(out)
    names = [f"2026010{i}T000000Z-abc" for i in range(1, 5)]
    for number, name in enumerate(names, start=1):
        result = publish(store, _stage(tmp_path, name, ["a", "b"][: 1 + number % 2]), name,
                         keep=2)
        assert result.switched and result.current == name
    assert [v.name for v in list_versions(store)] == names[-2:]  # older ones pruned
    assert resolve_index_dir(out).name == names[-1]

    activate(store, names[-2])  # rollback
    assert resolve_index_dir(out).name == names[-2]
    assert [v.current for v in list_versions(store)] == [True, False]
    with pytest.raises(PublishError, match="no complete version"):
        activate(store, "20250101T000000Z-old")
    # Pruning never deletes the current version, even when it is the oldest.
    assert prune_versions(store, keep=1) == []
    assert [v.name for v in list_versions(store)] == names[-2:]
    publish(store, _stage(tmp_path, "x", ["c"]), "20260109T000000Z-new", keep=1)
    assert [v.name for v in list_versions(store)] == ["20260109T000000Z-new"]


def test_a_lost_race_keeps_the_newer_version(tmp_path):
    store = open_store(tmp_path / "out")
    older, newer = "20260101T000000Z-aaa", "20260102T000000Z-bbb"
    for name in (older, newer):
        stage = _stage(tmp_path, name, ["a"])
        for file in stage.iterdir():
            store.write(f"versions/{name}/{file.name}", file.read_bytes())
    seen = store.generation("current.json")  # both builders read the pointer: absent
    assert switch_pointer(store, newer, seen).switched
    late = switch_pointer(store, older, seen)  # the older build finishes last
    assert not late.switched and late.current == newer
    assert json.loads(store.read("current.json")) == {"version": newer}
    # A newer build that lost the race to an older one retries and wins.
    activate(store, older)
    assert switch_pointer(store, newer, seen).switched


def test_an_incomplete_version_is_never_made_current(tmp_path):
    store = open_store(tmp_path / "out")
    name = "20260101T000000Z-aaa"
    stage = _stage(tmp_path, name, ["a"])
    for file in stage.iterdir():
        if file.name != "manifest.json":  # the upload stopped before the manifest
            store.write(f"versions/{name}/{file.name}", file.read_bytes())
    with pytest.raises(PublishError, match="no manifest"):
        switch_pointer(store, name, 0)
    with pytest.raises(PublishError, match="no complete version"):
        activate(store, name)
    assert store.generation("current.json") == 0
    assert [(v.name, v.manifest) for v in list_versions(store)] == [(name, None)]


def test_publishing_refuses_a_name_that_is_not_one_version(tmp_path):
    store = open_store(tmp_path / "out")
    stage = _stage(tmp_path, "v1", ["a"])
    for name in ("../escape", "a/b", ".hidden", ""):
        with pytest.raises(PublishError, match="not a version name"):
            publish(store, stage, name)
        with pytest.raises(PublishError, match="not a version name"):
            activate(store, name)
    assert list(store.list("")) == []  # nothing written, not even the pointer


def test_build_refuses_bad_input_with_a_clear_message(tmp_path, capsys):
    from index_builder.cli import main

    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps([{"id": "ann", "name": "Ann"}]))
    args = ["build", "--catalog", str(catalog), "--out", str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--photos", str(tmp_path / "nowhere")]) == 1
    assert "no photos found" in capsys.readouterr().err
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "bob.jpg").write_bytes(b"not read: bob is not in the catalogue")
    assert main([*args, "--photos", str(tmp_path / "photos")]) == 1
    assert "none of the 1 photos belongs" in capsys.readouterr().err
    catalog.write_text("{broken")
    assert main([*args, "--photos", str(tmp_path / "photos")]) == 1
    assert "not valid JSON" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # nothing published, not even a cache


def test_per_photo_step_caches_and_survives_odd_photos(tmp_path, monkeypatch):
    import pandas as pd

    from index_builder import embedding

    photos = tmp_path / "photos"
    (photos / "ann").mkdir(parents=True)
    (photos / "ann" / "a.jpg").write_bytes(b"not an image")
    (photos / "ann" / "b.jpg").write_bytes(b"also not an image")
    options = embedding.EmbedOptions(str(photos), str(tmp_path / "cache")).to_json()
    rows = pd.DataFrame({"photo": ["ann/a.jpg", "ann/gone.jpg"], "celebrity": ["ann", "ann"]})
    first = embedding.embed_photos(rows, options)
    assert first[["status", "reason", "from_cache"]].values.tolist() == [
        ["rejected", "unreadable", False], ["rejected", "missing", False]]
    again = embedding.embed_photos(rows.iloc[:1], options)
    assert again["from_cache"].tolist() == [True]  # rejections are cached too

    def explode(data, options):
        raise RuntimeError("dlib fell over")

    monkeypatch.setattr(embedding, "describe_photo", explode)
    odd = embedding.embed_photos(pd.DataFrame({"photo": ["ann/b.jpg"], "celebrity": ["ann"]}),
                                 options)
    assert odd["status"].tolist() == ["failed"]
    assert odd["reason"][0] == "processing_error: RuntimeError: dlib fell over"
