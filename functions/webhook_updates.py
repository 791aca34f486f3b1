"""What the webhook does with one Telegram update: a pure decision, no I/O.

`route()` returns one of three actions:
- `Ignore`: answer 200 with an empty body (other group chatter, edits, channel posts).
- `Answer`: a Bot API method call returned in the webhook's response body, so cheap
  replies (/start, /help, /privacy, hints, buttons that cannot be followed) need no
  outbound request.
- `Enqueue`: a `Job` for the worker (a photo, an image sent as a file, or a button
  pressed under an answer), with the call that acknowledges it in the response body:
  `sendChatAction` ("sending photo…") for a photo, `answerCallbackQuery` for a button.

In private chats every photo is a job. In groups the bot looks only at photos whose
caption mentions it and at `/lookalike` sent as a reply to a photo; the rest of the
group's messages are none of its business.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from telegram import Chat, Message, MessageEntity, Update
from telegram.constants import ChatAction

from functions.webhook_photo import choose_photo_size, detection_side
from shared.config import Settings
from shared.followups import ForgedData, View
from shared.jobs import Job
from shared.texts import privacy_text, text

# The Bot API downloads files of at most 20 MB (getFile); larger ones cannot be looked at.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024
TEXT_COMMANDS = ("start", "help", "privacy")
PHOTO_COMMAND = "lookalike"
GROUP_CHATS = (Chat.GROUP, Chat.SUPERGROUP)


@dataclass(frozen=True)
class Ignore:
    reason: str


@dataclass(frozen=True)
class Answer:
    method: dict[str, Any]  # {"method": "sendMessage", ...}: the webhook's response body
    reason: str


@dataclass(frozen=True)
class Enqueue:
    job: Job
    answer: dict[str, Any]  # the response body once the job is published


Action = Ignore | Answer | Enqueue


def route(update: Update, settings: Settings, received_at: float) -> Action:
    if update.callback_query is not None:
        return _button(update, settings, received_at)
    message = update.message
    if message is None:
        return Ignore("not a new message")  # edits, channel posts, ...
    language = message.from_user.language_code if message.from_user else None
    group = message.chat.type in GROUP_CHATS
    if message.chat.type not in (Chat.PRIVATE, *GROUP_CHATS):
        return Ignore(f"chat type {message.chat.type}")

    command = _command(message, settings.bot_username)
    if command in TEXT_COMMANDS:
        answer = (privacy_text(language, settings.contact) if command == "privacy"
                  else text(command, language))
        return _answer(message, answer, group, f"/{command}")
    if command == PHOTO_COMMAND:
        target = message.reply_to_message
        if target is not None and _has_image(target):
            return _photo(update, target, language, settings, received_at, group)
        if not _has_image(message):
            return _answer(message, text("group_reply_needed" if group else "send_photo",
                                         language), group, "/lookalike without a photo")

    if _has_image(message):
        if group and command != PHOTO_COMMAND and not _mentions_bot(message,
                                                                    settings.bot_username):
            return Ignore("group photo not addressed to the bot")
        return _photo(update, message, language, settings, received_at, group)
    if group:
        return Ignore("group message without a photo")
    return _answer(message, text("send_photo", language), group, "no photo")


def malformed(update: Update) -> str | None:
    """Why `update` is not shaped like Telegram's, or None. python-telegram-bot builds its
    objects without checking types, so the fields `route` reads are checked here."""
    if not _is_int(update.update_id):
        return "update_id is not an integer"
    message = update.message
    query = update.callback_query
    if query is not None:
        if not (_is_str(query.id) and _is_str(query.data, optional=True)
                and _is_int(getattr(query.from_user, "id", None))
                and _is_str(getattr(query.from_user, "language_code", None), optional=True)):
            return "malformed callback_query"
        message = query.message if isinstance(query.message, Message) else None
    if message is None:
        return None
    if not message.is_accessible:  # an old message: Telegram sends only chat and id
        return _malformed_message(message) if not _is_int(message.message_id) else None
    for current in (message, message.reply_to_message):
        if current is None:
            continue
        problem = _malformed_message(current)
        if problem:
            return problem
    return None


def _malformed_message(message: Message) -> str | None:
    checks: list[tuple[str, bool]] = [
        ("message_id", _is_int(message.message_id)),
        ("chat", _is_int(getattr(message.chat, "id", None))
         and isinstance(getattr(message.chat, "type", None), str)),
        ("from", message.from_user is None
         or _is_str(getattr(message.from_user, "language_code", None), optional=True)),
        ("text", _is_str(message.text, optional=True)),
        ("caption", _is_str(message.caption, optional=True)),
        ("entities", all(_is_entity(e) for e in (*message.entities,
                                                   *message.caption_entities))),
        ("photo", all(_is_str(p.file_id) and _is_str(p.file_unique_id) and _is_int(p.width)
                      and _is_int(p.height) and _is_int(p.file_size, optional=True)
                      for p in message.photo)),
        ("document", message.document is None or (
            _is_str(message.document.file_id) and _is_str(message.document.file_unique_id)
            and _is_str(message.document.mime_type, optional=True)
            and _is_int(message.document.file_size, optional=True))),
    ]
    bad = [name for name, ok in checks if not ok]
    return f"malformed message field {bad[0]!r}" if bad else None


def _is_int(value: object, optional: bool = False) -> bool:
    return (value is None and optional) or (isinstance(value, int)
                                            and not isinstance(value, bool))


def _is_str(value: object, optional: bool = False) -> bool:
    return (value is None and optional) or isinstance(value, str)


def _is_entity(entity: object) -> bool:
    return isinstance(entity, MessageEntity) and _is_str(entity.type) \
        and _is_int(entity.offset) and _is_int(entity.length)


def _button(update: Update, settings: Settings, received_at: float) -> Action:
    """A button under an answer: a job that redraws the answer for the view the button
    names, or a short explanation when that cannot be done. Anyone in a group may press."""
    query = update.callback_query
    assert query is not None
    if not query.id:  # nothing to answer it with (Telegram always sends one)
        return Ignore("callback query without an id")
    language = query.from_user.language_code if query.from_user else None

    def answer(reason: str, key: str | None = None) -> Answer:
        return Answer(_callback_answer(query.id, key, language), reason)

    try:
        view = View.decode(query.data)
    except ForgedData as exc:
        return answer(f"callback: {exc}", "button_unknown")
    message = query.message
    if not isinstance(message, Message) or not message.is_accessible:
        return answer("callback on an inaccessible message", "button_too_old")
    if message.chat.type not in (Chat.PRIVATE, *GROUP_CHATS):
        return answer(f"callback in a {message.chat.type}", "button_unknown")
    photo = message.reply_to_message
    if photo is None or not _has_image(photo):
        return answer("callback on an answer whose photo is gone", "button_photo_gone")
    action = _photo(update, photo, language, settings, received_at,
                    message.chat.type in GROUP_CHATS, view=view.encode(),
                    edit_message_id=message.message_id)
    if isinstance(action, Enqueue):  # the button stops spinning; the answer changes soon
        return Enqueue(action.job, _callback_answer(query.id, None, language))
    return answer("callback on a photo that cannot be looked at", "button_photo_gone")


def _callback_answer(query_id: str, key: str | None, language: str | None) -> dict[str, Any]:
    method: dict[str, Any] = {"method": "answerCallbackQuery", "callback_query_id": query_id}
    if key is not None:
        method["text"] = text(key, language)
    return method


def _photo(update: Update, message: Message, language: str | None, settings: Settings,
           received_at: float, group: bool, view: str = "",
           edit_message_id: int = 0) -> Action:
    if message.photo:
        size = choose_photo_size(message.photo, detection_side(settings))
        file_id, unique_id = size.file_id, size.file_unique_id
        width, height, file_size = size.width, size.height, size.file_size or 0
    else:
        document = message.document
        assert document is not None  # _has_image said so
        if (document.file_size or 0) > MAX_DOWNLOAD_BYTES:
            return _answer(message, text("file_too_large", language), group,
                           "document over the download limit")
        file_id, unique_id = document.file_id, document.file_unique_id
        width = height = 0
        file_size = document.file_size or 0
    job = Job(
        update_id=update.update_id, chat_id=message.chat.id, message_id=message.message_id,
        file_id=file_id, file_unique_id=unique_id, width=width, height=height,
        received_at=received_at, file_size=file_size, language_code=language or "",
        chat_type=message.chat.type, view=view, edit_message_id=edit_message_id)
    # "sending photo…" from now on, without a request of its own.
    return Enqueue(job, {"method": "sendChatAction", "chat_id": job.chat_id,
                         "action": ChatAction.UPLOAD_PHOTO})


def _has_image(message: Message) -> bool:
    if message.photo:
        return True
    document = message.document
    return document is not None and (document.mime_type or "").startswith("image/")


def _answer(message: Message, reply: str, group: bool, reason: str) -> Answer:
    method: dict[str, Any] = {"method": "sendMessage", "chat_id": message.chat.id,
                              "text": reply}
    if group:  # in a busy group the answer says what it answers
        method["reply_parameters"] = {"message_id": message.message_id,
                                      "allow_sending_without_reply": True}
    return Answer(method, reason)


def _command(message: Message, bot_username: str) -> str | None:
    """The bot command the text or caption starts with, if it is addressed to this bot
    (`/cmd` or `/cmd@ThisBot`), lower-cased and without the slash."""
    entities = message.entities or message.caption_entities
    body = message.text or message.caption or ""
    for entity in entities:
        if entity.type == MessageEntity.BOT_COMMAND and entity.offset == 0:
            name, _, addressee = body[1:entity.length].partition("@")
            if addressee and bot_username and addressee.lower() != bot_username.lower():
                return None
            return name.lower()
    return None


def _mentions_bot(message: Message, bot_username: str) -> bool:
    if not bot_username:
        return False
    wanted = "@" + bot_username.lower()
    if not message.caption:  # python-telegram-bot refuses entities without their caption
        return False
    mentions = message.parse_caption_entities([MessageEntity.MENTION])
    if any(mention.lower() == wanted for mention in mentions.values()):
        return True
    # Clients send the entity, but a caption typed through the API may lack it.
    pattern = r"(?<![\w@])" + re.escape(wanted) + r"(?!\w)"
    return re.search(pattern, (message.caption or "").lower()) is not None
