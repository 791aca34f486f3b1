"""The webhook Cloud Function: Telegram updates in, jobs on Pub/Sub out.

Each request is checked cheaply before any work (method, secret token, content type,
size), parsed into python-telegram-bot's typed `Update`, and routed
(`functions.webhook_updates.route`): cheap answers go back in the response body as a
Bot API method call, photos become jobs published to Pub/Sub. The answer is 200 only
once the job is safely published; 503 otherwise, so that Telegram delivers the update
again. No face code is imported here: the webhook stays small and starts fast.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from telegram import Update

from functions.publisher import Publisher, PublishError, PubSubPublisher
from functions.quota import PhotoQuota, QuotaUnavailable
from functions.structured_logging import setup_logging, trace_id, traced
from functions.webhook_updates import Answer, Enqueue, Ignore, malformed, route
from shared.config import Settings, project_id, webhook_secret
from shared.instance import Lazy
from shared.jobs import Job, MalformedJob
from shared.storage import open_store, set_retry_seconds
from shared.texts import text

if TYPE_CHECKING:
    import flask

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Telegram updates are a few KiB at most; anything much larger is not from Telegram.
MAX_BODY_BYTES = 64 * 1024

Response = tuple[str, int, dict[str, str]]
JSON_HEADERS = {"Content-Type": "application/json"}

_logger = logging.getLogger(__name__)
# The instance's settings (read from the environment once) and job publisher, made on
# the first request and reused.
settings = Lazy(Settings.from_env)
job_publisher: Lazy[Publisher] = Lazy(lambda: PubSubPublisher.for_settings(settings()))


def _new_quota() -> PhotoQuota | None:
    current = settings()
    if not current.quota_uri:
        return None
    # Bounded like the worker's: storage trouble lets photos through in seconds.
    set_retry_seconds(current.storage_retry_seconds)
    return PhotoQuota(open_store(current.quota_uri), current.photo_quota,
                      current.photo_quota_window_seconds)


photo_quota: Lazy[PhotoQuota | None] = Lazy(_new_quota)


def handle_request(request: flask.Request) -> Response:
    """The Cloud Functions entry point (see main.py)."""
    return handle(request, settings(), job_publisher(), webhook_secret(), quota=photo_quota())


def handle(request: flask.Request, settings: Settings, publisher: Publisher, secret: str,
           clock: Any = time.time, quota: PhotoQuota | None = None) -> Response:
    """One webhook request, with its collaborators passed in (tests, benchmark). Its log
    lines, and the worker's for its job, carry the request's trace."""
    setup_logging(secret)  # idempotent; here because tests and benchmark start at handle()
    trace = trace_id(request.headers.get("X-Cloud-Trace-Context", ""),
                     request.headers.get("traceparent", ""))
    with traced(trace, project_id()):
        return _handle(request, settings, publisher, secret, clock, quota, trace)


def _handle(request: flask.Request, settings: Settings, publisher: Publisher, secret: str,
            clock: Any, quota: PhotoQuota | None, trace: str) -> Response:
    if request.method != "POST":
        return _plain("only POST", 405)
    if not secret:
        log(logging.ERROR, "no webhook secret is configured: refusing every update "
                           "(set TELEGRAM_WEBHOOK_SECRET)")
        return _plain("forbidden", 403)
    if not secret_matches(request.headers.get(SECRET_HEADER, ""), secret):
        log(logging.WARNING, "missing or wrong secret token", remote=request.remote_addr)
        return _plain("forbidden", 403)
    if request.mimetype != "application/json":
        return _plain("expected application/json", 415)
    if request.content_length is None:
        return _plain("Content-Length required", 411)
    if request.content_length > MAX_BODY_BYTES:
        return _plain(f"body over {MAX_BODY_BYTES} bytes", 413)

    try:
        data = json.loads(request.get_data(cache=False))
        update = Update.de_json(_read_part(data), bot=None) if isinstance(data, dict) \
            else None
    except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
        log(logging.WARNING, f"unparseable update: {type(exc).__name__}: {exc}")
        return _plain("not a Telegram update", 400)
    if update is None:
        log(logging.WARNING, "request body is not a JSON object")
        return _plain("not a Telegram update", 400)
    problem = malformed(update)
    if problem:
        log(logging.WARNING, f"not a Telegram update: {problem}")
        return _plain("not a Telegram update", 400)

    received_at = clock()
    try:
        action = route(update, settings, received_at)
    except MalformedJob as exc:  # a job the worker would refuse: refused where it is heard
        log(logging.WARNING, f"update makes no valid job: {exc}", update_id=update.update_id)
        return _plain("not a Telegram update", 400)
    except Exception:
        # A bug, not bad input: 500 makes Telegram deliver it again after a fix.
        log(logging.ERROR, "routing failed", update_id=update.update_id, exc_info=True)
        return _plain("internal error", 500)

    if isinstance(action, Ignore):
        log(logging.INFO, "ignored", update_id=update.update_id, reason=action.reason)
        return "", 200, {}
    if isinstance(action, Answer):
        log(logging.INFO, "answered", update_id=update.update_id, reason=action.reason)
        return json.dumps(action.method, ensure_ascii=False), 200, JSON_HEADERS
    assert isinstance(action, Enqueue)
    job = dataclasses.replace(action.job, trace=trace) if trace else action.job
    if quota is not None:
        try:
            decision = quota.take(job.chat_id, job.update_id, received_at)
        except QuotaUnavailable as exc:  # a quota that fails must not stop the bot
            log(logging.WARNING, f"photo quota unavailable, photo let through: {exc}",
                update_id=update.update_id)
        else:
            if not decision.allowed:
                log(logging.WARNING, "over the photo quota: " +
                    ("told" if decision.tell else "dropped"), update_id=update.update_id,
                    chat_id=job.chat_id, photos=decision.position)
                # A pressed button is always answered (Telegram shows a spinner until it
                # is); a new photo hears of the quota once per window.
                if not decision.tell and not job.view:
                    return "", 200, {}
                return json.dumps(_quota_answer(action, job, settings), ensure_ascii=False), \
                    200, JSON_HEADERS
    try:
        message_id = publisher.publish(job)
    except PublishError as exc:
        log(logging.ERROR, f"could not publish the job: {exc}", update_id=update.update_id)
        return _plain("job queue unavailable, try again", 503)
    log(logging.INFO, "job published", update_id=update.update_id, message_id=message_id,
        chat_type=job.chat_type, photo=f"{job.width}x{job.height}", view=job.view or None)
    return json.dumps(action.answer, ensure_ascii=False), 200, JSON_HEADERS


def _read_part(data: dict[str, Any]) -> dict[str, Any]:
    """The part of an update the bot reads. python-telegram-bot builds every object it is
    given and fails on values it cannot hold (a duration past `timedelta`'s range): the
    kinds of update the bot ignores are not built, so they cannot fail it."""
    return {key: data[key] for key in ("update_id", "message", "callback_query") if key in data}


def _quota_answer(action: Enqueue, job: Job, settings: Settings) -> dict[str, Any]:
    """The answer to a photo or a pressed button over the chat's photo quota."""
    reply = text("press_quota" if job.view else "photo_quota", job.language_code,
                 limit=settings.photo_quota,
                 minutes=max(1, settings.photo_quota_window_seconds // 60))
    if job.view:  # a button: its answerCallbackQuery carries the notice
        return {**action.answer, "text": reply, "show_alert": True}
    return {"method": "sendMessage", "chat_id": job.chat_id, "text": reply,
            "reply_parameters": {"message_id": job.message_id,
                                 "allow_sending_without_reply": True}}


def secret_matches(given: str, secret: str) -> bool:
    """Constant-time check of the secret token header. Fixed-length digests are compared:
    `compare_digest` on the raw strings returns early when the lengths differ, which
    would tell an attacker the secret's length."""
    digest = hashlib.sha256
    return hmac.compare_digest(digest(given.encode("utf-8", "surrogatepass")).digest(),
                               digest(secret.encode("utf-8", "surrogatepass")).digest())


def _plain(text: str, status: int) -> Response:
    return text, status, {"Content-Type": "text/plain; charset=utf-8"}


def log(level: int, message: str, exc_info: bool = False, **fields: Any) -> None:
    """One structured log line, written by `functions.structured_logging` (secret redacted);
    `component` tells the webhook's lines from the worker's in a shared log view."""
    _logger.log(level, "%s", message, exc_info=exc_info,
                extra={"fields": {"component": "webhook", **fields}})
