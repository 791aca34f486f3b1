"""`harvest` against the Wikidata/Commons stand-in (stack/wikimedia.py): who gets in,
which pictures, faults, paging, politeness and resuming. Never the internet."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from PIL import Image

from index_builder.commons import credit_of, html_to_text, parse_imageinfo
from index_builder.exclusions import append_exclusions, parse_exclusions, read_exclusions
from index_builder.harvest import HarvestConfig, check_picture, run_harvest
from index_builder.polite_http import ByteRate, PoliteClient, Politeness, user_agent
from index_builder.wikidata import (
    Birth,
    Keyset,
    commons_title,
    is_adult,
    page_query,
    parse_birth,
)
from shared.storage import open_store
from stack.wikimedia import WikimediaServer
from tests import wikimedia_world as w
from tests.conftest import REPO


def _config(server: WikimediaServer, tmp: Path, **changes) -> HarvestConfig:
    settings = dict(
        catalog_out=tmp / "catalog.json", photos=str(tmp / "photos"),
        politeness=Politeness(contact="tests@example.org", workers=2, backoff=0.01),
        sparql_url=server.sparql_url, commons_api_url=server.api_url, progress=False,
        width=400)
    settings.update(changes)
    return HarvestConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def standin():
    with WikimediaServer(w.world()) as server:
        yield server


# -- pure parts -----------------------------------------------------------------------


def test_html_to_text_keeps_the_words_of_an_artist_field():
    artist = ('<a href="//commons.wikimedia.org/wiki/User:Fhille" title="User:Fhille">'
              'Fhille</a> &amp; <span class="fn">Ann&nbsp;Lee</span><style>.x{}</style>')
    assert html_to_text(artist) == "Fhille & Ann Lee"
    assert html_to_text("") == ""


def test_dates_of_birth_leave_out_anyone_who_may_be_under_18():
    today = date(2026, 12, 2)
    day = parse_birth("2008-12-02T00:00:00Z", "11")
    assert is_adult([day], today) is True  # 18 today
    assert is_adult([parse_birth("2008-12-03T00:00:00Z", "11")], today) is False
    # Year precision: the latest possible day of that year counts.
    assert is_adult([parse_birth("2008-01-01T00:00:00Z", "9")], today) is False
    assert is_adult([parse_birth("2007-01-01T00:00:00Z", "9")], today) is True
    # Month precision: the month's last day.
    assert is_adult([parse_birth("2008-11-01T00:00:00Z", "10")], today) is True
    assert is_adult([parse_birth("2008-12-01T00:00:00Z", "10")], today) is False
    # Decade: the whole decade after the stored year.
    assert is_adult([parse_birth("2000-01-01T00:00:00Z", "8")], today) is False
    assert is_adult([parse_birth("-0100-01-01T00:00:00Z", "9")], today) is True
    assert is_adult([], today) is None
    # Conflicting dates: all must pass.
    assert is_adult([parse_birth("1950-01-01T00:00:00Z", "11"),
                     parse_birth("2015-01-01T00:00:00Z", "11")], today) is False
    assert Birth(1961, 8, 4, 11).iso() == "1961-08-04"
    assert Birth(1961, 1, 1, 9).iso() == "1961"


def test_page_query_is_a_keyset_page_by_sitelinks():
    first = page_query(100, 20, ["Q33999"], None)
    assert "LIMIT 100" in first and "?sitelinks >= 20" in first
    assert "wd:Q33999" in first and "OFFSET" not in first
    later = page_query(100, 20, [], Keyset(57, "http://www.wikidata.org/entity/Q42"))
    assert ('?sitelinks < 57 || (?sitelinks = 57 && STR(?item) > '
            '"http://www.wikidata.org/entity/Q42")') in later
    with pytest.raises(ValueError):
        page_query(10, 0, ["Q1 } DROP ALL"], None)


def test_commons_title_from_a_wdqs_image_value():
    assert commons_title("http://commons.wikimedia.org/wiki/Special:FilePath/"
                         "Barack%20Obama%20%28cropped%29.jpg") == "File:Barack Obama (cropped).jpg"
    assert commons_title("http://example.org/x.jpg") is None


def test_imageinfo_as_commons_answers_it():
    """The shape of a formatversion=2 answer, with extmetadata as Commons records it
    (https://commons.wikimedia.org/w/api.php?action=query&prop=imageinfo&iiprop=extmetadata
    &titles=File:Dala_Kyrka.JPG, as kept in the CommonsMetadata extension's test data)."""
    answer = {"batchcomplete": True, "query": {
        "normalized": [{"fromencoded": False, "from": "File:Dala_Kyrka.JPG",
                        "to": "File:Dala Kyrka.JPG"}],
        "pages": [
            {"ns": 6, "title": "File:Nothing here.jpg", "missing": True, "known": False,
             "imagerepository": ""},
            {"pageid": 29018291, "ns": 6, "title": "File:Dala Kyrka.JPG",
             "imagerepository": "local", "imageinfo": [{
                 "thumburl": "https://upload.wikimedia.org/x/960px-Dala_Kyrka.JPG",
                 "thumbwidth": 960, "thumbheight": 720,
                 "url": "https://upload.wikimedia.org/x/Dala_Kyrka.JPG",
                 "descriptionurl": "https://commons.wikimedia.org/wiki/File:Dala_Kyrka.JPG",
                 "sha1": "0a1b2c", "mime": "image/jpeg",
                 "extmetadata": {
                     "Artist": {"value": '<a href="//commons.wikimedia.org/w/index.php?title'
                                         '=User:Fhille&amp;action=edit&amp;redlink=1" class='
                                         '"new" title="User:Fhille (page does not exist)">'
                                         'Fhille</a>', "source": "commons-desc-page",
                                "hidden": ""},
                     "LicenseShortName": {"value": "CC-BY-SA-3.0",
                                          "source": "commons-desc-page", "hidden": ""},
                     "Restrictions": {"value": "personality|trademarked",
                                      "source": "commons-desc-page", "hidden": ""},
                     "LicenseUrl": {"value": "http://creativecommons.org/licenses/by-sa/3.0",
                                    "source": "commons-desc-page", "hidden": ""},
                     "AttributionRequired": {"value": "true", "source": "commons-desc-page",
                                             "hidden": ""}}}]},
            {"pageid": 2, "ns": 6, "title": "File:No licence.jpg", "imagerepository": "local",
             "imageinfo": [{"url": "https://upload.wikimedia.org/y.jpg", "extmetadata": {}}]},
        ]}}
    asked = ["File:Dala_Kyrka.JPG", "File:Nothing here.jpg", "File:No licence.jpg",
             "File:Not answered.jpg"]
    usable, unusable = parse_imageinfo(answer, asked)
    assert list(usable) == ["File:Dala_Kyrka.JPG"]
    info = usable["File:Dala_Kyrka.JPG"]
    assert info.thumb_url.endswith("960px-Dala_Kyrka.JPG")
    assert info.restrictions == ("personality", "trademarked")
    assert info.credit == {
        "author": "Fhille", "licence": "CC-BY-SA-3.0",
        "licence_url": "http://creativecommons.org/licenses/by-sa/3.0",
        "source": "https://commons.wikimedia.org/wiki/File:Dala_Kyrka.JPG",
        "attribution_required": True}
    assert sorted((u.title, u.reason) for u in unusable) == [
        ("File:No licence.jpg", "no_licence"), ("File:Not answered.jpg", "missing_file"),
        ("File:Nothing here.jpg", "missing_file")]
    public_domain = credit_of({"extmetadata": {
        "LicenseShortName": {"value": "Public domain"},
        "AttributionRequired": {"value": "false"}}})
    assert public_domain is not None and public_domain["attribution_required"] is False
    assert public_domain["author"] is None


def test_check_picture_tells_cut_files_from_non_images():
    data = (w.FIXTURES / "Joe_Biden" / "fr_biden.jpg").read_bytes()
    assert check_picture(data) == ("jpg", "image/jpeg")
    for bad, reason in ((data[: len(data) // 2], "truncated"),
                        (b"<!DOCTYPE html><html></html>", "not_an_image"), (b"", "not_an_image")):
        with pytest.raises(ValueError, match=reason):
            check_picture(bad)


def test_exclusion_list_is_read_and_appended(tmp_path):
    store = open_store(tmp_path)
    assert append_exclusions(store, ["Q1", "Q2", "Q1"]) == 2
    assert append_exclusions(store, ["Q2", "Q3"]) == 1
    text = (tmp_path / "excluded.txt").read_text()
    assert parse_exclusions(text) == {"Q1", "Q2", "Q3"}
    assert "# removed" in text
    assert read_exclusions(str(tmp_path / "excluded.txt")) == {"Q1", "Q2", "Q3"}
    with pytest.raises(ValueError, match="does not exist"):
        read_exclusions(str(tmp_path / "typo.txt"))


def test_byte_rate_keeps_downloads_under_the_budget():
    rate = ByteRate(8.0)  # 1 MB/s
    started = time.monotonic()
    for _ in range(3):
        rate.spend(500_000)
    assert time.monotonic() - started >= 1.4
    ByteRate(0).spend(10**9)  # no budget: no wait


def test_even_the_first_retry_waits_with_jitter():
    from urllib3.response import HTTPResponse

    client = PoliteClient(Politeness(contact="t@e.org", backoff=0.5))
    retry = client.session.get_adapter("http://x").max_retries
    once = retry.increment(method="GET", url="/", response=HTTPResponse(status=503))
    assert 0.5 <= once.get_backoff_time() <= 1.0
    twice = once.increment(method="GET", url="/", response=HTTPResponse(status=503))
    assert 1.0 <= twice.get_backoff_time() <= 1.5
    assert client.traffic.retries["http_503"] == 2


def test_a_refused_connection_is_retried_then_reported():
    import socket

    from index_builder.polite_http import HttpFailure

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = PoliteClient(Politeness(contact="t@e.org", backoff=0.01))
    with pytest.raises(HttpFailure) as failure:
        client.get_bytes("photo", f"http://127.0.0.1:{port}/thumb.jpg")
    assert failure.value.reason == "connection"
    assert client.traffic.retries["connection"] == 5


def test_user_agent_names_the_project_and_the_contact():
    agent = user_agent("ops@example.org")
    assert agent.startswith("lookalike-bot-index-builder/") and "ops@example.org" in agent


# -- against the stand-in ---------------------------------------------------------------


def test_harvest_keeps_adults_with_licensed_pictures_and_says_why_others_are_out(
        standin, tmp_path):
    exclude = tmp_path / "excluded.txt"
    exclude.write_text(f"# opt-outs\n{w.OPTED_OUT}  # asked by e-mail\n")
    photos = open_store(tmp_path / "photos")
    # Pictures from an earlier run of people who must now go.
    photos.write(f"{w.OPTED_OUT}/old.jpg", b"x")
    photos.write(f"{w.MINOR}/old.jpg", b"x")
    result = run_harvest(_config(standin, tmp_path, exclude=[str(exclude)]))

    catalogue = json.loads((tmp_path / "catalog.json").read_text())
    assert catalogue == result.catalogue
    # By popularity, ties by id; the picture without a face is the build's to drop.
    assert [r["id"] for r in catalogue] == [*w.ADULTS, w.NO_FACE]
    s = result.summary
    assert s["found"] == len(standin.world.people) - 1  # one has too few sitelinks
    assert s["left_out"] == {"minor": 2, "no_birth_date": 1, "opted_out": 1,
                             "no_licence": 1, "missing_file": 1}
    assert s["failed"] == {"missing": 1, "truncated": 1, "not_an_image": 1}
    # Fetched: the adults and the picture without a face (the build drops it later).
    assert s["fetched"] == len(w.ADULTS) + 1 and s["photo_bytes"] > 0
    keys = set(photos.list(""))
    assert {k.split("/")[0] for k in keys} == {*w.ADULTS, w.NO_FACE}
    assert all(k.endswith(".jpg") for k in keys)

    obama = catalogue[0]
    assert obama["name"] == "Barack Obama"
    assert obama["names"] == {"en": "Barack Obama", "ru": "Барак Обама"}
    assert obama["links"]["ru"] == "https://ru.wikipedia.org/wiki/Обама,_Барак"
    assert obama["sex"] == "male" and obama["popularity"] == 300
    assert obama["birth"] == "1961-08-04"
    assert obama["credit"] == w.obama_credit(standin.url)
    assert obama["restrictions"] == ["personality"]
    assert "restrictions" not in catalogue[1] and s["restricted"] == {"personality": 1}
    rose = next(r for r in catalogue if r["id"] == w.ROSE)
    assert rose["name"] == "Роуз Лесли" and rose["names"] == {"ru": "Роуз Лесли"}
    year_adult = next(r for r in catalogue if r["id"] == w.YEAR_ADULT)
    assert len(year_adult["birth"]) == 4  # only the year is known
    # Thumbnails at the width asked, as Commons would scale them.
    biden = next(k for k in keys if k.startswith(w.BIDEN))
    with Image.open(tmp_path / "photos" / biden) as im:
        assert im.width <= 400

    # Commons was asked 50 files at most a request, with maxlag; the truncated file was
    # tried again before it was given up, the missing one (404) was not.
    api = [c for c in standin.calls if c.kind == "api"]
    assert api and all("maxlag=5" in c.path for c in api)
    photo_paths = [c.path for c in standin.calls if c.kind == "photo"]
    assert sum("Truncated" in p for p in photo_paths) == 6
    assert sum("Gone" in p for p in photo_paths) == 1


def test_occupation_and_min_sitelinks_narrow_the_query(standin, tmp_path):
    result = run_harvest(_config(standin, tmp_path, occupations=[w.POLITICIAN]))
    assert [r["id"] for r in result.catalogue] == [w.OBAMA, w.BIDEN]
    result = run_harvest(_config(standin, tmp_path, min_sitelinks=285,
                                 catalog_out=tmp_path / "two.json"))
    assert result.summary["found"] == 2


def test_paging_reads_every_person_once_across_pages_and_ties(standin, tmp_path):
    whole = run_harvest(_config(standin, tmp_path / "whole", page_size=1000))
    before = standin.counts()["sparql"]
    paged = run_harvest(_config(standin, tmp_path / "paged", page_size=3))
    assert [r["id"] for r in paged.catalogue] == [r["id"] for r in whole.catalogue]
    assert paged.summary["found"] == whole.summary["found"] == len(standin.world.people) - 1
    # 16 people in pages of 3: 6 pages, each with one details query.
    assert standin.counts()["sparql"] - before == 6 + 6
    limited = run_harvest(_config(standin, tmp_path / "limited", page_size=2, limit=5))
    assert limited.summary["found"] == 5
    assert [r["id"] for r in limited.catalogue] == [w.OBAMA, w.BIDEN, w.KIT, w.ROSE, w.ALEX]


def test_a_person_met_twice_across_pages_is_catalogued_once(standin, tmp_path):
    """Sitelinks can change between two page queries: a person then comes again."""
    kit = next(p for p in standin.world.people if p.qid == w.KIT)
    config = _config(standin, tmp_path, page_size=2, limit=8)
    served = standin.sparql
    pages: list[list[str]] = []

    def shifting(query: str) -> dict:
        answer = served(query)
        if "VALUES ?item" not in query:
            pages.append([b["item"]["value"].rsplit("/", 1)[1]
                          for b in answer["results"]["bindings"]])
            if w.KIT in pages[-1]:
                kit.sitelinks = 262  # after the page that held Kit: Kit comes again later
        return answer

    standin.sparql = shifting  # type: ignore[method-assign]
    result = run_harvest(config)
    assert sum(page.count(w.KIT) for page in pages) == 2
    ids = [r["id"] for r in result.catalogue]
    assert len(ids) == len(set(ids)) and w.KIT in ids


def test_bad_languages_are_refused_before_any_request(standin, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "index_builder", "harvest", "--catalog-out",
         str(tmp_path / "c.json"), "--photos", str(tmp_path / "p"), "--sparql-url",
         standin.sparql_url, "--contact", "t@e.org", "--languages", 'en,") } DROP'],
        cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and "not language codes" in run.stderr
    assert standin.counts()["sparql"] == 0


def test_429_and_503_are_retried_after_the_time_asked_and_maxlag_is_waited_out(
        standin, tmp_path):
    standin.fail_next("sparql", 429, retry_after=1)
    standin.fail_next("api", 503)
    standin.maxlag_next(1)
    standin.fail_next("photo", 503, times=2)
    result = run_harvest(_config(standin, tmp_path))  # no exclusion list this time
    assert [r["id"] for r in result.catalogue] == [*w.ADULTS, w.OPTED_OUT, w.NO_FACE]
    sparql = [c for c in standin.calls if c.kind == "sparql"]
    assert sparql[0].status == 429 and sparql[1].status == 200
    assert sparql[1].at - sparql[0].at >= 1.0  # Retry-After honoured
    retries = result.summary["retries"]
    assert retries["http_429"] == 1 and retries["http_503"] == 3
    assert retries["maxlag"] == 1 and retries["truncated"] == 5


def test_a_changed_picture_replaces_the_old_one_and_others_are_not_fetched_again(
        standin, tmp_path):
    config = _config(standin, tmp_path)
    first = run_harvest(config)
    photos = open_store(tmp_path / "photos")
    old = [k for k in photos.list(f"{w.KIT}/")]
    standin.world.pictures["File:Kit Harington.jpg"].source = (
        w.FIXTURES / "Barack_Obama" / "fr_obama1.jpg")  # a new upload: another SHA-1
    before = standin.counts()["photo"]
    again = run_harvest(config)
    fetched = [c.path for c in standin.calls[-50:] if c.kind == "photo"]
    assert again.summary["fetched"] == 1
    # The three failing files are tried again (6 + 1 + 1 requests), Kit's new picture once.
    assert standin.counts()["photo"] - before == 1 + 6 + 1 + 1
    assert any("Kit_Harington" in p for p in fetched)
    new = list(photos.list(f"{w.KIT}/"))
    assert len(new) == 1 and new != old
    assert again.summary["already_stored"] == first.summary["fetched"] - 1
    assert again.summary["deleted_photos"] == 1  # Kit's old picture


def test_a_killed_harvest_keeps_its_photos_and_a_rerun_fetches_only_the_rest(tmp_path):
    """The harvest is a separate process, killed by the stand-in after its third
    download; the rerun downloads only what the killed run had not stored."""
    with WikimediaServer(w.world(left_out=False, failing=False)) as server:
        catalogue, photos = tmp_path / "catalog.json", tmp_path / "photos"
        command = [sys.executable, "-m", "index_builder", "harvest",
                   "--catalog-out", str(catalogue), "--photos", str(photos),
                   "--sparql-url", server.sparql_url, "--commons-api-url", server.api_url,
                   "--contact", "tests@example.org", "--workers", "1", "--no-progress"]
        process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE)
        served = []

        def kill_after_three(path: str) -> None:
            served.append(path)
            if len(served) == 3:
                os.kill(process.pid, signal.SIGKILL)

        server.on_photo = kill_after_three
        process.communicate(timeout=120)
        assert process.returncode == -signal.SIGKILL
        assert not catalogue.exists()  # written last, whole
        kept = [p for p in photos.rglob("*") if p.is_file() and not p.name.startswith(".")]
        assert 1 <= len(kept) <= 3
        for photo in kept:  # whatever was stored is whole
            assert check_picture(photo.read_bytes())[0] == "jpg"

        server.on_photo = None
        before = server.counts()["photo"]
        rerun = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert rerun.returncode == 0, rerun.stderr
        assert server.counts()["photo"] - before == len(w.ADULTS) - len(kept)
        assert f"{len(kept)} already in" in rerun.stdout
        assert [r["id"] for r in json.loads(catalogue.read_text())] == w.ADULTS


def test_sparql_down_for_good_is_an_error_that_keeps_what_was_fetched(standin, tmp_path):
    standin.fail_next("sparql", 503, times=100)
    run = subprocess.run(
        [sys.executable, "-m", "index_builder", "harvest", "--catalog-out",
         str(tmp_path / "c.json"), "--photos", str(tmp_path / "p"), "--sparql-url",
         standin.sparql_url, "--commons-api-url", standin.api_url, "--contact", "t@e.org",
         "--backoff", "0.01", "--no-progress"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2
    assert "Wikidata Query Service" in run.stderr and "run again" in run.stderr
    assert "Traceback" not in run.stderr


def test_photos_go_straight_to_cloud_storage(gcs_bucket, tmp_path):
    with WikimediaServer(w.world(left_out=False, failing=False)) as server:
        uri = f"gs://{gcs_bucket}/photos"
        result = run_harvest(_config(server, tmp_path, photos=uri))
        assert result.summary["fetched"] == len(w.ADULTS)
        keys = list(open_store(uri).list(""))
        assert sorted(k.split("/")[0] for k in keys) == sorted(w.ADULTS)
        again = run_harvest(_config(server, tmp_path, photos=uri))
        assert again.summary["fetched"] == 0
        assert again.summary["already_stored"] == len(w.ADULTS)
