"""The bundled gallery's catalogue: every person with photos is listed, and each credit
says what `demo/SOURCES.json` records for that person's photos (repository, commit,
licence), never more."""

from __future__ import annotations

import json
from urllib.parse import urlsplit

from shared.config import DEMO_GALLERY, REPO_ROOT
from shared.index import CelebrityIndex
from shared.people import credit

DEMO = REPO_ROOT / "demo"
LICENCE_NAMES = {"MIT (repo LICENSE)": "MIT"}


def catalogue() -> dict[str, dict]:
    return {entry["id"]: entry for entry in json.loads((DEMO / "catalog.json").read_text())}


def test_every_photo_folder_has_a_credit_that_matches_its_provenance() -> None:
    people = catalogue()
    by_person: dict[str, list[dict]] = {}
    for source in json.loads((DEMO / "SOURCES.json").read_text()):
        if source["copy"].startswith("photos/"):
            by_person.setdefault(source["copy"].split("/")[1], []).append(source)
    assert set(by_person) == {p.name for p in (DEMO / "photos").iterdir()} == set(people)
    for person, sources in by_person.items():
        given = people[person]["credit"]
        [(repo, commit, licence)] = {(s["repo"], s["commit"], s["license"]) for s in sources}
        assert given["licence"] == LICENCE_NAMES[licence], person
        for url in (given["licence_url"], given["source"]):
            assert urlsplit(url).path.startswith(f"/{repo}/"), (person, url)
            assert commit in url, (person, url)
        # The source folder holds every one of the person's photos.
        folder = urlsplit(given["source"]).path.split(f"/{commit}/", 1)[1]
        assert all(s["path"].startswith(folder + "/") for s in sources), person


def test_only_people_their_source_names_have_a_sex_and_links() -> None:
    for person, entry in catalogue().items():
        anonymous = person.startswith("deepface_")  # labels of groups, not names
        assert ("sex" in entry) != anonymous and ("links" in entry) != anonymous, person
        assert entry.get("sex", "female") in ("female", "male")
        if not anonymous:
            assert entry["name"] == person.replace("_", " ") == entry["names"]["en"]
            assert entry["links"]["en"] == f"https://en.wikipedia.org/wiki/{person}"


def test_the_bundled_gallery_carries_the_catalogue() -> None:
    index = CelebrityIndex.load(DEMO_GALLERY)
    people = catalogue()
    assert {c.id for c in index.celebrities} == set(people)
    for celebrity in index.celebrities:
        entry = people[celebrity.id]
        assert celebrity.name == entry["name"]
        assert {k: celebrity.extra.get(k) for k in ("names", "sex", "links")} == \
            {k: entry.get(k) for k in ("names", "sex", "links")}
        found = credit(celebrity)
        assert found is not None and found.to_json() == entry["credit"]
