"""Publishing jobs to Pub/Sub behind a small interface, so the webhook's tests and
benchmark can swap in a publisher of their own.

A publisher's client is made on first use and kept for the life of the publisher, which
the webhook keeps for the life of the instance (Google's Cloud Functions samples do the
same, see shared/instance.py): creating one costs tens of milliseconds and a new gRPC
channel. It honours PUBSUB_EMULATOR_HOST for the local emulator.

Each job carries its chat as the ordering key. The worker's subscription has message
ordering on, so Pub/Sub pushes one chat's jobs one at a time, in the order published:
a chat's burst occupies one worker request at a time however many instances there are,
and other chats' jobs go past it (docs/reliability.md, "The photo quota and fairness").
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Protocol

from shared.config import Settings, project_id
from shared.instance import Lazy
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
        self.client = Lazy(_new_client)

    @classmethod
    def for_settings(cls, settings: Settings) -> PubSubPublisher:
        return cls(topic_path(settings), settings.publish_timeout_seconds)

    def publish(self, job: Job) -> str:
        key = ordering_key(job)
        client = self.client()
        try:
            future = client.publish(self.topic, job.to_bytes(), ordering_key=key,
                                    timeout=self.timeout, update_id=str(job.update_id))
            return future.result(timeout=self.timeout)
        except Exception as exc:  # any failure means "not accepted": Telegram retries
            # After a failure the client refuses the key's later jobs until resumed (so
            # none overtakes the failed one); Telegram delivers this update again, and
            # the chat's next photos must not fail meanwhile. Not paused (a timeout while
            # the request is still out, or another thread resumed it): nothing to do.
            with contextlib.suppress(ValueError, RuntimeError):
                client.resume_publish(self.topic, key)
            raise PublishError(f"{type(exc).__name__}: {exc}") from exc


def ordering_key(job: Job) -> str:
    """One chat's jobs share a key: pushed one at a time, in order."""
    return str(job.chat_id)


def _new_client() -> PublisherClient:
    from google.cloud import pubsub_v1

    # Jobs that arrive within 1 ms share one request (the default waits 10 ms): a lone
    # job waits at most 1 ms, and under load the client's CPU per job falls about
    # fivefold (docs/performance.md, webhook). Only one chat's jobs can share one:
    # a request carries a single ordering key.
    return pubsub_v1.PublisherClient(
        batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.001),
        publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True))
