"""The per-chat photo quota (functions/quota.py) against fake-gcs-server, the stand-in for
Cloud Storage the stack uses: conditional writes as Cloud Storage does them."""

from __future__ import annotations

import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from functions.quota import PhotoQuota, QuotaUnavailable
from shared.storage import GcsStore

WINDOW = 600
NOW = 1_800_000_000.0  # the start of a window: 1_800_000_000 is a multiple of 600


@pytest.fixture
def store(gcs_bucket) -> GcsStore:
    return GcsStore(gcs_bucket, f"quotas-{uuid.uuid4().hex[:8]}")


def test_a_chat_gets_its_quota_then_one_refusal_then_silence(store):
    quota = PhotoQuota(store, limit=3, window_seconds=WINDOW)
    decisions = [quota.take(42, update, NOW + update) for update in range(1, 7)]
    assert [(d.allowed, d.tell, d.position) for d in decisions] == [
        (True, False, 1), (True, False, 2), (True, False, 3),
        (False, True, 4), (False, False, 4), (False, False, 4)]
    # Another chat, and the same chat in the next window, start afresh.
    assert quota.take(43, 100, NOW).allowed
    assert quota.take(42, 101, NOW + WINDOW).position == 1


def test_a_redelivered_update_is_not_counted_twice(store):
    quota = PhotoQuota(store, limit=2, window_seconds=WINDOW)
    assert quota.take(42, 1, NOW).position == 1
    assert quota.take(42, 1, NOW + 1).position == 1  # Telegram delivered it again
    assert quota.take(42, 2, NOW + 2).allowed
    assert not quota.take(42, 3, NOW + 3).allowed


def test_instances_racing_for_one_chat_never_lose_a_count(store):
    """Two instances (each its own PhotoQuota and remembered generations), 8 threads each,
    one chat's 40 photos at once: exactly the quota is let through, one refusal told."""
    instances = [PhotoQuota(store, limit=10, window_seconds=WINDOW) for _ in range(2)]

    def take(update: int):
        return instances[update % 2].take(42, update, NOW + 1)

    with ThreadPoolExecutor(16) as pool:
        decisions = list(pool.map(take, range(40)))
    assert sum(d.allowed for d in decisions) == 10
    assert sum(d.tell for d in decisions) == 1
    assert sorted(d.position for d in decisions if d.allowed) == list(range(1, 11))


def test_storage_away_raises_quota_unavailable():
    quota = PhotoQuota(GcsStore("no-such-bucket-for-quotas"), limit=10, window_seconds=WINDOW)
    with pytest.raises(QuotaUnavailable):
        quota.take(42, 1, NOW)


def test_cost_per_update(store):
    """Prints the time one take costs against the local Cloud Storage stand-in: the first
    photo of a window (a create), and a chat's later photos (one conditional write with
    the remembered generation), and when another instance wrote in between (re-read)."""
    quota, other = (PhotoQuota(store, limit=1000, window_seconds=WINDOW) for _ in range(2))
    first, later, contended = [], [], []
    for chat in range(40):
        started = time.perf_counter()
        quota.take(chat, 1, NOW)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        quota.take(chat, 2, NOW)
        later.append(time.perf_counter() - started)
        other.take(chat, 3, NOW)
        started = time.perf_counter()
        quota.take(chat, 4, NOW)
        contended.append(time.perf_counter() - started)
    print("\n[quota] ms per take, median (p90) of 40: " + ", ".join(
        f"{name} {statistics.median(v) * 1000:.1f} ({sorted(v)[35] * 1000:.1f})"
        for name, v in (("first photo", first), ("later photo", later),
                        ("after another instance", contended))))
