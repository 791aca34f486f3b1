"""The worker function in-process: real CloudEvents as functions-framework builds them from
Pub/Sub pushes, the local Bot API server over HTTP, and fake-gcs-server holding the model
files and the demo gallery published as an index version."""

from __future__ import annotations

import base64
import gc
import itertools
import json
import logging
import re
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cloudevents.http import CloudEvent
from telegram.error import NetworkError

from functions import worker
from functions.worker_markers import MarkerBusy, Markers
from index_builder.publish import activate, publish
from shared.config import DEMO_GALLERY
from shared.followups import View
from shared.jobs import Job
from shared.models import DESCRIPTOR_FILE, LANDMARKS_FILE, packaged_model_dir
from shared.storage import GcsStore
from shared.texts import text
from stack.bot_api import BotApiServer, SentMessage
from tests.sexed_gallery import gallery_with_sex, sex_of

TOKEN = "987654:worker-test-SECRET_token"
_ids = itertools.count(1000)


@pytest.fixture(scope="module")
def bucket(gcs_emulator) -> str:
    """Models at models/, the demo gallery published as index version v1."""
    from shared.storage import gcs_client

    name = f"worker-{uuid.uuid4().hex[:10]}"
    gcs_client().create_bucket(name)
    store = GcsStore(name)
    for model in (LANDMARKS_FILE, DESCRIPTOR_FILE):
        store.write(f"models/{model}", (packaged_model_dir() / model).read_bytes())
    publish(GcsStore(name, "index"), DEMO_GALLERY, "v1")
    return name


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    # Shared by the module's tests, as an instance's disk is shared by its invocations.
    return tmp_path_factory.mktemp("worker-cache")


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(TOKEN) as server:
        yield server


@pytest.fixture
def env(monkeypatch, bucket: str, cache_dir: Path, api: BotApiServer) -> Iterator[str]:
    """A fresh worker instance configured for the emulators; returns the markers URI."""
    markers = f"gs://{bucket}/markers-{uuid.uuid4().hex[:8]}"
    for name, value in {
        "MODELS_URI": f"gs://{bucket}/models", "INDEX_URI": f"gs://{bucket}/index",
        "MARKERS_URI": markers, "CACHE_DIR": str(cache_dir),
        "TELEGRAM_API_URL": api.url, "TELEGRAM_TIMEOUT_SECONDS": "10",
    }.items():
        monkeypatch.setenv("LOOKALIKE_" + name, value)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    worker.instance_state.reset()
    yield markers
    worker.instance_state.reset()


def job_for(file: dict, *, language_code: str = "en", received_at: float | None = None,
            **overrides: object) -> Job:
    values = dict(update_id=next(_ids), chat_id=4242, message_id=next(_ids),
                  file_id=file["file_id"], file_unique_id=file["file_unique_id"],
                  width=file.get("width", 0), height=file.get("height", 0),
                  file_size=file.get("file_size", 0), language_code=language_code,
                  received_at=time.time() if received_at is None else received_at)
    values.update(overrides)
    return Job(**values)


def pubsub_event(data: bytes, event_type: str = worker.PUBSUB_EVENT) -> CloudEvent:
    """The CloudEvent functions-framework makes of a Pub/Sub push request."""
    message_id = str(next(_ids))
    published = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return CloudEvent(
        {"specversion": "1.0", "type": event_type, "id": message_id, "time": published,
         "source": "//pubsub.googleapis.com/projects/local-project/topics/lookalike-jobs"},
        {"message": {"data": base64.b64encode(data).decode(), "messageId": message_id,
                     "publishTime": published, "attributes": {}},
         "subscription": "projects/local-project/subscriptions/lookalike-worker"})


def photo(api: BotApiServer, path: Path) -> dict:
    return api.add_photo(path.read_bytes())[-1]  # the webhook picks the largest size


def sent_methods(api: BotApiServer) -> list[str]:
    return [m.method for m in api.sent]


def test_labelled_person_gets_one_picture_naming_them_first(env, api, labelled) -> None:
    job = job_for(photo(api, labelled["Barack_Obama"][-1]))  # not a gallery photo
    worker.handle_event(pubsub_event(job.to_bytes()))
    [reply] = api.sent
    assert reply.method == "sendPhoto" and reply.chat_id == job.chat_id
    assert reply.reply_to == job.message_id and reply.photo
    lines = reply.caption.splitlines()
    assert lines[0] == text("result_title", "en")
    assert lines[1] == "1. " + text("result_themself", "en", name="Barack Obama")
    assert len(lines) == 6  # top 3, then the credit of the gallery picture shown
    assert reply.parse_mode == "HTML"
    assert lines[5] == "Photo: face_recognition project (Adam Geitgey), MIT"
    assert ("Barack Obama", "https://en.wikipedia.org/wiki/Barack_Obama") in reply.links


def test_same_job_delivered_twice_is_answered_once(env, api, labelled, caplog) -> None:
    event = pubsub_event(job_for(photo(api, labelled["Kit_Harington"][0])).to_bytes())
    worker.handle_event(event)
    caplog.clear()
    worker.handle_event(event)
    assert sent_methods(api) == ["sendPhoto"]
    # The claim is taken while the photo downloads: the duplicate may fetch it, no more.
    assert [r.getMessage() for r in caplog.records if r.name == "functions.worker"] == [
        "job already answered; skipped"]


def test_jobs_served_at_once_take_turns_at_the_face_work(env, api, labelled,
                                                        monkeypatch) -> None:
    """An instance serving two jobs at once (WORKER_CONCURRENCY) matches one photo at a
    time, and a job waiting for its chat's send slot does not hold up another chat."""
    matching, most = [0], [0]
    counter = threading.Lock()
    real_match = worker.match_photo

    def counted(*args, **kwargs):
        with counter:
            matching[0] += 1
            most[0] = max(most[0], matching[0])
        try:
            return real_match(*args, **kwargs)
        finally:
            with counter:
                matching[0] -= 1

    monkeypatch.setattr(worker, "match_photo", counted)
    # Chat 1's next slot comes well after two matches, however busy the machine.
    monkeypatch.setenv("LOOKALIKE_CHAT_SEND_INTERVAL_SECONDS", "5")
    file = photo(api, labelled["Barack_Obama"][-1])
    worker.handle_event(pubsub_event(job_for(file, chat_id=1).to_bytes()))
    # Chat 1 was just answered: its next message waits for its slot.
    jobs = [job_for(file, chat_id=1), job_for(file, chat_id=2)]
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: worker.handle_event(pubsub_event(job.to_bytes())), jobs))
    assert most[0] == 1
    answered = {m.chat_id: m.time for m in api.sent[1:]}
    assert answered[2] < answered[1], answered


def test_malformed_job_and_wrong_event_type_are_acknowledged(env, api, labelled) -> None:
    worker.handle_event(pubsub_event(b'{"not": "a job"}'))
    worker.handle_event(pubsub_event(b"\xff\xfe not json"))
    bad = pubsub_event(b"{}")
    bad.data["message"]["data"] = "***not base64***"
    worker.handle_event(bad)
    job = job_for(photo(api, labelled["Barack_Obama"][0]))
    worker.handle_event(pubsub_event(job.to_bytes(), "google.cloud.storage.object.v1.finalized"))
    # Claimed while the photo downloads: nothing is sent, the claim's error is raised.
    assert api.sent == [] and api.downloads() <= 1


def test_old_job_is_dropped(env, api, labelled, caplog) -> None:
    job = job_for(photo(api, labelled["Barack_Obama"][0]), received_at=time.time() - 3600)
    with caplog.at_level(logging.INFO):
        worker.handle_event(pubsub_event(job.to_bytes()))
    # Claimed while the photo downloads: nothing is sent, the claim's error is raised.
    assert api.sent == [] and api.downloads() <= 1
    assert any("dropped" in r.getMessage() for r in caplog.records)


def test_russian_user_gets_russian_text(env, api, labelled, faces_dir) -> None:
    worker.handle_event(pubsub_event(job_for(photo(api, labelled["Rose_Leslie"][0]),
                                             language_code="ru-RU").to_bytes()))
    no_face = job_for(photo(api, faces_dir / "hard" / "noface_cars.jpg"), language_code="ru")
    worker.handle_event(pubsub_event(no_face.to_bytes()))
    picture, problem = api.sent
    assert picture.caption.startswith(text("result_title", "ru"))
    assert problem.method == "sendMessage" and problem.text == text("no_face", "ru")


def expected_answer(entry: dict) -> str:
    if "dlib_hog_faces_upsample1" not in entry:
        return "unreadable_image"
    return "picture" if entry["dlib_hog_faces_upsample1"] or entry.get("largest_face_px") \
        else "any"


def test_every_hard_file_gets_a_clear_answer(env, api, faces_dir, expected) -> None:
    answers = {}
    for name, entry in sorted(expected.items()):
        path = faces_dir / name
        document = api.add_file(path.read_bytes(), path.name, "application/octet-stream")
        before = len(api.sent)
        worker.handle_event(pubsub_event(job_for(document).to_bytes()))
        [reply] = api.sent[before:]
        answers[name] = reply
        want = expected_answer(entry)
        if want == "unreadable_image":
            assert reply.text == text("unreadable_image", "en"), name
        elif want == "picture":
            assert reply.method == "sendPhoto" and reply.caption, name
        else:
            assert reply.method == "sendPhoto" or reply.text == text("no_face", "en"), name
    assert len(answers) == len(expected)
    # The same files sent as photos (Telegram re-encodes them; broken files cannot be).
    for name in ("hard/multi_selfie_many_people.jpg", "hard/noface_dog.jpg",
                 "hard/derived_tiny_48px.jpg"):
        before = len(api.sent)
        worker.handle_event(pubsub_event(job_for(photo(api, faces_dir / name)).to_bytes()))
        assert len(api.sent) == before + 1, name


def test_many_faces_fit_the_caption(env, api, faces_dir) -> None:
    worker.handle_event(pubsub_event(job_for(
        photo(api, faces_dir / "hard" / "multi_selfie_many_people.jpg")).to_bytes()))
    [reply] = api.sent
    assert reply.method == "sendPhoto" and len(reply.caption) <= 1024
    assert reply.caption.startswith(text("result_face", "en", number=1))


def test_file_too_big_to_download_is_answered(env, api) -> None:
    document = api.add_file(b"\xff\xd8" + b"\0" * (20 * 1024 * 1024 + 1), "huge.jpg")
    worker.handle_event(pubsub_event(job_for(document).to_bytes()))
    [reply] = api.sent
    assert reply.text == text("file_too_large", "en")


def test_image_with_too_many_pixels_is_answered(env, api, monkeypatch) -> None:
    from PIL import Image

    monkeypatch.setenv("LOOKALIKE_MAX_IMAGE_PIXELS", "100000")
    worker.instance_state.reset()
    with tempfile.SpooledTemporaryFile() as buffer:
        Image.new("RGB", (600, 400), (90, 90, 90)).save(buffer, format="PNG")
        buffer.seek(0)
        document = api.add_file(buffer.read(), "big.png", "image/png")
    worker.handle_event(pubsub_event(job_for(document).to_bytes()))
    [reply] = api.sent
    assert reply.text == text("image_too_large", "en")


def test_bot_api_500_raises_then_redelivery_answers_once(env, api, labelled) -> None:
    event = pubsub_event(job_for(photo(api, labelled["Joe_Biden"][0])).to_bytes())
    api.fail_next("sendPhoto", 500)
    with pytest.raises(NetworkError, match="Internal Server Error"):
        worker.handle_event(event)
    assert api.sent == []
    worker.handle_event(event)  # Pub/Sub redelivers: the claim was released
    worker.handle_event(event)  # and a late duplicate is skipped
    assert sent_methods(api) == ["sendPhoto"]


def test_short_flood_wait_is_slept_and_answered_once(env, api, labelled) -> None:
    api.fail_next("sendPhoto", 429, retry_after=1)
    started = time.monotonic()
    worker.handle_event(pubsub_event(job_for(photo(api, labelled["Joe_Biden"][0])).to_bytes()))
    assert time.monotonic() - started >= 1.0
    assert sent_methods(api) == ["sendPhoto"]
    assert [c["status"] for c in api.calls if c["method"] == "sendPhoto"] == [429, 200]


def test_long_flood_wait_goes_back_to_pubsub(env, api, labelled) -> None:
    from telegram.error import RetryAfter

    event = pubsub_event(job_for(photo(api, labelled["Joe_Biden"][0])).to_bytes())
    api.fail_next("sendPhoto", 429, retry_after=60)
    with pytest.raises(RetryAfter):
        worker.handle_event(event)
    worker.handle_event(event)
    assert sent_methods(api) == ["sendPhoto"]


def test_blocked_user_is_acknowledged_and_marked_done(env, api, labelled) -> None:
    event = pubsub_event(job_for(photo(api, labelled["Joe_Biden"][0])).to_bytes())
    api.fail_next("sendPhoto", 403)
    worker.handle_event(event)  # no exception: acknowledged
    worker.handle_event(event)
    assert api.sent == []
    assert [c["status"] for c in api.calls if c["method"] == "sendPhoto"] == [403]


def test_refused_picture_falls_back_to_text(env, api, labelled) -> None:
    api.fail_next("sendPhoto", 400, description="Bad Request: IMAGE_PROCESS_FAILED")
    worker.handle_event(pubsub_event(job_for(photo(api, labelled["Joe_Biden"][0])).to_bytes()))
    [reply] = api.sent
    assert reply.method == "sendMessage"
    assert "1. " + text("result_themself", "en", name="Joe Biden") in reply.text
    # Names and links still; no credit, as no gallery picture is shown.
    assert reply.parse_mode == "HTML" and "Photo" not in reply.text
    assert ("Joe Biden", "https://en.wikipedia.org/wiki/Joe_Biden") in reply.links


def test_fresh_claim_by_another_worker_raises(env, api, labelled) -> None:
    job = job_for(photo(api, labelled["Joe_Biden"][0]))
    other = Markers(GcsStore(*env[len("gs://"):].split("/", 1)), lease_seconds=240)
    assert other.claim(job.key) is not None
    with pytest.raises(MarkerBusy):
        worker.handle_event(pubsub_event(job.to_bytes()))
    # Claimed while the photo downloads: nothing is sent, the claim's error is raised.
    assert api.sent == [] and api.downloads() <= 1


def test_missing_model_files_are_answered_not_ready(env, api, monkeypatch, labelled,
                                                   tmp_path) -> None:
    """Models not where the deployment says: a deployment error, answered and
    acknowledged. Storage that is down instead is retried: tests/e2e/
    test_reliability_faults.py::test_storage_down_at_cold_start_fails_fast_then_answers_once."""
    monkeypatch.setenv("LOOKALIKE_MODELS_URI", "gs://no-such-bucket-here/models")
    monkeypatch.setenv("LOOKALIKE_CACHE_DIR", str(tmp_path / "empty-cache"))
    worker.instance_state.reset()
    event = pubsub_event(job_for(photo(api, labelled["Joe_Biden"][0])).to_bytes())
    worker.handle_event(event)
    [reply] = api.sent
    assert reply.text == text("not_ready", "en")


def test_no_user_photo_touches_the_disk_and_the_token_stays_out_of_logs(
        env, api, labelled, faces_dir, cache_dir, monkeypatch, caplog, capsys) -> None:
    temp = Path(tempfile.mkdtemp(prefix="worker-tmp-"))
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    monkeypatch.setenv("TMPDIR", str(temp))
    before = {p for p in cache_dir.rglob("*")}
    with caplog.at_level(logging.DEBUG):
        for path in (labelled["Barack_Obama"][-1], faces_dir / "hard" / "noface_dog.jpg"):
            worker.handle_event(pubsub_event(job_for(photo(api, path)).to_bytes()))
        document = api.add_file(b"not an image", "x.jpg")
        worker.handle_event(pubsub_event(job_for(document).to_bytes()))
        api.fail_next("sendPhoto", 500)
        with pytest.raises(NetworkError):
            worker.handle_event(pubsub_event(job_for(photo(api, labelled["Joe_Biden"][0]))
                                             .to_bytes()))
        # What httpx writes at INFO when its level is lowered again.
        logging.getLogger("httpx").warning('HTTP Request: POST %s/bot%s/sendPhoto "200 OK"',
                                           api.url, TOKEN)
    assert len(api.sent) == 3
    new = {p for p in cache_dir.rglob("*")} - before
    assert all(p.relative_to(cache_dir).parts[0] in ("models", "index") for p in new), new
    assert list(temp.rglob("*")) == []
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records)
    printed = capsys.readouterr()
    assert any("/bot<redacted>/sendPhoto" in r.getMessage() for r in caplog.records)
    secret = TOKEN.split(":")[1]
    for output in (logged, printed.out, printed.err):
        assert secret not in output
    # The logs are JSON lines Cloud Logging understands.
    lines = [json.loads(line) for line in printed.out.splitlines() if line.startswith("{")]
    assert lines and all({"severity", "message"} <= set(line) for line in lines)


def test_index_refresh_swaps_in_a_new_version(env, api, bucket, cache_dir, monkeypatch,
                                              labelled, caplog) -> None:
    monkeypatch.setenv("LOOKALIKE_INDEX_REFRESH_SECONDS", "0")
    worker.instance_state.reset()
    index = GcsStore(bucket, "index")
    job = job_for(photo(api, labelled["Barack_Obama"][-1]))
    worker.handle_event(pubsub_event(job.to_bytes()))
    first = worker.instance_state().assets.get()
    assert first.index_version == "v1"
    replaced = weakref.ref(first.index)
    del first
    publish(index, DEMO_GALLERY, "v2")
    try:
        with caplog.at_level(logging.INFO):
            worker.handle_event(pubsub_event(job_for(photo(api, labelled["Barack_Obama"][-1]))
                                             .to_bytes()))
        assert worker.instance_state().assets.get().index_version == "v2"
        # The cold start froze what it made out of the garbage collector's passes
        # (shared/instance.py: long_lived); the replaced version is freed all the same.
        gc.collect()
        assert replaced() is None
        assert sorted(p.name for p in (cache_dir / "index").iterdir()) == ["v2"]
        assert any("replaces" in r.getMessage() for r in caplog.records)
        assert [m.method for m in api.sent] == ["sendPhoto", "sendPhoto"]
    finally:
        activate(index, "v1")


# -- follow-ups: buttons under every answer, each press redrawing it in place ---------------

_updates = itertools.count(70_000)


@pytest.fixture(scope="module")
def sexed_index(bucket, tmp_path_factory) -> str:
    """The demo gallery with `sex` (tests/sexed_gallery.py), published beside the demo's."""
    gallery = gallery_with_sex(tmp_path_factory.mktemp("gallery") / "v1")
    publish(GcsStore(bucket, "index-sex"), gallery, "v1")
    return f"gs://{bucket}/index-sex"


@pytest.fixture
def sexed(env, sexed_index, monkeypatch) -> str:
    """A fresh worker instance whose index records every celebrity's sex."""
    monkeypatch.setenv("LOOKALIKE_INDEX_URI", sexed_index)
    worker.instance_state.reset()
    return env


def celebrity_id(name: str) -> str:
    """The gallery id of a name a caption shows (in any of the gallery's languages)."""
    for record in json.loads((DEMO_GALLERY / "celebrities.json").read_text()):
        if name in (record["name"], *record.get("names", {}).values()):
            return str(record["id"])
    raise AssertionError(f"{name!r} is not in the gallery")


def ranked(caption: str) -> list[tuple[int, str]]:
    """(rank, name) of each look-alike line: "N. NAME — P%" or "N. this may be NAME
    themself" (the calibrated score's words for the person themself)."""
    before, _, after = text("result_themself", "en", name="\x00").partition("\x00")
    line = rf"^(\d+)\. (?:{re.escape(before)}(.+?){re.escape(after)}$|(.+?) — )"
    return [(int(rank), themself or name)
            for rank, themself, name in re.findall(line, caption, re.M)]


def buttons(message: SentMessage) -> list[tuple[str, str]]:
    markup = message.reply_markup or {"inline_keyboard": []}
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


def press(api: BotApiServer, asked, answer: SentMessage, view: View, **overrides):
    """The job the webhook makes of a press of `view`'s button under `answer`."""
    return job_for(asked, update_id=next(_updates), message_id=answer.reply_to,
                   view=view.encode(), edit_message_id=answer.message_id, **overrides)


def first_answer(api, path) -> tuple[dict, SentMessage]:
    asked = photo(api, path)
    job = job_for(asked)
    worker.handle_event(pubsub_event(job.to_bytes()))
    [answer] = [m for m in api.sent if m.chat_id == job.chat_id and m.method == "sendPhoto"]
    return asked, answer


def test_every_answer_has_the_buttons(sexed, api, labelled) -> None:
    _, answer = first_answer(api, labelled["Joe_Biden"][-1])
    assert buttons(answer) == [("Women only", "la1:f:0"), ("Men only", "la1:m:0"),
                               ("More", "la1:a:1")]


def test_women_only_then_more_edit_the_answer_in_place(sexed, api, labelled) -> None:
    asked, answer = first_answer(api, labelled["Barack_Obama"][-1])
    assert ranked(answer.caption)[0] == (1, "Barack Obama")

    worker.handle_event(pubsub_event(press(api, asked, answer, View("female")).to_bytes()))
    women = api.sent[-1]
    assert (women.method, women.message_id, women.chat_id) == (
        "editMessageMedia", answer.message_id, answer.chat_id)
    assert women.photo and women.photo != answer.photo  # a new picture: a woman beside
    names = ranked(women.caption)
    assert [rank for rank, _ in names] == [1, 2, 3]
    assert {sex_of(celebrity_id(name)) for _, name in names} == {"female"}
    assert buttons(women) == [("Men only", "la1:m:0"), ("Everyone", "la1:a:0"),
                              ("More", "la1:f:1")]

    worker.handle_event(pubsub_event(press(api, asked, answer, View("female", 1)).to_bytes()))
    more = api.sent[-1]
    assert (more.method, more.message_id) == ("editMessageMedia", answer.message_id)
    later = ranked(more.caption)
    assert [rank for rank, _ in later] == [4, 5, 6]
    assert {sex_of(celebrity_id(name)) for _, name in later} == {"female"}
    assert not {name for _, name in later} & {name for _, name in names}
    # Six women in the gallery: no third page, and every filter to go back to the top.
    assert buttons(more) == [("Women only", "la1:f:0"), ("Men only", "la1:m:0"),
                             ("Everyone", "la1:a:0")]
    assert [m.method for m in api.sent] == ["sendPhoto", "editMessageMedia",
                                            "editMessageMedia"]


def test_the_same_press_delivered_twice_edits_once(sexed, api, labelled) -> None:
    asked, answer = first_answer(api, labelled["Kit_Harington"][0])
    event = pubsub_event(press(api, asked, answer, View("male", 1)).to_bytes())
    worker.handle_event(event)
    worker.handle_event(event)
    assert [m.method for m in api.sent] == ["sendPhoto", "editMessageMedia"]
    assert [rank for rank, _ in ranked(api.sent[-1].caption)] == [4, 5, 6]


def test_two_presses_of_one_button_both_edit_without_failing(sexed, api, labelled) -> None:
    asked, answer = first_answer(api, labelled["Joe_Biden"][0])
    for _ in range(2):  # two presses: two updates, two jobs
        worker.handle_event(pubsub_event(press(api, asked, answer, View("male")).to_bytes()))
    # editMessageMedia always uploads a picture, so both edit; neither fails the job.
    assert [m.method for m in api.sent] == ["sendPhoto", "editMessageMedia", "editMessageMedia"]


def test_a_photo_telegram_no_longer_serves_is_explained(sexed, api, labelled) -> None:
    asked, answer = first_answer(api, labelled["Rose_Leslie"][0])
    api.forget_file(asked["file_id"])
    worker.handle_event(pubsub_event(press(api, asked, answer, View("male")).to_bytes()))
    gone = api.sent[-1]
    assert (gone.method, gone.reply_to, gone.text) == (
        "sendMessage", answer.message_id, text("photo_gone", "en"))


def test_a_deleted_answer_is_acknowledged_without_a_message(sexed, api, labelled) -> None:
    asked, answer = first_answer(api, labelled["Rose_Leslie"][0])
    api.delete_message(answer.chat_id, answer.message_id)
    worker.handle_event(pubsub_event(press(api, asked, answer, View("male")).to_bytes()))
    assert [m.method for m in api.sent] == ["sendPhoto"]


def test_a_waiting_job_keeps_sending_photo_showing(sexed, api, labelled) -> None:
    # The webhook set the action 12 s ago (a queue, a cold start): the worker repeats it
    # at once and then every 4.5 s, and never after the answer.
    job = job_for(photo(api, labelled["Joe_Biden"][0]), received_at=time.time() - 12)
    worker.handle_event(pubsub_event(job.to_bytes()))
    [answer] = api.sent
    actions = [(chat, action, at) for chat, action, at in api.chat_actions
               if chat == job.chat_id]
    assert actions and {action for _, action, _ in actions} == {"upload_photo"}
    assert all(at <= answer.time for _, _, at in actions)
    gaps = [b - a for (_, _, a), (_, _, b) in itertools.pairwise(actions)]
    assert all(gap >= 4.0 for gap in gaps)


def test_a_quick_job_sends_no_action_of_its_own(sexed, api, labelled) -> None:
    job = job_for(photo(api, labelled["Joe_Biden"][0]))
    worker.handle_event(pubsub_event(job.to_bytes()))
    [answer] = api.sent
    # The webhook's action still shows while the answer comes within 4.5 s.
    if answer.time - job.received_at < 4.5:
        assert api.chat_actions == []


def test_no_index_version_is_answered_not_ready_and_acknowledged(
        env, api, bucket, monkeypatch, labelled, caplog) -> None:
    """A first deploy before any index: each photo gets one short answer, not ten minutes
    of retries into the dead-letter topic; the first version published is then used."""
    prefix = f"first-deploy-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("LOOKALIKE_INDEX_URI", f"gs://{bucket}/{prefix}/index")
    monkeypatch.setenv("LOOKALIKE_INDEX_REFRESH_SECONDS", "0")
    worker.instance_state.reset()
    job = job_for(photo(api, labelled["Barack_Obama"][-1]), language_code="ru")
    with caplog.at_level(logging.INFO):
        worker.handle_event(pubsub_event(job.to_bytes()))  # returns: acknowledged
        worker.handle_event(pubsub_event(job.to_bytes()))  # a redelivery: skipped
    [reply] = api.sent
    assert reply.method == "sendMessage" and reply.text == text("not_ready", "ru")
    assert reply.reply_to == job.message_id
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "cannot serve" in errors[0].getMessage()
    assert [r.fields["outcome"] for r in caplog.records
            if "outcome" in getattr(r, "fields", {})] == ["not_ready"]

    publish(GcsStore(bucket, f"{prefix}/index"), DEMO_GALLERY, "v1")
    later = job_for(photo(api, labelled["Barack_Obama"][-1]))
    worker.handle_event(pubsub_event(later.to_bytes()))
    assert [m.method for m in api.sent] == ["sendMessage", "sendPhoto"], api.sent[-1].text


def test_a_press_on_a_worker_that_cannot_serve_is_answered_not_ready(
        env, api, bucket, monkeypatch, labelled) -> None:
    """A button pressed while no index version exists: one reply to the answer, acked."""
    monkeypatch.setenv("LOOKALIKE_INDEX_URI", f"gs://{bucket}/none-{uuid.uuid4().hex[:8]}")
    worker.instance_state.reset()
    job = job_for(photo(api, labelled["Rose_Leslie"][0]), view=View("female").encode(),
                  edit_message_id=999, language_code="ru")
    worker.handle_event(pubsub_event(job.to_bytes()))
    [reply] = api.sent
    assert (reply.method, reply.reply_to, reply.text) == (
        "sendMessage", 999, text("not_ready", "ru"))


def test_a_cpu_without_the_wheels_instructions_is_answered_not_ready(
        env, api, monkeypatch, labelled) -> None:
    monkeypatch.setenv("LOOKALIKE_REQUIRED_CPU_FLAGS", "avx2,no_such_cpu_flag")
    worker.instance_state.reset()
    job = job_for(photo(api, labelled["Barack_Obama"][-1]))
    worker.handle_event(pubsub_event(job.to_bytes()))
    [reply] = api.sent
    assert reply.text == text("not_ready", "en")


def test_the_jobs_log_lines_carry_the_webhooks_trace(env, api, labelled, capsys,
                                                     monkeypatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "lookalike-test")
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    job = job_for(photo(api, labelled["Barack_Obama"][-1]), trace=trace)
    worker.handle_event(pubsub_event(job.to_bytes()))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()
             if line.startswith("{") and '"functions.worker"' in line]
    [done] = [line for line in lines if "outcome" in line]
    assert done["logging.googleapis.com/trace"] == f"projects/lookalike-test/traces/{trace}"
