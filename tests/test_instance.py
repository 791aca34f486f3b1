import gc
import threading
import time
import weakref
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.instance import Lazy, LazyMap, long_lived


class Made:
    """A made object that records its closing."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False

    def close(self) -> None:
        self.closed = True


def _counting_make() -> tuple[list[int], object]:
    made: list[int] = []
    lock = threading.Lock()

    def make() -> Made:
        with lock:
            made.append(len(made))
        time.sleep(0.05)  # long enough for every thread to ask while the first makes
        return Made(len(made))

    return made, make


def test_lazy_makes_one_object_for_many_threads():
    made, make = _counting_make()
    lazy = Lazy(make)
    assert not lazy.made
    start = threading.Barrier(16)

    def ask(_: int) -> Made:
        start.wait()
        return lazy()

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(ask, range(16)))
    assert len(made) == 1
    assert all(result is results[0] for result in results)
    assert lazy.made and lazy.get() is results[0]


def test_lazy_reset_closes_and_makes_anew():
    made, make = _counting_make()
    lazy = Lazy(make, close=Made.close)
    lazy.reset()  # nothing made yet: nothing to close
    first = lazy()
    lazy.reset()
    assert first.closed and not lazy.made
    second = lazy()
    assert second is not first and not second.closed and len(made) == 2


def test_lazy_map_makes_one_object_per_key_across_threads():
    made, make = _counting_make()
    per_key: LazyMap[str, Made] = LazyMap(close=Made.close)
    start = threading.Barrier(12)

    def ask(index: int) -> Made:
        start.wait()
        return per_key.get("ab"[index % 2], make)

    with ThreadPoolExecutor(12) as pool:
        results = list(pool.map(ask, range(12)))
    assert len(made) == 2
    assert {id(result) for result in results[0::2]} == {id(results[0])}
    assert {id(result) for result in results[1::2]} == {id(results[1])}
    assert results[0] is not results[1]
    per_key.reset()
    assert results[0].closed and results[1].closed
    assert per_key.get("a", make) is not results[0] and len(made) == 3


def test_instance_objects_reset_through_their_public_reset(monkeypatch):
    from functions import webhook

    monkeypatch.setenv("LOOKALIKE_TOP_K", "7")
    webhook.settings.reset()
    try:
        assert webhook.settings().top_k == 7
        monkeypatch.setenv("LOOKALIKE_TOP_K", "4")
        assert webhook.settings().top_k == 7  # read once per instance
        webhook.settings.reset()
        assert webhook.settings().top_k == 4
    finally:
        webhook.settings.reset()


class Node:
    """A tracked object that can take part in a reference cycle."""

    def __init__(self) -> None:
        self.other: Node | None = None


@pytest.fixture
def unfrozen():
    """Whatever a test freezes goes back to the collector's care after it."""
    yield
    gc.unfreeze()


def test_long_lived_objects_are_made_without_the_collector_then_frozen(unfrozen):
    assert gc.isenabled()
    gc.unfreeze()
    collections = gc.get_stats()[0]["collections"]
    with long_lived():
        assert not gc.isenabled()
        kept = [Node() for _ in range(20_000)]  # many times the youngest generation
        cycle = Node()
        cycle.other = Node()
        cycle.other.other = cycle
        unreachable = weakref.ref(cycle)
        del cycle
    assert gc.isenabled()
    assert gc.get_stats()[0]["collections"] == collections  # no pass while they were made
    assert gc.get_freeze_count() >= len(kept)
    # Frozen objects are still freed when their last reference goes ...
    freed = weakref.ref(kept[0])
    del kept
    assert freed() is None
    # ... but cyclic garbage made in the block is kept: the block's price.
    gc.collect()
    assert unreachable() is not None


def test_long_lived_leaves_a_collector_that_was_off_alone(unfrozen):
    gc.unfreeze()
    gc.disable()
    try:
        with long_lived():
            assert not gc.isenabled()
        assert not gc.isenabled()
        assert gc.get_freeze_count() == 0
    finally:
        gc.enable()


def test_long_lived_turns_the_collector_back_on_after_an_error(unfrozen):
    with pytest.raises(RuntimeError), long_lived():
        raise RuntimeError("the model files are wrong")
    assert gc.isenabled()
