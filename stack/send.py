"""Sending updates to the local stack's webhook as Telegram would.

A photo is first registered with the local Bot API server (which keeps it in the sizes
Telegram makes), then posted to the webhook as an update signed with the secret token.
Like Telegram, `deliver()` carries out a Bot API method call that the webhook returns
in its response body (how the webhook answers /start, /help and hints, shows "sending
photo…" and answers button presses). `callback_update()` makes the update of a press of
a button under one of the bot's answers.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from typing import Any

from functions.webhook import SECRET_HEADER
from stack.bot_api import BotApiServer, photo_update
from stack.run import Stack

_update_ids = itertools.count(int(time.time()) % 1_000_000 * 100)
_message_ids = itertools.count(1)


@dataclass(frozen=True)
class Posted:
    status: int
    body: str
    seconds: float
    update: dict[str, Any]
    # The Bot API's status for the method call in the response body, if there was one
    # (Telegram ignores its failure: an answerCallbackQuery of a duplicate, say).
    method_status: int | None = None


def next_update_id() -> int:
    return next(_update_ids)


def photo_message_update(bot_api: BotApiServer, data: bytes, *, chat_id: int = 4242,
                         language_code: str = "en", caption: str | None = None,
                         chat_type: str = "private", update_id: int | None = None,
                         message_id: int | None = None) -> dict[str, Any]:
    """An update with `data` sent as a photo (registered with the Bot API server)."""
    return photo_update(update_id if update_id is not None else next_update_id(), chat_id,
                        message_id if message_id is not None else next(_message_ids),
                        bot_api.add_photo(data), language_code=language_code,
                        caption=caption, chat_type=chat_type)


def document_update(bot_api: BotApiServer, data: bytes, file_name: str, mime_type: str, *,
                    chat_id: int = 4242, language_code: str = "en") -> dict[str, Any]:
    """An update with `data` sent as a file (Telegram keeps such bytes as they are)."""
    update = photo_update(next_update_id(), chat_id, next(_message_ids), [],
                          language_code=language_code)
    del update["message"]["photo"]
    update["message"]["document"] = bot_api.add_file(data, file_name, mime_type)
    return update


def callback_update(bot_api: BotApiServer, asked: dict[str, Any], answer_id: int, data: str,
                    *, user_id: int | None = None, language_code: str = "en",
                    update_id: int | None = None) -> dict[str, Any]:
    """A press of the button with `data` under the bot's answer `answer_id` to the photo
    update `asked`, as Telegram posts it (the answer as it is now, replying to the photo)."""
    photo_message = asked["message"]
    chat = photo_message["chat"]
    message = bot_api.bot_message(chat["id"], answer_id)
    message["reply_to_message"] = photo_message
    user_id = user_id if user_id is not None else photo_message["from"]["id"]
    return {"update_id": update_id if update_id is not None else next_update_id(),
            "callback_query": {
                "id": bot_api.new_callback_query_id(), "chat_instance": str(-abs(chat["id"])),
                "from": {"id": user_id, "is_bot": False, "first_name": "Test",
                         "language_code": language_code},
                "message": message, "data": data}}


def text_update(text: str, *, chat_id: int = 4242, language_code: str = "en") -> dict[str, Any]:
    update = photo_update(next_update_id(), chat_id, next(_message_ids), [],
                          language_code=language_code)
    message = update["message"]
    del message["photo"]
    message["text"] = text
    if text.startswith("/"):
        message["entities"] = [{"type": "bot_command", "offset": 0,
                                "length": len(text.split()[0])}]
    return update


def post_update(webhook_url: str, update: dict[str, Any], secret: str | None,
                timeout: float = 30.0) -> Posted:
    """POST `update` to the webhook; `secret=None` sends no secret header."""
    headers = {"Content-Type": "application/json"}
    if secret is not None:
        headers[SECRET_HEADER] = secret
    request = urllib.request.Request(webhook_url, data=json.dumps(update).encode(),
                                     headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status, body = answer.status, answer.read().decode()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read().decode(errors="replace")
    return Posted(status, body, time.monotonic() - started, update)


def deliver(stack: Stack, update: dict[str, Any], secret: str | None = "") -> Posted:
    """Post `update` as Telegram does (with the stack's secret unless `secret` is given)
    and carry out a method call in the response body against the Bot API server."""
    posted = post_update(stack.webhook_url, update,
                         stack.secret if secret == "" else secret)
    if posted.status == 200 and posted.body.strip():
        call = json.loads(posted.body)
        method = call.pop("method")
        request = urllib.request.Request(
            f"{stack.bot_api.url}/bot{stack.options.token}/{method}",
            data=json.dumps(call).encode(), headers={"Content-Type": "application/json"},
            method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                answer.read()
                status = answer.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        return replace(posted, method_status=status)
    return posted
