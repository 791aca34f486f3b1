"""The worker's Bot API client: python-telegram-bot's `Bot` on one event loop per instance.

The worker's handler is synchronous (functions-framework may run several in threads);
the Bot's coroutines run on a loop in a background thread and each call waits for its
result. Short flood waits (`RetryAfter` up to `max_retry_after_seconds`) are slept here
and the call repeated; longer ones propagate so the job goes back to Pub/Sub. Messages
wait for their slot in the instance's `SendLimiter` (Telegram's per-chat and bot-wide
rates) so that flood waits are rare in the first place.

While a photo job is worked on, `upload_photo_action` keeps "sending photo…" showing in
the chat: the webhook set it when the photo arrived, and Telegram shows an action for at
most 5 s, so the worker repeats it when a job takes longer (a cold start, a queue) and
stops before the answer is sent (an action after it would show for nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import TypeVar

import telegram
from telegram.constants import ChatAction
from telegram.error import RetryAfter
from telegram.request import HTTPXRequest

from functions.send_limiter import SendLimiter

log = logging.getLogger(__name__)
T = TypeVar("T")
_RETRIES = 3  # short flood waits in a row before giving the job back to Pub/Sub
# Telegram shows a chat action for up to 5 s; repeated a little sooner so it never lapses.
ACTION_REPEAT_SECONDS = 4.5


def retry_after_seconds(error: RetryAfter) -> float:
    with warnings.catch_warnings():  # its type moves from int to timedelta across versions
        warnings.simplefilter("ignore")
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class TelegramClient:
    def __init__(self, token: str, api_url: str, timeout: float,
                 max_retry_after: float, limiter: SendLimiter | None = None) -> None:
        self.max_retry_after = max_retry_after
        self.limiter = limiter or SendLimiter(chat_interval=1.0, bot_interval=1 / 30)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="telegram-loop",
                                        daemon=True)
        self._thread.start()
        request = HTTPXRequest(connection_pool_size=16, read_timeout=timeout,
                               write_timeout=timeout, connect_timeout=min(timeout, 10.0),
                               pool_timeout=timeout, media_write_timeout=timeout)
        api_url = api_url.rstrip("/")
        self.bot = telegram.Bot(token, base_url=api_url + "/bot",
                                base_file_url=api_url + "/file/bot", request=request)
        self._timeout = timeout
        # Per chat, the threads repeating its chat action (one per job in flight).
        self._actions: dict[int | str, list[tuple[threading.Event, threading.Thread]]] = {}
        self._actions_lock = threading.Lock()

    def call(self, make: Callable[[telegram.Bot], Awaitable[T]],
             chat_id: int | None = None) -> T:
        """Run one Bot API call, sleeping through short flood waits; a message to
        `chat_id` first waits for its slot in the rate limits."""
        if chat_id is not None:
            self._end_action(chat_id)  # the message ends the chat's "sending photo…"
        for attempt in range(1, _RETRIES + 1):
            try:
                if chat_id is None:
                    return self._run(make)
                with self.limiter.slot(chat_id):
                    return self._run(make)
            except RetryAfter as exc:
                wait = retry_after_seconds(exc)
                if wait > self.max_retry_after or attempt == _RETRIES:
                    raise
                log.warning("Telegram asks to retry after %.0f s; waiting", wait,
                            extra={"fields": {"retry_after": wait, "attempt": attempt}})
                if chat_id is None:
                    time.sleep(wait)
                else:  # the limiter sleeps it, and so do other threads' messages to the chat
                    self.limiter.postpone(chat_id, wait)
        raise AssertionError("unreachable")

    def _run(self, make: Callable[[telegram.Bot], Awaitable[T]]) -> T:
        future = asyncio.run_coroutine_threadsafe(_awaited(make(self.bot)), self._loop)
        return future.result(timeout=3 * self._timeout)

    def download(self, file_id: str) -> bytes:
        """The file's bytes, in memory only (never written to disk)."""

        async def fetch(bot: telegram.Bot) -> bytes:
            file = await bot.get_file(file_id)
            return bytes(await file.download_as_bytearray())

        return self.call(fetch)

    def send_photo(self, chat_id: int, photo: bytes, caption: str, reply_to: int,
                   parse_mode: str | None = None,
                   reply_markup: telegram.InlineKeyboardMarkup | None = None,
                   ) -> telegram.Message:
        return self.call(lambda bot: bot.send_photo(
            chat_id=chat_id, photo=photo, caption=caption, parse_mode=parse_mode,
            reply_parameters=_reply(reply_to), reply_markup=reply_markup), chat_id)

    def send_text(self, chat_id: int, text: str, reply_to: int,
                  parse_mode: str | None = None,
                  reply_markup: telegram.InlineKeyboardMarkup | None = None,
                  ) -> telegram.Message:
        # Look-alike texts link names and credits, so no link preview is wanted.
        return self.call(lambda bot: bot.send_message(
            chat_id=chat_id, text=text, parse_mode=parse_mode,
            link_preview_options=telegram.LinkPreviewOptions(is_disabled=True),
            reply_parameters=_reply(reply_to), reply_markup=reply_markup), chat_id)

    def edit_photo(self, chat_id: int, message_id: int, photo: bytes, caption: str,
                   reply_markup: telegram.InlineKeyboardMarkup | None,
                   parse_mode: str | None = None) -> object:
        """A new picture and caption for an answer, in place (a text answer becomes a
        picture: editMessageMedia allows it)."""
        return self.call(lambda bot: bot.edit_message_media(
            chat_id=chat_id, message_id=message_id,
            media=telegram.InputMediaPhoto(photo, caption=caption, parse_mode=parse_mode),
            reply_markup=reply_markup), chat_id)

    def edit_words(self, chat_id: int, message_id: int, words: str,
                   reply_markup: telegram.InlineKeyboardMarkup | None,
                   parse_mode: str | None = None, *, caption: bool) -> object:
        """New words for an answer, in place: its caption when it is a picture, its text
        (without link previews, as sent) when it is a text answer."""
        def edit(bot: telegram.Bot) -> Awaitable[object]:
            if caption:
                return bot.edit_message_caption(
                    chat_id=chat_id, message_id=message_id, caption=words,
                    parse_mode=parse_mode, reply_markup=reply_markup)
            return bot.edit_message_text(
                chat_id=chat_id, message_id=message_id, text=words, parse_mode=parse_mode,
                link_preview_options=telegram.LinkPreviewOptions(is_disabled=True),
                reply_markup=reply_markup)
        return self.call(edit, chat_id)

    @contextlib.contextmanager
    def upload_photo_action(self, chat_id: int, since: float) -> Iterator[None]:
        """Keep "sending photo…" showing in the chat, set at `since` (unix seconds), until
        the block ends or a message is sent to the chat. Best effort: a failed action is
        logged and never fails the job."""
        stop = threading.Event()

        def keep() -> None:
            due = since + ACTION_REPEAT_SECONDS
            while not stop.wait(max(0.0, due - time.time())):
                try:
                    self._run(lambda bot: bot.send_chat_action(chat_id, ChatAction.UPLOAD_PHOTO))
                except Exception as exc:
                    log.info("chat action not sent: %s", exc)
                due = time.time() + ACTION_REPEAT_SECONDS

        thread = threading.Thread(target=keep, name="chat-action", daemon=True)
        with self._actions_lock:
            self._actions.setdefault(chat_id, []).append((stop, thread))
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(3 * self._timeout)
            with self._actions_lock:
                keepers = self._actions.get(chat_id, [])
                if (stop, thread) in keepers:
                    keepers.remove((stop, thread))
                if not keepers:
                    self._actions.pop(chat_id, None)

    def _end_action(self, chat_id: int | str) -> None:
        """Stop repeating the chat's action, and wait until no request of it is in flight."""
        with self._actions_lock:
            keepers = list(self._actions.get(chat_id, []))
        for stop, _ in keepers:
            stop.set()
        for _, thread in keepers:
            if thread is not threading.current_thread():
                thread.join(3 * self._timeout)

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort
            asyncio.run_coroutine_threadsafe(self.bot.shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():
            self._loop.close()


def _reply(message_id: int) -> telegram.ReplyParameters:
    # The photo may have been deleted meanwhile: answer anyway rather than fail.
    return telegram.ReplyParameters(message_id=message_id, allow_sending_without_reply=True)


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
