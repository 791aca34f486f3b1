"""Updates of every kind, generated from the Bot API spec's `Update` type
(tests/telegram_updates.py), through the webhook's real handler (the worker's side:
tests/test_worker_spec_messages.py).

The webhook answers every update Telegram could send with 200 (never a 4xx, which
would make Telegram deliver it again and again, nor a 5xx); it publishes a job only for
a new message with an image it is asked about (answered "sending photo…") or a press of
one of its buttons on an answer to one (answered `answerCallbackQuery`, as every press
is), answers only private messages and commands, with a Bot API call the spec accepts,
and every job it publishes decodes in the worker. The example count:
`tests/telegram_updates.py` `example_count()`.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.webhook import MAX_BODY_BYTES
from shared.jobs import Job
from stack.telegram_spec.check import ARRAY, PRIMITIVES, check_request, check_value, load_spec
from tests.reliability_budget import record
from tests.telegram_updates import BOT, example_count, strategies, update_kinds
from tests.test_webhook import Recorder, post

SPEC = load_spec()
USAGE = json.loads(Path(__file__).with_name("bot_api_usage.json").read_text())
EXAMPLES = example_count()
GENERATED = strategies()
_kinds: Counter[str] = Counter()
_outcomes: Counter[str] = Counter()
_types: set[str] = set()

assert BOT == "LookalikeTestBot"  # the webhook tests' bot username (tests/test_webhook.py)


def _types_in(type_name: str, value: Any) -> None:
    """Add the spec's object types `value` holds (as `type_name`) to `_types`."""
    if type_name.startswith(ARRAY):
        for item in value:
            _types_in(type_name[len(ARRAY):], item)
        return
    kind = SPEC.types.get(type_name)
    if type_name in PRIMITIVES or kind is None:
        return
    _types.add(type_name)
    if kind.subtypes:
        member = next(m for m in kind.subtypes if check_value(SPEC, m, value).ok)
        _types_in(member, value)
        return
    for name, item in value.items():
        declared = kind.field(name)
        if declared is not None:
            fits = next(t for t in declared.types if check_value(SPEC, t, item).ok)
            _types_in(fits, item)


def _images(message: dict[str, Any]) -> set[str]:
    """The file ids of the images in a message (any photo size, an image document)."""
    found = {size["file_id"] for size in message.get("photo") or []}
    document = message.get("document")
    if document and str(document.get("mime_type") or "").startswith("image/"):
        found.add(document["file_id"])
    return found


# No example database: a long run that replayed examples saved by earlier versions of
# the strategies ended in FlakyStrategyDefinition; each run draws fresh updates.
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(update=GENERATED.updates())
def test_every_kind_of_update_gets_200_and_only_images_and_buttons_become_jobs(update):
    assert check_value(SPEC, "Update", update, "update").ok  # the strategies' own promise
    kind = next(k for k in update if k != "update_id")
    _kinds[kind] += 1
    _types_in("Update", update)
    body = json.dumps(update).encode()
    (answer, status, _), publisher = post(body, publisher=Recorder())
    if len(body) > MAX_BODY_BYTES:
        assert status == 413
        _outcomes["too large"] += 1
        return
    assert status == 200, (status, answer)
    if "callback_query" in update:
        _check_button(update["callback_query"], answer, publisher.jobs)
        return
    message = update.get("message")
    chat_type = (message or {}).get("chat", {}).get("type")
    if message is None or chat_type not in ("private", "group", "supergroup"):
        assert (answer, publisher.jobs) == ("", []), "only new messages in chats are handled"
        _outcomes["ignored"] += 1
        return

    for job in publisher.jobs:
        assert Job.from_bytes(job.to_bytes()) == job
        target = message
        if job.message_id != message["message_id"] or job.file_id not in _images(message):
            target = message.get("reply_to_message") or {}
        assert job.file_id in _images(target), "the job is for an image of the message"
        assert job.message_id == target["message_id"]
        assert (job.update_id, job.chat_id, job.chat_type) == (
            update["update_id"], message["chat"]["id"], chat_type)
    if answer:
        name, call = _checked_call(answer)
        assert call["chat_id"] == message["chat"]["id"]
        assert (name == "sendChatAction") == bool(publisher.jobs), "a job shows sending photo"
    assert len(publisher.jobs) <= 1, "one job at most"
    if chat_type == "private":
        assert publisher.jobs or answer, "a private message always gets something back"
    _outcomes["job" if publisher.jobs else "answered" if answer else "ignored"] += 1


def _checked_call(answer: str) -> tuple[str, dict[str, Any]]:
    """The Bot API call in a response body, checked against the spec and the usage list."""
    call = json.loads(answer)
    name = call.pop("method")
    request = check_request(SPEC, SPEC.method(name), call)
    assert request.error is None and not request.unknown, (request.problems, request.unknown)
    assert set(call) <= set(USAGE["sends"][name]), "a field missing from the usage list"
    return name, call


def _check_button(query: dict[str, Any], answer: str, jobs: list[Job]) -> None:
    """Every press is answered; a job only for the bot's own button data on an answer to
    a message with an image, redrawing that answer."""
    if not query["id"]:  # the spec allows an empty id; there is nothing to answer then
        assert (answer, jobs) == ("", [])
        _outcomes["button ignored"] += 1
        return
    assert answer, "every press is answered"
    name, call = _checked_call(answer)
    assert (name, call["callback_query_id"]) == ("answerCallbackQuery", query["id"])
    assert len(jobs) <= 1
    for job in jobs:
        assert Job.from_bytes(job.to_bytes()) == job
        asked = query["message"]["reply_to_message"]
        assert job.file_id in _images(asked) and job.message_id == asked["message_id"]
        assert (job.view, job.edit_message_id) == (query["data"],
                                                   query["message"]["message_id"])
        assert "text" not in call  # a followed button needs no explanation
    _outcomes["button job" if jobs else "button answered"] += 1


def test_zz_generated_update_figures():
    """What the generated updates covered (the test above runs first, in file order)."""
    record("spec-generated updates", examples=EXAMPLES, total=sum(_kinds.values()),
           kinds=len(_kinds), object_types=len(_types), outcomes=dict(_outcomes),
           per_kind=dict(_kinds))
    if EXAMPLES >= 1000:  # the CI count and up
        assert set(_kinds) == set(update_kinds(SPEC)), "every kind of update was sent"
    assert _outcomes["job"] and _outcomes["answered"] and _outcomes["ignored"]


@given(st.data())
def test_strategy_values_fit_their_types(data):
    """The strategies draw values the spec accepts, for the types the bot reads."""
    for name in ("Message", "CallbackQuery", "ChatMemberUpdated", "MessageReactionUpdated"):
        value = data.draw(GENERATED.of(name, 1))
        findings = check_value(SPEC, name, value, name)
        assert findings.ok and not findings.unknown, (findings.problems, findings.unknown)


# -- what the generated updates found ------------------------------------------------

GROUP = {"id": -1042, "type": "supergroup", "title": "Friends"}


def test_a_group_image_with_caption_entities_but_no_caption_is_ignored_not_a_500():
    """python-telegram-bot raises on caption entities without a caption; the webhook
    answered 500 (Telegram would redeliver it for hours)."""
    message = {"message_id": 7, "date": 1, "chat": GROUP,
               "document": {"file_id": "d", "file_unique_id": "u", "mime_type": "image/png"},
               "caption_entities": [{"type": "mention", "offset": 0, "length": 4}]}
    (answer, status, _), publisher = post({"update_id": 1, "message": message})
    assert (answer, status, publisher.jobs) == ("", 200, [])


def test_kinds_of_update_the_bot_ignores_are_not_parsed():
    """A poll whose media lasts longer than `timedelta` holds made python-telegram-bot
    raise OverflowError while building the whole update: a 500."""
    audio = {"file_id": "a", "file_unique_id": "u", "duration": 2**60}
    poll = {"id": "p", "question": "?", "options": [], "total_voter_count": 0,
            "is_closed": False, "is_anonymous": True, "type": "regular",
            "allows_multiple_answers": False, "media": {"audio": audio}}
    (answer, status, _), _ = post({"update_id": 2, "poll": poll})
    assert (answer, status) == ("", 200)
    # The same in a message the bot reads is refused as unparseable, not a crash.
    message = {"message_id": 7, "date": 1, "chat": {"id": 1, "type": "private"},
               "audio": audio}
    (_, status, _), publisher = post({"update_id": 3, "message": message})
    assert status == 400 and publisher.jobs == []
