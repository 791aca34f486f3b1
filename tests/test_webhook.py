"""The webhook: request checks, routing of updates, photo size choice and publishing
(to a recording publisher, and to the real Pub/Sub emulator)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from typing import Any

import flask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from telegram import PhotoSize

from functions.publisher import PublishError, PubSubPublisher
from functions.webhook import MAX_BODY_BYTES, SECRET_HEADER, handle
from functions.webhook_photo import choose_photo_size, detection_side
from shared.config import Settings
from shared.jobs import Job
from shared.texts import privacy_text, text
from tests.conftest import REPO

SECRET = "s3cret-token_value"
BOT = "LookalikeTestBot"
SETTINGS = Settings(bot_username=BOT)
NOW = 1_800_000_000.0
_app = flask.Flask(__name__)


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.jobs: list[Job] = []
        self.fail = fail

    def publish(self, job: Job) -> str:
        if self.fail:
            raise PublishError("DeadlineExceeded: the emulator is away")
        self.jobs.append(job)
        return str(len(self.jobs))


def post(body: Any, *, secret: str | None = SECRET, configured: str = SECRET,
         publisher: Recorder | None = None, method: str = "POST",
         content_type: str = "application/json",
         settings: Settings = SETTINGS) -> tuple[tuple, Recorder]:
    publisher = publisher or Recorder()
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {SECRET_HEADER: secret} if secret is not None else {}
    with _app.test_request_context("/", method=method, data=data, headers=headers,
                                   content_type=content_type):
        result = handle(flask.request, settings, publisher, configured, clock=lambda: NOW)
    return result, publisher


def sizes(*sides: tuple[int, int]) -> list[dict]:
    return [{"file_id": f"file-{w}x{h}", "file_unique_id": f"u{w}", "width": w, "height": h,
             "file_size": w * h // 10} for w, h in sides]


PHONE_PHOTO = sizes((90, 68), (320, 240), (800, 600), (1280, 960))


def update(update_id: int = 100, *, chat_type: str = "private", chat_id: int = 42,
           language: str = "en", **message: Any) -> dict:
    chat = {"id": chat_id if chat_type == "private" else -1000 - chat_id, "type": chat_type}
    if chat_type == "private":
        chat["first_name"] = "Ann"
    else:
        chat["title"] = "Friends"
    return {"update_id": update_id, "message": {
        "message_id": 7, "date": 1_700_000_000, "chat": chat,
        "from": {"id": chat_id, "is_bot": False, "first_name": "Ann",
                 "language_code": language}, **message}}


def command(name: str, **kwargs: Any) -> dict:
    length = len(name.split()[0])
    return update(text=name, entities=[{"type": "bot_command", "offset": 0,
                                        "length": length}], **kwargs)


def answer_of(result: tuple) -> dict:
    body, status, headers = result
    assert status == 200 and headers["Content-Type"] == "application/json"
    return json.loads(body)


# -- request checks ---------------------------------------------------------------------


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET[:-1]])
def test_missing_or_wrong_secret_is_forbidden_and_nothing_is_published(secret):
    (body, status, _), publisher = post(update(photo=PHONE_PHOTO), secret=secret)
    assert status == 403 and publisher.jobs == []
    assert SECRET not in body


def test_an_unconfigured_secret_refuses_everything(capsys):
    (_, status, _), publisher = post(update(photo=PHONE_PHOTO), secret="", configured="")
    assert status == 403 and publisher.jobs == []
    assert "no webhook secret" in capsys.readouterr().out


@pytest.mark.parametrize(("kwargs", "status"), [
    ({"method": "GET"}, 405),
    ({"method": "PUT"}, 405),
    ({"content_type": "text/plain"}, 415),
    ({"content_type": "application/x-www-form-urlencoded"}, 415),
])
def test_wrong_method_or_content_type(kwargs, status):
    (_, got, _), publisher = post(update(photo=PHONE_PHOTO), **kwargs)
    assert got == status and publisher.jobs == []


def test_an_oversized_body_is_refused_before_reading():
    padding = "x" * MAX_BODY_BYTES
    (_, status, _), publisher = post(update(photo=PHONE_PHOTO, caption=padding))
    assert status == 413 and publisher.jobs == []


@pytest.mark.parametrize("body", [b"{", b"[1, 2]", b'"text"', b"null", b"\xff\xfe",
                                  b'{"message": {}}', b'{"update_id": "x", "message": 5}'])
def test_a_body_that_is_not_an_update_is_a_bad_request(body):
    (_, status, _), publisher = post(body)
    assert status == 400 and publisher.jobs == []


def test_a_body_without_a_length_is_refused():
    (_, status, _), publisher = post(b"")
    assert status == 411 and publisher.jobs == []


def test_log_lines_are_json_and_never_contain_the_secret(capsys):
    post(update(photo=PHONE_PHOTO))
    post(update(), secret="wrong")
    lines = capsys.readouterr().out.splitlines()
    records = [json.loads(line) for line in lines]
    assert records[0]["severity"] == "INFO" and records[0]["update_id"] == 100
    assert records[1]["severity"] == "WARNING"
    assert all(SECRET not in line for line in lines)


def test_the_secret_is_redacted_from_any_library_log_line(capsys):
    post(update(text="hello"))
    logging.getLogger("some.library").warning("calling back with %s", SECRET)
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert records[0]["component"] == "webhook" and records[0]["severity"] == "INFO"
    assert records[1] == {"severity": "WARNING", "logger": "some.library",
                          "message": "calling back with <redacted>"}


# -- cheap answers in the response body ---------------------------------------------------


@pytest.mark.parametrize("name", ["start", "help", "privacy"])
@pytest.mark.parametrize("language", ["en", "ru-RU"])
def test_commands_are_answered_in_the_response_body(name, language):
    for form in (f"/{name}", f"/{name}@{BOT}", f"/{name}@{BOT.lower()} extra words"):
        (result, publisher) = post(command(form, language=language))
        method = answer_of(result)
        expected = (privacy_text(language, SETTINGS.contact) if name == "privacy"
                    else text(name, language))
        assert method == {"method": "sendMessage", "chat_id": 42, "text": expected}
        assert publisher.jobs == []


@pytest.mark.parametrize("language", ["en", "ru"])
def test_privacy_says_how_to_be_removed_at_the_configured_contact(language):
    contact = "privacy@example.org"
    method = answer_of(post(command("/privacy", language=language),
                            settings=Settings(bot_username=BOT, contact=contact))[0])
    assert method["text"].startswith(text("privacy", language))
    assert method["text"].endswith(text("removal", language, contact=contact))
    assert contact in method["text"]
    without = answer_of(post(command("/privacy", language=language))[0])["text"]
    assert without.endswith(text("removal_no_contact", language)) and "@" not in without


def test_a_private_message_without_a_photo_gets_a_hint_in_the_users_language():
    assert answer_of(post(update(text="hello"))[0])["text"] == text("send_photo", "en")
    assert answer_of(post(update(text="привет", language="ru"))[0])["text"] == \
        text("send_photo", "ru")
    pdf = {"file_id": "d", "file_unique_id": "du", "mime_type": "application/pdf"}
    assert answer_of(post(update(document=pdf))[0])["text"] == text("send_photo", "en")
    assert answer_of(post(update(sticker=None, text="/unknown"))[0])["method"] == "sendMessage"


# -- photos become jobs -------------------------------------------------------------------


def test_a_private_photo_becomes_one_job_with_the_800_px_size():
    result, publisher = post(update(555, photo=PHONE_PHOTO, language="ru"))
    # "sending photo…" at once, carried out by Telegram from the response body.
    assert answer_of(result) == {"method": "sendChatAction", "chat_id": 42,
                                 "action": "upload_photo"}
    assert publisher.jobs == [Job(
        update_id=555, chat_id=42, message_id=7, file_id="file-800x600",
        file_unique_id="u800", width=800, height=600, received_at=NOW, file_size=48000,
        language_code="ru", chat_type="private")]
    assert Job.from_bytes(publisher.jobs[0].to_bytes()) == publisher.jobs[0]


def test_an_image_document_becomes_a_job_and_a_huge_one_is_answered():
    document = {"file_id": "doc", "file_unique_id": "docu", "mime_type": "image/png",
                "file_name": "me.png", "file_size": 2_000_000}
    (_, status, _), publisher = post(update(document=document))
    assert status == 200
    [job] = publisher.jobs
    assert (job.file_id, job.width, job.height, job.file_size) == ("doc", 0, 0, 2_000_000)

    huge = {**document, "file_size": 30_000_000}
    result, publisher = post(update(document=huge, language="ru"))
    assert answer_of(result)["text"] == text("file_too_large", "ru")
    assert publisher.jobs == []


@pytest.mark.parametrize("file_id", ["f" * 600, "", "Ag\ud800"],
                         ids=["over-long", "empty", "lone surrogate"])
def test_a_photo_that_makes_no_valid_job_is_a_bad_request(file_id, capsys):
    photo = [{"file_id": file_id, "file_unique_id": "u", "width": 800, "height": 600}]
    (_, status, _), publisher = post(update(photo=photo))
    assert status == 400 and publisher.jobs == []
    [record] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert record["message"].startswith("update makes no valid job")
    assert record["update_id"] == 100


def test_photo_size_choice():
    objects = [PhotoSize(**s) for s in PHONE_PHOTO]
    assert detection_side(Settings()) == 640
    assert choose_photo_size(objects, 640).width == 800
    assert choose_photo_size(list(reversed(objects)), 640).width == 800
    assert choose_photo_size(objects[:2], 640).width == 320  # small photo: the largest
    portrait = [PhotoSize(**s) for s in sizes((68, 90), (240, 320), (600, 800))]
    assert choose_photo_size(portrait, 640).height == 800
    with pytest.raises(ValueError):
        choose_photo_size([], 640)


# -- groups -------------------------------------------------------------------------------


def group(**kwargs: Any) -> dict:
    return update(chat_type="supergroup", **kwargs)


def test_group_photos_are_ignored_unless_the_caption_mentions_the_bot():
    for caption in (None, "look at this", "@SomeoneElse", f"@{BOT}x"):
        extra = {"caption": caption} if caption else {}
        (body, status, _), publisher = post(group(photo=PHONE_PHOTO, **extra))
        assert (body, status, publisher.jobs) == ("", 200, []), caption

    mention = f"@{BOT}"
    entity = [{"type": "mention", "offset": 4, "length": len(mention)}]
    for extra in ({"caption": f"who {mention}?"},
                  {"caption": f"who {mention}", "caption_entities": entity},
                  {"caption": f"who {mention.upper()}"}):
        (_, status, _), publisher = post(group(photo=PHONE_PHOTO, **extra))
        assert status == 200 and len(publisher.jobs) == 1, extra
        assert publisher.jobs[0].chat_type == "supergroup"
        assert publisher.jobs[0].chat_id == -1042


def test_lookalike_as_a_reply_to_a_photo_points_the_job_at_the_photo():
    photo_message = {"message_id": 3, "date": 1_700_000_000, "photo": PHONE_PHOTO,
                     "chat": {"id": -1042, "type": "group", "title": "Friends"}}
    for form in ("/lookalike", f"/lookalike@{BOT}"):
        body = group(text=form, reply_to_message=photo_message,
                     entities=[{"type": "bot_command", "offset": 0, "length": len(form)}])
        body["message"]["chat"]["type"] = "group"
        (_, status, _), publisher = post(body)
        assert status == 200
        [job] = publisher.jobs
        assert (job.message_id, job.file_id, job.chat_type) == (3, "file-800x600", "group")


def test_lookalike_without_a_photo_asks_for_a_reply_and_others_are_ignored():
    entities = [{"type": "bot_command", "offset": 0, "length": 10}]
    result, publisher = post(group(text="/lookalike", entities=entities, language="ru"))
    method = answer_of(result)
    assert method["text"] == text("group_reply_needed", "ru")
    assert method["reply_parameters"]["message_id"] == 7
    assert publisher.jobs == []

    other = "/lookalike@OtherBot"
    ignored = [group(text=other, entities=[{"type": "bot_command", "offset": 0,
                                            "length": len(other)}]),
               group(text="hello everyone"),
               group(text="/start@OtherBot", entities=[{"type": "bot_command", "offset": 0,
                                                        "length": 15}])]
    for body in ignored:
        (answer, status, _), publisher = post(body)
        assert (answer, status, publisher.jobs) == ("", 200, [])


def test_group_commands_reply_to_the_command():
    body = command(f"/help@{BOT}", chat_type="group")
    method = answer_of(post(body)[0])
    assert method["text"] == text("help") and method["reply_parameters"]["message_id"] == 7


# -- other updates ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["edited_message", "channel_post", "edited_channel_post"])
def test_edits_and_channel_posts_are_ignored(kind):
    body = update(photo=PHONE_PHOTO)
    body[kind] = body.pop("message")
    if kind != "edited_message":
        body[kind]["chat"] = {"id": -100, "type": "channel", "title": "News"}
    (answer, status, _), publisher = post(body)
    assert (answer, status, publisher.jobs) == ("", 200, [])


def test_unknown_update_types_are_ignored():
    (answer, status, _), _ = post({"update_id": 5, "some_future_field": {"a": 1}})
    assert (answer, status) == ("", 200)


def test_a_failed_publish_answers_503_so_telegram_retries():
    (body, status, _), publisher = post(update(photo=PHONE_PHOTO),
                                        publisher=Recorder(fail=True))
    assert status == 503 and publisher.jobs == [] and "try again" in body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3), max_leaves=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.dictionaries(
    st.sampled_from(["message_id", "date", "chat", "from", "text", "photo", "document",
                     "caption", "entities", "reply_to_message", "caption_entities"]),
    json_values), update_id=json_values)
def test_arbitrary_updates_never_crash(message, update_id):
    body = {"update_id": update_id, "message": message}
    (_, status, _), publisher = post(body)
    assert status in (200, 400)
    assert len(publisher.jobs) <= 1


# -- the real Pub/Sub emulator ------------------------------------------------------------


@pytest.fixture(scope="module")
def pubsub(monkeypatch_module):
    from stack.emulators import EmulatorUnavailable, start_pubsub

    try:
        emulator = start_pubsub("webhook-test")
    except EmulatorUnavailable as exc:
        pytest.skip(str(exc))
    monkeypatch_module.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
    monkeypatch_module.setenv("GOOGLE_CLOUD_PROJECT", "webhook-test")
    yield emulator
    emulator.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_jobs_reach_the_emulator_with_the_update_id_attribute(pubsub):
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    publisher_client = pubsub_v1.PublisherClient()
    topic = "projects/webhook-test/topics/jobs"
    subscription = "projects/webhook-test/subscriptions/jobs-pull"
    publisher_client.create_topic(name=topic)
    subscriber.create_subscription(request={"name": subscription, "topic": topic,
                                            "enable_message_ordering": True})

    publisher = PubSubPublisher(topic, timeout=10)
    (_, status, _), _ = post(update(777, photo=PHONE_PHOTO), publisher=publisher)
    assert status == 200
    started = time.monotonic()
    for _ in range(5):  # warm
        post(update(778, photo=PHONE_PHOTO), publisher=publisher)
    per_publish = (time.monotonic() - started) / 5
    print(f"publish to the emulator: {per_publish * 1000:.1f} ms per update")

    response = subscriber.pull(subscription=subscription, max_messages=10, timeout=10)
    received = [m.message for m in response.received_messages]
    subscriber.acknowledge(subscription=subscription,
                           ack_ids=[m.ack_id for m in response.received_messages])
    first = Job.from_bytes(received[0].data)
    assert first.update_id == 777 and first.file_id == "file-800x600"
    assert received[0].attributes["update_id"] == "777"
    assert {m.ordering_key for m in received} == {"42"}  # the chat: one at a time, in order
    assert [Job.from_bytes(m.data).update_id for m in received] == [777] + [778] * 5
    subscriber.close()


def test_a_failed_publish_does_not_block_the_chats_next_photos(pubsub):
    """The client pauses an ordering key after a failed publish; the webhook resumes it,
    so Telegram's redelivery and the chat's next photos are published."""
    from google.cloud import pubsub_v1

    topic = "projects/webhook-test/topics/created-late"
    publisher = PubSubPublisher(topic, timeout=3)
    (_, status, _), _ = post(update(901, photo=PHONE_PHOTO), publisher=publisher)
    assert status == 503  # no topic yet
    pubsub_v1.PublisherClient().create_topic(name=topic)
    (_, status, _), _ = post(update(901, photo=PHONE_PHOTO), publisher=publisher)
    assert status == 200
    (_, status, _), _ = post(update(902, photo=PHONE_PHOTO), publisher=publisher)
    assert status == 200


def test_a_missing_topic_answers_503_within_the_timeout(pubsub):
    publisher = PubSubPublisher("projects/webhook-test/topics/absent", timeout=3)
    started = time.monotonic()
    (_, status, _), _ = post(update(photo=PHONE_PHOTO), publisher=publisher)
    assert status == 503
    assert time.monotonic() - started < 10


# -- the webhook stays free of face code --------------------------------------------------


def test_handling_an_update_imports_no_face_code():
    script = f"""
import json, os, sys
import flask
import main
from functions import webhook
from shared.instance import Lazy

class Nothing:
    def publish(self, job): return "1"

webhook.job_publisher = Lazy(Nothing)
os.environ["TELEGRAM_WEBHOOK_SECRET"] = "x"
body = {json.dumps(update(photo=PHONE_PHOTO))!r}
app = flask.Flask("probe")
with app.test_request_context("/", method="POST", data=body,
        headers={{"{SECRET_HEADER}": "x"}}, content_type="application/json"):
    result = main.webhook(flask.request)
assert result[1] == 200, result
heavy = sorted(m for m in ("dlib", "nmslib", "numpy", "PIL", "shared.faces", "shared.index",
                           "shared.matching", "shared.models") if m in sys.modules)
print(json.dumps(heavy))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


# -- buttons under answers (callback queries) ---------------------------------------------


def callback(data: str | None, *, update_id: int = 900, chat_type: str = "private",
             photo: dict | None = None, accessible: bool = True, language: str = "en",
             presser: int = 77) -> dict:
    """A press of a button under the bot's answer (message 50) to the user's photo."""
    asked = update(chat_type=chat_type, photo=PHONE_PHOTO)["message"] if photo is None \
        else photo
    chat = update(chat_type=chat_type)["message"]["chat"]
    answer = {"message_id": 50, "date": 1_700_000_100, "chat": chat,
              "from": {"id": 123, "is_bot": True, "first_name": "Lookalike"},
              "photo": sizes((320, 160), (640, 320)), "caption": "Looks like:"}
    if asked:
        answer["reply_to_message"] = asked
    if not accessible:  # Telegram sends only the chat, the id and date 0
        answer = {"message_id": 50, "date": 0, "chat": chat}
    query = {"id": "4411", "chat_instance": "-77", "message": answer,
             "from": {"id": presser, "is_bot": False, "first_name": "Bo",
                      "language_code": language}}
    if data is not None:
        query["data"] = data
    return {"update_id": update_id, "callback_query": query}


def test_a_button_becomes_a_follow_up_job_answered_in_the_response():
    result, publisher = post(callback("la1:f:0", language="ru"))
    assert answer_of(result) == {"method": "answerCallbackQuery", "callback_query_id": "4411"}
    [job] = publisher.jobs
    assert (job.update_id, job.chat_id, job.message_id, job.edit_message_id, job.view) == (
        900, 42, 7, 50, "la1:f:0")
    # The photo again, in the size a new photo would get; the presser's language.
    assert (job.file_id, job.language_code) == ("file-800x600", "ru")


def test_in_a_group_anyone_may_press():
    result, publisher = post(callback("la1:a:1", chat_type="supergroup", presser=999))
    assert answer_of(result)["method"] == "answerCallbackQuery"
    [job] = publisher.jobs
    assert (job.chat_id, job.chat_type, job.view) == (-1042, "supergroup", "la1:a:1")


@pytest.mark.parametrize(("data", "key"), [
    (None, "button_unknown"), ("", "button_unknown"), ("la1:f:7", "button_unknown"),
    ("la0:f:0", "button_unknown"), ("la1:f:0" + "x" * 100, "button_unknown"),
    ("' OR 1=1 --", "button_unknown")])
def test_forged_or_over_long_data_gets_a_polite_answer_and_no_job(data, key):
    result, publisher = post(callback(data, language="ru"))
    assert answer_of(result) == {"method": "answerCallbackQuery", "callback_query_id": "4411",
                                 "text": text(key, "ru")}
    assert publisher.jobs == []


def test_a_button_whose_answer_or_photo_is_gone_is_explained():
    for update_, key in ((callback("la1:f:0", accessible=False), "button_too_old"),
                         (callback("la1:f:0", photo={}), "button_photo_gone")):
        result, publisher = post(update_)
        assert answer_of(result)["text"] == text(key, "en")
        assert publisher.jobs == []
    # The answered message is a reply to a text, not a photo.
    text_message = update(text="hello")["message"]
    result, publisher = post(callback("la1:m:0", photo=text_message))
    assert answer_of(result)["text"] == text("button_photo_gone", "en")
    assert publisher.jobs == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(query=st.dictionaries(
    st.sampled_from(["id", "from", "message", "data", "chat_instance"]), json_values))
def test_arbitrary_callback_queries_never_crash(query):
    (_, status, _), publisher = post({"update_id": 3, "callback_query": query})
    assert status in (200, 400)
    assert len(publisher.jobs) <= 1


def test_a_chat_over_its_photo_quota_is_told_once_then_dropped(gcs_bucket):
    """The quota in fake-gcs-server: two photos published, the third answered in the
    sender's language, the fourth dropped silently; another chat is not affected."""
    import uuid

    from functions.quota import PhotoQuota
    from shared.storage import GcsStore

    quota = PhotoQuota(GcsStore(gcs_bucket, f"quotas-{uuid.uuid4().hex[:8]}"), 2, 600)
    limited = Settings(bot_username=BOT, photo_quota=2, photo_quota_window_seconds=600)
    publisher = Recorder()

    def send(update_id: int, chat_id: int = 42) -> tuple:
        body = update(update_id, chat_id=chat_id, language="ru", photo=PHONE_PHOTO)
        with _app.test_request_context("/", method="POST", data=json.dumps(body).encode(),
                                       headers={SECRET_HEADER: SECRET},
                                       content_type="application/json"):
            return handle(flask.request, limited, publisher, SECRET, clock=lambda: NOW,
                          quota=quota)

    def accepted(chat_id: int = 42) -> tuple:  # published: "sending photo..." at once
        return json.dumps({"method": "sendChatAction", "chat_id": chat_id,
                           "action": "upload_photo"}), 200

    assert [send(i)[:2] for i in (1, 2, 1)] == [accepted()] * 3  # update 1 came twice
    told = send(3)
    assert told[1] == 200
    answer = json.loads(told[0])
    assert answer["method"] == "sendMessage" and answer["chat_id"] == 42
    assert answer["text"] == text("photo_quota", "ru", limit=2, minutes=10)
    assert answer["reply_parameters"]["message_id"] == 7
    assert send(4)[:2] == ("", 200)
    assert send(5, chat_id=43)[:2] == accepted(43)
    assert [(job.chat_id, job.update_id) for job in publisher.jobs] == [
        (42, 1), (42, 2), (42, 1), (43, 5)]


def test_a_button_pressed_over_the_photo_quota_is_always_answered(gcs_bucket):
    """A press makes a job too, so it counts; over the quota it gets its
    answerCallbackQuery with the notice every time (Telegram waits for an answer)."""
    import uuid

    from functions.quota import PhotoQuota
    from shared.storage import GcsStore

    quota = PhotoQuota(GcsStore(gcs_bucket, f"quotas-{uuid.uuid4().hex[:8]}"), 1, 600)
    limited = Settings(bot_username=BOT, photo_quota=1, photo_quota_window_seconds=600)
    publisher = Recorder()

    def press(update_id: int) -> dict:
        body = callback("la1:f:0", update_id=update_id, language="ru")
        with _app.test_request_context("/", method="POST", data=json.dumps(body).encode(),
                                       headers={SECRET_HEADER: SECRET},
                                       content_type="application/json"):
            result, status, _ = handle(flask.request, limited, publisher, SECRET,
                                       clock=lambda: NOW, quota=quota)
        assert status == 200
        return json.loads(result)

    assert press(1) == {"method": "answerCallbackQuery", "callback_query_id": "4411"}
    notice = {"method": "answerCallbackQuery", "callback_query_id": "4411",
              "text": text("press_quota", "ru", limit=1, minutes=10), "show_alert": True}
    assert press(2) == notice
    assert press(3) == notice
    assert "нажатий" in notice["text"] and "нажмите" in notice["text"]
    assert [job.update_id for job in publisher.jobs] == [1]


TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.mark.parametrize("header", [
    {"X-Cloud-Trace-Context": f"{TRACE.upper()}/12345;o=1"},
    {"traceparent": f"00-{TRACE}-b7ad6b7169203331-01"},
])
def test_the_update_logs_and_its_job_carry_the_requests_trace(header, capsys, monkeypatch):
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "lookalike-test")
    publisher = Recorder()
    body = json.dumps(update(200, photo=PHONE_PHOTO)).encode()
    with _app.test_request_context("/", method="POST", data=body,
                                   headers={SECRET_HEADER: SECRET, **header},
                                   content_type="application/json"):
        assert handle(flask.request, SETTINGS, publisher, SECRET, clock=lambda: NOW)[1] == 200
    [job] = publisher.jobs
    assert job.trace == TRACE and Job.from_bytes(job.to_bytes()).trace == TRACE
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and '"webhook"' in line]
    assert lines and all(line["logging.googleapis.com/trace"] ==
                         f"projects/lookalike-test/traces/{TRACE}" for line in lines)


def test_without_a_trace_header_nothing_is_made_up(capsys):
    publisher = Recorder()
    post(update(201, photo=PHONE_PHOTO), publisher=publisher)
    assert publisher.jobs[0].trace == ""
    assert "logging.googleapis.com/trace" not in capsys.readouterr().out
