"""Reply texts: look-alike captions within Telegram's limits, in the user's language."""

from __future__ import annotations

import numpy as np
import pytest

from functions.worker_replies import (
    CAPTION_LIMIT,
    MAX_LINKS,
    MESSAGE_LIMIT,
    matches_text,
    problem_text,
    visible_length,
)
from shared.faces import Face, FaceQuality, FaceScan
from shared.index import Celebrity, Match
from shared.matching import FaceMatches, PhotoMatches
from shared.texts import text
from stack.telegram_html import parse_html


def result(faces: int, names: tuple[str, ...] = ("Ada Lovelace", "Alan Turing", "Grace Hopper"),
           with_matches: bool = True) -> PhotoMatches:
    items = []
    for number in range(faces):
        face = Face(box=(10 * number, 0, 10 * number + 9, 9), landmarks=(),
                    descriptor=np.zeros(128, np.float32),
                    quality=FaceQuality(9, 9, 3.0, 0.0, 1.0))
        matches = [Match(Celebrity(f"c{rank}", name), 0.3 + rank / 10, 0.97 - rank * 0.2)
                   for rank, name in enumerate(names)] if with_matches else []
        items.append(FaceMatches(face, matches))
    return PhotoMatches(FaceScan(np.zeros((10, 10, 3), np.uint8), 0, [i.face for i in items]),
                        items)


def test_one_face_lists_top_three_with_percent() -> None:
    caption = matches_text(result(1), "en")
    assert caption.splitlines() == ["Looks like:", "1. Ada Lovelace — 97%",
                                    "2. Alan Turing — 77%", "3. Grace Hopper — 57%"]


def test_several_faces_are_numbered_like_the_picture() -> None:
    caption = matches_text(result(2), "en")
    assert caption.startswith("Face 1:\n1. Ada Lovelace — 97%")
    assert "\n\nFace 2:\n1. Ada Lovelace" in caption


def test_russian() -> None:
    caption = matches_text(result(2), "ru-RU")
    assert caption.startswith("Лицо 1:") and "Лицо 2:" in caption
    assert problem_text("no_face", "ru") == text("no_face", "ru") != text("no_face", "en")


@pytest.mark.parametrize("faces", [5, 12, 40])
def test_many_faces_fit_the_caption_and_say_how_many_more(faces: int) -> None:
    names = ("A" * 200, "B" * 200, "C" * 200)  # long names are cut too
    caption = matches_text(result(faces, names), "en")
    assert len(caption) <= CAPTION_LIMIT
    shown = caption.count("Face ")
    assert 1 <= shown < faces
    assert caption.endswith(f"…and {faces - shown} more faces.")


def test_max_faces_matches_the_picture_rows() -> None:
    caption = matches_text(result(6), "en", max_faces=4)
    assert caption.count("Face ") == 4 and caption.endswith("…and 2 more faces.")


def test_no_match_is_refused_and_problems_have_answers() -> None:
    with pytest.raises(ValueError):
        matches_text(result(1, with_matches=False), "en")
    for code in ("no_face", "unreadable_image", "image_too_large", "file_too_large",
                 "download_failed", "no_match"):
        assert problem_text(code, "en") == text(code, "en")
    assert problem_text("something_new", "en") == text("unreadable_image", "en")


# -- names in the user's language, Wikipedia links and picture credits (Telegram HTML) ---

OBAMA = Celebrity("Q76", "Barack Obama", photo="photos/Q76.jpg", extra={
    "names": {"en": "Barack Obama", "ru": "Барак Обама", "pt": "Barack Obama"},
    "links": {"en": "https://en.wikipedia.org/wiki/Barack_Obama",
              "ru": "https://ru.wikipedia.org/wiki/%D0%9E%D0%B1%D0%B0%D0%BC%D0%B0"},
    "credit": {"author": "Pete Souza", "licence": "Public domain", "licence_url": "",
               "source": "https://commons.wikimedia.org/wiki/File:Obama.jpg",
               "attribution_required": False}})
ROSE = Celebrity("Q230", "Rose Leslie", photo="photos/Q230.jpg", extra={
    "names": {"en": "Rose Leslie", "ru": "Роуз Лесли"},
    "links": {"en": "https://en.wikipedia.org/wiki/Rose_Leslie"},
    "credit": {"author": "<b>Tom & \"Jerry\"</b>", "licence": "CC BY-SA 4.0",
               "licence_url": "https://creativecommons.org/licenses/by-sa/4.0/",
               "source": "https://commons.wikimedia.org/wiki/File:Rose_Leslie.jpg?a=1&b=2",
               "attribution_required": True}})
PLAIN = Celebrity("c9", "Ada <Lovelace>")


def people_result(rows: list[list[Celebrity]]) -> PhotoMatches:
    """One face per row, matched to the row's celebrities in order."""
    items = []
    for number, row in enumerate(rows):
        face = Face(box=(10 * number, 0, 10 * number + 9, 9), landmarks=(),
                    descriptor=np.zeros(128, np.float32),
                    quality=FaceQuality(9, 9, 3.0, 0.0, 1.0))
        items.append(FaceMatches(face, [Match(c, 0.4, 0.9 - rank * 0.2)
                                        for rank, c in enumerate(row)]))
    return PhotoMatches(FaceScan(np.zeros((10, 10, 3), np.uint8), 0, [i.face for i in items]),
                        items)


def parsed(html: str) -> tuple[str, list[tuple[str, str]]]:
    """What Telegram shows for `html`, and its links (text, url)."""
    text_shown, entities = parse_html(html)
    units = text_shown.encode("utf-16-le")
    return text_shown, [(units[2 * e["offset"]:2 * (e["offset"] + e["length"])]
                         .decode("utf-16-le"), e["url"])
                        for e in entities if e["type"] == "text_link"]


def test_names_links_and_credit_in_english() -> None:
    shown, links = parsed(matches_text(people_result([[OBAMA, ROSE, PLAIN]]), "en",
                                       pictured=4))
    assert shown.splitlines() == [
        "Looks like:", "1. Barack Obama — 90%", "2. Rose Leslie — 70%",
        "3. Ada <Lovelace> — 50%", "", "Photo: Pete Souza, Public domain"]
    assert links == [("Barack Obama", "https://en.wikipedia.org/wiki/Barack_Obama"),
                     ("Rose Leslie", "https://en.wikipedia.org/wiki/Rose_Leslie"),
                     ("Pete Souza", "https://commons.wikimedia.org/wiki/File:Obama.jpg")]


def test_names_links_and_credits_in_russian_with_english_fallbacks() -> None:
    html = matches_text(people_result([[ROSE, OBAMA], [OBAMA, PLAIN]]), "ru-RU", pictured=4)
    shown, links = parsed(html)
    assert shown.splitlines() == [
        "Лицо 1:", "1. Роуз Лесли — 90%", "2. Барак Обама — 70%", "",
        "Лицо 2:", "1. Барак Обама — 90%", "2. Ada <Lovelace> — 70%", "",
        'Фото 1: <b>Tom & "Jerry"</b>, CC BY-SA 4.0', "Фото 2: Pete Souza, Public domain"]
    assert links == [
        ("Роуз Лесли", "https://en.wikipedia.org/wiki/Rose_Leslie"),  # no Russian article
        ("Барак Обама", OBAMA.extra["links"]["ru"]),
        ("Барак Обама", OBAMA.extra["links"]["ru"]),
        ('<b>Tom & "Jerry"</b>', ROSE.extra["credit"]["source"]),
        ("CC BY-SA 4.0", "https://creativecommons.org/licenses/by-sa/4.0/"),
        ("Pete Souza", "https://commons.wikimedia.org/wiki/File:Obama.jpg")]
    # The author's markup is text, not formatting: the only entities are the links.
    assert {e["type"] for e in parse_html(html)[1]} == {"text_link"}


def test_a_language_without_names_gets_english_and_regional_codes_find_theirs() -> None:
    assert parsed(matches_text(people_result([[ROSE]]), "de"))[0].splitlines()[1] == \
        "1. Rose Leslie — 90%"
    assert parsed(matches_text(people_result([[OBAMA]]), "pt-br"))[1][0][1] == \
        "https://en.wikipedia.org/wiki/Barack_Obama"


def test_the_same_picture_in_several_rows_is_credited_once() -> None:
    shown, _ = parsed(matches_text(people_result([[OBAMA], [ROSE], [OBAMA]]), "en",
                                   pictured=4))
    assert shown.splitlines()[-2:] == ['Photo 1, 3: Pete Souza, Public domain',
                                       'Photo 2: <b>Tom & "Jerry"</b>, CC BY-SA 4.0']


def test_only_pictures_shown_are_credited() -> None:
    result = people_result([[ROSE], [ROSE], [ROSE], [ROSE], [OBAMA]])
    assert "Pete Souza" not in parsed(matches_text(result, "en", max_faces=4, pictured=4))[0]
    assert "Photo" not in parsed(matches_text(result, "en"))[0]  # a text answer: no picture


def test_without_names_links_or_credits_the_caption_is_as_before() -> None:
    assert matches_text(result(1), "en") == matches_text(result(1), "en", pictured=4) == \
        "Looks like:\n1. Ada Lovelace — 97%\n2. Alan Turing — 77%\n3. Grace Hopper — 57%"
    assert matches_text(people_result([[PLAIN]]), "en") == \
        "Looks like:\n1. Ada &lt;Lovelace&gt; — 90%"


def test_links_other_than_web_addresses_are_dropped() -> None:
    sneaky = Celebrity("x", "X", extra={
        "links": {"en": "javascript:alert(1)"},
        "credit": {"author": "A", "licence": "L", "licence_url": "data:text/html,hi",
                   "source": "https://example.org/a\"onclick=\"x"}})
    html = matches_text(people_result([[sneaky]]), "en", pictured=1)
    assert parsed(html)[1] == [("A", 'https://example.org/a"onclick="x')]
    assert 'href="https://example.org/a&quot;onclick=&quot;x"' in html


def long_celebrity(number: int, script: str = "Ж") -> Celebrity:
    return Celebrity(f"q{number}", "N" * 300, extra={
        "names": {"ru": script * 300},
        "links": {"ru": f"https://ru.wikipedia.org/wiki/{'%D0%96' * 300}{number}"},
        "credit": {"author": "😀" * 500, "licence": "L" * 300,
                   "licence_url": "https://example.org/" + "l" * 500,
                   "source": f"https://commons.wikimedia.org/wiki/File:{'x' * 500}{number}"}})


@pytest.mark.parametrize("faces", [1, 4, 12, 40])
@pytest.mark.parametrize("language", ["en", "ru"])
def test_long_names_and_credits_fit_the_caption_and_every_shown_picture_is_credited(
        faces: int, language: str) -> None:
    rows = [[long_celebrity(f * 10 + r) for r in range(3)] for f in range(faces)]
    html = matches_text(people_result(rows), language, max_faces=4, pictured=4)
    shown, links = parsed(html)
    assert visible_length(html) == len(shown.encode("utf-16-le")) // 2 <= CAPTION_LIMIT
    credited = [line for line in shown.splitlines() if line.startswith(("Photo", "Фото"))]
    assert len(credited) == min(faces, 4)  # one per picture row, none cut off
    sources = [url for _, url in links if "commons" in url]
    assert sources == [rows[f][0].extra["credit"]["source"] for f in range(min(faces, 4))]
    assert all(line.endswith("…") for line in credited)  # the licence, shortened
    if faces > 1:
        assert "Face 1:" in shown or "Лицо 1:" in shown


def test_a_text_answer_keeps_within_telegrams_link_limit() -> None:
    rows = [[long_celebrity(f * 10 + r, "a") for r in range(3)] for f in range(60)]
    html = matches_text(people_result(rows), "ru", limit=MESSAGE_LIMIT)
    assert visible_length(html) <= MESSAGE_LIMIT
    assert 0 < html.count("<a ") <= MAX_LINKS


def test_a_best_match_that_may_be_the_person_is_said_so() -> None:
    answer = people_result([[OBAMA, ROSE]])
    best = answer.faces[0].matches[0]
    answer.faces[0].matches[0] = Match(best.celebrity, 0.3, 1.0, themself=True)
    shown, links = parsed(matches_text(answer, "en"))
    assert shown.splitlines() == ["Looks like:", "1. this may be Barack Obama themself",
                                  "2. Rose Leslie — 70%"]
    assert links[0] == ("Barack Obama", "https://en.wikipedia.org/wiki/Barack_Obama")
    shown, links = parsed(matches_text(answer, "ru"))
    assert shown.splitlines()[1] == "1. возможно, это Барак Обама собственной персоной"
    assert links[0] == ("Барак Обама", OBAMA.extra["links"]["ru"])
