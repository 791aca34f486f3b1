"""End to end: a gallery whose celebrities carry names, Wikipedia links and picture
credits, as a harvested catalogue gives them; the bot's reply names the look-alike in the
user's language, links their article and credits the picture it shows, in English and
Russian (Telegram HTML, parsed by the local Bot API server as Telegram does)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import DEMO_GALLERY, REPO_ROOT
from shared.index import Celebrity, CelebrityIndex
from shared.texts import text
from stack.emulators import EmulatorUnavailable
from stack.run import Stack, StackOptions, running_stack
from stack.send import deliver, photo_message_update

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

COMMONS = "https://commons.wikimedia.org/wiki/File:"
# As the harvest writes them (docs/catalog.md): an author with markup characters, a
# licence with its link, the Commons file page as the source.
PEOPLE = {
    "Rose_Leslie": {
        "names": {"en": "Rose Leslie", "ru": "Роуз Лесли", "de": "Rose Leslie"},
        "sex": "female",
        "links": {"en": "https://en.wikipedia.org/wiki/Rose_Leslie",
                  "ru": "https://ru.wikipedia.org/wiki/%D0%9B%D0%B5%D1%81%D0%BB%D0%B8,"
                        "_%D0%A0%D0%BE%D1%83%D0%B7"},
        "credit": {"author": "Gage Skidmore & <Friends>", "licence": "CC BY-SA 3.0",
                   "licence_url": "https://creativecommons.org/licenses/by-sa/3.0",
                   "source": COMMONS + "Rose_Leslie_(cropped).jpg",
                   "attribution_required": True}},
    "Barack_Obama": {
        "names": {"en": "Barack Obama", "ru": "Барак Обама"},
        "links": {"en": "https://en.wikipedia.org/wiki/Barack_Obama"},
        "credit": {"author": "Pete Souza", "licence": "Public domain", "licence_url": "",
                   "source": COMMONS + "President_Barack_Obama.jpg",
                   "attribution_required": False}},
    "Joe_Biden": {
        "names": {"en": "Joe Biden", "ru": "Джо Байден"},
        "links": {"en": "https://en.wikipedia.org/wiki/Joe_Biden"},
        "credit": {"author": "Adam Schultz", "licence": "CC BY 3.0",
                   "licence_url": "https://creativecommons.org/licenses/by/3.0",
                   "source": COMMONS + "Joe_Biden_presidential_portrait.jpg",
                   "attribution_required": True}},
}


def credited_gallery(directory: Path) -> Path:
    """The demo gallery's faces with PEOPLE's names, links and credits."""
    demo = CelebrityIndex.load(DEMO_GALLERY)
    celebrities = [Celebrity(c.id, PEOPLE[c.id]["names"]["en"] if c.id in PEOPLE else c.name,
                             photo=c.photo, extra=PEOPLE.get(c.id, {}))
                   for c in demo.celebrities]
    CelebrityIndex.build(demo.descriptors, demo.entry_celebrity, celebrities,
                         stats=demo.stats).save(directory)
    shutil.copytree(DEMO_GALLERY / "photos", directory / "photos")
    return directory


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    gallery = credited_gallery(tmp_path_factory.mktemp("gallery") / "index")
    try:
        with running_stack(StackOptions(gallery=gallery)) as running:
            yield running
    except EmulatorUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the local stack cannot start: {exc}")
        pytest.skip(f"the local stack cannot start: {exc}")


def held_out_rose(labelled: dict[str, list[Path]]) -> Path:
    used = {p.stem for p in (REPO_ROOT / "demo" / "photos" / "Rose_Leslie").iterdir()}
    return next(p for p in labelled["Rose_Leslie"] if p.stem not in used)


@pytest.mark.parametrize(("language", "chat", "name", "link", "label"), [
    ("en-GB", 7001, "Rose Leslie", "en", "Photo:"),
    ("ru", 7002, "Роуз Лесли", "ru", "Фото:"),
    ("de", 7003, "Rose Leslie", "en", "Photo:"),  # names in German, the article in English
])
def test_the_reply_names_links_and_credits_in_the_users_language(
        stack, labelled, language, chat, name, link, label):
    photo = held_out_rose(labelled)
    deliver(stack, photo_message_update(stack.bot_api, photo.read_bytes(), chat_id=chat,
                                        language_code=language))
    [reply] = stack.wait_replies(chat)
    assert reply.method == "sendPhoto" and reply.parse_mode == "HTML"
    lines = reply.body.splitlines()
    assert lines[1] == "1. " + text("result_themself", language, name=name), reply.body
    credit = PEOPLE["Rose_Leslie"]["credit"]
    assert lines[-1] == f"{label} Gage Skidmore & <Friends>, CC BY-SA 3.0"
    assert (name, PEOPLE["Rose_Leslie"]["links"][link]) in reply.links
    assert reply.links[-2:] == [("Gage Skidmore & <Friends>", credit["source"]),
                                ("CC BY-SA 3.0", credit["licence_url"])]


def test_a_group_photo_credits_every_picture_it_shows(stack):
    photo = REPO_ROOT / "demo" / "samples" / "multi_obama_and_biden.jpg"
    deliver(stack, photo_message_update(stack.bot_api, photo.read_bytes(), chat_id=7010,
                                        language_code="ru"))
    [reply] = stack.wait_replies(7010)
    lines = reply.body.splitlines()
    assert lines[0] == "Лицо 1:"
    assert "1. " + text("result_themself", "ru", name="Барак Обама") in reply.body
    # Rows are numbered as in the picture (largest face first); each picture credited.
    credits = sorted(line.split(": ", 1)[1] for line in lines if line.startswith("Фото "))
    assert credits == ["Adam Schultz, CC BY 3.0", "Pete Souza, Public domain"], reply.body
    assert ("Adam Schultz", PEOPLE["Joe_Biden"]["credit"]["source"]) in reply.links
    assert ("CC BY 3.0", PEOPLE["Joe_Biden"]["credit"]["licence_url"]) in reply.links
