"""Promises 2 and 4 for the worker, in-process: hostile job payloads and hostile photo
bytes end in a clear reply or a logged acknowledgement within bounded time and memory,
and replies keep Telegram's rates (about 1 message/s per chat, 30/s bot-wide) against
a Bot API server that answers 429 like Telegram when a chat is sent to too fast.

Fixtures come from tests/test_worker.py: fake-gcs-server with the models and the demo
gallery, a fresh worker instance per test, the local Bot API server."""

from __future__ import annotations

import io
import itertools
import json
import logging
import resource
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from functions import worker
from functions.send_limiter import SendLimiter
from functions.worker_telegram import TelegramClient
from shared.jobs import Job
from shared.texts import text
from stack.bot_api import BotApiServer
from tests import test_worker as base
from tests.reliability_budget import record, scaled
from tests.test_worker import TOKEN, job_for, pubsub_event

# The worker tests' fixtures, shared rather than copied.
bucket, cache_dir, api, env = base.bucket, base.cache_dir, base.api, base.env

CASE_SECONDS = 30.0  # generous: a shared 2-core machine, face detection included
RSS_GROWTH_MB = 1500  # peak resident memory the hostile photos may add, all together
_chats = itertools.count(900_000)
_figures: Counter[str] = Counter()


class Acknowledgements(logging.Handler):
    """The worker's log lines that say a job was acknowledged without a reply."""

    WORDS = ("malformed job acknowledged", "job dropped", "ignored an event",
             "already answered")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def acknowledged(self) -> bool:
        return any(word in m for m in self.messages for word in self.WORDS)


@pytest.fixture
def acks() -> Iterator[Acknowledgements]:
    handler = Acknowledgements()
    logger = logging.getLogger("functions.worker")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def event_for(payload: bytes) -> object:
    return pubsub_event(payload)


def raw_event(data: object) -> object:
    """A push whose message data is not base64 of anything sensible."""
    event = pubsub_event(b"{}")
    event.data["message"]["data"] = data
    return event


# -- hostile job payloads -----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=3), max_leaves=12)

_job_fields = st.fixed_dictionaries(
    {"version": st.just(1) | json_values,
     "update_id": st.integers(-2**63, 2**63 - 1),
     "chat_id": st.integers(-2**52, 2**52),
     "message_id": st.integers(-2**31, 2**31),
     "file_id": st.text(min_size=1, max_size=80),
     "file_unique_id": st.text(max_size=20),
     "width": st.integers(-10, 100_000), "height": st.integers(-10, 100_000),
     "received_at": st.floats(0, 4e9) | st.just(time.time())},
    optional={"file_size": st.integers(-1, 2**40), "language_code": st.text(max_size=12),
              "chat_type": st.text(max_size=12), "extra": json_values})


@settings(max_examples=scaled(100, 1000), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payload=st.one_of(
    st.binary(max_size=600).map(lambda b: ("bytes", b)),
    json_values.map(lambda v: ("json", json.dumps(v).encode())),
    _job_fields.map(lambda d: ("job", json.dumps(d).encode())),
    st.one_of(st.text(max_size=30), json_values).map(lambda v: ("not base64", v))))
def test_any_job_payload_ends_in_a_reply_or_a_logged_acknowledgement(env, api, acks,
                                                                     payload):
    kind, data = payload
    acks.messages.clear()
    before = len(api.sent)
    started = time.monotonic()
    event = raw_event(data) if kind == "not base64" else event_for(data)
    worker.handle_event(event)  # raising would mean "redeliver": never for these
    seconds = time.monotonic() - started
    _figures[f"jobs:{kind}"] += 1
    assert seconds < CASE_SECONDS
    assert len(api.sent) == before + 1 or acks.acknowledged(), (kind, data, acks.messages)
    assert len(api.sent) <= before + 1


# -- hostile photo bytes ------------------------------------------------------------


def png_bomb(side: int) -> bytes:
    """A real PNG of side × side grey pixels, all zeros: a few hundred KB that decode
    to side² bytes (400 MB for 20000)."""
    compressor = zlib.compressobj(9)
    row = b"\0" * (side + 1)
    chunks = [compressor.compress(row * 500) for _ in range(side // 500)]
    chunks.append(compressor.compress(row * (side % 500)))
    chunks.append(compressor.flush())

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(chunks))
            + chunk(b"IEND", b""))


def jpeg_claiming(data: bytes, width: int, height: int) -> bytes:
    """A real JPEG whose frame header claims another size (the data stays small)."""
    at = 2  # after SOI, walk the segments to the frame header (SOF0..SOF3)
    while data[at + 1] not in (0xC0, 0xC1, 0xC2, 0xC3):
        at += 2 + struct.unpack(">H", data[at + 2:at + 4])[0]
    return data[:at + 5] + struct.pack(">HH", height, width) + data[at + 9:]


def gif_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (4, 4)).save(buffer, format="GIF")
    data = buffer.getvalue()
    return data[:6] + struct.pack("<HH", width, height) + data[10:]


def image_bytes(image: Image.Image, kind: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def animated_gif(face: Path) -> bytes:
    first = Image.open(face).convert("RGB")
    first.thumbnail((400, 400))
    second = Image.new("RGB", first.size, (40, 40, 40))
    return image_bytes(first, "GIF", save_all=True, append_images=[second], duration=200,
                       loop=0)


def hostile_photos(labelled: dict[str, list[Path]]) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, mime type): what a public bot is sent as files."""
    face = labelled["Barack_Obama"][0].read_bytes()
    cases = {
        "empty": (b"", "image/jpeg"),
        "random 4 KiB": (bytes(range(256)) * 16, "image/jpeg"),
        "html as jpeg": (b"<html><body>hi</body></html>", "image/jpeg"),
        "1x1 png": (image_bytes(Image.new("RGB", (1, 1)), "PNG"), "image/png"),
        "1x1 jpeg": (image_bytes(Image.new("RGB", (1, 1)), "JPEG"), "image/jpeg"),
        "png bomb 20000x20000": (png_bomb(20000), "image/png"),
        "jpeg header 20000x20000": (jpeg_claiming(face, 20000, 20000), "image/jpeg"),
        "jpeg header 0x0": (jpeg_claiming(face, 0, 0), "image/jpeg"),
        "gif header 65535x65535": (gif_claiming(65535, 65535), "image/gif"),
        "animated gif, face first": (animated_gif(labelled["Barack_Obama"][0]), "image/gif"),
        "huge document 21 MB": (b"\xff\xd8\xff" + b"\0" * (21 * 1024 * 1024), "image/jpeg"),
    }
    for share in (0.1, 0.5, 0.9):
        cases[f"jpeg truncated at {share:.0%}"] = (face[:int(len(face) * share)], "image/jpeg")
    if scaled(0, 1):  # decodes 36 MP: slow on a shared machine, so only in long runs
        cases["36 MP png"] = (image_bytes(Image.new("RGB", (6000, 6000), (200, 180, 160)),
                                          "PNG"), "image/png")
    return cases


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_hostile_photos_get_a_clear_answer_in_bounded_time_and_memory(env, api, labelled):
    answers: dict[str, str] = {}
    timings: dict[str, float] = {}
    rss_before = peak_rss_mb()
    for name, (data, mime) in hostile_photos(labelled).items():
        chat = next(_chats)
        document = api.add_file(data, "file." + mime.split("/")[1], mime)
        started = time.monotonic()
        worker.handle_event(pubsub_event(job_for(document, chat_id=chat).to_bytes()))
        timings[name] = time.monotonic() - started
        replies = [m for m in api.sent if m.chat_id == chat]
        assert len(replies) == 1, (name, replies)
        answers[name] = replies[0].body.splitlines()[0]
        assert timings[name] < CASE_SECONDS, (name, timings[name])
    growth = peak_rss_mb() - rss_before
    record("worker hostile photos", cases=len(answers),
           slowest_s=round(max(timings.values()), 2),
           slowest=max(timings, key=timings.__getitem__), peak_rss_growth_mb=round(growth))
    assert growth < RSS_GROWTH_MB
    for name in ("png bomb 20000x20000", "jpeg header 20000x20000", "gif header 65535x65535"):
        assert answers[name] == text("image_too_large", "en").splitlines()[0], name
    assert answers["huge document 21 MB"] == text("file_too_large", "en").splitlines()[0]
    # Only the first frame counts, and it shows a face the gallery knows.
    assert answers["animated gif, face first"].startswith(("Looks like", "Face 1")), answers


@settings(max_examples=scaled(40, 400), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.binary(min_size=0, max_size=4096),
       prefix=st.sampled_from([b"", b"\xff\xd8\xff\xe0", b"\x89PNG\r\n\x1a\n", b"GIF89a",
                               b"RIFF\0\0\0\0WEBP", b"BM"]))
def test_random_bytes_behind_image_magic_get_one_answer(env, api, data, prefix):
    chat = next(_chats)
    document = api.add_file(prefix + data, "file.jpg", "image/jpeg")
    started = time.monotonic()
    worker.handle_event(pubsub_event(job_for(document, chat_id=chat).to_bytes()))
    assert time.monotonic() - started < CASE_SECONDS
    assert len([m for m in api.sent if m.chat_id == chat]) == 1
    _figures["random photo bytes"] += 1


# -- Telegram's rates ---------------------------------------------------------------


@pytest.fixture
def strict_api(api: BotApiServer) -> BotApiServer:
    """The Bot API answering 429 (retry_after) to a second message to a chat within 1 s."""
    api.chat_interval = 1.0
    return api


def tiny_photo(api: BotApiServer) -> dict:
    """A photo without a face: the worker's work is short, so its replies come fast."""
    return api.add_photo(image_bytes(Image.new("RGB", (64, 48), (120, 130, 140)), "JPEG"))[-1]


def test_replies_to_one_chat_keep_one_second_apart(env, strict_api):
    """Four jobs for one chat, two at a time: four replies, none refused for flooding."""
    api = strict_api
    chat = next(_chats)
    worker.handle_event(pubsub_event(job_for(tiny_photo(api), chat_id=chat + 1).to_bytes()))
    jobs = [job_for(tiny_photo(api), chat_id=chat) for _ in range(4)]
    errors: list[BaseException] = []

    def run(job: Job) -> None:
        try:
            worker.handle_event(pubsub_event(job.to_bytes()))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads[:2]:
        thread.start()
    for thread in threads[:2]:
        thread.join(60)
    for thread in threads[2:]:
        thread.start()
    for thread in threads[2:]:
        thread.join(60)
    assert errors == []
    times = sorted(m.time for m in api.sent if m.chat_id == chat)
    assert len(times) == 4
    gaps = [b - a for a, b in itertools.pairwise(times)]
    record("per-chat rate", replies=4, min_gap_s=round(min(gaps), 2),
           flood_refusals=api.flood_refusals)
    assert api.flood_refusals == 0 and min(gaps) >= 0.9


def test_a_429_with_retry_after_is_waited_and_answered_once(env, strict_api):
    api = strict_api
    chat = next(_chats)
    api.fail_next("sendMessage", 429, retry_after=1)
    worker.handle_event(pubsub_event(job_for(tiny_photo(api), chat_id=chat).to_bytes()))
    assert [m.chat_id for m in api.sent] == [chat]
    assert [c["status"] for c in api.calls if c["method"] == "sendMessage"] == [429, 200]


def test_bot_wide_rate_stays_under_30_messages_a_second():
    """60 messages to 60 chats from 6 threads: no one-second window holds more than 30."""
    with BotApiServer(TOKEN) as api:
        api.chat_interval = 1.0
        client = TelegramClient(TOKEN, api.url, 10, 5, SendLimiter(1.0, 1 / 30))
        try:
            chats = iter(range(60))
            lock = threading.Lock()

            def send_some() -> None:
                while True:
                    with lock:
                        chat = next(chats, None)
                    if chat is None:
                        return
                    client.send_text(chat + 1, "hello", 1)

            threads = [threading.Thread(target=send_some) for _ in range(6)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
        finally:
            client.close()
        times = sorted(m.time for m in api.sent)
    assert len(times) == 60
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    rate = (len(times) - 1) / (times[-1] - times[0])
    record("bot-wide rate", messages=60, per_second=round(rate, 1), busiest_second=busiest)
    # Slots are 1/30 s apart; arrival jitter on a busy machine may bunch a few together.
    assert rate <= 30.5 and busiest <= 33


def test_limiter_slots_count_from_the_previous_answer():
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    limiter = SendLimiter(1.0, 0.25, clock=lambda: now[0], sleep=sleep)
    waits = []
    for _ in range(3):
        with limiter.slot("a") as waited:
            waits.append(waited)
            now[0] += 0.5  # the upload takes half a second
    assert waits == [0.0, 1.0, 1.0] and now[0] == 3.5
    with limiter.slot("b") as waited:  # another chat: only the bot-wide gap applies
        assert waited == 0.0
    limiter.postpone("b", 5.0)
    with limiter.slot("b") as waited:
        assert waited == 5.0


def test_zz_worker_fuzz_figures():
    record("worker fuzz", **dict(sorted(_figures.items())), total=sum(_figures.values()))
    assert _figures

