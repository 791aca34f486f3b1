"""Telegram's message rate limits, kept by one worker instance.

Telegram allows about one message per second to one chat, about 20 per minute to one
group, and about 30 per second for the whole bot; past that it answers 429 with
`retry_after`. Each send first reserves a slot: the earliest time that is at least
`chat_interval` after the chat's previous message was answered, `bot_interval` away
from every other reserved slot and, for a group (a negative chat id), a minute after
the group's `group_per_minute`-th last message. The shared state is only touched under
a short lock; waiting happens outside it.

This bounds one instance only. Across instances the bot-wide rate is at most
max instances × `1 / bot_interval`; what exceeds Telegram's limit is answered 429 and
handled by the client's retry_after waits (see functions/worker_telegram.py).

Why not python-telegram-bot's `AIORateLimiter`: it limits only group chats (negative
ids) per chat, 20 a minute as a burst-permitting bucket, and nothing per private chat,
where the bot mostly talks; it counts a message from when it starts, not from when its
upload finished; one chat's `RetryAfter` halts every request of the bot; and it needs
`telegram.ext`'s `ExtBot` and the `aiolimiter` extra where the worker uses the plain
`telegram.Bot`. This class is the per-chat gap and the bot-wide pace, nothing more.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator

_MAX_CHATS = 10_000  # chats remembered before slots in the past are forgotten
GROUP_WINDOW_SECONDS = 60.0


def is_group(chat_id: int | str) -> bool:
    """Groups and supergroups have negative ids (channels too, which the bot never writes
    to); an `@username` is a public group or channel."""
    return isinstance(chat_id, str) or chat_id < 0


class SendLimiter:
    def __init__(self, chat_interval: float, bot_interval: float,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep,
                 group_per_minute: int = 20) -> None:
        self.chat_interval = chat_interval
        self.bot_interval = bot_interval
        self.group_per_minute = group_per_minute
        self.clock = clock
        self.sleep = sleep
        self._chat_ready: dict[int | str, float] = {}
        self._chat_locks: dict[int | str, threading.Lock] = {}
        # When each of a group's last `group_per_minute` messages was answered.
        self._group_sent: dict[int | str, deque[float]] = {}
        # Every chat's reserved start, sorted; those more than `bot_interval` past are
        # dropped. A chat waiting for its own slot holds one place in the bot's pace, not
        # every place before it: other chats take the free ones in between.
        self._bot_slots: list[float] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def slot(self, chat_id: int | str) -> Iterator[float]:
        """Hold the chat's next slot while sending (yields the seconds waited for it).

        Messages to one chat go one at a time, and the next may start `chat_interval`
        after the previous one *finished*: counted from its start, a slow upload would
        let the two reach Telegram closer together than allowed. A group's minute is
        counted from the answers too, for the same reason."""
        with self._lock_for(chat_id):
            delay = self._reserve(chat_id)
            if delay > 0:
                self.sleep(delay)
            try:
                yield delay
            finally:
                with self._lock:
                    now = self.clock()
                    ready = now + self.chat_interval
                    self._chat_ready[chat_id] = max(self._chat_ready.get(chat_id, 0.0), ready)
                    if is_group(chat_id):
                        self._group_sent.setdefault(
                            chat_id, deque(maxlen=self.group_per_minute)).append(now)

    def postpone(self, chat_id: int | str, seconds: float) -> None:
        """Telegram asked to wait `seconds` before the chat's next message."""
        with self._lock:
            later = self.clock() + seconds
            self._chat_ready[chat_id] = max(self._chat_ready.get(chat_id, 0.0), later)

    def _reserve(self, chat_id: int | str) -> float:
        """The earliest start for the chat that also keeps the group's and the bot-wide
        rates; taken."""
        with self._lock:
            now = self.clock()
            start = max(now, self._chat_ready.get(chat_id, now))
            sent = self._group_sent.get(chat_id)
            if sent is not None and len(sent) >= self.group_per_minute:
                start = max(start, sent[0] + GROUP_WINDOW_SECONDS)
            start = self._free_bot_slot(start, now)
            bisect.insort(self._bot_slots, start)
            return start - now

    def _free_bot_slot(self, start: float, now: float) -> float:
        """The earliest time from `start` at least `bot_interval` away from every reserved
        slot (under the lock)."""
        past = bisect.bisect_left(self._bot_slots, now - self.bot_interval)
        del self._bot_slots[:past]  # cannot clash with a start from now on
        for slot in self._bot_slots:
            if slot >= start + self.bot_interval:
                break
            if slot > start - self.bot_interval:
                start = slot + self.bot_interval
        return start

    def _lock_for(self, chat_id: int | str) -> threading.Lock:
        with self._lock:
            if len(self._chat_locks) > _MAX_CHATS:
                now = self.clock()
                for chat in [c for c, t in self._chat_ready.items() if t <= now]:
                    sent = self._group_sent.get(chat)
                    if sent and sent[-1] + GROUP_WINDOW_SECONDS > now:
                        continue  # the group's minute still counts
                    self._chat_ready.pop(chat, None)
                    self._group_sent.pop(chat, None)
                    lock = self._chat_locks.get(chat)
                    if lock is not None and not lock.locked():
                        del self._chat_locks[chat]
            return self._chat_locks.setdefault(chat_id, threading.Lock())
