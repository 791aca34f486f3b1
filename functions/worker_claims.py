"""An update's claim, taken while its photo is downloaded and matched.

The claim is a marker write (`functions.worker_markers`), one storage round trip. It
runs in a second thread while the worker downloads and matches the photo, which no user
sees, and every message to the user waits until the claim is held (`ClaimedTelegram`):
exactly one answer per update holds as before (docs/reliability.md). A duplicate
delivery costs a download (and a match, when the claim is slower than the download)
before it is skipped.
"""

from __future__ import annotations

import contextvars
import time
from concurrent.futures import Executor

import telegram

from functions.job_clock import JobClock
from functions.worker_markers import Claim, Markers, NoMarkers
from functions.worker_telegram import TelegramClient


class AlreadyAnswered(Exception):
    """The update's marker says done: another delivery answered it."""


class ClaimGate:
    """The claim on `key`, being taken in `pool` from the moment this is made."""

    def __init__(self, markers: Markers | NoMarkers, key: str, pool: Executor,
                 clock: JobClock) -> None:
        def claim() -> Claim | None:
            started = time.perf_counter()
            try:
                return markers.claim(key)
            finally:
                clock.ms["claim"] = (time.perf_counter() - started) * 1000

        # The job's trace (a context variable) goes with it, for the claim's log lines.
        self._future = pool.submit(contextvars.copy_context().run, claim)
        self._clock = clock

    def wait(self) -> Claim:
        """The claim, once held. Raises `AlreadyAnswered`, or what taking it raised
        (`MarkerBusy`, `StoreError`: the job is redelivered)."""
        with self._clock.stage("claim_wait"):
            claim = self._future.result()
        if claim is None:
            raise AlreadyAnswered
        return claim

    def check(self) -> None:
        """Raise now if the claim was already refused; return if it is held or pending."""
        if self._future.done():
            self.wait()

    def held(self) -> Claim | None:
        """The claim if it was taken (waiting for it), else None: what a failed job
        releases."""
        try:
            return self._future.result()
        except Exception:
            return None


class ClaimedTelegram:
    """The Bot API as one job uses it: downloads at once, messages once the claim is held."""

    def __init__(self, client: TelegramClient, gate: ClaimGate) -> None:
        self._client = client
        self._gate = gate

    def claimed(self) -> None:
        """Wait until the claim is held (`AlreadyAnswered` or the claim's error if not)."""
        self._gate.wait()

    def download(self, file_id: str) -> bytes:
        """The file; `AlreadyAnswered` (or the claim's error) instead when the claim was
        refused meanwhile, so a duplicate is not matched for nothing."""
        data = self._client.download(file_id)
        self._gate.check()
        return data

    def send_photo(self, chat_id: int, photo: bytes, caption: str, reply_to: int,
                   parse_mode: str | None = None,
                   reply_markup: telegram.InlineKeyboardMarkup | None = None,
                   ) -> telegram.Message:
        self._gate.wait()
        return self._client.send_photo(chat_id, photo, caption, reply_to, parse_mode,
                                       reply_markup)

    def send_text(self, chat_id: int, text: str, reply_to: int,
                  parse_mode: str | None = None,
                  reply_markup: telegram.InlineKeyboardMarkup | None = None,
                  ) -> telegram.Message:
        self._gate.wait()
        return self._client.send_text(chat_id, text, reply_to, parse_mode, reply_markup)

    def edit_photo(self, chat_id: int, message_id: int, photo: bytes, caption: str,
                   reply_markup: telegram.InlineKeyboardMarkup | None,
                   parse_mode: str | None = None) -> object:
        self._gate.wait()
        return self._client.edit_photo(chat_id, message_id, photo, caption, reply_markup,
                                       parse_mode)

    def edit_words(self, chat_id: int, message_id: int, words: str,
                   reply_markup: telegram.InlineKeyboardMarkup | None,
                   parse_mode: str | None = None, *, caption: bool) -> object:
        self._gate.wait()
        return self._client.edit_words(chat_id, message_id, words, reply_markup, parse_mode,
                                       caption=caption)
