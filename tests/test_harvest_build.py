"""harvest -> build -> match -> remove, as an operator runs them, against the
Wikidata/Commons stand-in: the harvested catalogue is what `build` reads, its names,
links and credits reach the index, and nobody left out or removed is ever in it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.index import CelebrityIndex, resolve_index_dir
from stack.wikimedia import WikimediaServer
from tests import wikimedia_world as w
from tests.conftest import REPO

NEVER = {w.MINOR, w.YEAR_MINOR, w.NO_BIRTH, w.OPTED_OUT, w.NO_LICENCE, w.MISSING_FILE}
ANOTHER_OBAMA = w.FIXTURES / "Barack_Obama" / "fr_obama1.jpg"  # not served by the stand-in


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900)


def _harvest(server: WikimediaServer, root: Path, *extra: str) -> subprocess.CompletedProcess:
    run = _run("-m", "index_builder", "harvest", "--catalog-out", str(root / "catalog.json"),
               "--photos", str(root / "photos"), "--sparql-url", server.sparql_url,
               "--commons-api-url", server.api_url, "--contact", "tests@example.org",
               "--no-progress", *extra)
    assert run.returncode == 0, run.stderr
    return run


def _match(index: Path, photo: Path, *extra: str) -> dict:
    run = _run("main.py", "match", "--json", "--index", str(index), str(photo), *extra)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.splitlines()[0])


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    root = tmp_path_factory.mktemp("harvested")
    (root / "excluded.txt").write_text(f"{w.OPTED_OUT}\n")
    with WikimediaServer(w.world(failing=False)) as server:
        harvest = _harvest(server, root, "--exclude", str(root / "excluded.txt"))
        build = _run("-m", "index_builder", "build", "--catalog", str(root / "catalog.json"),
                     "--photos", str(root / "photos"), "--out", str(root / "out"),
                     "--jitters", "0", "--workers", "2", "--no-progress")
        assert build.returncode == 0, build.stderr
        yield {"root": root, "server": server, "harvest": harvest, "build": build}


def test_harvest_summary_says_who_was_left_out(gallery):
    out = gallery["harvest"].stdout
    assert "minor 2" in out and "opted_out 1" in out and "no_birth_date 1" in out
    assert "no_licence 1" in out and "missing_file 1" in out


def test_another_photo_of_a_harvested_person_names_that_person_first(gallery):
    record = _match(gallery["root"] / "out", ANOTHER_OBAMA)
    best = record["faces"][0]["matches"][0]
    assert best["id"] == w.OBAMA and best["name"] == "Barack Obama"
    assert best["url"] == "https://en.wikipedia.org/wiki/Barack_Obama"
    assert best["credit"] == w.obama_credit(gallery["server"].url)
    russian = _match(gallery["root"] / "out", ANOTHER_OBAMA, "--language", "ru")
    best = russian["faces"][0]["matches"][0]
    assert best["names"]["ru"] == "Барак Обама"
    assert best["url"] == "https://ru.wikipedia.org/wiki/Обама,_Барак"


def test_the_index_carries_names_links_and_credits_and_never_the_left_out(gallery):
    index = CelebrityIndex.load(gallery["root"] / "out")
    ids = [c.id for c in index.celebrities]
    assert set(ids) == set(w.ADULTS)  # the picture without a face is not indexed
    assert not NEVER & set(ids) and w.NO_FACE not in ids
    version = resolve_index_dir(gallery["root"] / "out")
    records = {r["id"]: r for r in map(json.loads,
                                         (version / "celebrities.jsonl").read_text().splitlines())}
    catalogue = {r["id"]: r for r in json.loads(
        (gallery["root"] / "catalog.json").read_text())}
    for qid, record in records.items():
        for key in ("names", "links", "credit", "sex", "popularity", "birth"):
            # `build` drops null fields (a person without a recorded sex).
            assert record.get(key) == catalogue[qid][key], (qid, key)
        assert record["credit"]["licence"] == "MIT"
    obama = records[w.OBAMA]
    assert obama["sex"] == "male" and "sex" not in records[w.ALEX]
    assert obama["names"]["ru"] == "Барак Обама"
    assert obama["links"]["ru"] == "https://ru.wikipedia.org/wiki/Обама,_Барак"
    assert obama["credit"]["source"].endswith("/wiki/File:Barack_Obama_portrait.jpg")
    report = json.loads((version / "report.json").read_text())
    assert [(r["celebrity"], r["reason"]) for r in report["rejected"]] == [(w.NO_FACE, "no_face")]


def test_remove_works_on_cloud_storage_too(gallery, gcs_bucket, tmp_path):
    from index_builder.publish import publish
    from index_builder.remove import run_remove
    from shared.index_store import fetch_index
    from shared.storage import open_store

    version = resolve_index_dir(gallery["root"] / "out")
    out = f"gs://{gcs_bucket}/index"
    publish(open_store(out), version, version.name)
    result = run_remove(out, [w.BIDEN])
    assert result.removed == [w.BIDEN] and result.switch is not None
    assert result.switch.current == result.version != version.name
    index = CelebrityIndex.load(fetch_index(out, tmp_path / "cache"))
    assert w.BIDEN not in [c.id for c in index.celebrities]
    assert all(index.photo_path(c) is not None for c in index.celebrities)
    assert w.BIDEN in open_store(out).read("excluded.txt").decode()


def test_remove_publishes_a_version_without_them_and_the_next_harvest_leaves_them_out(
        gallery):
    root, out = gallery["root"], gallery["root"] / "out"
    before = resolve_index_dir(out).name
    run = _run("-m", "index_builder", "remove", "--out", str(out), "--photos",
               str(root / "photos"), w.OBAMA)
    assert run.returncode == 0, run.stderr
    assert f"published without {w.OBAMA}" in run.stdout
    after = resolve_index_dir(out)
    assert after.name != before
    index = CelebrityIndex.load(out)
    assert w.OBAMA not in [c.id for c in index.celebrities]
    assert len(index.celebrities) == len(w.ADULTS) - 1
    assert all(index.photo_path(c) is not None for c in index.celebrities)
    assert index.manifest.build["removed"] == [w.OBAMA]
    assert _match(out, ANOTHER_OBAMA)["faces"][0]["matches"][0]["id"] != w.OBAMA
    assert not (root / "photos" / w.OBAMA).exists() or not any(
        (root / "photos" / w.OBAMA).iterdir())
    assert w.OBAMA in (out / "excluded.txt").read_text()

    again = _harvest(gallery["server"], root, "--exclude", str(out / "excluded.txt"),
                     "--exclude", str(root / "excluded.txt"))
    assert "opted_out 2" in again.stdout
    catalogue = json.loads((root / "catalog.json").read_text())
    assert w.OBAMA not in [r["id"] for r in catalogue]
    # Removing someone not in the gallery still lists them, and publishes nothing.
    listed = _run("-m", "index_builder", "remove", "--out", str(out), "Q123456789")
    assert listed.returncode == 0 and "nothing to publish" in listed.stdout
    assert resolve_index_dir(out) == after
    bad = _run("-m", "index_builder", "remove", "--out", str(out), "Barack_Obama")
    assert bad.returncode == 1 and "not Wikidata ids" in bad.stderr
