"""Promises 1 and 2 for the webhook: only Telegram's signed updates are published, the
secret check does not leak the secret through timing, and hostile bodies (any bytes,
any JSON, updates of Telegram's shape with wrong values) get a clear 4xx or a normal
answer, quickly, and never a 5xx.

In-process through flask's request objects, as functions-framework hands them over."""

from __future__ import annotations

import hmac
import json
import statistics
import time
from typing import Any

import flask
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions import webhook
from functions.webhook import MAX_BODY_BYTES, SECRET_HEADER, handle, secret_matches
from shared.config import Settings
from shared.jobs import Job
from tests.reliability_budget import record, scaled

SECRET = "Zq8-secret_token-" + "k" * 47  # 64 characters, like a generated one
SETTINGS = Settings(bot_username="LookalikeTestBot")
CASE_SECONDS = 1.0  # one request, however hostile, is answered within this
EXAMPLES = scaled(150, 2000)
_app = flask.Flask(__name__)
_cases: dict[str, int] = {}


class Recorder:
    def __init__(self) -> None:
        self.jobs: list[Job] = []

    def publish(self, job: Job) -> str:
        self.jobs.append(job)
        return str(len(self.jobs))


def post(data: bytes, *, secret: str | None = SECRET, content_type: str = "application/json",
         headers: dict[str, str] | None = None) -> tuple[int, Recorder, float]:
    publisher = Recorder()
    sent = dict(headers or {})
    if secret is not None:
        sent[SECRET_HEADER] = secret
    started = time.perf_counter()
    with _app.test_request_context("/", method="POST", data=data, headers=sent,
                                   content_type=content_type):
        _, status, _ = handle(flask.request, SETTINGS, publisher, SECRET)
    return status, publisher, time.perf_counter() - started


# -- 1. authenticity ------------------------------------------------------------------


def test_the_secret_check_compares_fixed_length_digests(monkeypatch):
    """Constant time by construction: whatever is sent, compare_digest sees two 32-byte
    digests, so neither the secret's length nor its prefix changes the work done."""
    seen: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        seen.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(webhook.hmac, "compare_digest", spy)
    for given_secret in ("", "x", SECRET[:-1], SECRET + "x", SECRET, "é" * 300):
        assert secret_matches(given_secret, SECRET) is (given_secret == SECRET)
    assert seen and set(seen) == {(32, 32)}


def _median_ns(candidate: str, rounds: int) -> float:
    timings = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(50):
            secret_matches(candidate, SECRET)
        timings.append((time.perf_counter_ns() - started) / 50)
    return statistics.median(timings)


def test_wrong_secrets_sharing_a_long_prefix_are_not_slower():
    """Medians of interleaved batches, compared within the run: a secret wrong only in
    its last character costs what one wrong in its first does (a generous 1.5× margin
    for a noisy shared machine)."""
    first = "A" + SECRET[1:]
    last = SECRET[:-1] + "A"
    shorter = SECRET[:8]
    medians: dict[str, list[float]] = {"first": [], "last": [], "shorter": []}
    for _ in range(scaled(15, 60)):
        for name, candidate in (("first", first), ("last", last), ("shorter", shorter)):
            medians[name].append(_median_ns(candidate, 20))
    first_ns, last_ns, shorter_ns = (statistics.median(medians[k])
                                     for k in ("first", "last", "shorter"))
    record("webhook secret timing", first_char_wrong_ns=round(first_ns),
           last_char_wrong_ns=round(last_ns), shorter_ns=round(shorter_ns))
    assert last_ns < 1.5 * first_ns and shorter_ns < 1.5 * first_ns


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET[:-1], SECRET + "x",
                                    SECRET.upper()])
def test_an_update_without_the_right_secret_is_refused_and_not_published(secret):
    update = {"update_id": 1, "message": {
        "message_id": 2, "date": 0, "chat": {"id": 3, "type": "private"},
        "photo": [{"file_id": "f", "file_unique_id": "u", "width": 800, "height": 600}]}}
    status, publisher, _ = post(json.dumps(update).encode(), secret=secret)
    assert status == 403 and publisher.jobs == []
    # The same update with the right secret is published: the refusal was the secret's.
    status, publisher, _ = post(json.dumps(update).encode())
    assert status == 200 and len(publisher.jobs) == 1


def test_an_oversized_body_is_refused_without_reading_it(monkeypatch):
    """The body is never read (nor parsed): the declared length decides."""
    read: list[bool] = []
    original = flask.Request.get_data
    monkeypatch.setattr(flask.Request, "get_data",
                        lambda self, *a, **k: read.append(True) or original(self, *a, **k))
    status, publisher, seconds = post(b"{" + b" " * (8 * MAX_BODY_BYTES) + b"}")
    assert status == 413 and publisher.jobs == [] and read == []
    assert seconds < CASE_SECONDS


# -- 2. hostile input ------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=20)


def _count(name: str) -> None:
    _cases[name] = _cases.get(name, 0) + 1


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=2048),
       content_type=st.sampled_from(["application/json", "application/json; charset=utf-8",
                                     "text/plain", "multipart/form-data", ""]))
def test_any_bytes_get_a_clear_refusal(body, content_type):
    status, publisher, seconds = post(body, content_type=content_type)
    _count("bytes")
    assert status in (200, 400, 411, 415) and seconds < CASE_SECONDS
    assert publisher.jobs == [] or status == 200


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=json_values)
def test_any_json_value_gets_an_answer_not_a_crash(body):
    status, publisher, seconds = post(json.dumps(body).encode())
    _count("json")
    assert status in (200, 400) and seconds < CASE_SECONDS
    assert len(publisher.jobs) <= 1


def _sizes() -> st.SearchStrategy[list[dict[str, Any]]]:
    value = st.integers(-2**63, 2**63) | json_values
    size = st.fixed_dictionaries(
        {"file_id": st.text(max_size=100) | st.text(min_size=500, max_size=700) | value,
         "file_unique_id": st.text(max_size=20),
         "width": value, "height": value},
        optional={"file_size": value})
    return st.lists(size, max_size=5)


_chat = st.fixed_dictionaries({"id": st.integers(-2**53, 2**53) | st.text(max_size=5),
                               "type": st.sampled_from(["private", "group", "supergroup",
                                                        "channel", "secret", ""])})
_entity = st.fixed_dictionaries({"type": st.sampled_from(["bot_command", "mention", "x"]),
                                 "offset": st.integers(-5, 50), "length": st.integers(-5, 50)})
_message = st.fixed_dictionaries(
    {"message_id": st.integers(-2**31, 2**63) | json_values, "date": st.integers(0, 2**32),
     "chat": _chat},
    optional={"photo": _sizes(), "caption": st.text(max_size=300) | json_values,
              "text": st.text(max_size=300),
              "entities": st.lists(_entity, max_size=3),
              "caption_entities": st.lists(_entity, max_size=3),
              "from": st.fixed_dictionaries({"id": st.integers(), "is_bot": st.booleans(),
                                             "first_name": st.text(max_size=5)},
                                            optional={"language_code": st.text(max_size=5)}),
              "document": st.fixed_dictionaries(
                  {"file_id": st.text(max_size=40), "file_unique_id": st.text(max_size=10)},
                  optional={"mime_type": st.sampled_from(["image/jpeg", "image/gif", "text/x",
                                                          ""]),
                            "file_size": st.integers(-1, 2**40)})})


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(update_id=st.integers(-2**63, 2**63) | json_values, message=_message,
       reply=st.none() | _message)
def test_telegram_shaped_updates_with_hostile_values(update_id, message, reply):
    """Every job that gets published is one the worker can decode; the rest is a 200
    (ignored or answered) or a 400, never a 5xx, within the time bound."""
    if reply is not None:
        message = {**message, "reply_to_message": reply}
    body = json.dumps({"update_id": update_id, "message": message}).encode()
    status, publisher, seconds = post(body)
    _count("telegram-shaped")
    assert status in (200, 400, 413) and seconds < CASE_SECONDS
    for job in publisher.jobs:
        assert Job.from_bytes(job.to_bytes()) == job


def test_zz_fuzz_figures():
    """Reports what the fuzz tests above tried (they run first, in file order)."""
    record("webhook fuzz", cases=dict(_cases), total=sum(_cases.values()),
           per_case_bound_s=CASE_SECONDS)
    assert sum(_cases.values()) >= 3 * min(EXAMPLES, 50)
