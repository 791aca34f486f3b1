"""The Telegram contract, against the official Bot API spec (stack/telegram_spec/api.json).

- Requests: the local Bot API server refuses what Telegram refuses (an unknown method,
  a missing or mistyped field) with Telegram's error body, ignores but records fields
  the spec does not have, and fails the test in strict mode.
- Responses: every method the server implements answers with its spec's return type.
- Drift: what the bot relies on (tests/bot_api_usage.json) is still in the spec, with the
  same types, and the bot sends no field the list does not have.
"""

from __future__ import annotations

import asyncio
import copy
import io
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import telegram
from PIL import Image

from functions.worker_telegram import TelegramClient
from shared.followups import FIRST_ANSWER, keyboard
from stack import bot_api
from stack.bot_api import BotApiServer, ContractViolation
from stack.telegram_spec.check import (
    SPEC_FILE,
    Method,
    ObjectType,
    Spec,
    check_request,
    check_value,
    load_spec,
    parse_spec,
)

TOKEN = "4242:contract-TEST_token"
SPEC = load_spec()
USAGE_FILE = Path(__file__).with_name("bot_api_usage.json")
USAGE = json.loads(USAGE_FILE.read_text())


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(TOKEN) as server:
        yield server


@pytest.fixture
def lenient() -> Iterator[BotApiServer]:
    """A server whose recorded contract breaks do not fail the test (they are asserted)."""
    with BotApiServer(TOKEN, strict=False) as server:
        yield server


def call(api: BotApiServer, method: str, body: dict[str, Any] | None = None, *,
         form: bool = False) -> tuple[int, dict[str, Any]]:
    """A raw Bot API call (JSON, or form-encoded text as most clients send it)."""
    body = body or {}
    if form:
        data = urllib.parse.urlencode(body).encode()
        kind = "application/x-www-form-urlencoded"
    else:
        data, kind = json.dumps(body).encode(), "application/json"
    request = urllib.request.Request(f"{api.url}/bot{TOKEN}/{method}", data=data,
                                     headers={"Content-Type": kind})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def bad_request(description: str) -> tuple[int, dict[str, Any]]:
    return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}


def jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 90)).save(buffer, format="JPEG")
    return buffer.getvalue()


def with_bot(api: BotApiServer, action: Any) -> Any:
    async def main() -> Any:
        async with telegram.Bot(TOKEN, base_url=api.url + "/bot",
                                base_file_url=api.url + "/file/bot") as bot:
            return await action(bot)

    return asyncio.run(main())


# -- requests -----------------------------------------------------------------------


def test_an_unknown_method_is_not_found_as_telegram_answers(api):
    assert call(api, "sendPigeon", {"chat_id": 1}) == (
        404, {"ok": False, "error_code": 404, "description": "Not Found"})
    assert call(api, "SENDMESSAGE", {"chat_id": 1, "text": "hi"})[0] == 200  # any case


def test_a_missing_required_field_is_a_bad_request(api):
    assert call(api, "sendMessage", {"chat_id": 1}) == bad_request(
        'parameter "text" is required')
    assert call(api, "sendPhoto", {"caption": "x", "photo": "AgAC"}) == bad_request(
        'parameter "chat_id" is required')
    assert call(api, "getFile", {}) == bad_request('parameter "file_id" is required')
    assert api.sent == []


@pytest.mark.parametrize(("method", "body", "description"), [
    ("sendMessage", {"chat_id": True, "text": "hi"},
     'field "chat_id" must be of type Integer or String'),
    ("sendMessage", {"chat_id": [1], "text": "hi"},
     'field "chat_id" must be of type Integer or String'),
    ("sendMessage", {"chat_id": 1, "text": 5}, 'field "text" must be of type String'),
    ("getFile", {"file_id": {"id": 1}}, 'field "file_id" must be of type String'),
    ("sendMessage", {"chat_id": 1, "text": "hi", "reply_parameters": {"message_id": "x"}},
     'field "reply_parameters.message_id" must be of type Integer'),
    ("sendMessage", {"chat_id": 1, "text": "hi", "reply_parameters": {}},
     'field "reply_parameters.message_id" is required in ReplyParameters'),
    ("sendMessage", {"chat_id": 1, "text": "hi", "reply_parameters": "{not json"},
     "can't parse reply_parameters JSON object"),
    ("sendMessage", {"chat_id": 1, "text": "hi", "entities": {"type": "bold"}},
     'field "entities" must be of type Array of MessageEntity'),
    ("sendMessage", {"chat_id": 1, "text": "hi",
                     "reply_markup": {"inline_keyboard": [[{"text": 1}]]}},
     'field "reply_markup" must be of type InlineKeyboardMarkup or ReplyKeyboardMarkup '
     "or ReplyKeyboardRemove or ForceReply"),
    ("sendMessage", {"chat_id": 1, "text": "hi", "disable_notification": "maybe"},
     'field "disable_notification" must be of type Boolean'),
    ("sendChatAction", {"chat_id": 1, "action": "typing", "message_thread_id": 1.5},
     'field "message_thread_id" must be of type Integer'),
])
def test_a_mistyped_field_is_a_bad_request(api, method, body, description):
    assert call(api, method, body) == bad_request(description)
    assert api.sent == []


def test_form_fields_are_read_by_their_declared_type(api):
    """Numbers, booleans and JSON objects come as text in a form; a text that looks
    like JSON stays text (the server used to decode "[1, 2]" into a list)."""
    reply = json.dumps({"message_id": 5, "allow_sending_without_reply": True})
    for text in ('{"a": 1}', "[1, 2]", "42", "true"):
        status, answer = call(api, "sendMessage", {"chat_id": "-100", "text": text,
                                                   "reply_parameters": reply,
                                                   "disable_notification": "true"},
                              form=True)
        assert status == 200 and answer["result"]["text"] == text
        assert (api.sent[-1].text, api.sent[-1].chat_id, api.sent[-1].reply_to) == (
            text, -100, 5)


def test_python_telegram_bot_sends_a_text_that_looks_like_json_unchanged(api):
    message = with_bot(api, lambda bot: bot.send_message(chat_id=1, text='{"a": 1}'))
    assert message.text == '{"a": 1}' and api.sent[-1].text == '{"a": 1}'


def test_unknown_fields_are_ignored_as_telegram_does_but_recorded(lenient):
    status, _ = call(lenient, "sendMessage", {"chat_id": 1, "text": "hi", "colour": "red",
                                              "reply_parameters": {"message_id": 2,
                                                                   "shout": True}})
    assert status == 200 and len(lenient.sent) == 1
    assert lenient.unknown_fields == ["sendMessage.colour",
                                      "sendMessage.reply_parameters.shout"]
    assert lenient.calls[-1]["fields"] == ["chat_id", "colour", "reply_parameters", "text"]
    lenient.check_contract()  # lenient: recorded, not raised


def test_strict_mode_fails_when_the_client_sent_a_field_the_spec_does_not_have():
    server = BotApiServer(TOKEN)
    with pytest.raises(ContractViolation, match=r"sendPhoto\.colour"), server:
        with_bot(server, lambda bot: bot.send_photo(chat_id=1, photo=jpeg(),
                                                    api_kwargs={"colour": "red"}))
    assert len(server.sent) == 1  # answered all the same, as Telegram would


def test_a_spec_method_the_server_lacks_is_a_recorded_violation(lenient):
    status, answer = call(lenient, "sendSticker", {"chat_id": 1, "sticker": "x"})
    assert status == 404 and "sendSticker is not implemented" in answer["description"]
    assert lenient.violations == ["sendSticker: called, but not implemented here"]


# -- responses ------------------------------------------------------------------------


def _calls(api: BotApiServer) -> dict[str, tuple[str, dict[str, Any]]]:
    """A valid call of every method the server implements: name -> (method, body)."""
    photo = api.add_photo(jpeg())[-1]
    reply = {"message_id": 3, "allow_sending_without_reply": True}
    return {
        "getme": ("getMe", {}),
        "getfile": ("getFile", {"file_id": photo["file_id"]}),
        "sendmessage": ("sendMessage", {"chat_id": 7, "text": "hi",
                                        "reply_parameters": reply}),
        "sendphoto": ("sendPhoto", {"chat_id": -1007, "photo": photo["file_id"],
                                    "caption": "c", "reply_parameters": reply}),
        "senddocument": ("sendDocument", {"chat_id": "@channel",
                                          "document": photo["file_id"]}),
        "sendchataction": ("sendChatAction", {"chat_id": 0, "action": "upload_photo"}),
        "editmessagetext": ("editMessageText", {"chat_id": 7, "message_id": 1000,
                                                "text": "edited"}),
        "editmessagecaption": ("editMessageCaption", {"chat_id": 7, "message_id": 1001}),
        # The photo sent above (message 1001 of chat -1007), given a new picture.
        "editmessagemedia": ("editMessageMedia", {
            "chat_id": -1007, "message_id": 1001,
            "media": {"type": "photo", "media": photo["file_id"], "caption": "new"},
            "reply_markup": {"inline_keyboard": [[{"text": "More",
                                                   "callback_data": "la1:a:1"}]]}}),
        "answercallbackquery": ("answerCallbackQuery", {
            "callback_query_id": api.new_callback_query_id(), "text": "ok"}),
        "setmycommands": ("setMyCommands", {"commands": [{"command": "start",
                                                          "description": "Start"}],
                                            "language_code": "ru"}),
        "getmycommands": ("getMyCommands", {"language_code": "ru"}),
        "setmydescription": ("setMyDescription", {"description": "A bot"}),
        "getmydescription": ("getMyDescription", {}),
        "setmyshortdescription": ("setMyShortDescription", {"short_description": "Bot"}),
        "getmyshortdescription": ("getMyShortDescription", {"language_code": "de"}),
        "setwebhook": ("setWebhook", {"url": "https://example.org/hook",
                                      "allowed_updates": ["message"],
                                      "secret_token": "s"}),
        "getwebhookinfo": ("getWebhookInfo", {}),
        "deletewebhook": ("deleteWebhook", {"drop_pending_updates": True}),
    }


def test_every_implemented_method_answers_with_its_spec_return_type(api):
    calls = _calls(api)
    assert set(calls) == set(bot_api._METHODS), "a valid call for each implemented method"
    for name, (method, body) in calls.items():
        declared = SPEC.method(method)
        assert declared is not None and declared.name.lower() == name, method
        status, answer = call(api, method, body)
        assert status == 200 and answer["ok"] is True, (method, answer)
        findings = check_value(SPEC, declared.returns, answer["result"], method)
        assert findings.ok and not findings.unknown, (method, findings)
    assert api.violations == [] and api.unknown_fields == []


def test_the_answers_the_server_used_to_get_wrong(api):
    """editMessageCaption without a caption answered "caption": null (not a String);
    a message to "@channel" answered with that text as the chat's Integer id;
    sendChatAction to chat 0 answered False; inline messages are edited to True."""
    _, answer = call(api, "editMessageCaption", {"chat_id": 7, "message_id": 9})
    assert "caption" not in answer["result"]
    _, answer = call(api, "sendMessage", {"chat_id": "@news", "text": "hi"})
    chat = answer["result"]["chat"]
    assert isinstance(chat["id"], int) and (chat["type"], chat["username"]) == ("channel",
                                                                              "news")
    assert call(api, "sendChatAction", {"chat_id": 0, "action": "typing"})[1]["result"] \
        is True
    assert call(api, "editMessageText", {"inline_message_id": "i", "text": "t"})[1] == {
        "ok": True, "result": True}


def test_messages_and_files_read_back_through_python_telegram_bot(api):
    """The results parse into python-telegram-bot's typed objects the worker reads."""
    sizes = api.add_photo(jpeg())

    async def exchange(bot: telegram.Bot) -> tuple[telegram.Message, telegram.File]:
        sent = await bot.send_photo(chat_id=5, photo=jpeg(), caption="Ann 91%",
                                    reply_parameters=telegram.ReplyParameters(1))
        return sent, await bot.get_file(sizes[-1]["file_id"])

    sent, file = with_bot(api, exchange)
    assert sent.caption == "Ann 91%" and sent.photo[-1].width == 40 and sent.chat.id == 5
    assert file.file_path and file.file_size == sizes[-1]["file_size"]


# -- the bot's own calls and drift --------------------------------------------------


def test_the_workers_calls_are_valid_and_in_the_usage_list(api):
    """The worker's client, against the strict server: every field it sends is in the
    spec (the fixture fails otherwise) and in tests/bot_api_usage.json."""
    client = TelegramClient(TOKEN, api.url, timeout=10, max_retry_after=1)
    buttons = keyboard(FIRST_ANSWER, True, True, "en")
    try:
        file_id = api.add_photo(jpeg())[-1]["file_id"]
        client.download(file_id)
        # A job that waited: "sending photo…" again, then the answer with its buttons.
        with client.upload_photo_action(5, since=time.time() - 10):
            sent = client.send_photo(5, jpeg(), "<b>Ann</b> — 91%", reply_to=3,
                                     parse_mode="HTML", reply_markup=buttons)
        client.send_text(5, '<a href="https://example.org">Ann</a>', reply_to=3,
                         parse_mode="HTML", reply_markup=buttons)
        # A button pressed: the answer edited in place, in each of the three ways.
        client.edit_photo(5, sent.message_id, jpeg(), "<b>Bo</b> — 80%", buttons, "HTML")
        client.edit_words(5, sent.message_id, "nobody", None, caption=True)
        client.edit_words(5, sent.message_id, "<i>Cy</i>", buttons, "HTML", caption=False)
    finally:
        client.close()
    sent = {(c["method"], field) for c in api.calls if c["method"] != "download"
            for field in c["fields"]}
    listed = {(method, field) for method, fields in USAGE["sends"].items()
              for field in fields}
    assert sent <= listed, f"sent but not in {USAGE_FILE.name}: {sorted(sent - listed)}"
    assert {m for m, _ in sent} == {"getFile", "sendPhoto", "sendMessage", "sendChatAction",
                                    "editMessageMedia", "editMessageCaption",
                                    "editMessageText"}
    assert all(c["status"] == 200 for c in api.calls)


def _field_drift(kind: str, name: str, fields: dict[str, str],
                 declaring: Method | ObjectType | None, uses: str,
                 spec_verb: str) -> list[str]:
    """How the fields the bot `uses` (sends, reads) differ from those the spec declares
    for the method or type `name` (None: the spec no longer has it)."""
    if declaring is None:
        return [f"{kind} {name}: gone from the Bot API"]
    problems = []
    for field, expected in fields.items():
        declared = declaring.field(field)
        if declared is None:
            problems.append(f"{name}.{field}: the bot {uses} it; the Bot API no longer "
                            "has it")
        elif declared.type_name != expected:
            problems.append(f"{name}.{field}: the bot {uses} {expected}; the Bot API "
                            f"now {spec_verb} {declared.type_name}")
    return problems


def usage_drift(spec: Spec, usage: dict[str, Any]) -> list[str]:
    """How the spec differs from what the bot relies on, one line per difference."""
    problems = []
    for name, fields in usage["sends"].items():
        method = spec.methods.get(name)
        problems += _field_drift("method", name, fields, method, "sends", "takes")
        if method is None:
            continue
        for declared in method.fields:
            if declared.required and declared.name not in fields:
                problems.append(f"{name}.{declared.name}: now required; the bot does not "
                                "send it")
        returns = " or ".join(method.returns)
        if name in usage["returns"] and returns != usage["returns"][name]:
            problems.append(f"{name}: the bot reads a {usage['returns'][name]}; it now "
                            f"returns {returns}")
    for name, fields in usage["reads"].items():
        problems += _field_drift("type", name, fields, spec.types.get(name), "reads", "gives")
    return problems


def test_the_spec_still_has_what_the_bot_relies_on():
    drift = usage_drift(SPEC, USAGE)
    assert drift == [], (
        f"{SPEC_FILE.name} ({SPEC.version}) changed under the bot; fix the bot, then "
        f"{USAGE_FILE.name}:\n  " + "\n  ".join(drift))


def test_a_changed_spec_names_each_thing_to_fix():
    raw = json.loads(SPEC_FILE.read_text())
    changed = copy.deepcopy(raw)
    photo = changed["methods"]["sendPhoto"]["fields"]
    photo[:] = [f for f in photo if f["name"] != "caption"]
    message = changed["methods"]["sendMessage"]["fields"]
    next(f for f in message if f["name"] == "chat_id")["types"] = ["String"]
    next(f for f in message if f["name"] == "message_effect_id")["required"] = True
    next(f for f in changed["types"]["Message"]["fields"]
         if f["name"] == "photo")["types"] = ["Array of Photo"]
    del changed["methods"]["getFile"]
    changed["methods"]["sendMessage"]["returns"] = ["MessageId"]
    assert usage_drift(parse_spec(changed), USAGE) == [
        "sendMessage.chat_id: the bot sends Integer or String; the Bot API now takes String",
        "sendMessage.message_effect_id: now required; the bot does not send it",
        "sendMessage: the bot reads a Message; it now returns MessageId",
        "sendPhoto.caption: the bot sends it; the Bot API no longer has it",
        "method getFile: gone from the Bot API",
        "Message.photo: the bot reads Array of PhotoSize; the Bot API now gives Array of Photo",
    ]


def test_requests_that_leave_the_spec_are_refused_by_the_pure_check():
    """check_request on its own, as the server and tests use it."""
    method = SPEC.method("sendPhoto")
    assert method is not None
    upload = check_request(SPEC, method, {"chat_id": "12", "photo": "attach://p"},
                           {"p": b"jpeg"})
    assert upload.error is None and upload.params == {"chat_id": 12, "photo": b"jpeg"}
    assert check_request(SPEC, method, {"chat_id": 1, "photo": 5}).error == (
        'Bad Request: field "photo" must be of type InputFile or String')
    origin = {"type": "user", "date": 1, "sender_user": {"id": 1, "is_bot": False}}
    assert check_value(SPEC, "MessageOrigin", origin).problems == [
        'field "result.sender_user.first_name" is required in User']
    assert check_value(SPEC, "MessageOrigin", {**origin, "type": "robot"}).problems == [
        'field "result" must be a MessageOrigin (MessageOriginUser, '
        "MessageOriginHiddenUser, MessageOriginChat, MessageOriginChannel)"]
