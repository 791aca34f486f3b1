"""The whole bot on this machine, from real parts on loopback ports.

- fake-gcs-server holding the index (the demo gallery, published as an index builder
  would), the dlib model files and the worker's dedupe markers;
- Google's Pub/Sub emulator with the jobs topic, a push subscription to the worker
  (ack deadline, retry policy and dead-letter policy as in infra/config.sh) and a
  dead-letter topic with a pull subscription;
- the local Bot API server (`stack.bot_api`) in a thread of this process;
- the two functions as real `functions-framework` processes, configured through the
  environment exactly as deployed (plus the emulator hosts).

Pub/Sub pushes through `stack.push_tap`, which forwards each delivery unchanged to the
worker and records it, so tests can tell acknowledged from redelivered jobs.

    with running_stack() as stack:
        ...  # stack.webhook_url, stack.bot_api, stack.tap, stack.dead_letters(), ...
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from index_builder.publish import publish
from shared.config import DEMO_GALLERY, REPO_ROOT, Settings
from shared.jobs import Job
from shared.models import DESCRIPTOR_FILE, LANDMARKS_FILE, packaged_model_dir
from shared.storage import GcsStore
from stack.bot_api import BotApiServer, SentMessage
from stack.emulators import (
    Emulator,
    EmulatorUnavailable,
    free_port,
    start_fake_gcs,
    start_pubsub,
    wait_http,
)
from stack.push_tap import Delivery, PushTap

FUNCTIONS_FRAMEWORK = Path(sys.executable).parent / "functions-framework"


@dataclass(frozen=True)
class StackOptions:
    project: str = "local-project"
    bucket: str = "lookalike-local"
    token: str = "123456789:LOCAL-stack-token"
    bot_username: str = "lookalike_local_bot"  # what the local Bot API's getMe says
    # The worker's push subscription, as infra/config.sh sets it in production.
    ack_deadline_seconds: int = 180
    min_retry_seconds: int = 10
    max_retry_seconds: int = 300
    max_delivery_attempts: int = 7
    # Requests the worker process serves at once. Cloud Run runs the worker with
    # concurrency 1; more threads on the GIL-bound face code only make every job slower
    # (functions-framework's gunicorn defaults to 4 threads per core).
    worker_threads: int = 1
    # False: the bucket starts without an index, as a project before its first version.
    index: bool = True
    # Extra LOOKALIKE_* settings for both functions, e.g. {"LOOKALIKE_TOP_K": "5"}.
    env: dict[str, str] = field(default_factory=dict)
    # The index directory published to the bucket as the current version.
    gallery: Path = DEMO_GALLERY
    # Leaving the stack raises ContractViolation when the bot sent the Bot API a field
    # the spec does not have, or the local server answered outside it (stack.bot_api).
    strict_contract: bool = True


@dataclass
class Stack:
    options: StackOptions
    secret: str
    workdir: Path
    gcs: Emulator
    pubsub: Emulator
    bot_api: BotApiServer
    tap: PushTap
    webhook: Emulator
    worker: Emulator
    worker_started_at: float  # time.time() when the worker process was spawned
    topic: str
    push_subscription: str
    dead_letter_subscription: str
    _pubsub_clients: tuple[Any, Any] | None = None
    worker_env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None

    @property
    def webhook_url(self) -> str:
        return self.webhook.url

    @property
    def worker_url(self) -> str:
        return self.worker.url

    def pubsub_clients(self) -> tuple[Any, Any]:
        """(PublisherClient, SubscriberClient) talking to this stack's emulator."""
        if self._pubsub_clients is None:
            self._pubsub_clients = _pubsub_clients(self.pubsub.host)
        return self._pubsub_clients

    def publish(self, data: bytes, **attributes: str) -> str:
        """Publish raw bytes to the jobs topic (as the webhook would); the message id."""
        publisher, _ = self.pubsub_clients()
        return publisher.publish(self.topic, data, **attributes).result(timeout=30)

    def dead_letters(self) -> list[bytes]:
        """Pull (and acknowledge) whatever reached the dead-letter subscription."""
        _, subscriber = self.pubsub_clients()
        response = subscriber.pull(subscription=self.dead_letter_subscription,
                                   max_messages=100, timeout=10)
        if response.received_messages:
            subscriber.acknowledge(subscription=self.dead_letter_subscription,
                                   ack_ids=[m.ack_id for m in response.received_messages])
        return [m.message.data for m in response.received_messages]

    def restart_worker(self, kill: bool = False) -> None:
        """Stop the worker process (SIGKILL when `kill`: a crash) and start a new one on the
        same port, as a new instance behind the same push endpoint."""
        if kill:
            self.worker.kill()
        else:
            self.worker.stop()
        assert self.log_dir is not None
        self.worker = start_function("worker", "cloudevent", self.worker_env, self.log_dir,
                                     port=self.worker.port)
        self.worker_started_at = time.time()
        wait_http(self.worker.url, 60, self.worker.process)

    def logs(self) -> str:
        """The functions' output so far (for failure messages)."""
        return "\n".join(f"== {p.log.name}\n{p.log.read_text(errors='replace')[-6000:]}"
                         for p in (self.webhook, self.worker) if p.log.is_file())

    def replies(self, chat_id: int) -> list[SentMessage]:
        """What the bot has sent to one chat so far."""
        return [m for m in self.bot_api.sent if m.chat_id == chat_id]

    def wait_replies(self, chat_id: int, count: int = 1, timeout: float = 120.0,
                     ) -> list[SentMessage]:
        """At least `count` messages sent to the chat; AssertionError (with the functions'
        logs) when they do not come within `timeout` seconds."""
        try:
            return self.bot_api.wait_for_sent(count, timeout, chat_id=chat_id)
        except TimeoutError as exc:
            raise AssertionError(f"no reply in chat {chat_id}: {exc}\n{self.logs()}") from None

    def deliveries_for(self, update_id: int) -> list[Delivery]:
        """Every push of the job for `update_id` that reached the worker."""
        found = []
        for delivery in self.tap.snapshot():
            with contextlib.suppress(ValueError):
                if Job.from_bytes(delivery.data).update_id == update_id:
                    found.append(delivery)
        return found


def function_env(options: StackOptions, secret: str, gcs: str, pubsub: str,
                 bot_api: str, cache_dir: Path) -> dict[str, str]:
    """The environment both functions get: as deployed, plus the emulators' hosts."""
    bucket = f"gs://{options.bucket}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
    env.update({
        "STORAGE_EMULATOR_HOST": gcs,
        "PUBSUB_EMULATOR_HOST": pubsub,
        "GOOGLE_CLOUD_PROJECT": options.project,
        "TELEGRAM_BOT_TOKEN": options.token,
        "TELEGRAM_WEBHOOK_SECRET": secret,
        "LOOKALIKE_INDEX_URI": f"{bucket}/index",
        "LOOKALIKE_MODELS_URI": f"{bucket}/models",
        "LOOKALIKE_MARKERS_URI": f"{bucket}/markers",
        "LOOKALIKE_QUOTA_URI": f"{bucket}/quotas",
        "LOOKALIKE_TELEGRAM_API_URL": bot_api,
        "LOOKALIKE_BOT_USERNAME": options.bot_username,
        "LOOKALIKE_JOBS_TOPIC": Settings().jobs_topic,
        "LOOKALIKE_CACHE_DIR": str(cache_dir),
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(REPO_ROOT),
    })
    env.update(options.env)
    return env


def start_function(target: str, signature: str, env: dict[str, str], log_dir: Path,
                   port: int | None = None) -> Emulator:
    """`functions-framework --target T` as a child process (its own process group)."""
    if not FUNCTIONS_FRAMEWORK.exists():
        raise EmulatorUnavailable(f"{FUNCTIONS_FRAMEWORK} is missing "
                                  "(pip install -r requirements-dev.txt)")
    port = port or free_port()
    log = log_dir / f"{target}.log"
    with open(log, "ab") as out:  # a restarted function adds to its log
        process = subprocess.Popen(
            [str(FUNCTIONS_FRAMEWORK), "--target", target, "--signature-type", signature,
             "--host", "127.0.0.1", "--port", str(port), "--source", str(REPO_ROOT / "main.py")],
            cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
    return Emulator(process, port, log)


def _pubsub_clients(host: str) -> tuple[Any, Any]:
    """Clients bound to the emulator through their own insecure channel, so this process's
    environment (and other clients in it) is left alone."""
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    publisher = pubsub_v1.PublisherClient(
        transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)),
        batch_settings=pubsub_v1.types.BatchSettings(max_messages=1))
    subscriber = pubsub_v1.SubscriberClient(
        transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))
    return publisher, subscriber


def setup_storage(gcs_url: str, options: StackOptions) -> None:
    """The bucket, the model files under models/ and the gallery (the demo gallery unless
    the options name another) published under index/ as version "demo", as the index
    builder publishes; no index at all when `options.index` is False."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    client = storage.Client(project=options.project, credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": gcs_url})
    bucket = client.create_bucket(options.bucket)
    models = packaged_model_dir()
    for name in (LANDMARKS_FILE, DESCRIPTOR_FILE):
        bucket.blob(f"models/{name}").upload_from_filename(str(models / name))
    if options.index:
        publish(GcsStore(options.bucket, "index", client=client), options.gallery, "demo")


def setup_pubsub(stack_host: str, options: StackOptions, push_endpoint: str,
                 topic_id: str) -> tuple[str, str, str]:
    """Topics and subscriptions as in production; returns (topic, push, dead-letter)."""
    publisher, subscriber = _pubsub_clients(stack_host)
    project = options.project
    topic = f"projects/{project}/topics/{topic_id}"
    dead_topic = f"projects/{project}/topics/{topic_id}-dead"
    push = f"projects/{project}/subscriptions/{topic_id}-worker"
    dead = f"projects/{project}/subscriptions/{topic_id}-dead"
    publisher.create_topic(name=topic)
    publisher.create_topic(name=dead_topic)
    subscriber.create_subscription(name=dead, topic=dead_topic)
    # functions-framework turns a raw push body into a CloudEvent; the topic for the
    # event's source is taken from the request path, as Eventarc's push URLs carry it.
    subscriber.create_subscription(request={
        "name": push, "topic": topic,
        "push_config": {"push_endpoint": f"{push_endpoint}/{topic}"},
        "ack_deadline_seconds": options.ack_deadline_seconds,
        "retry_policy": {"minimum_backoff": {"seconds": options.min_retry_seconds},
                         "maximum_backoff": {"seconds": options.max_retry_seconds}},
        "dead_letter_policy": {"dead_letter_topic": dead_topic,
                               "max_delivery_attempts": options.max_delivery_attempts}})
    subscriber.close()
    return topic, push, dead


@contextlib.contextmanager
def running_stack(options: StackOptions | None = None,
                  log_dir: Path | None = None) -> Iterator[Stack]:
    """Start everything, yield the `Stack`, and stop everything on the way out (also on
    errors and Ctrl-C). Raises `EmulatorUnavailable` with what is missing."""
    options = options or StackOptions()
    secret = secrets.token_urlsafe(24)
    workdir = Path(tempfile.mkdtemp(prefix="lookalike-stack-"))
    log_dir = Path(log_dir or workdir / "logs")
    log_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        gcs_port, pubsub_port = free_port(), free_port()
        bot_api = BotApiServer(options.token, strict=options.strict_contract).start()
        cleanup.callback(bot_api.stop)
        env = function_env(options, secret, f"http://127.0.0.1:{gcs_port}",
                           f"127.0.0.1:{pubsub_port}", bot_api.url, workdir / "cache")
        # The functions start while the emulators boot: each only needs them on its
        # first request.
        webhook = start_function("webhook", "http", env, log_dir)
        cleanup.callback(webhook.stop)
        worker_started_at = time.time()
        worker_env = {**env, "THREADS": str(options.worker_threads)}
        worker = start_function("worker", "cloudevent", worker_env, log_dir)
        cleanup.callback(lambda: stack.worker.stop() if stack else worker.stop())
        stack: Stack | None = None
        pool = ThreadPoolExecutor(2)
        futures = [pool.submit(start_fake_gcs, gcs_port, log_dir),
                   pool.submit(start_pubsub, options.project, pubsub_port, log_dir)]
        try:
            gcs, pubsub = (future.result() for future in futures)
        finally:  # whatever started is stopped, also after Ctrl-C while waiting
            pool.shutdown(wait=True)
            for future in futures:
                if future.exception() is None:
                    cleanup.callback(future.result().stop)
        setup_storage(gcs.url, options)
        tap = PushTap(worker.url).start()
        cleanup.callback(tap.stop)
        topic, push, dead = setup_pubsub(pubsub.host, options, tap.url,
                                         env["LOOKALIKE_JOBS_TOPIC"])
        for process in (webhook, worker):
            try:
                wait_http(process.url, 60, process.process)
            except EmulatorUnavailable as exc:
                raise EmulatorUnavailable(
                    f"{exc}; log:\n{process.log.read_text(errors='replace')[-3000:]}") from None
        stack = Stack(options, secret, workdir, gcs, pubsub, bot_api, tap, webhook, worker,
                      worker_started_at, topic, push, dead, worker_env=worker_env,
                      log_dir=log_dir)
        yield stack
        if stack._pubsub_clients is not None:
            stack._pubsub_clients[1].close()
        bot_api.check_contract()


def wait_forever() -> None:
    """Block until Ctrl-C or SIGTERM (both end in KeyboardInterrupt)."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    threading.Event().wait()
