"""Messages generated from the Bot API spec (tests/telegram_updates.py), carried from the
webhook to the worker: photos of any sizes, documents of any MIME type, captions and
commands, photos replied to in groups. Their files are registered with the local Bot
API server (strict: the test fails if the worker sends a field the spec does not have),
the webhook's handler decides, and every job it publishes gets exactly one reply from
the worker, to the message the job names, in that chat.

Fixtures come from tests/test_worker.py: fake-gcs-server with the models and the demo
gallery, a fresh worker instance per test, the local Bot API server."""

from __future__ import annotations

import io
import itertools
import json
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from functions import worker
from stack.bot_api import BotApiServer
from tests import test_worker as base
from tests.reliability_budget import record, scaled
from tests.telegram_updates import strategies
from tests.test_webhook import Recorder, post
from tests.test_worker import pubsub_event

bucket, cache_dir, api, env = base.bucket, base.cache_dir, base.api, base.env

EXAMPLES = scaled(40, 400)
_ids = itertools.count(5_000_000)
_outcomes: Counter[str] = Counter()
GENERATED = strategies()


def _jpeg(size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (120, 130, 140)).save(buffer, format="JPEG")
    return buffer.getvalue()


CONTENTS = {"photo without a face": _jpeg((64, 48)), "not an image": b"%PDF-1.4 not a photo",
            "empty": b"", "tiny photo": _jpeg((3, 2))}


def _with_real_files(api: BotApiServer, message: dict[str, Any],
                     contents: list[bytes]) -> dict[str, Any]:
    """`message` (and the message it replies to) with its files registered with the
    Bot API server, so that the worker can download them."""
    message = dict(message)
    picks = itertools.cycle(contents)
    if message.get("photo"):
        photo = api.add_photo(CONTENTS["photo without a face"])[-1]
        message["photo"] = [{**size, "file_id": photo["file_id"],
                             "file_unique_id": photo["file_unique_id"]}
                            for size in message["photo"]]
    if message.get("document"):
        document = message["document"]
        stored = api.add_file(next(picks), "file", str(document.get("mime_type") or "x/y"))
        message["document"] = {**document, "file_id": stored["file_id"],
                               "file_unique_id": stored["file_unique_id"]}
        message["document"].pop("file_size", None)  # the real size, as Telegram knows it
    if isinstance(message.get("reply_to_message"), dict):
        message["reply_to_message"] = _with_real_files(api, message["reply_to_message"],
                                                       contents)
    return message


def _shaped(message: dict[str, Any], shape: str, photo: list[dict[str, Any]],
            document: dict[str, Any]) -> dict[str, Any]:
    """Most generated messages carry no image; a share is given one, or made a
    /lookalike reply to a photo, so that the worker gets jobs to answer."""
    if shape == "photo":
        return {**message, "photo": photo}
    if shape == "document":
        return {**message, "document": document}
    if shape == "reply to a photo":
        replied = {**(message.get("reply_to_message") or message), "photo": photo}
        return {**message, "text": "/lookalike", "reply_to_message": replied,
                "entities": [{"type": "bot_command", "offset": 0, "length": 10}]}
    return message


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(update=GENERATED.update("message"),
       shape=st.sampled_from(["as generated", "photo", "photo", "document",
                              "reply to a photo"]),
       photo=st.lists(GENERATED.of("PhotoSize", 2), min_size=1, max_size=4),
       document=GENERATED.of("Document", 2),
       chat_type=st.sampled_from(["private", "private", "group", "supergroup"]),
       contents=st.lists(st.sampled_from(sorted(CONTENTS)), min_size=1, max_size=2))
def test_generated_messages_get_exactly_one_reply_per_published_job(
        env, api, update, shape, photo, document, chat_type, contents):
    chat = next(_ids)  # a chat per example: no per-chat rate to wait for
    message = _shaped(update["message"], shape, photo, document)
    message = _with_real_files(api, message, [CONTENTS[c] for c in contents])
    message["chat"] = {**message["chat"], "id": chat, "type": chat_type}
    reply = message.get("reply_to_message")
    if isinstance(reply, dict):
        message["reply_to_message"] = {**reply, "chat": message["chat"]}
    body = {"update_id": next(_ids), "message": message}
    (answer, status, _), publisher = post(json.dumps(body).encode(), publisher=Recorder())
    assert status == 200, answer
    if not publisher.jobs:
        _outcomes["answered by the webhook" if answer else "ignored"] += 1
        return
    [job] = publisher.jobs
    before = len(api.sent)
    worker.handle_event(pubsub_event(job.to_bytes()))
    replies = [m for m in api.sent[before:] if m.chat_id == chat]
    assert len(replies) == 1 and len(api.sent) == before + 1, replies
    assert replies[0].reply_to == job.message_id
    assert replies[0].method in ("sendPhoto", "sendMessage")
    _outcomes[f"job answered by {replies[0].method}"] += 1


def test_zz_worker_spec_message_figures():
    record("spec-generated messages through the worker", examples=EXAMPLES,
           outcomes=dict(_outcomes))
    assert any(k.startswith("job answered") for k in _outcomes), _outcomes
