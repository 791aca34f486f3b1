"""Telegram's message rate limits, kept by one worker instance.

Telegram allows about one message per second to one chat and about 30 per second for
the whole bot; past that it answers 429 with `retry_after`. Each send first reserves a
slot: the earliest time that is at least `chat_interval` after the chat's previous slot
and `bot_interval` after anyone's. Reserving under a lock and sleeping outside it keeps
the order fair among threads and never holds the lock while waiting.

This bounds one instance only. Across instances the bot-wide rate is at most
max instances × `1 / bot_interval`; what exceeds Telegram's limit is answered 429 and
handled by the client's retry_after waits (see functions/worker_telegram.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_MAX_CHATS = 10_000  # chats remembered before slots in the past are forgotten


class SendLimiter:
    def __init__(self, chat_interval: float, bot_interval: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.chat_interval = chat_interval
        self.bot_interval = bot_interval
        self.clock = clock
        self.sleep = sleep
        self._next_for_chat: dict[int | str, float] = {}
        self._next_for_bot = 0.0
        self._lock = threading.Lock()

    def reserve(self, chat_id: int | str) -> float:
        """Take the chat's next slot; returns how many seconds to wait for it."""
        with self._lock:
            now = self.clock()
            if len(self._next_for_chat) > _MAX_CHATS:
                self._next_for_chat = {c: t for c, t in self._next_for_chat.items() if t > now}
            slot = max(now, self._next_for_chat.get(chat_id, now), self._next_for_bot)
            self._next_for_chat[chat_id] = slot + self.chat_interval
            self._next_for_bot = slot + self.bot_interval
            return slot - now

    def postpone(self, chat_id: int | str, seconds: float) -> None:
        """Telegram asked to wait `seconds` before the chat's next message."""
        with self._lock:
            later = self.clock() + seconds
            self._next_for_chat[chat_id] = max(self._next_for_chat.get(chat_id, 0.0), later)

    def wait(self, chat_id: int | str) -> float:
        """Block until the chat may be sent to; returns the seconds waited."""
        delay = self.reserve(chat_id)
        if delay > 0:
            self.sleep(delay)
        return delay
