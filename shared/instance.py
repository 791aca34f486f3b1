"""What a process keeps between invocations: objects made on first use, then reused.

Google's Cloud Functions samples create clients lazily, at the first request rather than
at import, and keep them in globals for the life of the instance: creating one costs a
connection and tens of milliseconds, and an instance serves many requests. Every such
object of this project is a `Lazy` (one object) or a `LazyMap` (one per key, e.g. per
storage URI). Both are safe to share between the threads functions-framework serves
requests from, make each object once, and have a public `reset()` that forgets what was
made (tests, or a new configuration), closing it when a `close` was given.

What an instance keeps for its whole life (the modules it imports, its models and index)
is made inside `long_lived()`, out of the cyclic garbage collector's way.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Callable, Hashable, Iterator
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


@contextlib.contextmanager
def long_lived() -> Iterator[None]:
    """Run a block that makes objects kept for the life of the process (a new instance's
    imports, clients, models and index) with the cyclic garbage collector off, then
    freeze everything it tracks (`gc.freeze`) and turn it back on.

    Those objects are many and almost none is cyclic garbage: with the collector on, it
    would run over them again and again while they are made, on the way to the first
    answer, and every later full collection would go over them once more. Frozen, they
    are left out of all collections; reference counting still frees them. The price: a
    cycle of frozen objects is never collected, neither the little cyclic garbage made
    before the freeze nor a frozen object that later ends in an unreachable cycle. So
    this is for blocks that run once per process, not once per request, making objects
    freed by reference counting when replaced (the worker's index after a refresh is;
    tests/test_worker.py). When the collector is already off (a nested block, another
    thread's, or the process's own choice), the block runs as it is.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
