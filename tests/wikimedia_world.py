"""The people the harvest tests meet on the Wikidata/Commons stand-in (stack/wikimedia.py).

Real photos from tests/fixtures/wikimedia (provenance in its SOURCES.json), credited to
their real source; Q-ids are made up. Besides five adults with a picture each, the world
holds everyone the harvest must leave out or fail on, one of each.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from stack.wikimedia import Picture, WikiPerson, World

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "wikimedia"
POLITICIAN = "Q82955"

OBAMA, BIDEN, KIT, ROSE, ALEX = "Q9100001", "Q9100002", "Q9100003", "Q9100004", "Q9100005"
YEAR_ADULT = "Q9100006"  # born in a year (year precision) at least 19 years ago
MINOR = "Q9100010"  # born ten years ago to the day
YEAR_MINOR = "Q9100011"  # born in a year 17 years ago: may be 17 today
NO_BIRTH = "Q9100012"
OPTED_OUT = "Q9100013"
NO_LICENCE = "Q9100020"
MISSING_FILE = "Q9100021"
GONE = "Q9100022"
TRUNCATED = "Q9100023"
NOT_AN_IMAGE = "Q9100024"
NO_FACE = "Q9100025"

ADULTS = [OBAMA, BIDEN, KIT, ROSE, ALEX, YEAR_ADULT]


def obama_credit(server_url: str) -> dict[str, object]:
    """The credit the harvest must give Obama's picture, served from `server_url`."""
    return {"author": "ageitgey/face_recognition & contributors", "licence": "MIT",
            "licence_url": "https://github.com/ageitgey/face_recognition",
            "source": f"{server_url}/wiki/File:Barack_Obama_portrait.jpg",
            "attribution_required": True}


def _sources() -> dict[str, dict]:
    return {e["copy"]: e for e in json.loads((FIXTURES / "SOURCES.json").read_text())}


def picture(title: str, photo: str | None, fault: str | None = None) -> Picture:
    origin = _sources().get(photo or "", {})
    repo = origin.get("repo", "")
    return Picture(title, FIXTURES / photo if photo else None,
                   artist_html=(f'<a href="https://github.com/{repo}">{repo}</a> '
                                '&amp; contributors' if repo else ""),
                   licence="MIT", licence_url=f"https://github.com/{repo}", fault=fault)


def _restricted(picture: Picture) -> Picture:
    picture.restrictions = "personality"
    return picture


def _born_long_ago(qid: str, name: str, sitelinks: int, image: str) -> WikiPerson:
    """An adult known by an English name, whose birth date is not what the test is about."""
    return WikiPerson(qid, {"en": name}, sitelinks, image, "1950-01-01T00:00:00Z")


def world(left_out: bool = True, failing: bool = True) -> World:
    """The test world: the adults, plus those to leave out (`left_out`: minors, no date
    of birth, opted out, no licence, missing file, a picture without a face, too few
    sitelinks) and those whose download fails (`failing`: 404, truncated, not an image),
    which cost retries."""
    year = datetime.now(UTC).year
    today = datetime.now(UTC).date()
    ten = today.replace(year=today.year - 10, day=min(today.day, 28))
    people = [
        WikiPerson(OBAMA, {"en": "Barack Obama", "ru": "Барак Обама"}, 300,
                   "File:Barack Obama portrait.jpg", "1961-08-04T00:00:00Z", sex="male",
                   articles={"en": "https://en.wikipedia.org/wiki/Barack_Obama",
                             "ru": "https://ru.wikipedia.org/wiki/Обама,_Барак"},
                   occupations=[POLITICIAN]),
        WikiPerson(BIDEN, {"en": "Joe Biden", "ru": "Джо Байден"}, 290,
                   "File:Joe Biden portrait.jpg", "1942-11-20T00:00:00Z", sex="male",
                   articles={"en": "https://en.wikipedia.org/wiki/Joe_Biden"},
                   occupations=[POLITICIAN]),
        WikiPerson(KIT, {"en": "Kit Harington"}, 280, "File:Kit Harington.jpg",
                   "1986-12-26T00:00:00Z", sex="male"),
        # The same sitelinks as Kit: a page boundary between equals must lose nobody.
        WikiPerson(ROSE, {"ru": "Роуз Лесли"}, 280, "File:Rose Leslie.jpg",
                   "1987-02-09T00:00:00Z", sex="female"),
        WikiPerson(ALEX, {"en": "Alex Lacamoire"}, 270, "File:Alex Lacamoire.jpg",
                   "1975-01-01T00:00:00Z", precision=11),
        WikiPerson(YEAR_ADULT, {"en": "Year Adult"}, 265, "File:Year adult.jpg",
                   f"{year - 19}-01-01T00:00:00Z", precision=9),
    ]
    pictures = [
        _restricted(picture("File:Barack Obama portrait.jpg", "Barack_Obama/fr_obama.jpg")),
        picture("File:Joe Biden portrait.jpg", "Joe_Biden/fr_biden.jpg"),
        picture("File:Kit Harington.jpg", "Kit_Harington/fr_john2.jpg"),
        picture("File:Rose Leslie.jpg", "Rose_Leslie/fr_img1.jpg"),
        picture("File:Alex Lacamoire.jpg", "Alex_Lacamoire/fr_alex-lacamoire.jpg"),
        picture("File:Year adult.jpg", "Kit_Harington/fr_john2.jpg"),
    ]
    if left_out:
        people += [
            WikiPerson(MINOR, {"en": "A Child"}, 260, "File:Child.jpg",
                       f"{ten.isoformat()}T00:00:00Z"),
            WikiPerson(YEAR_MINOR, {"en": "A Teenager"}, 255, "File:Teen.jpg",
                       f"{year - 17}-01-01T00:00:00Z", precision=9),
            WikiPerson(NO_BIRTH, {"en": "No Birth Date"}, 250, "File:Undated.jpg"),
            _born_long_ago(OPTED_OUT, "Opted Out", 245, "File:Opted out.jpg"),
            _born_long_ago(NO_LICENCE, "No Licence", 240, "File:Unlicensed.jpg"),
            _born_long_ago(MISSING_FILE, "Missing File", 235, "File:Deleted.jpg"),
            _born_long_ago(NO_FACE, "No Face", 215, "File:Landscape.jpg"),
            _born_long_ago("Q9100099", "Few Links", 3, "File:Kit Harington.jpg"),
        ]
        pictures += [
            picture("File:Child.jpg", "Kit_Harington/fr_john2.jpg"),
            picture("File:Teen.jpg", "Rose_Leslie/fr_img1.jpg"),
            picture("File:Undated.jpg", "Joe_Biden/fr_biden.jpg"),
            picture("File:Opted out.jpg", "Alex_Lacamoire/fr_alex-lacamoire.jpg"),
            picture("File:Unlicensed.jpg", "Joe_Biden/fr_biden.jpg", fault="no_licence"),
            picture("File:Deleted.jpg", "Joe_Biden/fr_biden.jpg", fault="missing"),
            picture("File:Landscape.jpg", None, fault="no_face"),
        ]
    if failing:
        people += [
            _born_long_ago(GONE, "Gone Thumbnail", 230, "File:Gone.jpg"),
            _born_long_ago(TRUNCATED, "Truncated", 225, "File:Truncated.jpg"),
            _born_long_ago(NOT_AN_IMAGE, "Not An Image", 220, "File:Html.jpg"),
        ]
        pictures += [
            picture("File:Gone.jpg", "Joe_Biden/fr_biden.jpg", fault="gone"),
            picture("File:Truncated.jpg", "Joe_Biden/fr_biden.jpg", fault="truncated"),
            picture("File:Html.jpg", "Joe_Biden/fr_biden.jpg", fault="not_an_image"),
        ]
    return World(people, {p.title: p for p in pictures})
