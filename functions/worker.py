"""The worker Cloud Function: one job from Pub/Sub in, one reply in the chat.

Flow per event: check the CloudEvent type, decode the job (malformed → acknowledged),
drop jobs older than `max_job_age_seconds`, claim the update's marker while the photo
downloads into memory and its faces are matched (already done → skipped; no message
goes out before the claim is held), reply to the photo with a picture and a caption (or
a text when the index has no photos, or the answer to a problem) and the follow-up
buttons, then mark the update done. A follow-up job (a button
pressed) redraws the answer it belongs to, in place, for the view the button names.

Returning acknowledges the message; raising makes functions-framework answer 500 so
Pub/Sub redelivers it. Raised: transient failures (storage, Bot API 5xx, timeouts,
long flood waits, a fresh claim by another worker). Acknowledged: everything a retry
cannot fix (malformed or old jobs, Bot API 400/403, images that cannot be used — these
get an answer). See docs/worker.md.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from cloudevents.http import CloudEvent
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
)

from functions.job_clock import JobClock
from functions.send_limiter import SendLimiter
from functions.structured_logging import setup_logging, traced
from functions.worker_assets import AssetCache, Assets
from functions.worker_claims import AlreadyAnswered, ClaimedTelegram, ClaimGate
from functions.worker_markers import Claim, Markers, NoMarkers
from functions.worker_replies import (
    CAPTION_LIMIT,
    MESSAGE_LIMIT,
    PARSE_MODE,
    answered_faces,
    matches_text,
    problem_text,
)
from functions.worker_telegram import TelegramClient
from shared.config import Settings, bot_token, project_id
from shared.followups import FIRST_ANSWER, View, keyboard
from shared.images import ImageError, encode_jpeg
from shared.index_versions import IndexMismatch
from shared.instance import Lazy
from shared.jobs import Job, MalformedJob
from shared.matching import match_photo
from shared.models import ModelError
from shared.render import MAX_ROWS, render_jpeg, render_matches
from shared.storage import NotFound, PreconditionFailed, open_store, set_retry_seconds
from shared.texts import text

PUBSUB_EVENT = "google.cloud.pubsub.topic.v1.messagePublished"
# An instance that cannot load what it serves with: no index version in the bucket, model
# files missing or wrong, a CPU without the wheels' instructions. A retry cannot fix
# these; an operator must (infra/monitoring.sh alerts on the "not_ready" outcome).
CANNOT_SERVE = (IndexMismatch, ModelError, NotFound)
_DONE_ATTEMPTS = 3
# An instance serves a few jobs at once (WORKER_CONCURRENCY), but their face work and
# rendering, CPU-bound and mostly holding the GIL, take turns: a job waiting for a
# download or its chat's send slot then leaves the CPU to another chat's job, and no
# job is slowed by sharing the CPU with others (docs/reliability.md).
_face_work = threading.Lock()
_CLAIM_THREADS = 8  # more than the jobs an instance serves at once

log = logging.getLogger(__name__)


@dataclass
class _Instance:
    """What one function instance keeps between invocations."""

    settings: Settings
    assets: AssetCache
    markers: Markers | NoMarkers
    telegram: TelegramClient
    claims: ThreadPoolExecutor  # takes claims while jobs download and match


def _new_instance() -> _Instance:
    settings = Settings.from_env()
    token = bot_token()
    setup_logging(token)
    set_retry_seconds(settings.storage_retry_seconds)
    markers: Markers | NoMarkers = (
        Markers(open_store(settings.markers_uri), settings.marker_lease_seconds)
        if settings.markers_uri else NoMarkers())
    return _Instance(
        settings=settings, assets=AssetCache(settings), markers=markers,
        claims=ThreadPoolExecutor(_CLAIM_THREADS, thread_name_prefix="claim"),
        telegram=TelegramClient(token, settings.telegram_api_url,
                                settings.telegram_timeout_seconds,
                                settings.max_retry_after_seconds,
                                SendLimiter(settings.chat_send_interval_seconds,
                                            1 / settings.bot_sends_per_second,
                                            group_per_minute=settings.group_sends_per_minute)))


def _close(instance: _Instance) -> None:
    instance.claims.shutdown(wait=True)
    instance.telegram.close()


# Made on the first event (not at import), then reused: Google's pattern for clients.
# `instance_state.reset()` forgets it (settings, assets, Bot), as a new instance would.
instance_state = Lazy(_new_instance, close=_close)


def job_from_event(data: Any) -> Job:
    """The job in a Pub/Sub CloudEvent's data; `MalformedJob` when there is none."""
    try:
        encoded = data["message"]["data"]
        raw = base64.b64decode(encoded, validate=True)
    except (TypeError, KeyError, binascii.Error, ValueError) as exc:
        raise MalformedJob(f"no base64 job in the Pub/Sub message: {exc!r}") from None
    return Job.from_bytes(raw)


def handle_event(event: CloudEvent) -> None:
    """Answer the job in one Pub/Sub CloudEvent; raise only when a retry can help."""
    started = time.perf_counter()
    instance = instance_state()
    fields: dict[str, Any] = {"event_id": event["id"]}
    if event["type"] != PUBSUB_EVENT:
        log.warning("ignored an event of type %s", event["type"], extra={"fields": fields})
        return
    try:
        job = job_from_event(event.data)
    except MalformedJob as exc:
        log.error("malformed job acknowledged: %s", exc, extra={"fields": fields})
        return
    with traced(job.trace, project_id()):  # the webhook's trace for this update
        _handle_job(job, instance, fields, started)


def _handle_job(job: Job, instance: _Instance, fields: dict[str, Any], started: float) -> None:
    fields.update(job=job.key, chat_type=job.chat_type)
    age = job.age_seconds()
    if age > instance.settings.max_job_age_seconds:
        log.warning("job dropped: %.0f s old", age, extra={"fields": {**fields,
                                                                     "age_s": round(age)}})
        return
    clock = JobClock()
    # Claimed while the photo downloads and matches; no message goes out before the
    # claim is held. MarkerBusy and StoreError from the claim: redelivered.
    gate = ClaimGate(instance.markers, job.key, instance.claims, clock)
    telegram = ClaimedTelegram(instance.telegram, gate)
    try:
        view = job.follow_up
        if view is not None:
            outcome = _answer(job, instance, telegram, view, clock)
        else:
            with instance.telegram.upload_photo_action(job.chat_id, job.received_at):
                outcome = _answer(job, instance, telegram, None, clock)
        claim = gate.wait()
    except AlreadyAnswered:
        log.info("job already answered; skipped", extra={"fields": fields})
        return
    except BaseException:
        held = gate.held()
        if held is not None:
            _release(instance, held)
        raise
    with clock.stage("done"):
        _mark_done(instance, claim)
    log.info("job %s", outcome, extra={"fields": {
        **fields, "outcome": outcome, "ms": round((time.perf_counter() - started) * 1000),
        "stages_ms": clock.rounded()}})


def _answer(job: Job, instance: _Instance, telegram: ClaimedTelegram, view: View | None,
            clock: JobClock) -> str:
    """Reply to the job's photo, or redraw the answer for a follow-up `view`; returns what
    was answered. Raises when worth a retry."""
    try:
        return (_reply(job, instance, telegram, clock) if view is None
                else _follow_up(job, instance, telegram, view, clock))
    except (RetryAfter, InvalidToken):
        raise  # a long flood wait, or a configuration error an operator must fix
    except (BadRequest, Forbidden, ChatMigrated, EndPointNotFound, Conflict) as exc:
        # The user blocked the bot, the chat is gone, the request cannot succeed.
        log.warning("reply not deliverable, acknowledged: %s", exc)
        return "undeliverable"
    except NetworkError:
        raise  # timeouts, connection errors and Bot API 5xx
    except TelegramError as exc:
        log.error("unexpected Bot API error, acknowledged: %s", exc)
        return "undeliverable"


def _servable_assets(job: Job, instance: _Instance, telegram: ClaimedTelegram) -> Assets | None:
    """The instance's index and models; None when it cannot serve, which the caller
    answers once and acknowledges. StoreError (storage away) is raised and redelivered."""
    try:
        return instance.assets.get()
    except CANNOT_SERVE as exc:
        telegram.claimed()  # logged (and alerted on) once per update, not per delivery
        log.error("cannot serve: %s", exc, extra={"fields": {
            "job": job.key, "not_ready": type(exc).__name__}})
        return None


def _reply(job: Job, instance: _Instance, telegram: ClaimedTelegram, clock: JobClock) -> str:
    settings = instance.settings
    lang = job.language_code

    def problem(code: str) -> str:
        telegram.send_text(job.chat_id, problem_text(code, lang), job.message_id)
        return code

    with clock.stage("assets"):
        assets = _servable_assets(job, instance, telegram)
    if assets is None:
        return problem("not_ready")

    try:
        with clock.stage("download"):
            data = telegram.download(job.file_id)
    except BadRequest as exc:
        return problem("file_too_large" if "too big" in str(exc).lower() else "download_failed")
    try:
        with _face_work, clock.stage("match"):
            result = match_photo(data, assets.index, assets.models, settings)
    except ImageError as exc:
        log.info("image refused: %s", exc.message)
        return problem(exc.code)
    if not result.faces:
        return problem("no_face")
    if not answered_faces(result):
        return problem("no_match")
    buttons = keyboard(FIRST_ANSWER, bool(assets.index.sexes), result.more, lang)
    if assets.index.manifest.photos == 0:
        telegram.send_text(job.chat_id, matches_text(result, lang, MESSAGE_LIMIT),
                           job.message_id, PARSE_MODE, buttons)
        return "answered with text"
    with _face_work:
        with clock.stage("picture"):
            drawn = render_matches(result, assets.photos)
        with clock.stage("jpeg"):
            picture = encode_jpeg(drawn)
    with clock.stage("caption"):
        # The caption credits the gallery picture of every row the picture shows.
        caption = matches_text(result, lang, CAPTION_LIMIT, max_faces=MAX_ROWS,
                               pictured=MAX_ROWS)
    try:
        with clock.stage("send"):
            telegram.send_photo(job.chat_id, picture, caption, job.message_id, PARSE_MODE,
                                buttons)
    except BadRequest as exc:
        # Telegram refused the picture itself; the user still gets the names.
        log.warning("picture refused (%s); answering with text", exc)
        telegram.send_text(job.chat_id, matches_text(result, lang, MESSAGE_LIMIT),
                           job.message_id, PARSE_MODE, buttons)
        return "answered with text (picture refused)"
    return "answered with a picture"


def _follow_up(job: Job, instance: _Instance, telegram: ClaimedTelegram, view: View,
               clock: JobClock) -> str:
    """Redraw the answer `job.edit_message_id` for `view`: the photo is matched again
    (nothing about it was kept) and the answer's picture, caption and buttons edited."""
    settings = instance.settings
    lang = job.language_code
    chat, answer = job.chat_id, job.edit_message_id
    with clock.stage("assets"):
        assets = _servable_assets(job, instance, telegram)
    if assets is None:
        telegram.send_text(chat, problem_text("not_ready", lang), answer)
        return "not_ready"
    try:
        with clock.stage("download"):
            data = telegram.download(job.file_id)
    except BadRequest:  # Telegram no longer serves the photo (or never will again)
        telegram.send_text(chat, text("photo_gone", lang), answer)
        return "photo gone"
    try:
        with _face_work, clock.stage("match"):
            result = match_photo(data, assets.index, assets.models, settings,
                                 sex=view.sex, skip=view.skip(settings.top_k))
    except ImageError as exc:  # answered before, so only a changed pipeline gets here
        telegram.send_text(chat, problem_text(exc.code, lang), answer)
        return exc.code
    buttons = keyboard(view, bool(assets.index.sexes), result.more, lang)
    try:
        pictured = assets.index.manifest.photos > 0  # the answer is a picture
        if not answered_faces(result):
            telegram.edit_words(chat, answer, text("no_match_view", lang), buttons,
                                caption=pictured)
            return "follow-up without matches"
        if not pictured:
            telegram.edit_words(chat, answer, matches_text(result, lang, MESSAGE_LIMIT),
                                buttons, PARSE_MODE, caption=False)
            return "follow-up edited as text"
        # As the first answer: the caption credits every gallery picture the rows show.
        with _face_work:
            picture = render_jpeg(result, assets.photos)
        telegram.edit_photo(chat, answer, picture,
                            matches_text(result, lang, CAPTION_LIMIT, max_faces=MAX_ROWS,
                                         pictured=MAX_ROWS), buttons, PARSE_MODE)
    except BadRequest as exc:
        if "not modified" in str(exc).lower():  # the answer shows this view already
            return "follow-up unchanged"
        raise
    return "follow-up edited"


def _release(instance: _Instance, claim: Claim) -> None:
    """Free the claim so the redelivery need not wait for the lease (best effort)."""
    try:
        instance.markers.release(claim)
    except Exception as exc:
        log.warning("could not release the claim on %s (the lease will expire): %s",
                    claim.key, exc)


def _mark_done(instance: _Instance, claim: Claim) -> None:
    """Record the answer. It was sent: failing here must not make Pub/Sub send it again."""
    for attempt in range(1, _DONE_ATTEMPTS + 1):
        try:
            instance.markers.done(claim)
            return
        except PreconditionFailed:
            log.error("answer sent after %s was taken over by another worker "
                      "(is the lease shorter than a job?)", claim.key)
            return
        except Exception as exc:
            if attempt == _DONE_ATTEMPTS:
                log.error("answer sent but %s not marked done: %s", claim.key, exc)
                return
            time.sleep(0.2 * attempt)
