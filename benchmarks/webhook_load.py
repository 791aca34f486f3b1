"""A bounded load test of the webhook on loopback: a real functions-framework process,
real publishes to Google's Pub/Sub emulator, `wrk` sending signed Telegram updates.

    python -m benchmarks.webhook_load [--duration 10] [--connections 32] [--threads 8 80]

For each gunicorn thread count (functions-framework reads THREADS; its default is
4 per core) the webhook is started afresh and loaded with

- photo updates, each a new update_id, each published as a job (the real path), all
  from one chat, then each from a chat of its own (jobs of different chats, having
  different ordering keys, cannot share a publish request), and
- /start commands, answered in the response body without a publish (what the web
  framework and handler alone cost),

first with one connection (latency of a lone update: median and p99), then with
`--connections` connections for `--duration` seconds (sustained updates/s and its
latency percentiles). Answers that are not 2xx and socket errors are counted, and the
CPU time the webhook's processes used per update (what bounds one instance's rate
once wrk and the emulator are elsewhere: 1000 / ms per update per vCPU).

wrk comes from Debian (`apt-get install wrk`); as root the benchmark installs it when
it is missing. wrk, the emulator and the webhook share this machine's cores, so the
figures are a lower bound for a webhook instance with its own CPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from benchmarks.machine import describe
from stack.emulators import Emulator, free_port, start_pubsub, wait_http
from stack.run import StackOptions, function_env, start_function

# A photo update as Telegram sends it; %d is the update_id (wrk's Lua fills it in).
PHOTO_UPDATE = json.dumps({
    "update_id": 1_000_000, "message": {
        "message_id": 7, "date": 1_700_000_000,
        "chat": {"id": 42, "type": "private", "first_name": "Ann"},
        "from": {"id": 42, "is_bot": False, "first_name": "Ann", "language_code": "en"},
        "photo": [{"file_id": f"AgACAgIAAxkBAAI{side}", "file_unique_id": f"AQAD{side}",
                   "width": side, "height": side * 3 // 4, "file_size": side * 90}
                  for side in (90, 320, 800, 1280)]}}).replace("1000000", "%d", 1)
# The same with every update from a chat of its own (chat id = update_id): each job has
# its own ordering key, so jobs no longer share a publish request (functions/publisher.py).
PHOTO_UPDATE_OWN_CHAT = PHOTO_UPDATE.replace('"id": 42', '"id": %d')
START_UPDATE = json.dumps({
    "update_id": 1_000_000, "message": {
        "message_id": 8, "date": 1_700_000_000, "text": "/start",
        "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        "chat": {"id": 42, "type": "private", "first_name": "Ann"},
        "from": {"id": 42, "is_bot": False, "first_name": "Ann", "language_code": "en"}}}
    ).replace("1000000", "%d", 1)

LUA = """
local body = [==[%(body)s]==]
local headers = {["Content-Type"] = "application/json",
                 ["X-Telegram-Bot-Api-Secret-Token"] = "%(secret)s"}
local next_id = 0
local threads = {}
function setup(thread)
  thread:set("base", #threads * 100000000)
  table.insert(threads, thread)
end
function init(args) next_id = base end
function request()
  next_id = next_id + 1
  -- one to three %%d: the update id, and the chat's and sender's ids when they vary
  return wrk.format("POST", "/", headers, string.format(body, next_id, next_id, next_id))
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "RESULT {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"p50_us\\": %%d, \\"p90_us\\": %%d, "
    .. "\\"p99_us\\": %%d, \\"max_us\\": %%d, \\"socket_errors\\": %%d, \\"non200\\": %%d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect + e.read + e.write + e.timeout,
    e.status))
end
"""


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        found = shutil.which("wrk")
    if not found:
        raise SystemExit("wrk is needed: apt-get install wrk")
    return found


@contextlib.contextmanager
def pubsub_topic(workdir: Path, project: str, topic_id: str) -> Iterator[Emulator]:
    """The Pub/Sub emulator with the jobs topic and a subscription (so messages are kept,
    as in production where the worker's subscription exists)."""
    from stack.run import _pubsub_clients

    emulator = start_pubsub(project, free_port(), workdir)
    try:
        publisher, subscriber = _pubsub_clients(emulator.host)
        topic = f"projects/{project}/topics/{topic_id}"
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=f"projects/{project}/subscriptions/{topic_id}-pull",
                                       topic=topic)
        subscriber.close()
        yield emulator
    finally:
        emulator.stop()


@contextlib.contextmanager
def webhook_process(env: dict[str, str], log_dir: Path, threads: int) -> Iterator[Emulator]:
    webhook = start_function("webhook", "http", {**env, "THREADS": str(threads)}, log_dir)
    try:
        wait_http(webhook.url, 60, webhook.process)
        yield webhook
    finally:
        webhook.stop()


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU seconds of the live processes in a process group (the webhook's
    gunicorn arbiter and its worker)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is the third
                total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / os.sysconf("SC_CLK_TCK")


def run_wrk(wrk: str, url: str, script: Path, connections: int, seconds: float,
            pgid: int) -> dict:
    cpu_before = group_cpu_seconds(pgid)
    done = subprocess.run([wrk, "-t", str(min(2, connections)), "-c", str(connections),
                           "-d", f"{seconds:g}s", "--timeout", "5s", "-s", str(script), url],
                          capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result["rate"] = result["requests"] / (result["duration_us"] / 1e6)
    result["cpu_ms"] = (group_cpu_seconds(pgid) - cpu_before) * 1000 / max(1, result["requests"])
    return result


def print_row(threads: int, kind: str, connections: int, result: dict) -> None:
    print(f"| {threads} | {kind} | {connections} | {result['requests']} | {result['rate']:.0f} "
          f"| {result['p50_us'] / 1000:.1f} | {result['p90_us'] / 1000:.1f} "
          f"| {result['p99_us'] / 1000:.1f} | {result['cpu_ms']:.2f} "
          f"| {result['non200'] + result['socket_errors']} |",
          flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, nargs="+", default=[8, 80],
                        help="gunicorn threads of the webhook process (THREADS)")
    args = parser.parse_args(argv)
    wrk = ensure_wrk()
    print(describe())
    # No Cloud Storage here, so no photo quota (one chat sends every update): its cost
    # per photo is measured by tests/test_quota.py (docs/reliability.md).
    options = StackOptions(env={"LOOKALIKE_QUOTA_URI": ""})
    secret = secrets.token_urlsafe(24)
    workdir = Path(tempfile.mkdtemp(prefix="webhook-load-"))
    try:
        scripts = {}
        for kind, body in (("photo -> job", PHOTO_UPDATE),
                           ("photo -> job, a chat per update", PHOTO_UPDATE_OWN_CHAT),
                           ("/start -> answer", START_UPDATE)):
            scripts[kind] = workdir / f"{len(scripts)}.lua"
            scripts[kind].write_text(LUA % {"body": body, "secret": secret})
        topic_id = "lookalike-jobs"
        with pubsub_topic(workdir, options.project, topic_id) as pubsub:
            env = function_env(options, secret, "http://127.0.0.1:9", pubsub.host,
                               "http://127.0.0.1:9", workdir / "cache")
            print("| gunicorn threads | update | connections | requests | updates/s "
                  "| p50 ms | p90 ms | p99 ms | webhook CPU ms/update | not 2xx |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for threads in args.threads:
                with webhook_process(env, workdir, threads) as webhook:
                    for kind, script in scripts.items():
                        pgid = webhook.process.pid  # it leads its own process group
                        run_wrk(wrk, webhook.url, script, 1, 2, pgid)  # warm up: imports
                        for connections, seconds in ((1, min(5.0, args.duration)),
                                                     (args.connections, args.duration)):
                            result = run_wrk(wrk, webhook.url, script, connections, seconds,
                                             pgid)
                            print_row(threads, kind, connections, result)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(describe())


if __name__ == "__main__":
    main()
