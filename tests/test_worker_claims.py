"""The claim taken while the photo downloads: messages wait for it, downloads do not."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

from functions.job_clock import JobClock
from functions.worker_claims import AlreadyAnswered, ClaimedTelegram, ClaimGate
from functions.worker_markers import Markers
from functions.worker_telegram import TelegramClient
from shared.storage import LocalStore
from stack.bot_api import BotApiServer

TOKEN = "123456:claims-test"


class SlowStore(LocalStore):
    """A local store whose writes wait until `go` is set: a claim in flight."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.go = threading.Event()

    def write(self, key: str, data: bytes, *, if_generation: int | None = None,
              content_type: str | None = None) -> int:
        assert self.go.wait(30)
        return super().write(key, data, if_generation=if_generation, content_type=content_type)


@pytest.fixture
def api() -> Iterator[BotApiServer]:
    with BotApiServer(TOKEN) as server:
        yield server


@pytest.fixture
def client(api: BotApiServer) -> Iterator[TelegramClient]:
    made = TelegramClient(TOKEN, api.url, 10.0, 5.0)
    yield made
    made.close()


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(2) as made:
        yield made


def test_the_photo_downloads_while_the_claim_is_taken_and_the_answer_waits_for_it(
        tmp_path, api, client, pool) -> None:
    store = SlowStore(tmp_path)
    [size] = api.add_photo(_jpeg())[-1:]
    telegram = ClaimedTelegram(client, ClaimGate(Markers(store, 240), "1/1", pool, JobClock()))
    # Downloaded while the claim's write still waits.
    assert telegram.download(size["file_id"])[:2] == b"\xff\xd8"
    sending = pool.submit(telegram.send_text, 1, "hello", 1)
    assert not sending.done() and api.sent == []  # the claim is still being written
    store.go.set()
    sending.result(10)
    assert [m.text for m in api.sent] == ["hello"]


def test_an_update_answered_already_sends_nothing(tmp_path, api, client, pool) -> None:
    store = SlowStore(tmp_path)
    store.go.set()
    markers = Markers(store, 240)
    markers.done(markers.claim("1/2"))  # another delivery answered it
    telegram = ClaimedTelegram(client, ClaimGate(markers, "1/2", pool, JobClock()))
    with pytest.raises(AlreadyAnswered):
        telegram.send_text(1, "hello again", 1)
    assert api.sent == []


def _jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buffer, format="JPEG")
    return buffer.getvalue()
