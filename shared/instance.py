"""What a process keeps between invocations: objects made on first use, then reused.

Google's Cloud Functions samples create clients lazily, at the first request rather than
at import, and keep them in globals for the life of the instance: creating one costs a
connection and tens of milliseconds, and an instance serves many requests. Every such
object of this project is a `Lazy` (one object) or a `LazyMap` (one per key, e.g. per
storage URI). Both are safe to share between the threads functions-framework serves
requests from, make each object once, and have a public `reset()` that forgets what was
made (tests, or a new configuration), closing it when a `close` was given.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


class Lazy(Generic[T]):
    """One object, made by `make` on the first `get()` (or call) and reused after."""

    def __init__(self, make: Callable[[], T], *,
                 close: Callable[[T], object] | None = None) -> None:
        self._make = make
        self._close = close
        self._lock = threading.Lock()
        self._made = False
        self._value: T | None = None

    def get(self) -> T:
        # Under the lock while making: a second thread waits for the first one's object
        # instead of making its own (two model loads, two gRPC channels).
        with self._lock:
            if not self._made:
                self._value = self._make()
                self._made = True
            return self._value  # type: ignore[return-value]  # made, so a T

    __call__ = get

    @property
    def made(self) -> bool:
        return self._made

    def reset(self) -> None:
        """Forget the object (closing it), so that the next `get()` makes a new one."""
        with self._lock:
            value, made = self._value, self._made
            self._value, self._made = None, False
        if made and self._close is not None:
            self._close(value)  # type: ignore[arg-type]  # made, so a T


class LazyMap(Generic[K, T]):
    """One object per key, made by the `make` given to the first `get()` of that key."""

    def __init__(self, *, close: Callable[[T], object] | None = None) -> None:
        self._close = close
        self._lock = threading.Lock()
        self._values: dict[K, T] = {}

    def get(self, key: K, make: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._values:
                self._values[key] = make()
            return self._values[key]

    def reset(self) -> None:
        """Forget every object (closing each), so that they are made again when asked for."""
        with self._lock:
            values = list(self._values.values())
            self._values.clear()
        if self._close is not None:
            for value in values:
                self._close(value)
