"""Structured logs for Cloud Logging, with secrets kept out of them: the one log writer
of both functions (the worker's bot token, the webhook's secret token).

Cloud Logging reads one JSON object per stdout line: `severity` and `message` are
understood, other keys become the entry's `jsonPayload`. Structured fields are passed as
`extra={"fields": {...}}`.

httpx logs every request URL, and Bot API URLs contain the bot token; python-telegram-bot
quotes it in some errors. A log record factory redacts the secrets in every record of the
process, before any handler (ours, Cloud Logging's or a test's) sees it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

from shared.instance import Lazy

REDACTED = "<redacted>"
# Cloud Logging groups the entries that carry the same value here into one trace: the
# webhook's lines of an update and the worker's lines of its job (the job carries it).
TRACE_FIELD = "logging.googleapis.com/trace"
_trace: ContextVar[str | None] = ContextVar("lookalike_trace", default=None)
_SEVERITY = {logging.DEBUG: "DEBUG", logging.INFO: "INFO", logging.WARNING: "WARNING",
             logging.ERROR: "ERROR", logging.CRITICAL: "CRITICAL"}
_secrets: list[str] = []


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, "DEFAULT"),
            "message": record.getMessage(),
            "logger": record.name,
        }
        trace = _trace.get()
        if trace:
            entry[TRACE_FIELD] = trace
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["stack_trace"] = record.exc_text
        return redact(json.dumps(entry, ensure_ascii=False, default=str))


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever `sys.stdout` is at the time (it may be replaced after setup)."""

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> Any:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def trace_id(cloud_trace_context: str, traceparent: str) -> str:
    """The trace id of a request, from its X-Cloud-Trace-Context header (Google's,
    "TRACE/SPAN;o=1") or its traceparent header (W3C, "00-TRACE-SPAN-01"); "" when
    neither holds one."""
    match = re.fullmatch(r"([0-9a-fA-F]{32})(/.*)?", cloud_trace_context.strip())
    if match:
        return match[1].lower()
    match = re.fullmatch(r"[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}",
                         traceparent.strip())
    return match[1] if match and match[1] != "0" * 32 else ""


@contextlib.contextmanager
def traced(trace: str, project: str) -> Iterator[None]:
    """Every log line of this thread (or task) inside carries the trace `trace`."""
    token = _trace.set(f"projects/{project}/traces/{trace}" if trace else None)
    try:
        yield
    finally:
        _trace.reset(token)


def redact(text: str) -> str:
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    return text


def _redacting_factory(previous: Any) -> Any:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if not _secrets:
            return record
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call: leave it to the handler to report
            return record
        # Formatted now: arguments may change before a handler formats them (the Bot
        # puts the download URL, token included, into the dict it just logged).
        record.msg, record.args = redact(message), None
        if record.exc_info and record.exc_info[1] is not None:
            text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
            if any(secret in text for secret in _secrets):
                record.exc_text = redact(text)
        return record

    factory.redacting = True  # type: ignore[attr-defined]
    return factory


def setup_logging(*secrets: str) -> None:
    """JSON lines on stdout for the root logger, and `secrets` redacted everywhere.

    Idempotent: repeated calls only add secrets.
    """
    for secret in secrets:
        if secret and secret not in _secrets:
            _secrets.append(secret)
            if ":" in secret:  # the part after the bot id is the secret part
                _secrets.append(secret.split(":", 1)[1])
    root = logging.getLogger()
    # Every call, not only the first: something in the process may have raised the level.
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    installation.get()


class _Installation:
    """What `setup_logging` changed in the process, so that a reset can undo it."""

    def __init__(self) -> None:
        self.factory = logging.getLogRecordFactory()
        if not getattr(self.factory, "redacting", False):
            logging.setLogRecordFactory(_redacting_factory(self.factory))
        root = logging.getLogger()
        self.handler: logging.Handler | None = None
        if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
            self.handler = _StdoutHandler()
            self.handler.setLevel(logging.INFO)
            self.handler.setFormatter(JsonFormatter())
            root.addHandler(self.handler)
        # Request lines are noise at INFO (and would carry the token if redaction
        # failed); nmslib announces each of its spaces at INFO when the index is loaded.
        for name in ("httpx", "httpcore", "nmslib"):
            logging.getLogger(name).setLevel(logging.WARNING)

    def undo(self) -> None:
        logging.setLogRecordFactory(self.factory)
        if self.handler is not None:
            logging.getLogger().removeHandler(self.handler)
        _secrets.clear()


# Once per process; `installation.reset()` takes the handler, the redaction and the
# secrets away again.
installation = Lazy(_Installation, close=_Installation.undo)
