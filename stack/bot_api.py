"""A local server that speaks the Telegram Bot API over HTTP, for the local stack and tests.

Telegram's servers are the one edge this project cannot run locally, so this stands in
for them on the wire: `POST/GET /bot<token>/<method>` with JSON, form-urlencoded or
multipart bodies, answers shaped `{"ok": true, "result": ...}` or `{"ok": false,
"error_code": N, "description": ..., "parameters": {...}}`, and file downloads at
`/file/bot<token>/<file_path>`. Any Bot API client (python-telegram-bot with
`base_url=url + "/bot"`, `base_file_url=url + "/file/bot"`) talks to it unchanged.

Texts and captions sent with `parse_mode=HTML` are parsed as Telegram does
(`stack.telegram_html`): refused markup gets Telegram's 400, limits count the visible
text, and the message carries its entities.

Every call is checked against the Bot API spec (`stack/telegram_spec`) as Telegram
checks it: an unknown method is 404 `Not Found`, a missing or mistyped field 400 `Bad
Request: ...`; fields the spec does not have are ignored, as Telegram ignores them, and
recorded in `unknown_fields`. Every result is checked against the method's return type;
a result that does not match is this server's bug, recorded in `violations`. With
`strict` (the default) leaving the server's `with` block, or `check_contract()`, raises
`ContractViolation` listing both, so a test fails when the bot sends a field Telegram
does not know.

What users would see (sent messages and photos, and edits of them) is recorded in
`sent`, chat actions in `chat_actions`, answered callback queries in `callback_answers`,
the bot's commands and descriptions in `profile`; every request in `calls` (method,
status and the names of the fields sent); `fail_next` injects the
errors Telegram returns (429 with retry_after, 5xx, 400), `fail_chat` fails every message
to one chat, `chat_interval` answers 429 to a chat sent to faster than Telegram allows
(~1 message/s), and `on_download` runs after a file download was served (tests kill the
worker there).

Run alone: `python -m stack.bot_api --port 8081 --token 123:ABC`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import logging
import re
import secrets
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from PIL import Image
from werkzeug.formparser import MultiPartParser
from werkzeug.http import parse_options_header

from stack.http_thread import KeepAliveHandler, ThreadedServer
from stack.telegram_html import HtmlError, parse_html, text_length
from stack.telegram_spec.check import Spec, check_request, check_value, load_spec

log = logging.getLogger("stack.bot_api")

# Telegram's limits that clients meet.
MAX_DOWNLOAD_BYTES = 20 * 1024 * 1024  # getFile refuses larger files
MAX_CAPTION = 1024
MAX_TEXT = 4096
MAX_CALLBACK_TEXT = 200  # answerCallbackQuery's notification
BOT_COMMAND = re.compile(r"[a-z0-9_]{1,32}")
CHAT_ACTIONS = frozenset({"typing", "upload_photo", "record_video", "upload_video",
                          "record_voice", "upload_voice", "upload_document", "choose_sticker",
                          "find_location", "record_video_note", "upload_video_note"})
# What Telegram answers an edit that changes nothing.
_NOT_MODIFIED = ("Bad Request: message is not modified: specified new message content and "
                 "reply markup are exactly the same as a current content and reply markup "
                 "of the message")
PHOTO_SIDES = (90, 320, 800, 1280)
MAX_PHOTO_SIDE = 2560
TOKEN_FORMAT = re.compile(r"^\d+:[A-Za-z0-9_-]+$")

# Methods whose requests put something in front of a user.
SENDING_METHODS = {"sendmessage", "sendphoto", "senddocument", "editmessagetext",
                   "editmessagecaption", "editmessagemedia"}

DEFAULT_DESCRIPTIONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    404: "Not Found",
    409: "Conflict",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class ContractViolation(AssertionError):
    """Requests or answers that break the Bot API spec (strict mode)."""


class ApiError(Exception):
    """An error answer, as Telegram words it."""

    def __init__(self, status: int, description: str = "",
                 retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description or DEFAULT_DESCRIPTIONS.get(status, "Error")
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"ok": False, "error_code": self.status,
                                  "description": self.description}
        if self.retry_after is not None:
            answer["parameters"] = {"retry_after": self.retry_after}
        return answer


@dataclass(frozen=True)
class SentMessage:
    """A message a user would see."""

    method: str
    chat_id: int | str
    message_id: int
    reply_to: int | None
    text: str | None = None
    caption: str | None = None
    photo: bytes | None = None
    document: bytes | None = None
    parse_mode: str | None = None
    # With parse_mode HTML, text and caption hold what the user sees (markup parsed, as
    # Telegram does) and `entities` the formatting, links as "text_link" with their url.
    entities: tuple[dict[str, Any], ...] = ()
    reply_markup: dict[str, Any] | None = None
    time: float = field(default_factory=time.time)

    @property
    def readable(self) -> str:
        """The body with each link's address after its text, for printing."""
        units = self.body.encode("utf-16-le")
        for entity in sorted((e for e in self.entities if e["type"] == "text_link"),
                             key=lambda e: e["offset"] + e["length"], reverse=True):
            end = 2 * (entity["offset"] + entity["length"])
            units = units[:end] + f" <{entity['url']}>".encode("utf-16-le") + units[end:]
        return units.decode("utf-16-le")

    @property
    def links(self) -> list[tuple[str, str]]:
        """(linked text, url) of every link, in order."""
        units = self.body.encode("utf-16-le")
        return [(units[2 * e["offset"]:2 * (e["offset"] + e["length"])].decode("utf-16-le"),
                 e["url"]) for e in self.entities if e["type"] == "text_link"]

    @property
    def body(self) -> str:
        """The text or the caption, whichever the message has."""
        return self.text if self.text is not None else (self.caption or "")


@dataclass
class _StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    file_path: str
    mime_type: str


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: int | None
    description: str


class BotApiServer(ThreadedServer):
    """The Bot API for one bot token, on a loopback port, served from a thread."""

    name = "bot-api"

    def __init__(self, token: str, host: str = "127.0.0.1", port: int = 0, *,
                 strict: bool = True, spec: Spec | None = None) -> None:
        super().__init__(host, port)
        self.token = token
        self.spec = spec or load_spec()
        self.strict = strict
        # "method.field" (or a path into an object) the spec does not have: sent by a
        # client, ignored as Telegram ignores it.
        self.unknown_fields: list[str] = []
        # What this server did against the spec: results not of the method's type,
        # methods Telegram has that it does not implement.
        self.violations: list[str] = []
        self.sent: list[SentMessage] = []
        self.calls: list[dict[str, Any]] = []
        # (method or "download", ms) for each request: this server's own share of a
        # client's call, from the request read to the answer written (benchmarks).
        self.handling_ms: list[tuple[str, float]] = []
        self.webhook: dict[str, Any] = {}
        # setMyCommands, setMyDescription, setMyShortDescription: by language_code
        # ("" for everyone without their own).
        self.profile: dict[str, dict[str, Any]] = {
            "commands": {}, "description": {}, "short_description": {}}
        self.chat_actions: list[tuple[int | str, str, float]] = []  # chat, action, time
        self.callback_answers: dict[str, dict[str, Any]] = {}  # query id -> parameters
        self._callback_queries: set[str] = set()  # issued, not yet answered
        # The bot's messages as Telegram returns them, for edits and callback updates.
        self._messages: dict[tuple[int | str, int], dict[str, Any]] = {}
        self._files: dict[str, _StoredFile] = {}
        self._failures: dict[str, _Failure] = {}
        self._failing_chats: dict[int | str, int] = {}
        self._last_send: dict[int | str, float] = {}
        # Seconds Telegram wants between messages to one chat; None: no limit enforced.
        self.chat_interval: float | None = None
        self.flood_refusals = 0  # 429s answered because of chat_interval
        # Called with the file path after a download's bytes were written.
        self.on_download: Callable[[str], None] | None = None
        self._downloads = 0
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self.bot_id = int(token.split(":")[0]) if TOKEN_FORMAT.match(token) else 1

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def start(self) -> BotApiServer:
        return super().start()

    # -- files users send

    def add_photo(self, data: bytes) -> list[dict[str, Any]]:
        """Register a photo as Telegram does: JPEG sizes, smallest first (PhotoSize dicts)."""
        sizes = []
        for image in photo_sizes(data):
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=87)
            stored = self._store(buffer.getvalue(), "photos", "jpg", "image/jpeg")
            sizes.append({"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                          "width": image.width, "height": image.height,
                          "file_size": len(stored.data)})
        return sizes

    def add_file(self, data: bytes, file_name: str = "file.jpg",
                 mime_type: str = "image/jpeg") -> dict[str, Any]:
        """Register a document (any bytes) and return its Document dict."""
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        stored = self._store(data, "documents", extension, mime_type)
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_name": file_name, "mime_type": mime_type, "file_size": len(data)}

    def _store(self, data: bytes, folder: str, extension: str, mime_type: str) -> _StoredFile:
        with self._lock:
            number = next(self._ids)
            stored = _StoredFile(
                file_id=f"AgAC{secrets.token_urlsafe(24)}",
                file_unique_id=f"AQAD{secrets.token_urlsafe(8)}",
                data=data, file_path=f"{folder}/file_{number}.{extension}",
                mime_type=mime_type)
            self._files[stored.file_id] = stored
            return stored

    # -- what happened, and injected errors

    def fail_next(self, method: str, status: int, *, times: int = 1,
                  retry_after: int | None = None, description: str = "") -> None:
        """Answer the next `times` calls of `method` with an error (method "download"
        for file downloads)."""
        if status == 429 and not description:
            description = f"Too Many Requests: retry after {retry_after or 1}"
        if status == 429 and retry_after is None:
            retry_after = 1
        with self._lock:
            self._failures[method.lower()] = _Failure(status, times, retry_after, description)

    def fail_chat(self, chat_id: int | str, status: int = 500) -> None:
        """Answer every sending method to `chat_id` with `status` (a poison job)."""
        with self._lock:
            self._failing_chats[chat_id] = status

    def _check_chat(self, method: str, params: dict[str, Any]) -> None:
        """Per-chat failures and Telegram's flood control for sending methods."""
        if method.lower() not in SENDING_METHODS:
            return
        try:
            chat_id = _chat_id(params)
        except ApiError:
            return  # the method itself answers that
        with self._lock:
            status = self._failing_chats.get(chat_id)
            if status is not None:
                raise ApiError(status)
            now = time.monotonic()
            last = self._last_send.get(chat_id)
            if self.chat_interval is not None and last is not None \
                    and now - last < self.chat_interval:
                self.flood_refusals += 1
                wait = max(1, round(self.chat_interval - (now - last) + 0.5))
                raise ApiError(429, f"Too Many Requests: retry after {wait}", wait)
            self._last_send[chat_id] = now

    def wait_for_sent(self, count: int, timeout: float = 30.0,
                      chat_id: int | str | None = None) -> list[SentMessage]:
        """Block until at least `count` messages were sent (to `chat_id`, if given); returns
        them all (that chat's). TimeoutError when they are not sent within `timeout`."""
        if chat_id is None:
            return self._wait_for_count(self.sent, count, timeout, "messages sent")
        return self._wait_for_count(self.sent, count, timeout,
                                    f"messages sent to chat {chat_id}",
                                    keep=lambda message: message.chat_id == chat_id)

    def downloads(self) -> int:
        with self._lock:
            return self._downloads

    def _take_failure(self, method: str) -> ApiError | None:
        with self._lock:
            failure = self._failures.get(method.lower())
            if failure is None:
                return None
            failure.times -= 1
            if failure.times <= 0:
                del self._failures[method.lower()]
            return ApiError(failure.status, failure.description, failure.retry_after)

    def _record_call(self, method: str, status: int, fields: Iterable[str] = ()) -> None:
        with self._lock:
            self.calls.append({"method": method, "time": time.time(), "status": status,
                               "fields": sorted(fields)})
        log.info("%s -> %s", method, status)

    # -- requests

    def handle_method(self, token: str, method: str, params: dict[str, Any],
                      files: dict[str, bytes]) -> tuple[int, dict[str, Any]]:
        sent_fields = {*params, *files}
        try:
            if token != self.token:
                raise ApiError(401 if TOKEN_FORMAT.match(token) else 404)
            failure = self._take_failure(method)
            if failure is not None:
                raise failure
            declared = self.spec.method(method)
            if declared is None:
                raise ApiError(404)
            handler = _METHODS.get(method.lower())
            if handler is None:
                self._violation(f"{declared.name}: called, but not implemented here")
                raise ApiError(404, f"Not Found: {declared.name} is not implemented by "
                                    "the local Bot API server")
            request = check_request(self.spec, declared, params, files)
            # Uploads referenced by attach:// are part of the field that names them.
            sent_fields = {*request.params, *(u.split(".")[0] for u in request.unknown)}
            if request.unknown:
                unknown = [f"{declared.name}.{path}" for path in request.unknown]
                with self._lock:
                    self.unknown_fields.extend(unknown)
                log.warning("fields the Bot API does not have: %s", ", ".join(unknown))
            if request.error:
                raise ApiError(400, request.error)
            self._check_chat(method, request.params)
            result = handler(self, request.params, files)
        except ApiError as exc:
            self._record_call(method, exc.status, sent_fields)
            return exc.status, exc.body()
        answer = check_value(self.spec, declared.returns, result, f"{declared.name} result")
        for problem in answer.problems + answer.unknown:
            self._violation(problem)
        self._record_call(method, 200, sent_fields)
        return 200, {"ok": True, "result": result}

    def _violation(self, what: str) -> None:
        log.error("Bot API contract: %s", what)
        with self._lock:
            self.violations.append(what)

    def check_contract(self) -> None:
        """`ContractViolation` when a client sent fields the spec does not have or this
        server answered outside the spec (in strict mode; otherwise they are logged)."""
        with self._lock:
            unknown, violations = list(self.unknown_fields), list(self.violations)
        if self.strict and (unknown or violations):
            raise ContractViolation(
                "the Bot API contract was broken:"
                + "".join(f"\n  sent a field the Bot API does not have: {u}"
                          for u in dict.fromkeys(unknown))
                + "".join(f"\n  local Bot API server: {v}" for v in dict.fromkeys(violations)))

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        if exc_info[0] is None:
            self.check_contract()

    def handle_download(self, token: str, file_path: str) -> tuple[int, bytes, str]:
        failure = self._take_failure("download")
        if failure is not None:
            self._record_call("download", failure.status)
            return failure.status, json.dumps(failure.body()).encode(), "application/json"
        with self._lock:
            stored = next((f for f in self._files.values() if f.file_path == file_path), None)
            if token != self.token or stored is None or len(stored.data) > MAX_DOWNLOAD_BYTES:
                stored = None
            else:
                self._downloads += 1
        if stored is None:
            self._record_call("download", 404)
            return 404, json.dumps(ApiError(404).body()).encode(), "application/json"
        self._record_call("download", 200)
        return 200, stored.data, stored.mime_type

    # -- the methods

    def _get_me(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        return {"id": self.bot_id, "is_bot": True, "first_name": "Lookalike",
                "username": "lookalike_local_bot", "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False}

    def _get_file(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        file_id = str(params.get("file_id") or "")
        if not file_id:
            raise ApiError(400, "Bad Request: there is no file_id in the request")
        with self._lock:
            stored = self._files.get(file_id)
        if stored is None:
            raise ApiError(400, "Bad Request: invalid file_id")
        if len(stored.data) > MAX_DOWNLOAD_BYTES:
            raise ApiError(400, "Bad Request: file is too big")
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data), "file_path": stored.file_path}

    def _send_message(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        chat_id = _chat_id(params)
        text, entities = _parsed(params, str(params.get("text") or ""))
        if not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if text_length(text) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        message = self._record_sent("sendMessage", chat_id, params, text=text,
                                    entities=entities)
        return self._keep({**self._message(chat_id, message.message_id, params), "text": text,
                           **({"entities": entities} if entities else {})})

    def _send_media(self, params: dict[str, Any], files: dict[str, bytes],
                    kind: str) -> dict[str, Any]:
        chat_id = _chat_id(params)
        caption = params.get("caption")
        entities: list[dict[str, Any]] = []
        if caption is not None:
            caption, entities = _parsed(params, str(caption))
            if text_length(caption) > MAX_CAPTION:
                raise ApiError(400, "Bad Request: message caption is too long")
        data = self._media_bytes(params, files, kind)
        method = "sendPhoto" if kind == "photo" else "sendDocument"
        message = self._record_sent(method, chat_id, params, caption=caption,
                                    entities=entities,
                                    photo=data if kind == "photo" else None,
                                    document=data if kind != "photo" else None)
        result = self._message(chat_id, message.message_id, params)
        if kind == "photo":
            result["photo"] = self.add_photo(data)
        else:
            result["document"] = self.add_file(data, "file.jpg")
        if caption is not None:
            result["caption"] = caption
        if entities:
            result["caption_entities"] = entities
        return self._keep(result)

    def _media_bytes(self, params: dict[str, Any], files: dict[str, bytes], kind: str) -> bytes:
        value = params.get(kind)
        if isinstance(value, str) and value.startswith("attach://"):
            value = files.get(value[len("attach://"):])
        elif kind in files:
            value = files[kind]
        if isinstance(value, bytes):
            if not value:
                raise ApiError(400, "Bad Request: file must be non-empty")
            if kind == "photo":
                try:
                    with Image.open(io.BytesIO(value)) as opened:
                        opened.verify()
                except Exception:
                    raise ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED") from None
            return value
        if isinstance(value, str) and value:
            with self._lock:
                stored = self._files.get(value)
            if stored is None:
                raise ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")
            return stored.data
        raise ApiError(400, f"Bad Request: there is no {kind} in the request")

    def _edit(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any] | bool:
        text, caption = params.get("text"), params.get("caption")
        method = "editMessageText" if text is not None else "editMessageCaption"
        if params.get("inline_message_id"):
            return True  # Telegram answers True for inline messages
        chat_id = _chat_id(params)
        message_id = params.get("message_id")
        if message_id is None:
            raise ApiError(400, "Bad Request: message identifier is not specified")
        key = "text" if text is not None else "caption"
        value, entities = _parsed(params, str(text if text is not None else caption or ""))
        if key == "caption" and text_length(value) > MAX_CAPTION:
            raise ApiError(400, "Bad Request: message caption is too long")
        if key == "text" and text_length(value) > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        entity_key = "entities" if key == "text" else "caption_entities"
        changes: dict[str, Any] = {key: value, entity_key: entities}
        current = self._editable(chat_id, message_id)
        if current is not None:
            if all(current.get(k, []) == v for k, v in changes.items()) \
                    and current.get("reply_markup") == _reply_markup(params):
                raise ApiError(400, _NOT_MODIFIED)
            changes = {**current, **changes}
        self._record_sent(method, chat_id, params, message_id=message_id, entities=entities,
                          text=value if key == "text" else None,
                          caption=value if key == "caption" else None)
        result = {**changes, **self._message(chat_id, message_id, params),
                  key: value, "edit_date": int(time.time())}
        if not _reply_markup(params):
            result.pop("reply_markup", None)
        if not entities:
            result.pop(entity_key, None)
        if key == "caption" and caption is None:  # no caption: the caption was removed
            result.pop("caption", None)
        return self._keep(result)

    def _edit_media(self, params: dict[str, Any],
                    files: dict[str, bytes]) -> dict[str, Any] | bool:
        """editMessageMedia with a photo (InputMediaPhoto), for a message of this bot."""
        if params.get("inline_message_id"):
            return True  # Telegram answers True for inline messages
        chat_id = _chat_id(params)
        message_id = int(params.get("message_id") or 0)
        media = params.get("media")
        if not isinstance(media, dict) or not media.get("media"):
            raise ApiError(400, "Bad Request: can't parse InputMedia: media not found")
        if media.get("type") != "photo":
            raise ApiError(400, "Bad Request: unsupported media type")  # this server's limit
        caption: str | None = None
        entities: list[dict[str, Any]] = []
        if media.get("caption") is not None:
            caption, entities = _parsed(media, str(media["caption"]))
            if text_length(caption) > MAX_CAPTION:
                raise ApiError(400, "Bad Request: message caption is too long")
        current = self._editable(chat_id, message_id)
        if current is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        data = self._media_bytes({"photo": media["media"]}, files, "photo")
        self._record_sent("editMessageMedia", chat_id, {**params, "parse_mode":
                                                        media.get("parse_mode")},
                          message_id=message_id, caption=caption, photo=data,
                          entities=entities)
        result = {key: value for key, value in current.items()
                  if key not in ("photo", "caption", "caption_entities", "reply_markup",
                                 "document", "text", "entities")}
        result.update(self._message(chat_id, message_id, params), photo=self.add_photo(data),
                      edit_date=int(time.time()))
        if caption is not None:
            result["caption"] = caption
        if entities:
            result["caption_entities"] = entities
        return self._keep(result)

    def _editable(self, chat_id: int | str, message_id: int) -> dict[str, Any] | None:
        with self._lock:
            return self._messages.get((chat_id, message_id))

    def _keep(self, message: dict[str, Any]) -> dict[str, Any]:
        """Remember a message of the bot, as Telegram holds it."""
        with self._lock:
            self._messages[(message["chat"]["id"], message["message_id"])] = message
            self._lock.notify_all()
        return message

    # -- the bot's messages as updates carry them

    def bot_message(self, chat_id: int | str, message_id: int,
                    timeout: float = 5.0) -> dict[str, Any]:
        """A message the bot sent, as it is now; KeyError if there is none (after
        `timeout`: a message is recorded in `sent` a moment before its answer is made)."""
        with self._lock:
            self._lock.wait_for(lambda: (chat_id, message_id) in self._messages, timeout)
            return json.loads(json.dumps(self._messages[(chat_id, message_id)]))

    def delete_message(self, chat_id: int | str, message_id: int) -> None:
        """The message is gone (deleted in the chat): edits of it fail as in Telegram."""
        with self._lock:
            self._messages.pop((chat_id, message_id), None)

    def forget_file(self, file_id: str) -> None:
        """Telegram no longer serves the file: getFile answers 400."""
        with self._lock:
            self._files.pop(file_id, None)

    def new_callback_query_id(self) -> str:
        """An id for a callback query this server will accept one answer to."""
        query_id = str(secrets.randbits(63))
        with self._lock:
            self._callback_queries.add(query_id)
        return query_id

    def _answer_callback_query(self, params: dict[str, Any],
                               files: dict[str, bytes]) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_TEXT:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._lock:
            if query_id not in self._callback_queries:
                raise ApiError(400, "Bad Request: query is too old and response timeout "
                                    "expired or query ID is invalid")
            self._callback_queries.discard(query_id)
            self.callback_answers[query_id] = {k: v for k, v in params.items()
                                               if k != "callback_query_id"}
            self._lock.notify_all()
        return True

    def _send_chat_action(self, params: dict[str, Any], files: dict[str, bytes]) -> bool:
        chat_id = _chat_id(params)
        action = str(params.get("action") or "")
        if action not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        with self._lock:
            self.chat_actions.append((chat_id, action, time.time()))
            self._lock.notify_all()
        return True

    # -- the bot's profile

    def _set_my_commands(self, params: dict[str, Any], files: dict[str, bytes]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        for command in commands:
            if not isinstance(command, dict) or not BOT_COMMAND.fullmatch(
                    str(command.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self._lock:
            self.profile["commands"][_language(params)] = [
                {"command": c["command"], "description": c["description"]} for c in commands]
        return True

    def _set_profile_text(self, params: dict[str, Any], key: str, limit: int) -> bool:
        value = str(params.get(key) or "")
        if len(value) > limit:
            raise ApiError(400, f"Bad Request: {key.upper()}_INVALID")
        with self._lock:
            self.profile[key][_language(params)] = value
        return True

    def _get_profile(self, params: dict[str, Any], key: str) -> Any:
        language = _language(params)
        with self._lock:
            found = self.profile[key]
            value = found.get(language, found.get("", [] if key == "commands" else ""))
        return value if key == "commands" else {key: value}

    def _webhook_call(self, params: dict[str, Any], files: dict[str, bytes],
                      action: str) -> Any:
        with self._lock:
            if action == "set":
                self.webhook = {k: v for k, v in params.items() if k != "certificate"}
            elif action == "delete":
                self.webhook = {}
            else:
                return {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                        "pending_update_count": 0,
                        "allowed_updates": self.webhook.get("allowed_updates", [])}
        return True

    def _record_sent(self, method: str, chat_id: int | str, params: dict[str, Any], *,
                     text: str | None = None, caption: str | None = None,
                     photo: bytes | None = None, document: bytes | None = None,
                     message_id: int | None = None,
                     entities: list[dict[str, Any]] | None = None) -> SentMessage:
        with self._lock:
            message = SentMessage(
                method=method, chat_id=chat_id,
                message_id=message_id if message_id is not None else next(self._message_ids),
                reply_to=_reply_to(params), text=text, caption=caption, photo=photo,
                document=document, parse_mode=params.get("parse_mode"),
                entities=tuple(entities or ()), reply_markup=_reply_markup(params))
            self.sent.append(message)
            self._lock.notify_all()
            return message

    def _message(self, chat_id: int | str, message_id: int,
                 params: dict[str, Any]) -> dict[str, Any]:
        chat: dict[str, Any] = {"id": chat_id, "type": "private"}
        if isinstance(chat_id, str):  # "@username": Telegram answers with the chat's id
            chat = {"id": -1_000_000_000_000 - zlib.crc32(chat_id.encode()),
                    "type": "channel", "title": "Channel", "username": chat_id[1:]}
        elif chat_id < 0:
            chat = {"id": chat_id, "type": "supergroup", "title": "Group"}
        message = {"message_id": message_id, "date": int(time.time()), "chat": chat,
                   "from": {"id": self.bot_id, "is_bot": True, "first_name": "Lookalike",
                            "username": "lookalike_local_bot"}}
        markup = _reply_markup(params)
        if markup:
            message["reply_markup"] = markup
        return message


_METHODS = {
    "getme": BotApiServer._get_me,
    "getfile": BotApiServer._get_file,
    "sendmessage": BotApiServer._send_message,
    "sendphoto": lambda s, p, f: s._send_media(p, f, "photo"),
    "senddocument": lambda s, p, f: s._send_media(p, f, "document"),
    "sendchataction": BotApiServer._send_chat_action,
    "editmessagetext": BotApiServer._edit,
    "editmessagecaption": BotApiServer._edit,
    "editmessagemedia": BotApiServer._edit_media,
    "answercallbackquery": BotApiServer._answer_callback_query,
    "setmycommands": BotApiServer._set_my_commands,
    "getmycommands": lambda s, p, f: s._get_profile(p, "commands"),
    "setmydescription": lambda s, p, f: s._set_profile_text(p, "description", 512),
    "getmydescription": lambda s, p, f: s._get_profile(p, "description"),
    "setmyshortdescription": lambda s, p, f: s._set_profile_text(p, "short_description", 120),
    "getmyshortdescription": lambda s, p, f: s._get_profile(p, "short_description"),
    "setwebhook": lambda s, p, f: s._webhook_call(p, f, "set"),
    "deletewebhook": lambda s, p, f: s._webhook_call(p, f, "delete"),
    "getwebhookinfo": lambda s, p, f: s._webhook_call(p, f, "info"),
}


def photo_sizes(data: bytes) -> list[Image.Image]:
    """The photo in the sizes Telegram keeps, smallest first: longest side 90, 320, 800
    and 1280 px where the photo is larger, and the photo itself (scaled to 2560 px if
    larger).

    Made largest first, each from the size before it: a Lanczos resize costs in
    proportion to its source, so 320 px from 800 px costs a fraction of 320 px from the
    original. A JPEG that the decoder can scale straight to a size (1/2, 1/4 or 1/8,
    libjpeg's scaled decoding) is decoded at that size instead of resized (a 640 px reply
    picture's 320 px size). The photo is decoded in full once at most, and an RGB JPEG
    is not copied after decoding.
    """
    with Image.open(io.BytesIO(data)) as probe:
        width, height = probe.size
    longest = max(width, height)
    sides = [s for s in PHOTO_SIDES if s < longest] + [min(longest, MAX_PHOTO_SIDE)]
    made: list[Image.Image] = []
    source: Image.Image | None = None
    for side in reversed(sides):
        scale = side / longest
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = _decoded_at(data, size)
        if image is None:
            if source is None:
                source = _decoded(Image.open(io.BytesIO(data)))
            image = source if source.size == size else source.resize(
                size, Image.Resampling.LANCZOS)
        made.append(image)
        source = image
    return made[::-1]


def _decoded_at(data: bytes, size: tuple[int, int]) -> Image.Image | None:
    """A JPEG decoded at a reduced scale that is exactly `size`; None for other sizes
    and formats."""
    image = Image.open(io.BytesIO(data))
    if max(image.size) <= max(size) or image.draft("RGB", size) is None \
            or image.size != size:
        return None
    return _decoded(image)


def _decoded(image: Image.Image) -> Image.Image:
    """An opened image's pixels in RGB (a JPEG as decoded, without a converted copy)."""
    image.load()
    return image if image.mode == "RGB" else image.convert("RGB")


def _chat_id(params: dict[str, Any]) -> int | str:
    value = params.get("chat_id")
    if value in (None, ""):
        raise ApiError(400, "Bad Request: chat_id is empty")
    try:
        return int(value)
    except (TypeError, ValueError):
        if isinstance(value, str) and value.startswith("@"):
            return value
        raise ApiError(400, "Bad Request: chat not found") from None


def _parsed(params: dict[str, Any], text: str) -> tuple[str, list[dict[str, Any]]]:
    """The text a user sees and its entities, as Telegram applies `parse_mode`; other parse
    modes than HTML are passed through unparsed."""
    if str(params.get("parse_mode") or "").upper() != "HTML":
        return text, []
    try:
        return parse_html(text)
    except HtmlError as exc:
        raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None


def _language(params: dict[str, Any]) -> str:
    value = str(params.get("language_code") or "")
    if value and not re.fullmatch(r"[a-z]{2}", value):
        raise ApiError(400, "Bad Request: invalid language code specified")
    return value


def _reply_markup(params: dict[str, Any]) -> dict[str, Any] | None:
    """An InlineKeyboardMarkup's buttons checked as Telegram checks them."""
    markup = params.get("reply_markup")
    if markup in (None, "", {}):
        return None
    keyboard = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    if keyboard is None:
        return markup if isinstance(markup, dict) else None  # other keyboards: kept as sent
    if not isinstance(keyboard, list) or not all(isinstance(row, list) for row in keyboard):
        raise ApiError(400, "Bad Request: can't parse inline keyboard button: "
                            "InlineKeyboardButton must be an Object")
    for row in keyboard:
        for button in row:
            if not isinstance(button, dict) or not str(button.get("text") or ""):
                raise ApiError(400, "Bad Request: can't parse inline keyboard button: "
                                    "Text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def _reply_to(params: dict[str, Any]) -> int | None:
    """The message replied to (parameters as `check_request` decoded them)."""
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and isinstance(reply.get("message_id"), int):
        return int(reply["message_id"])
    legacy = params.get("reply_to_message_id")  # before Bot API 7.0; now unknown
    with contextlib.suppress(TypeError, ValueError):
        return int(legacy) if legacy not in (None, "") else None
    return None


def _parse_body(content_type: str, body: bytes,
                query: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    params: dict[str, Any] = dict(parse_qsl(query))
    files: dict[str, bytes] = {}
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        return params, files
    if kind == "application/json":
        try:
            loaded = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise ApiError(400, "Bad Request: can't parse JSON object") from None
        if not isinstance(loaded, dict):
            raise ApiError(400, "Bad Request: can't parse JSON object")
        params.update(loaded)
    elif kind == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace")))
    elif kind == "multipart/form-data":
        boundary = parse_options_header(content_type)[1].get("boundary")
        if not boundary:
            raise ApiError(400, "Bad Request: can't parse multipart body")
        try:
            form, uploads = MultiPartParser().parse(io.BytesIO(body), boundary.encode(),
                                                    len(body))
        except ValueError:
            raise ApiError(400, "Bad Request: can't parse multipart body") from None
        fields: dict[str, Any] = {name: value for name, value in form.items() if name}
        files.update((name, upload.read()) for name, upload in uploads.items() if name)
        params.update(fields)
    return params, files


def _handler_for(api: BotApiServer) -> type[BaseHTTPRequestHandler]:
    class Handler(KeepAliveHandler):

        def log_message(self, format: str, *args: Any) -> None:
            pass  # calls are logged by the server without the token in the path

        def do_GET(self) -> None:
            self._route()

        def do_POST(self) -> None:
            self._route()

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _route(self) -> None:
            parts = urlsplit(self.path)
            path = unquote(parts.path)
            body = self._read_body()
            started = time.perf_counter()
            if path.startswith("/file/bot"):
                token, _, file_path = path[len("/file/bot"):].partition("/")
                status, data, mime = api.handle_download(token, file_path)
                self._answer(status, data, mime)
                api.handling_ms.append(("download", (time.perf_counter() - started) * 1000))
                if status == 200 and api.on_download is not None:
                    self.wfile.flush()
                    api.on_download(file_path)
                return
            match = re.fullmatch(r"/bot([^/]*)/([A-Za-z0-9_]*)", path)
            if match is None:
                self._answer(404, json.dumps(ApiError(404).body()).encode(), "application/json")
                return
            try:
                params, files = _parse_body(self.headers.get("Content-Type", ""), body,
                                            parts.query)
            except ApiError as exc:
                self._answer(exc.status, json.dumps(exc.body()).encode(), "application/json")
                return
            status, answer = api.handle_method(match.group(1), match.group(2), params, files)
            # Compact, as Telegram writes it (scripts match `"ok":true`).
            self._answer(status, json.dumps(answer, ensure_ascii=False,
                                            separators=(",", ":")).encode(),
                         "application/json")
            api.handling_ms.append((match.group(2), (time.perf_counter() - started) * 1000))

        def _answer(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def photo_update(update_id: int, chat_id: int, message_id: int, photo: list[dict[str, Any]],
                 *, language_code: str = "en", caption: str | None = None,
                 chat_type: str = "private", user_id: int | None = None) -> dict[str, Any]:
    """An Update carrying a photo message, as Telegram would post it to a webhook."""
    user_id = user_id if user_id is not None else abs(chat_id)
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        chat["first_name"] = "Test"
    else:
        chat["title"] = "Test group"
    message: dict[str, Any] = {
        "message_id": message_id, "date": int(time.time()), "chat": chat,
        "from": {"id": user_id, "is_bot": False, "first_name": "Test",
                 "language_code": language_code},
        "photo": photo}
    if caption is not None:
        message["caption"] = caption
    return {"update_id": update_id, "message": message}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack.bot_api", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", required=True, help="the bot token clients must use")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    # Alone, it serves any client: contract breaks are logged, not raised.
    server = BotApiServer(args.token, args.host, args.port, strict=False).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
