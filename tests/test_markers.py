"""Two-phase dedupe markers on a local directory and on Cloud Storage (fake-gcs-server)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from functions.worker_markers import MarkerBusy, Markers
from shared.storage import GcsStore, LocalStore, PreconditionFailed, Store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["local", "gcs"])
def store(request, tmp_path: Path) -> Store:
    if request.param == "local":
        return LocalStore(tmp_path / "markers")
    return GcsStore(request.getfixturevalue("gcs_bucket"), "markers")


def test_claim_then_done_then_skip(store: Store) -> None:
    markers = Markers(store, lease_seconds=60)
    claim = markers.claim("42/7")
    assert claim is not None and claim.generation > 0 and not claim.took_over
    assert json.loads(store.read("42/7"))["state"] == "claimed"
    markers.done(claim)
    assert json.loads(store.read("42/7"))["state"] == "done"
    assert markers.claim("42/7") is None  # a redelivery is skipped
    assert markers.claim("42/8") is not None  # another update is independent


def test_fresh_claim_is_busy_and_stale_claim_is_taken_over(store: Store) -> None:
    clock = Clock()
    first = Markers(store, lease_seconds=60, clock=clock)
    second = Markers(store, lease_seconds=60, clock=clock)
    crashed = first.claim("1/1")
    assert crashed is not None
    clock.now += 59
    with pytest.raises(MarkerBusy):
        second.claim("1/1")
    clock.now += 2
    taken = second.claim("1/1")
    assert taken is not None and taken.took_over and taken.generation != crashed.generation
    # The crashed worker, if it was only slow, cannot mark the taken-over claim done.
    with pytest.raises(PreconditionFailed):
        first.done(crashed)
    second.done(taken)
    assert first.claim("1/1") is None


def test_released_claim_is_taken_over_at_once(store: Store) -> None:
    markers = Markers(store, lease_seconds=3600)
    claim = markers.claim("5/5")
    assert claim is not None
    markers.release(claim)
    again = markers.claim("5/5")
    assert again is not None and again.took_over


def test_unreadable_marker_counts_as_stale(store: Store) -> None:
    store.write("9/9", b"not json")
    claim = Markers(store, lease_seconds=60).claim("9/9")
    assert claim is not None and claim.took_over


def test_concurrent_claims_one_wins(store: Store) -> None:
    for round_number in range(3):
        key = f"77/{round_number}"
        results: list[object] = []
        start = threading.Barrier(2)

        def contend(key: str = key, results: list[object] = results,
                    start: threading.Barrier = start) -> None:
            markers = Markers(store, lease_seconds=60)
            start.wait()
            try:
                results.append(markers.claim(key))
            except MarkerBusy as exc:
                results.append(exc)

        threads = [threading.Thread(target=contend) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        claims = [r for r in results if not isinstance(r, MarkerBusy)]
        assert len(results) == 2 and len(claims) == 1, results
        assert claims[0] is not None and not claims[0].took_over
