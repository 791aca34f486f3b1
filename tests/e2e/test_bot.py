"""End to end: Telegram updates through the webhook, Pub/Sub, the worker and back to the
chat, with real emulators and real functions-framework processes (`stack.run`).

One stack serves the whole module. Retries are faster than in production (2–10 s
instead of 10–300 s) so that a job the worker failed to acknowledge shows up as a
redelivery within the test's time. Its gallery is the demo's with every celebrity's
`sex` (tests/sexed_gallery.py), so that answers carry the "Women only" / "Men only"
buttons.
"""

from __future__ import annotations

import io
import json
import os
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from shared.config import DEMO_GALLERY, REPO_ROOT
from shared.images import heif_opener
from shared.jobs import Job
from shared.render import TILE
from shared.texts import text
from stack.bot_api import SentMessage
from stack.chat_picture import render_answer
from stack.emulators import EmulatorUnavailable
from stack.push_tap import Delivery
from stack.run import Stack, StackOptions, running_stack
from stack.send import callback_update, deliver, document_update, photo_message_update, post_update
from tests.sexed_gallery import gallery_with_sex, sex_of

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

# Longer than the retry policy's minimum backoff: a job that was not acknowledged
# would be delivered again within this time.
SETTLE_SECONDS = 4.0
FIGURES: dict[str, str] = {}


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    gallery = gallery_with_sex(tmp_path_factory.mktemp("gallery") / "demo")
    options = StackOptions(ack_deadline_seconds=120, min_retry_seconds=2,
                           max_retry_seconds=10, max_delivery_attempts=5, gallery=gallery)
    try:
        with running_stack(options) as running:
            _, subscriber = running.pubsub_clients()
            subscriber.create_subscription(name=AUDIT.format(options.project),
                                           topic=running.topic)
            yield running
    except EmulatorUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the local stack cannot start: {exc}")
        pytest.skip(f"the local stack cannot start: {exc}")
    print("\n" + "\n".join(f"{k}: {v}" for k, v in FIGURES.items()))


AUDIT = "projects/{}/subscriptions/e2e-audit"


def celebrity_names() -> dict[str, str]:
    return {c["id"]: c["name"]
            for c in json.loads((DEMO_GALLERY / "celebrities.json").read_text())}


def held_out(labelled: dict[str, list[Path]], person: str) -> list[Path]:
    """The person's labelled photos that did not go into the demo gallery."""
    used = {p.stem for p in (REPO_ROOT / "demo" / "photos" / person).iterdir()}
    return [p for p in labelled[person] if p.stem not in used]


def wait_acknowledged(stack: Stack, update_id: int, messages: int,
                      timeout: float = 60.0) -> list[Delivery]:
    """Wait until `messages` distinct Pub/Sub messages of the update were acknowledged.
    A duplicate that arrives while the first is being answered is refused (and so
    redelivered later) until the first is done: that is the worker's dedupe at work."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = stack.deliveries_for(update_id)
        if len({d.message_id for d in found if d.acknowledged}) >= messages:
            return found
        time.sleep(0.1)
    raise AssertionError(f"update {update_id}: not all of {messages} messages acknowledged "
                         f"within {timeout:.0f} s: {stack.deliveries_for(update_id)}")


def first_name(reply_text: str) -> str:
    """The first match's name, as a look-alike ("1. NAME — 97%") or as the person
    themself ("1. this may be NAME themself")."""
    before, _, after = text("result_themself", "en", name="\x00").partition("\x00")
    match = re.search(rf"^1\. (?:{re.escape(before)}(.+?){re.escape(after)}$|(.+?) — )",
                      reply_text, re.MULTILINE)
    assert match, reply_text
    return match.group(1) or match.group(2)


def test_a_photo_gets_one_reply_naming_the_right_celebrity(stack, labelled):
    photo = held_out(labelled, "Joe_Biden")[0]
    update = photo_message_update(stack.bot_api, photo.read_bytes(), chat_id=1001)
    started = time.time()
    posted = deliver(stack, update)
    assert posted.status == 200
    assert json.loads(posted.body) == {"method": "sendChatAction", "chat_id": 1001,
                                       "action": "upload_photo"}
    [reply] = stack.wait_replies(1001)
    FIGURES["worker cold start (process start to first reply)"] = \
        f"{reply.time - stack.worker_started_at:.1f} s"
    FIGURES["first photo, webhook to reply (models and index loaded)"] = \
        f"{reply.time - started:.1f} s"
    assert first_name(reply.body) == celebrity_names()["Joe_Biden"]
    assert reply.photo and reply.photo[:3] == b"\xff\xd8\xff"  # a JPEG picture
    assert reply.reply_to == update["message"]["message_id"]
    # Beside the user's face: Joe Biden's picture, which the worker fetched from storage
    # for this reply (the index's pictures are not part of its cold start).
    shown = np.asarray(Image.open(io.BytesIO(reply.photo)).convert("L"), dtype=np.float32)
    with Image.open(DEMO_GALLERY / "photos" / "Joe_Biden.jpg") as gallery_picture:
        expected = np.asarray(ImageOps.fit(gallery_picture.convert("L"), (TILE, TILE),
                                           Image.LANCZOS), dtype=np.float32)
    above_badge = slice(0, TILE // 2)
    assert np.abs(shown[above_badge, TILE:] - expected[above_badge]).mean() < 8

    time.sleep(SETTLE_SECONDS)
    assert len(stack.replies(1001)) == 1
    [delivery] = stack.deliveries_for(update["update_id"])
    assert delivery.acknowledged and delivery.attempt == 1


def test_warm_latency_per_photo(stack, labelled):
    photos = [*held_out(labelled, "Barack_Obama"), *held_out(labelled, "Rose_Leslie"),
              *held_out(labelled, "Kit_Harington")]
    expected = celebrity_names()
    seconds, webhook_ms = [], []
    for number, photo in enumerate(photos):
        chat = 2000 + number
        started = time.time()
        posted = deliver(stack, photo_message_update(stack.bot_api, photo.read_bytes(),
                                                     chat_id=chat))
        assert posted.status == 200
        webhook_ms.append(posted.seconds * 1000)
        [reply] = stack.wait_replies(chat)
        seconds.append(reply.time - started)
        assert first_name(reply.body) == expected[photo.parent.name], photo
    FIGURES["warm photo, webhook to reply"] = (
        f"median {statistics.median(seconds):.2f} s, max {max(seconds):.2f} s "
        f"over {len(seconds)} photos")
    FIGURES["webhook answer through functions-framework (publish included)"] = (
        f"median {statistics.median(webhook_ms):.0f} ms")
    print(FIGURES)


def test_the_same_update_three_times_gets_one_reply(stack, labelled):
    photo = held_out(labelled, "Joe_Biden")[0]
    update = photo_message_update(stack.bot_api, photo.read_bytes(), chat_id=3001)
    for _ in range(3):
        assert deliver(stack, update).status == 200
    deliveries = wait_acknowledged(stack, update["update_id"], 3)
    time.sleep(SETTLE_SECONDS)
    assert len(stack.replies(3001)) == 1
    assert stack.dead_letters() == []
    FIGURES["one update posted 3 times"] = (
        f"{len(deliveries)} push deliveries until all 3 messages were acknowledged, 1 reply")


def test_a_job_delivered_twice_gets_one_reply(stack, labelled):
    photo = held_out(labelled, "Barack_Obama")[0]
    update = photo_message_update(stack.bot_api, photo.read_bytes(), chat_id=3002)
    size = update["message"]["photo"][-1]
    job = Job(update_id=update["update_id"], chat_id=3002,
              message_id=update["message"]["message_id"], file_id=size["file_id"],
              file_unique_id=size["file_unique_id"], width=size["width"],
              height=size["height"], received_at=time.time(), file_size=size["file_size"])
    for _ in range(2):
        stack.publish(job.to_bytes(), update_id=str(job.update_id))
    wait_acknowledged(stack, job.update_id, 2)
    time.sleep(SETTLE_SECONDS)
    assert len(stack.replies(3002)) == 1


def drain_audit(stack: Stack) -> list[bytes]:
    from google.api_core import exceptions

    _, subscriber = stack.pubsub_clients()
    name = AUDIT.format(stack.options.project)
    received: list[bytes] = []
    while True:
        try:
            response = subscriber.pull(subscription=name, max_messages=100, timeout=5)
        except exceptions.DeadlineExceeded:
            return received
        if not response.received_messages:
            return received
        subscriber.acknowledge(subscription=name,
                               ack_ids=[m.ack_id for m in response.received_messages])
        received += [m.message.data for m in response.received_messages]


def test_a_forged_or_missing_secret_is_refused_and_nothing_is_published(stack, labelled):
    photo = held_out(labelled, "Joe_Biden")[0]
    drain_audit(stack)
    for secret in (None, "forged", stack.secret + "x"):
        update = photo_message_update(stack.bot_api, photo.read_bytes(), chat_id=4001)
        posted = post_update(stack.webhook_url, update, secret)
        assert posted.status == 403
    # A genuine update published after them is the first thing on the topic.
    genuine = photo_message_update(stack.bot_api, photo.read_bytes(), chat_id=4002)
    assert deliver(stack, genuine).status == 200
    stack.wait_replies(4002)
    published = [Job.from_bytes(data) for data in drain_audit(stack)]
    assert [job.chat_id for job in published] == [4002]
    assert stack.replies(4001) == []


def test_commands_are_answered_through_the_response_body(stack):
    from stack.send import text_update

    deliver(stack, text_update("/help", chat_id=5001, language_code="ru"))
    deliver(stack, text_update("hello", chat_id=5002))
    [help_reply] = stack.wait_replies(5001, timeout=10)
    [hint] = stack.wait_replies(5002, timeout=10)
    assert "/lookalike" in help_reply.body and "фото" in help_reply.body
    assert "photo" in hint.body


def test_every_hard_file_gets_a_clear_answer_and_is_acknowledged(stack, faces_dir, tmp_path):
    """One after another, as a user would send them: the worker answers each (a result
    or a clear problem), acknowledges it on the first delivery, and nothing dead-letters."""
    from PIL import Image

    files: list[tuple[str, Path, bool]] = []
    for path in sorted(p for p in (faces_dir / "hard").iterdir() if p.name != "EXPECTED.json"):
        try:
            with Image.open(path) as image:
                image.load()
            files.append((path.name, path, False))
        except Exception:  # Telegram would not take it as a photo: it arrives as a file
            files.append((path.name, path, True))
    files += [(f"{name} as a file", faces_dir / "hard" / name, True)
              for name in ("noface_dog.jpg", "noface_white.png", "derived_webp.webp")]
    # The corpus's HEIC case, as an iPhone sends a photo as a file: made here from the
    # EXIF-rotated photo, orientation kept.
    heic = tmp_path / "derived_iphone.heic"
    heif_opener()  # Pillow writes HEIF through pillow-heif
    with Image.open(faces_dir / "hard" / "derived_exif_orientation6.jpg") as source:
        source.save(heic, format="HEIF", quality=80, exif=source.info.get("exif", b""))
    files.append((heic.name, heic, True))

    started = time.monotonic()
    answers: dict[str, str] = {}
    updates: list[dict] = []
    for number, (name, path, as_file) in enumerate(files):
        chat = 6000 + number
        if as_file:  # bytes unchanged, mime type from the name as clients guess it
            mime = {"png": "image/png", "webp": "image/webp",
                    "heic": "image/heic"}.get(path.suffix[1:], "image/jpeg")
            update = document_update(stack.bot_api, path.read_bytes(), path.name, mime,
                                     chat_id=chat)
        else:  # Telegram keeps photos as JPEG sizes it makes itself
            update = photo_message_update(stack.bot_api, path.read_bytes(), chat_id=chat)
        posted = deliver(stack, update)
        assert posted.status == 200, (name, posted)
        updates.append(update)
        [reply] = stack.wait_replies(chat, timeout=60)
        assert reply.body.strip(), name
        answers[name] = reply.body.splitlines()[0]
    elapsed = time.monotonic() - started

    time.sleep(SETTLE_SECONDS)
    deliveries = [d for update in updates for d in stack.deliveries_for(update["update_id"])]
    assert [d for d in deliveries if not d.acknowledged or d.attempt > 1] == []
    assert len(deliveries) == len(files)
    assert [len(stack.replies(6000 + n)) for n in range(len(files))] == [1] * len(files)
    assert stack.dead_letters() == []
    for name in ("broken_empty.jpg", "broken_not_an_image.jpg", "broken_truncated.jpg",
                 "noface_dog.jpg", "noface_white.png as a file"):
        assert not answers[name].startswith(("Looks like", "Face 1")), (name, answers[name])
    assert answers["multi_obama_and_biden.jpg"].startswith(("Looks like", "Face 1"))
    assert answers["derived_iphone.heic"].startswith("Looks like")
    FIGURES["hard files answered one after another"] = \
        f"{len(files)} in {elapsed:.0f} s ({elapsed / len(files):.2f} s each)"
    print("\n".join(f"{name}: {first}" for name, first in answers.items()))


def test_buttons_under_the_answer_edit_it_in_place(stack, labelled):
    """Photo → "sending photo…" → one answer with buttons → "Women only" → the same
    message, every match a woman → "More" → the next ones → the same press delivered
    twice → one edit."""
    chat = 8001
    asked = photo_message_update(stack.bot_api, held_out(labelled, "Joe_Biden")[0].read_bytes(),
                                 chat_id=chat)
    posted = deliver(stack, asked)
    assert json.loads(posted.body)["method"] == "sendChatAction"
    assert posted.method_status == 200
    assert [(c, a) for c, a, _ in stack.bot_api.chat_actions if c == chat] == [
        (chat, "upload_photo")]
    [answer] = stack.wait_replies(chat)
    assert answer.method == "sendPhoto" and answer.reply_to == asked["message"]["message_id"]
    assert keyboard_of(answer) == [["Women only", "Men only"], ["More"]]

    def press(data: str, update: dict | None = None) -> tuple[SentMessage, float]:
        update = update or callback_update(stack.bot_api, asked, answer.message_id, data)
        before = len(stack.replies(chat))
        # A person reads the answer before pressing: past the chat's 1 s between messages
        # (functions/send_limiter.py), which edits keep too.
        time.sleep(1.0)
        started = time.time()
        posted = deliver(stack, update)
        assert json.loads(posted.body) == {"method": "answerCallbackQuery",
                                           "callback_query_id": update["callback_query"]["id"]}
        edit = stack.wait_replies(chat, before + 1)[-1]
        return edit, edit.time - started

    women, seconds = press("la1:f:0")
    timings = [seconds]
    assert (women.method, women.message_id) == ("editMessageMedia", answer.message_id)
    assert ranks(women) == [1, 2, 3] and sexes(women) == {"female"}
    assert keyboard_of(women) == [["Men only", "Everyone"], ["More"]]
    more, seconds = press("la1:f:1")
    timings.append(seconds)
    assert (more.method, more.message_id) == ("editMessageMedia", answer.message_id)
    assert ranks(more) == [4, 5, 6] and sexes(more) == {"female"}
    assert not set(names(more)) & set(names(women))
    picture = render_answer(more.photo, more.caption or "", more.reply_markup)
    assert picture[:8] == b"\x89PNG\r\n\x1a\n"
    for data in ("la1:m:0", "la1:a:1", "la1:a:0"):
        edit, seconds = press(data)
        timings.append(seconds)
        assert edit.message_id == answer.message_id

    # Telegram delivers one press twice: answered from both responses (the second
    # answerCallbackQuery is refused, as Telegram refuses it), edited once.
    twice = callback_update(stack.bot_api, asked, answer.message_id, "la1:m:1")
    edit, seconds = press("", twice)
    timings.append(seconds)
    again = deliver(stack, twice)
    assert again.status == 200 and again.method_status == 400
    time.sleep(SETTLE_SECONDS)
    assert ranks(edit) == [4, 5, 6] and sexes(edit) == {"male"}
    assert [m.method for m in stack.replies(chat)] == ["sendPhoto"] + ["editMessageMedia"] * 6
    assert {(c, a) for c, a, _ in stack.bot_api.chat_actions if c == chat} == {
        (chat, "upload_photo")}
    FIGURES["button press: webhook to edited answer"] = (
        f"median {statistics.median(timings):.2f} s, max {max(timings):.2f} s "
        f"over {len(timings)} presses")
    out = os.environ.get("LOOKALIKE_DOCS_PICTURES")
    if out:  # docs/bot.md's picture of the answer, from this run
        first = render_answer(answer.photo, answer.caption or "", answer.reply_markup)
        (Path(out) / "bot-answer.png").write_bytes(first)
        (Path(out) / "bot-answer-women-more.png").write_bytes(picture)


def test_a_forged_or_over_long_button_gets_a_polite_answer_and_no_job(stack):
    drain_audit(stack)
    chat = 8101
    asked = photo_message_update(stack.bot_api, (REPO_ROOT / "demo" / "samples").glob(
        "*.jpg").__next__().read_bytes(), chat_id=chat)
    before = len(stack.bot_api.callback_answers)
    for data in ("la9:f:0", "la1:f:0" + "x" * 80, "DROP TABLE"):
        update = forged_callback(stack, asked, data)
        posted = deliver(stack, update)
        answer = json.loads(posted.body)
        assert posted.status == 200 and posted.method_status == 200
        assert answer["method"] == "answerCallbackQuery" and answer["text"]
    assert len(stack.bot_api.callback_answers) == before + 3
    assert drain_audit(stack) == []  # nothing was published
    assert stack.replies(chat) == []


def forged_callback(stack: Stack, asked: dict, data: str) -> dict:
    """A callback query on a message the bot never sent, with `data` no button carries."""
    message = {"message_id": 99999, "date": int(time.time()), "chat": asked["message"]["chat"],
               "reply_to_message": asked["message"], "photo": asked["message"]["photo"]}
    return {"update_id": int(time.time() * 1000) % 10**9, "callback_query": {
        "id": stack.bot_api.new_callback_query_id(), "chat_instance": "1",
        "from": asked["message"]["from"], "message": message, "data": data}}


def keyboard_of(message: SentMessage) -> list[list[str]]:
    return [[button["text"] for button in row]
            for row in (message.reply_markup or {}).get("inline_keyboard", [])]


def ranks(message: SentMessage) -> list[int]:
    return [int(rank) for rank in re.findall(r"^(\d+)\. ", message.body, re.MULTILINE)]


def names(message: SentMessage) -> list[str]:
    """The names of the look-alike lines ("N. NAME — P%" or "N. this may be NAME
    themself")."""
    before, _, after = text("result_themself", "en", name="\x00").partition("\x00")
    line = rf"^\d+\. (?:{re.escape(before)}(.+?){re.escape(after)}$|(.+?) — )"
    return [themself or name for themself, name in re.findall(line, message.body,
                                                              re.MULTILINE)]


def sexes(message: SentMessage) -> set[str]:
    ids = {name: id_ for id_, name in celebrity_names().items()}
    return {sex_of(ids[name]) for name in names(message)}
