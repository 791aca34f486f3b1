"""The send limiter's rates, on a fake clock: per chat, per group, for the whole bot."""

from __future__ import annotations

import itertools

import pytest

from functions.send_limiter import SendLimiter


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _send(limiter: SendLimiter, time: FakeTime, chat: int, count: int,
          upload: float = 0.1) -> list[float]:
    """Send `count` messages to `chat` one after another; when each was answered."""
    answered = []
    for _ in range(count):
        with limiter.slot(chat):
            time.now += upload
            answered.append(time.now)
    return answered


def _busiest_minute(times: list[float]) -> int:
    return max(sum(1 for t in times if start <= t < start + 60.0) for start in times)


def test_a_group_gets_at_most_20_messages_a_minute():
    time = FakeTime()
    limiter = SendLimiter(1.0, 1 / 30, clock=time.clock, sleep=time.sleep)
    times = _send(limiter, time, -1001234, 45)
    assert _busiest_minute(times) == 20
    # The first 20 go at the per-chat pace; the 21st waits for the first one's minute.
    assert times[19] < 21.5
    assert times[20] >= times[0] + 60.0
    # Over a long run the pace is the group's: 20 a minute, no slower.
    assert times[44] - times[0] < 2 * 60.0 + 5 * 1.1


def test_a_private_chat_keeps_one_message_a_second():
    time = FakeTime()
    limiter = SendLimiter(1.0, 1 / 30, clock=time.clock, sleep=time.sleep)
    times = _send(limiter, time, 424242, 45)
    assert _busiest_minute(times) > 20  # private chats have no per-minute limit
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 1.0 and max(gaps) < 1.2


def test_another_group_is_not_held_up_by_a_full_one():
    time = FakeTime()
    limiter = SendLimiter(1.0, 1 / 30, clock=time.clock, sleep=time.sleep)
    _send(limiter, time, -100, 20)
    with limiter.slot(-200) as waited:
        assert waited < 0.1
    with limiter.slot(-100) as waited:
        assert waited > 30.0


def test_the_group_rate_is_configurable():
    time = FakeTime()
    limiter = SendLimiter(0.0, 0.0, clock=time.clock, sleep=time.sleep, group_per_minute=3)
    times = _send(limiter, time, -5, 7, upload=0.0)
    assert times == [0.0, 0.0, 0.0, 60.0, 60.0, 60.0, 120.0]


def test_a_chat_waiting_for_its_slot_does_not_hold_up_other_chats():
    """A burst's next message waits a second for its chat's slot; another chat's message
    meanwhile goes at once (one bot-wide interval later at most), not after it."""
    time = FakeTime()
    limiter = SendLimiter(1.0, 1 / 30, clock=time.clock, sleep=lambda seconds: None)
    with limiter.slot(1) as waited:  # answered at 0: chat 1's next slot is at 1.0
        assert waited == 0
    with limiter.slot(1) as waited:
        assert waited == 1.0
    starts = []
    for chat in range(2, 40):
        with limiter.slot(chat) as waited:
            starts.append(waited)
    assert starts[0] == pytest.approx(1 / 30)  # right after chat 1's first message
    # The bot-wide pace holds around chat 1's reserved slot too.
    every = sorted([0.0, 1.0, *starts])
    assert min(later - earlier for earlier, later in itertools.pairwise(every)) \
        >= 1 / 30 - 1e-9
    assert max(starts) < 40 / 30 + 1e-9
