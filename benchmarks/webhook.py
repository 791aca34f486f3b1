"""The webhook's handler latency in-process, without the publish round trip.

    python -m benchmarks.webhook [--repeat N]

Each kind of update (a photo that becomes a job, /start answered in the response body,
a group message that is ignored, a forged secret) goes through `functions.webhook.handle`
with a Flask request and a publisher that does nothing; log lines go to /dev/null.
Prints the median and the 99th percentile per kind, and the import time of the module.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time

import flask

from functions.webhook import SECRET_HEADER, handle
from shared.config import REPO_ROOT, Settings
from shared.jobs import Job

SECRET = "benchmark-secret"
SIZES = [{"file_id": f"AgACAgIAAxkBAAI{side}", "file_unique_id": f"AQAD{side}",
          "width": side, "height": side * 3 // 4, "file_size": side * 90}
         for side in (90, 320, 800, 1280)]


class NoPublish:
    def publish(self, job: Job) -> str:
        job.to_bytes()  # the encoding is the webhook's work; the round trip is not
        return "0"


def message(**fields: object) -> dict:
    chat = fields.pop("chat", {"id": 42, "type": "private", "first_name": "Ann"})
    return {"message_id": 7, "date": 1_700_000_000, "chat": chat,
            "from": {"id": 42, "is_bot": False, "first_name": "Ann", "language_code": "en"},
            **fields}


CASES = {
    "photo -> job": ({"update_id": 1, "message": message(photo=SIZES)}, SECRET),
    "/start -> answer": ({"update_id": 2, "message": message(
        text="/start", entities=[{"type": "bot_command", "offset": 0, "length": 6}])},
        SECRET),
    "group chatter -> ignored": ({"update_id": 3, "message": message(
        text="hello all", chat={"id": -100, "type": "supergroup", "title": "G"})}, SECRET),
    "forged secret -> 403": ({"update_id": 4, "message": message(photo=SIZES)}, "forged"),
}


def measure(app: flask.Flask, body: bytes, secret: str, repeat: int) -> list[float]:
    settings, publisher = Settings(bot_username="lookalike_bot"), NoPublish()
    times = []
    for _ in range(repeat + 20):  # the first 20 warm up
        with app.test_request_context("/", method="POST", data=body,
                                      content_type="application/json",
                                      headers={SECRET_HEADER: secret}):
            started = time.perf_counter()
            handle(flask.request, settings, publisher, SECRET)
            times.append((time.perf_counter() - started) * 1000)
    return times[20:]


def import_ms() -> float:
    """A fresh interpreter's cost of importing the webhook (what a cold start pays)."""
    code = ("import time; t = time.perf_counter(); import functions.webhook; "
            "print((time.perf_counter() - t) * 1000)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True,
                          capture_output=True, text=True)
    return float(done.stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=2000)
    args = parser.parse_args(argv)
    app = flask.Flask("benchmark")
    print(f"{'update':<26}{'median ms':>10}{'p99 ms':>10}")
    for name, (update, secret) in CASES.items():
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            times = measure(app, json.dumps(update).encode(), secret, args.repeat)
        p99 = statistics.quantiles(times, n=100)[98]
        print(f"{name:<26}{statistics.median(times):>10.3f}{p99:>10.3f}")
    print(f"import functions.webhook in a fresh interpreter: {import_ms():.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
