"""Promises 3–7 end to end, on the local stack (`stack.run`): real functions-framework
processes, the Pub/Sub emulator, fake-gcs-server and the local Bot API server, with
faults injected into the real parts: the worker process killed mid-job, two worker
processes racing for one job, the Pub/Sub emulator and Cloud Storage stopped, a chat
whose replies always fail (a poison job), a burst of photo updates. Then the emulator's
bucket, the functions' temporary and cache directories and every log line are searched
for photo bytes and secrets.

One stack serves the module; the tests run in file order and the privacy check is last.
Retries are fast (1–5 s) and the dedupe lease short (LOOKALIKE_MARKER_LEASE_SECONDS) so
that crashes and redeliveries resolve within the test's time.
"""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import os
import random
import shutil
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from shared.jobs import Job
from stack.emulators import (
    EmulatorUnavailable,
    free_port,
    start_fake_gcs,
    start_pubsub,
    wait_http,
)
from stack.run import (
    Stack,
    StackOptions,
    _pubsub_clients,
    running_stack,
    setup_storage,
    start_function,
)
from stack.send import deliver, photo_message_update
from tests.reliability_budget import record, scaled

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

LEASE_SECONDS = 4
REPLY_TIMEOUT = 120.0
SETTLE_SECONDS = 6.0  # over the retry backoff: an unacknowledged job would come back
LOAD_UPDATES = scaled(200, 1000)
_chats = itertools.count(700_000)
FAULTS: dict[str, int] = {}


@pytest.fixture(scope="module")
def temp_dir() -> Iterator[Path]:
    """The functions' TMPDIR, searched for photo bytes at the end."""
    path = Path(tempfile.mkdtemp(prefix="lookalike-fn-tmp-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def stack(temp_dir: Path) -> Iterator[Stack]:
    options = StackOptions(
        ack_deadline_seconds=60, min_retry_seconds=1, max_retry_seconds=5,
        max_delivery_attempts=20,
        env={"LOOKALIKE_MARKER_LEASE_SECONDS": str(LEASE_SECONDS),
             "LOOKALIKE_PUBLISH_TIMEOUT_SECONDS": "5", "TMPDIR": str(temp_dir)})
    try:
        with running_stack(options) as running:
            yield running
            running.pubsub.stop()  # it may have been replaced by a restarted emulator
    except EmulatorUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the local stack cannot start: {exc}")
        pytest.skip(f"the local stack cannot start: {exc}")


def face_photo(labelled: dict[str, list[Path]]) -> bytes:
    return labelled["Joe_Biden"][0].read_bytes()


def small_photo(seed: int) -> bytes:
    """A small photo of noise, without a face: the worker's work is short, and its bytes
    are distinctive enough to be searched for at the end."""
    noise = random.Random(seed).randbytes(96 * 72 * 3)
    image = Image.frombytes("RGB", (96, 72), noise)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def job_of(update: dict) -> Job:
    size = update["message"]["photo"][-1]
    return Job(update_id=update["update_id"], chat_id=update["message"]["chat"]["id"],
               message_id=update["message"]["message_id"], file_id=size["file_id"],
               file_unique_id=size["file_unique_id"], width=size["width"],
               height=size["height"], received_at=time.time(), file_size=size["file_size"])


def push_body(job: Job, stack: Stack) -> bytes:
    """A Pub/Sub push request body, as the emulator posts it to the push endpoint."""
    message_id = str(job.update_id)
    published = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return json.dumps({
        "message": {"data": base64.b64encode(job.to_bytes()).decode(),
                    "messageId": message_id, "message_id": message_id,
                    "publishTime": published, "publish_time": published, "attributes": {}},
        "subscription": stack.push_subscription}).encode()


def push(url: str, stack: Stack, body: bytes, timeout: float = 120.0) -> tuple[int, float]:
    request = urllib.request.Request(f"{url}/{stack.topic}", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError:
        status = 599
    return status, time.monotonic() - started


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


# -- 7. load ------------------------------------------------------------------------


def test_a_burst_of_photo_updates_is_answered_exactly_once_each(stack: Stack):
    """Posted as fast as the webhook takes them (16 at a time), each to its own chat."""
    updates = [photo_message_update(stack.bot_api, small_photo(n), chat_id=next(_chats))
               for n in range(LOAD_UPDATES)]
    posted_at: dict[int, float] = {}

    def post(update: dict) -> float:
        posted_at[update["message"]["chat"]["id"]] = time.time()
        result = deliver(stack, update)
        assert result.status == 200, result
        return result.seconds

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        webhook_seconds = list(pool.map(post, updates))
    accepted = time.monotonic() - started
    chats = [u["message"]["chat"]["id"] for u in updates]
    deadline = time.monotonic() + 120 + LOAD_UPDATES * 1.0
    while time.monotonic() < deadline:
        answered = {m.chat_id for m in stack.bot_api.sent}
        if all(chat in answered for chat in chats):
            break
        time.sleep(0.5)
    answered_in = time.monotonic() - started
    time.sleep(SETTLE_SECONDS)
    counts = {chat: len(stack.replies(chat)) for chat in chats}
    lost = sum(1 for c in counts.values() if c == 0)
    duplicates = sum(c - 1 for c in counts.values() if c > 1)
    latency = [stack.replies(chat)[0].time - posted_at[chat] for chat in chats
               if counts[chat]]
    deliveries = [d for u in updates for d in stack.deliveries_for(u["update_id"])]
    record("load", updates=LOAD_UPDATES, lost=lost, duplicate_replies=duplicates,
           webhook_accepted_per_s=round(LOAD_UPDATES / accepted, 1),
           webhook_ms_p50=round(percentile(webhook_seconds, 0.5) * 1000),
           webhook_ms_p99=round(percentile(webhook_seconds, 0.99) * 1000),
           answered_per_s=round(LOAD_UPDATES / answered_in, 1),
           reply_s_p50=round(percentile(latency, 0.5), 2),
           reply_s_p90=round(percentile(latency, 0.9), 2),
           reply_s_p99=round(percentile(latency, 0.99), 2),
           push_deliveries=len(deliveries),
           redeliveries=sum(1 for d in deliveries if d.attempt > 1))
    assert lost == 0 and duplicates == 0


# -- 3. exactly one answer ----------------------------------------------------------


def test_the_same_update_delivered_three_times_gets_one_reply(stack: Stack, labelled):
    chat = next(_chats)
    update = photo_message_update(stack.bot_api, face_photo(labelled), chat_id=chat)
    with ThreadPoolExecutor(3) as pool:
        statuses = [p.status for p in pool.map(lambda _: deliver(stack, update), range(3))]
    assert statuses == [200, 200, 200]
    stack.wait_replies(chat)
    time.sleep(SETTLE_SECONDS + LEASE_SECONDS)
    assert len(stack.replies(chat)) == 1
    FAULTS["duplicate updates"] = FAULTS.get("duplicate updates", 0) + 2


def test_a_worker_killed_after_the_download_is_redelivered_and_answered_once(stack: Stack,
                                                                              labelled):
    """SIGKILL right after the photo's bytes were served: no reply, no release of the
    claim. Pub/Sub redelivers to a new worker process, which takes the claim over once
    the lease has passed, and answers once."""
    chat = next(_chats)
    update = photo_message_update(stack.bot_api, face_photo(labelled), chat_id=chat)
    paths = {stack.bot_api._files[s["file_id"]].file_path for s in update["message"]["photo"]}
    killed = threading.Event()

    def crash(file_path: str) -> None:
        if file_path in paths and not killed.is_set():
            stack.worker.kill()
            killed.set()

    stack.bot_api.on_download = crash
    try:
        assert deliver(stack, update).status == 200
        assert killed.wait(REPLY_TIMEOUT), stack.logs()
    finally:
        stack.bot_api.on_download = None
    assert stack.replies(chat) == []
    stack.restart_worker()
    stack.wait_replies(chat)
    time.sleep(SETTLE_SECONDS)
    assert len(stack.replies(chat)) == 1
    attempts = stack.deliveries_for(update["update_id"])
    assert len(attempts) >= 2 and attempts[-1].acknowledged
    FAULTS["worker killed mid-job"] = FAULTS.get("worker killed mid-job", 0) + 1
    record("worker killed mid-job", push_deliveries=len(attempts),
           statuses=[d.status for d in attempts], replies=1)


def test_two_workers_receiving_the_same_job_at_once_answer_once(stack: Stack, labelled,
                                                                temp_dir: Path):
    """Two worker processes (two instances) get the same push at the same moment."""
    # Its own cache directory, as another instance has its own disk.
    env = {**stack.worker_env, "LOOKALIKE_CACHE_DIR": str(temp_dir / "other-cache")}
    other = start_function("worker", "cloudevent", env, stack.log_dir, port=free_port())
    try:
        wait_http(other.url, 60, other.process)
        # Warm it (models and index loaded) so that both answer at full speed and their
        # claims meet within a job's time.
        warm = photo_message_update(stack.bot_api, small_photo(1), chat_id=next(_chats))
        assert push(other.url, stack, push_body(job_of(warm), stack))[0] == 200
        chat = next(_chats)
        update = photo_message_update(stack.bot_api, face_photo(labelled), chat_id=chat)
        body = push_body(job_of(update), stack)
        barrier = threading.Barrier(2)

        def race(url: str) -> tuple[int, float]:
            barrier.wait()
            return push(url, stack, body)

        with ThreadPoolExecutor(2) as pool:
            first = list(pool.map(race, (stack.worker_url, other.url)))
        stack.wait_replies(chat)
        # What Pub/Sub does with a refused push: delivers it again, to either instance.
        later = [push(url, stack, body)[0] for url in (stack.worker_url, other.url)]
    finally:
        other.stop()
    time.sleep(1)
    assert len(stack.replies(chat)) == 1
    # One answers (200); the other finds the claim taken (500: redelivered later) or,
    # if it came after the answer, the update done (200).
    assert sorted(status for status, _ in first)[0] == 200
    assert later == [200, 200]
    FAULTS["concurrent deliveries to two workers"] = 1
    record("two workers", first_statuses=[s for s, _ in first], redelivered=later, replies=1)


# -- 4. transient faults ------------------------------------------------------------


def test_pubsub_down_answers_5xx_and_telegrams_retry_succeeds(stack: Stack, labelled):
    from google.api_core import exceptions

    chat = next(_chats)
    update = photo_message_update(stack.bot_api, face_photo(labelled), chat_id=chat)
    port, log_dir = stack.pubsub.port, stack.pubsub.log.parent
    stack.pubsub.stop()
    down = deliver(stack, update)
    assert down.status == 503 and down.seconds < 15, down
    stack.pubsub = start_pubsub(stack.options.project, port, log_dir)
    publisher, subscriber = _pubsub_clients(stack.pubsub.host)
    try:  # the emulator keeps state in --data-dir; recreate whatever it lost
        with contextlib.suppress(exceptions.AlreadyExists):
            publisher.create_topic(name=stack.topic)
        with contextlib.suppress(exceptions.AlreadyExists):
            subscriber.create_subscription(request={
                "name": stack.push_subscription, "topic": stack.topic,
                "push_config": {"push_endpoint": f"{stack.tap.url}/{stack.topic}"},
                "ack_deadline_seconds": stack.options.ack_deadline_seconds,
                "retry_policy": {"minimum_backoff": {"seconds": 1},
                                 "maximum_backoff": {"seconds": 5}}})
    finally:
        subscriber.close()
    # Telegram delivers a refused update again, waiting longer each time.
    retries, statuses = 0, []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        retries += 1
        posted = deliver(stack, update)
        statuses.append(posted.status)
        if posted.status == 200:
            break
        time.sleep(min(2 ** retries, 10))
    assert statuses[-1] == 200, statuses
    stack.wait_replies(chat)
    time.sleep(SETTLE_SECONDS)
    assert len(stack.replies(chat)) == 1
    FAULTS["Pub/Sub emulator stopped"] = 1
    record("pubsub down", first_status=down.status, first_answer_s=round(down.seconds, 2),
           retries_until_accepted=retries, statuses=statuses, replies=1)


def test_storage_down_at_cold_start_fails_fast_then_answers_once(stack: Stack, labelled,
                                                                 temp_dir: Path,
                                                                 tmp_path: Path):
    """A new worker instance whose Cloud Storage is away: the push fails quickly (it is
    redelivered), and once storage is back the redelivery is answered, once."""
    port = free_port()
    env = {**stack.worker_env, "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{port}",
           "LOOKALIKE_CACHE_DIR": str(temp_dir / "cold-cache")}
    cold = start_function("worker", "cloudevent", env, stack.log_dir, port=free_port())
    gcs = None
    try:
        wait_http(cold.url, 60, cold.process)
        chat = next(_chats)
        update = photo_message_update(stack.bot_api, face_photo(labelled), chat_id=chat)
        body = push_body(job_of(update), stack)
        statuses = []
        status, seconds = push(cold.url, stack, body)
        statuses.append(status)
        assert status >= 500 and seconds < 45, (status, seconds)
        gcs = start_fake_gcs(port, tmp_path)
        setup_storage(gcs.url, stack.options)
        status, _ = push(cold.url, stack, body)  # Pub/Sub's redelivery
        statuses.append(status)
        assert status == 200
        stack.wait_replies(chat, timeout=10)
        statuses.append(push(cold.url, stack, body)[0])  # one more redelivery: skipped
        assert statuses[-1] == 200 and len(stack.replies(chat)) == 1
    finally:
        cold.stop()
        if gcs is not None:
            gcs.stop()
    FAULTS["Cloud Storage down at cold start"] = 1
    record("storage down at cold start", statuses=statuses, first_failure_s=round(seconds, 2),
           replies=1)


# -- 5. poison jobs and old jobs ----------------------------------------------------


def test_a_poison_job_ends_in_the_dead_letter_topic(stack: Stack, labelled):
    """Replies to this chat always fail (Bot API 500): after the subscription's 5 delivery
    attempts the job is in the dead-letter topic and the worker hears of it no more."""
    chat = next(_chats)
    publisher, subscriber = stack.pubsub_clients()
    project = stack.options.project
    topic = f"projects/{project}/topics/poison-{chat}"
    dead_topic, dead = f"{topic}-dead", f"projects/{project}/subscriptions/poison-{chat}-dead"
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dead_topic)
    subscriber.create_subscription(name=dead, topic=dead_topic)
    subscriber.create_subscription(request={
        "name": f"projects/{project}/subscriptions/poison-{chat}-worker", "topic": topic,
        "push_config": {"push_endpoint": f"{stack.tap.url}/{topic}"},
        "ack_deadline_seconds": 60,
        "retry_policy": {"minimum_backoff": {"seconds": 1}, "maximum_backoff": {"seconds": 2}},
        "dead_letter_policy": {"dead_letter_topic": dead_topic, "max_delivery_attempts": 5}})
    stack.bot_api.fail_chat(chat, 500)
    update = photo_message_update(stack.bot_api, face_photo(labelled), chat_id=chat)
    job = job_of(update)
    publisher.publish(topic, job.to_bytes()).result(timeout=30)
    dead_letters: list[bytes] = []
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline and not dead_letters:
        response = subscriber.pull(subscription=dead, max_messages=10, timeout=10)
        if response.received_messages:
            subscriber.acknowledge(subscription=dead,
                                   ack_ids=[m.ack_id for m in response.received_messages])
        dead_letters += [m.message.data for m in response.received_messages]
        time.sleep(1)
    attempts = len(stack.deliveries_for(job.update_id))
    time.sleep(SETTLE_SECONDS)
    assert [Job.from_bytes(d).update_id for d in dead_letters] == [job.update_id], (
        attempts, stack.logs())
    assert len(stack.deliveries_for(job.update_id)) == attempts  # no more deliveries
    assert 5 <= attempts <= 6  # the emulator may count the first delivery apart
    assert stack.replies(chat) == []
    FAULTS["Bot API 500 on every delivery (poison)"] = attempts
    record("poison job", push_deliveries=attempts, dead_lettered=len(dead_letters))


def test_a_job_too_old_is_dropped_with_a_log_line(stack: Stack, labelled):
    chat = next(_chats)
    update = photo_message_update(stack.bot_api, face_photo(labelled), chat_id=chat)
    old = job_of(update)
    old = replace(old, received_at=time.time() - 3600)
    stack.publish(old.to_bytes(), update_id=str(old.update_id))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [d for d in stack.deliveries_for(old.update_id) if d.acknowledged]
        if done:
            break
        time.sleep(0.2)
    assert done, stack.logs()
    log = stack.worker.log.read_text(errors="replace")
    dropped = [json.loads(line) for line in log.splitlines()
               if line.startswith("{") and "job dropped" in line]
    assert any(entry.get("job") == old.key for entry in dropped), log[-3000:]
    assert stack.replies(chat) == []


# -- 6. privacy (last: it searches what all the tests above left behind) -------------


def test_zz_no_photo_bytes_at_rest_and_no_secret_in_any_log(stack: Stack, temp_dir: Path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    with stack.bot_api._lock:
        user_files = [f.data for f in stack.bot_api._files.values()
                      if f.file_path.startswith(("photos/", "documents/")) and len(f.data) > 256]
    # A distinctive run of bytes from the middle of each photo a user sent.
    chunks = {data[len(data) // 2:len(data) // 2 + 48] for data in user_files}
    client = storage.Client(project=stack.options.project, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": stack.gcs.url})
    objects = list(client.list_blobs(stack.options.bucket))
    prefixes = {blob.name.split("/", 1)[0] for blob in objects}
    assert prefixes <= {"models", "index", "markers", "quotas"}, prefixes
    markers = [blob for blob in objects if blob.name.startswith("markers/")]
    assert markers and all(blob.size < 200 for blob in markers)
    # The photo quota keeps a small count per chat (functions/quota.py), never a photo.
    quotas = [blob for blob in objects if blob.name.startswith("quotas/")]
    assert all(blob.size < 1024 for blob in quotas)
    for blob in quotas:
        assert not any(chunk in blob.download_as_bytes() for chunk in chunks), blob.name
    for blob in markers:
        assert json.loads(blob.download_as_bytes())["state"] in ("claimed", "done", "released")

    searched = 0
    cache = Path(stack.worker_env["LOOKALIKE_CACHE_DIR"])  # the other workers' are in temp_dir
    for root in (temp_dir, cache, stack.workdir):
        for path in (p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            searched += 1
            assert not any(chunk in data for chunk in chunks), path
    logs = "\n".join(p.read_text(errors="replace") for p in stack.log_dir.glob("*.log"))
    token_secret = stack.options.token.split(":", 1)[1]
    assert logs and stack.secret not in logs and token_secret not in logs
    record("privacy", user_files=len(chunks), files_searched=searched,
           bucket_objects=len(objects), marker_objects=len(markers),
           log_bytes_scanned=len(logs))
    record("faults injected", **FAULTS, total=sum(FAULTS.values()))
