"""Publishing jobs to Pub/Sub behind a small interface, so the webhook's tests and
benchmark can swap in a publisher of their own.

The client is made on first use and kept for the life of the instance (Google's
Cloud Functions samples do the same): creating one costs tens of milliseconds and a
new gRPC channel. It honours PUBSUB_EMULATOR_HOST for the local emulator.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Protocol

from shared.config import Settings, project_id
from shared.jobs import Job

if TYPE_CHECKING:
    from google.cloud.pubsub_v1 import PublisherClient


class PublishError(Exception):
    """Pub/Sub did not accept the job in time; the update should be delivered again."""


class Publisher(Protocol):
    def publish(self, job: Job) -> str:
        """Publish `job`; returns the message id. Raises PublishError."""
        ...


def topic_path(settings: Settings) -> str:
    return f"projects/{project_id()}/topics/{settings.jobs_topic}"


class PubSubPublisher:
    def __init__(self, topic: str, timeout: float) -> None:
        self.topic = topic
        self.timeout = timeout
        self._client: PublisherClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> PublisherClient:
        with self._lock:  # functions-framework serves requests from several threads
            if self._client is None:
                from google.cloud import pubsub_v1

                # Jobs that arrive within 1 ms share one request (the default waits 10 ms):
                # a lone job waits at most 1 ms, and under load the client's CPU per job
                # falls about fivefold (docs/performance.md, webhook).
                self._client = pubsub_v1.PublisherClient(
                    batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.001))
            return self._client

    def publish(self, job: Job) -> str:
        try:
            future = self.client.publish(self.topic, job.to_bytes(), timeout=self.timeout,
                                         update_id=str(job.update_id))
            return future.result(timeout=self.timeout)
        except Exception as exc:  # any failure means "not accepted": Telegram retries
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc


_default: PubSubPublisher | None = None
_default_lock = threading.Lock()


def default_publisher(settings: Settings) -> PubSubPublisher:
    """The instance's publisher, made on first use and reused."""
    global _default
    with _default_lock:
        if _default is None:
            _default = PubSubPublisher(topic_path(settings), settings.publish_timeout_seconds)
        return _default
