"""A loopback HTTP server run from a daemon thread: the shape shared by the local Bot
API server and the push tap."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

T = TypeVar("T")


class KeepAliveHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, as clients expect from the servers these stand in for, with
    Nagle's algorithm off: headers and body go out in separate writes, and with it the
    client's delayed ACK holds every keep-alive response back ~40 ms, a delay the real
    servers do not add."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # socketserver sets TCP_NODELAY


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A peer that went away (a killed worker, a stopped emulator) resets its keep-alive
        # connection: that is no error worth a traceback.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ThreadedServer:
    """Start and stop a `QuietServer` for `handler()` on `host:port` (0: a free port)."""

    name = "http"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.url = ""
        self._server: QuietServer | None = None
        self._thread: threading.Thread | None = None
        # Guards what the handlers record; notified whenever something was recorded.
        self._lock = threading.Condition()

    def _wait_until(self, items: list[T], holds: Callable[[list[T]], bool],
                    timeout: float) -> list[T] | None:
        """Block until `holds(items)` (`items` filled under `self._lock`, which is notified
        on each); a copy of them then, or None when that does not happen within `timeout`."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while not holds(items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._lock.wait(remaining)
            return list(items)

    def _wait_for_count(self, items: list[T], count: int, timeout: float, what: str,
                        keep: Callable[[T], bool] | None = None) -> list[T]:
        """Block until `items` holds `count` that `keep` (all, by default); a copy of those.
        TimeoutError when they do not come within `timeout` seconds."""
        def kept(got: list[T]) -> list[T]:
            return got if keep is None else [item for item in got if keep(item)]

        found = self._wait_until(items, lambda got: len(kept(got)) >= count, timeout)
        if found is None:
            with self._lock:
                have = len(kept(items))
            raise TimeoutError(f"{have} of {count} {what} within {timeout:g} s")
        return kept(found)

    def handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Any:
        server = QuietServer((self.host, self.port), self.handler())
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, name=self.name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Any:
        return self.start() if self._server is None else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
