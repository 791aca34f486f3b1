"""A pass-through in front of the worker that records every Pub/Sub push delivery.

The Pub/Sub emulator does not say how often it delivered a message or whether the
endpoint acknowledged it; Cloud Monitoring would in production. The tap forwards each
push request unchanged (same path, headers and body) to the worker, returns the
worker's answer to Pub/Sub, and keeps a record of it: message id, delivery attempt and
the worker's status (2xx acknowledges, anything else asks for redelivery).
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from stack.http_thread import KeepAliveHandler, ThreadedServer


@dataclass(frozen=True)
class Delivery:
    message_id: str
    # Pub/Sub's deliveryAttempt; the emulator leaves it out of push bodies, so then it is
    # counted here: 1 + earlier deliveries of the same message id.
    attempt: int
    status: int  # the worker's HTTP status
    seconds: float  # how long the worker took
    data: bytes
    time: float

    @property
    def acknowledged(self) -> bool:
        return 200 <= self.status < 300


class PushTap(ThreadedServer):
    name = "push-tap"

    def __init__(self, target: str, timeout: float = 600.0) -> None:
        super().__init__()
        self.target = target.rstrip("/")
        self.timeout = timeout
        self.deliveries: list[Delivery] = []

    def handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def start(self) -> PushTap:
        return super().start()

    def forward(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        started = time.monotonic()
        request = urllib.request.Request(self.target + path, data=body, method="POST",
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                status, reply = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, reply = exc.code, exc.read()
        except OSError as exc:  # the worker is down: Pub/Sub should try again
            status, reply = 503, str(exc).encode()
        self._record(body, status, time.monotonic() - started)
        return status, reply

    def _record(self, body: bytes, status: int, seconds: float) -> None:
        message: dict[str, Any] = {}
        attempt = 0
        try:
            push = json.loads(body)
            message = push.get("message") or {}
            attempt = int(push.get("deliveryAttempt") or 0)
        except (ValueError, AttributeError, TypeError):
            pass
        try:
            data = base64.b64decode(message.get("data") or "")
        except ValueError:
            data = b""
        message_id = str(message.get("messageId") or message.get("message_id") or "")
        with self._lock:
            if not attempt:
                attempt = 1 + sum(d.message_id == message_id for d in self.deliveries)
            delivery = Delivery(message_id, attempt, status, seconds, data, time.time())
            self.deliveries.append(delivery)
            self._lock.notify_all()

    def snapshot(self) -> list[Delivery]:
        with self._lock:
            return list(self.deliveries)

    def wait_for(self, count: int, timeout: float) -> list[Delivery]:
        """Block until at least `count` deliveries were answered; returns them all."""
        return self._wait_for_count(self.deliveries, count, timeout, "push deliveries")


def _handler_for(tap: PushTap) -> type[BaseHTTPRequestHandler]:
    class Handler(KeepAliveHandler):

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k: v for k, v in self.headers.items()
                       if k.lower() not in ("host", "content-length", "connection")}
            status, reply = tap.forward(self.path, headers, body)
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    return Handler
