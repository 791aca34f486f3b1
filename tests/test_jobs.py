"""The job message: a Job the worker would refuse cannot be made, and one that can be made
is published as the one encoding made with it, which the worker decodes to the same job."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.jobs import JOB_VERSION, MAX_JOB_BYTES, Job, MalformedJob

VALID: dict[str, Any] = dict(
    update_id=100, chat_id=42, message_id=7, file_id="AgACAgIAAxkBAAI800",
    file_unique_id="AQAD800", width=800, height=600, received_at=1_800_000_000.0,
    file_size=48_000, language_code="ru", chat_type="group", view="", edit_message_id=0)

INVALID: dict[str, dict[str, Any]] = {
    "empty file_id": {"file_id": ""},
    "forged view": {"view": "la1:x:0", "edit_message_id": 9},
    "view past the last page": {"view": "la1:f:3", "edit_message_id": 9},
    "follow-up without the answer": {"view": "la1:f:1"},
    "over-long file_id": {"file_id": "f" * 513},
    "over-long language": {"language_code": "r" * 513},
    "boolean update_id": {"update_id": True},
    "text chat_id": {"chat_id": "42"},
    "fractional width": {"width": 800.5},
    "text received_at": {"received_at": "now"},
    "missing language": {"language_code": None},
    "another version": {"version": JOB_VERSION + 1},
    "lone surrogate": {"file_id": "Ag\ud800"},
    # Each string is short enough alone; escaped control characters make the whole too big.
    "over the size limit": {name: "\x01" * 500 for name in
                            ("file_id", "file_unique_id", "language_code", "chat_type")},
}


@pytest.mark.parametrize("change", INVALID.values(), ids=INVALID.keys())
def test_a_job_the_worker_would_refuse_cannot_be_made(change):
    with pytest.raises(MalformedJob):
        Job(**{**VALID, **change})


@pytest.mark.parametrize("change", INVALID.values(), ids=INVALID.keys())
def test_the_worker_refuses_the_same_fields_when_they_arrive_encoded(change):
    # ASCII escapes let a lone surrogate travel as JSON; the raw size check is the worker's.
    data = json.dumps({**VALID, "version": JOB_VERSION, **change}).encode()
    with pytest.raises(MalformedJob):
        Job.from_bytes(data)


def test_malformed_job_is_a_value_error_that_says_why():
    with pytest.raises(ValueError, match="file_id must be a short string"):
        Job(**{**VALID, "file_id": "f" * 513})


def test_a_job_is_encoded_once_and_decodes_to_itself():
    job = Job(**VALID)
    assert job.to_bytes() is job.to_bytes()
    assert len(job.to_bytes()) <= MAX_JOB_BYTES
    assert Job.from_bytes(job.to_bytes()) == job
    assert json.loads(job.to_bytes()) == {**VALID, "trace": "", "version": JOB_VERSION}


def test_the_encoding_is_not_one_of_the_jobs_fields():
    job = Job(**VALID)
    assert job.__dict__ == {**VALID, "trace": "", "version": JOB_VERSION}
    assert Job(**{**job.__dict__, "width": 90}).to_bytes() != job.to_bytes()
    assert "_encoded" not in repr(job)


def test_an_integer_time_is_kept_as_seconds_in_a_float():
    job = Job(**{**VALID, "received_at": 1_800_000_000})
    assert isinstance(job.received_at, float) and job == Job(**VALID)


_text = st.text(max_size=600)
_int = st.integers(-2**63, 2**63) | st.booleans()


@given(update_id=_int, chat_id=_int, file_id=_text, unique_id=_text, language=_text,
       received_at=st.floats(allow_nan=False) | st.integers(-2**53, 2**53))
def test_any_job_that_can_be_made_is_one_the_worker_decodes(update_id, chat_id, file_id,
                                                             unique_id, language,
                                                             received_at):
    try:
        job = Job(**{**VALID, "update_id": update_id, "chat_id": chat_id, "file_id": file_id,
                     "file_unique_id": unique_id, "language_code": language,
                     "received_at": received_at})
    except MalformedJob:
        return
    assert Job.from_bytes(job.to_bytes()) == job


def test_a_follow_up_job_carries_its_view():
    job = Job(**{**VALID, "view": "la1:f:1", "edit_message_id": 1234})
    assert Job.from_bytes(job.to_bytes()) == job
    assert job.follow_up is not None and (job.follow_up.sex, job.follow_up.page) == ("female", 1)
    assert Job(**VALID).follow_up is None
