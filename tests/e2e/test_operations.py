"""End to end: the bot as an operator first meets it (`stack.run` with an empty bucket).

Before any index version exists, a photo gets one short "not ready" answer and its job
is acknowledged, not retried into the dead-letter topic; `python -m index_builder publish
demo/gallery --first` (what infra/setup.sh runs) then makes the bot answer.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from shared.config import DEMO_GALLERY, REPO_ROOT
from shared.texts import text
from stack.emulators import EmulatorUnavailable
from stack.run import Stack, StackOptions, running_stack
from stack.send import deliver, photo_message_update

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

SETTLE_SECONDS = 4.0  # over the retry policy's minimum backoff: a redelivery would show


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    options = StackOptions(index=False, ack_deadline_seconds=120, min_retry_seconds=2,
                           max_retry_seconds=10, max_delivery_attempts=5)
    try:
        with running_stack(options) as running:
            yield running
    except EmulatorUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the local stack cannot start: {exc}")
        pytest.skip(f"the local stack cannot start: {exc}")


def publish_first_version(stack: Stack) -> subprocess.CompletedProcess:
    """The demo gallery published as infra/setup.sh does, against the stack's storage."""
    env = {**os.environ, "STORAGE_EMULATOR_HOST": stack.gcs.url,
           "GOOGLE_CLOUD_PROJECT": stack.options.project}
    return subprocess.run(
        [sys.executable, "-m", "index_builder", "publish", str(DEMO_GALLERY), "--out",
         f"gs://{stack.options.bucket}/index", "--first"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_without_an_index_a_photo_is_answered_not_ready_once_then_served(stack, labelled):
    photo = labelled["Barack_Obama"][-1].read_bytes()
    update = photo_message_update(stack.bot_api, photo, chat_id=7001, language_code="ru")
    assert deliver(stack, update).status == 200
    [reply] = stack.wait_replies(7001)
    assert reply.body == text("not_ready", "ru")
    assert reply.reply_to == update["message"]["message_id"]
    time.sleep(SETTLE_SECONDS)
    [delivery] = stack.deliveries_for(update["update_id"])
    assert delivery.acknowledged and delivery.attempt == 1
    assert len(stack.replies(7001)) == 1 and stack.dead_letters() == []
    assert '"severity": "ERROR", "message": "cannot serve: no index' in stack.logs()

    published = publish_first_version(stack)
    assert published.returncode == 0, published.stderr
    # The worker loads the index on its next job: no redeploy, no restart.
    again = photo_message_update(stack.bot_api, photo, chat_id=7001)
    assert deliver(stack, again).status == 200
    replies = stack.wait_replies(7001, 2)
    assert replies[1].photo and replies[1].photo[:3] == b"\xff\xd8\xff"
