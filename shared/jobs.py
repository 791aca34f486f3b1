"""The job message the webhook publishes to Pub/Sub and the worker consumes.

Small, versioned JSON: it carries the Bot API `file_id` of the chosen photo size, never
the photo itself. A `Job` is checked when it is made, against the same rules the worker
decodes by, so the webhook cannot build one the worker would refuse; it is encoded once,
then, and that encoding is what gets published. Decoding is strict, so a malformed or
foreign message becomes a `MalformedJob` that the worker logs and acknowledges instead
of retrying forever.
"""

from __future__ import annotations

import json
import time
from dataclasses import MISSING, dataclass, fields
from typing import Any

from shared.followups import ForgedData, View

JOB_VERSION = 1
MAX_JOB_BYTES = 4096


class MalformedJob(ValueError):
    """A message, or job fields, that make no job this code can handle (never worth
    retrying)."""


@dataclass(frozen=True)
class Job:
    # The encoding lives in a slot, not in `__dict__`: fields, equality and
    # `Job(**job.__dict__)` see only the job's fields.
    __slots__ = ("__dict__", "_encoded")

    update_id: int
    chat_id: int
    message_id: int
    file_id: str  # of the chosen photo size (or the image document)
    file_unique_id: str
    width: int  # 0 when unknown (documents)
    height: int
    received_at: float  # unix seconds when the webhook accepted the update
    file_size: int = 0  # 0 when unknown
    language_code: str = ""  # the sender's Telegram language, e.g. "ru"
    chat_type: str = "private"
    # A follow-up (a button pressed under an answer): the view it asks for
    # (shared/followups.py) and the answer to edit; "" and 0 for a new photo.
    view: str = ""
    edit_message_id: int = 0
    # The webhook request's trace id (32 hex digits, or ""), so that the worker's log
    # lines of the job join the webhook's in one trace.
    trace: str = ""
    version: int = JOB_VERSION

    def __post_init__(self) -> None:
        """Refuses what `from_bytes` would refuse, with a `MalformedJob` saying why."""
        values: dict[str, Any] = {}
        for f in fields(self):
            values[f.name] = _check(f.name, getattr(self, f.name), f.type)
            object.__setattr__(self, f.name, values[f.name])  # an int received_at: float
        if self.version != JOB_VERSION:
            raise MalformedJob(f"job version {self.version!r}, expected {JOB_VERSION}")
        if not self.file_id:
            raise MalformedJob("empty file_id")
        if self.view:
            try:
                View.decode(self.view)
            except ForgedData as exc:
                raise MalformedJob(f"view: {exc}") from None
            if not self.edit_message_id:
                raise MalformedJob("a follow-up without the answer to edit")
        try:
            encoded = json.dumps(values, separators=(",", ":"), ensure_ascii=False).encode()
        except UnicodeEncodeError:  # a lone surrogate, which JSON text may carry
            raise MalformedJob("a string field is not valid Unicode") from None
        if len(encoded) > MAX_JOB_BYTES:
            raise MalformedJob(f"job of {len(encoded)} bytes is over {MAX_JOB_BYTES}")
        object.__setattr__(self, "_encoded", encoded)

    def to_bytes(self) -> bytes:
        """The message to publish: the encoding made (and size-checked) with the job."""
        # Read as it is written: the slot has no annotation, which would make it a field.
        encoded: bytes = object.__getattribute__(self, "_encoded")
        return encoded

    @property
    def follow_up(self) -> View | None:
        """The view a pressed button asks for; None for a new photo."""
        return View.decode(self.view) if self.view else None

    def age_seconds(self, now: float | None = None) -> float:
        return (time.time() if now is None else now) - self.received_at

    @property
    def key(self) -> str:
        """What makes two deliveries the same photo: one answer per update."""
        return f"{self.chat_id}/{self.update_id}"

    @classmethod
    def from_bytes(cls, data: bytes) -> Job:
        """Parse and validate a job; raises `MalformedJob` with the reason."""
        if len(data) > MAX_JOB_BYTES:
            raise MalformedJob(f"job of {len(data)} bytes is over {MAX_JOB_BYTES}")
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise MalformedJob(f"not JSON: {exc}") from None
        if not isinstance(raw, dict):
            raise MalformedJob("not a JSON object")
        if raw.get("version") != JOB_VERSION:
            raise MalformedJob(f"job version {raw.get('version')!r}, expected {JOB_VERSION}")
        missing = [f.name for f in fields(cls) if f.name not in raw and f.default is MISSING]
        if missing:
            raise MalformedJob(f"missing field {missing[0]!r}")
        unknown = set(raw) - {f.name for f in fields(cls)}
        if unknown:
            raise MalformedJob(f"unknown fields {sorted(unknown)}")
        return cls(**raw)  # the values are checked as the job is made


def _check(name: str, value: Any, kind: Any) -> Any:
    kind = str(kind)
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise MalformedJob(f"{name} must be an integer")
        return value
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise MalformedJob(f"{name} must be a number")
        return float(value)
    if not isinstance(value, str) or len(value) > 512:
        raise MalformedJob(f"{name} must be a short string")
    return value
