"""A per-chat photo quota that holds across webhook instances.

Each chat has one small object per fixed window, `<chat id>/<window start>.json` under
`Settings.quota_uri`: the update ids of the photos counted in that window and whether
the chat was told it is over its quota. Every change is a conditional write (the object's
generation as precondition), so two instances counting the same chat at once never lose
a count: the loser re-reads and decides again. An instance remembers the generation it
wrote last, so a chat's next photo usually costs one write; the first photo of a window,
one write (if-not-exists) too. Objects are deleted by the bucket's lifecycle rule
(infra/lifecycle.json) a day later.

A redelivered update (same update id) is not counted twice. The first photo over the
quota gets one polite answer; later ones in the window are dropped silently.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

from shared.storage import NotFound, PreconditionFailed, Store

log = logging.getLogger(__name__)

_ATTEMPTS = 8  # conditional writes lost to other instances before giving up
_REMEMBERED = 10_000  # windows an instance remembers the generation of


@dataclass(frozen=True)
class Decision:
    allowed: bool
    tell: bool  # refused, and this is the first refusal in the window: answer it
    position: int  # this photo's place among the chat's photos in the window (1-based)


@dataclass(frozen=True)
class _Window:
    generation: int  # 0: the object does not exist
    updates: tuple[int, ...]
    told: bool

    def encode(self) -> bytes:
        return json.dumps({"updates": list(self.updates), "told": self.told}).encode()


_EMPTY = _Window(0, (), False)


class QuotaUnavailable(Exception):
    """The quota could not be read or written (storage failing, or endless contention)."""


class PhotoQuota:
    def __init__(self, store: Store, limit: int, window_seconds: int) -> None:
        self.store = store
        self.limit = limit
        self.window_seconds = window_seconds
        self._known: dict[str, _Window] = {}
        self._lock = threading.Lock()
        # One chat's photos are counted one at a time within an instance (a burst arrives
        # as many requests at once): its conditional writes then race only with other
        # instances', and each uses the generation the previous one wrote.
        self._chat_locks: dict[str, threading.Lock] = {}

    def take(self, chat_id: int, update_id: int, now: float) -> Decision:
        """Count the photo of `update_id` for `chat_id` at time `now` (seconds since the
        epoch); raises QuotaUnavailable when storage fails."""
        start = int(now // self.window_seconds * self.window_seconds)
        key = f"{chat_id}/{start}.json"
        with self._lock:
            if len(self._chat_locks) >= _REMEMBERED:
                self._chat_locks.clear()
            chat_lock = self._chat_locks.setdefault(key, threading.Lock())
        with chat_lock:
            return self._take(key, update_id)

    def _take(self, key: str, update_id: int) -> Decision:
        with self._lock:
            window = self._known.get(key, _EMPTY)
        for _ in range(_ATTEMPTS):
            decision, changed = self._decide(window, update_id)
            if changed is None:
                return decision
            try:
                generation = self.store.write(key, changed.encode(),
                                              if_generation=window.generation,
                                              content_type="application/json")
            except PreconditionFailed:
                window = self._read(key)
                continue
            except Exception as exc:
                raise QuotaUnavailable(f"cannot write {key}: {exc}") from exc
            self._remember(key, _Window(generation, changed.updates, changed.told))
            return decision
        raise QuotaUnavailable(f"{key} kept changing under {_ATTEMPTS} attempts")

    def _decide(self, window: _Window, update_id: int) -> tuple[Decision, _Window | None]:
        if update_id in window.updates:  # Telegram delivered the update again
            return Decision(True, False, window.updates.index(update_id) + 1), None
        if len(window.updates) < self.limit:
            updates = (*window.updates, update_id)
            return (Decision(True, False, len(updates)),
                    _Window(window.generation, updates, window.told))
        if not window.told:
            return (Decision(False, True, len(window.updates) + 1),
                    _Window(window.generation, window.updates, True))
        return Decision(False, False, len(window.updates) + 1), None

    def _read(self, key: str) -> _Window:
        # The generation first: if the object changes before it is read, the next
        # conditional write fails and the window is read again.
        try:
            generation = self.store.generation(key)
            if generation == 0:
                return _EMPTY
            raw = json.loads(self.store.read(key))
            return _Window(generation, tuple(int(u) for u in raw["updates"]),
                           bool(raw["told"]))
        except NotFound:
            return _EMPTY
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("quota object %s unreadable, counting afresh: %s", key, exc)
            return _Window(self.store.generation(key), (), False)
        except Exception as exc:
            raise QuotaUnavailable(f"cannot read {key}: {exc}") from exc

    def _remember(self, key: str, window: _Window) -> None:
        with self._lock:
            if len(self._known) >= _REMEMBERED:
                self._known.clear()  # old windows; a forgotten one costs one re-read
            self._known[key] = window
