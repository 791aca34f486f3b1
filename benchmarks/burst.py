"""How long another chat waits behind one chat's burst, on the local stack (`stack.run`:
functions-framework processes, the Pub/Sub emulator with the worker's ordered push
subscription, the local Bot API server).

    python -m benchmarks.burst [--threads 1 4] [--rounds 5] [--burst 10]

For each worker thread count (THREADS, as WORKER_CONCURRENCY deploys it) a stack is
started afresh and the worker warmed; then, one after another, ordinary photos from
chats of their own (post to reply), and rounds of a burst of `--burst` photos from one
chat posted at once followed by one photo from another chat (its post to reply, against
the ordinary photo's). Also printed: the worker's own time for those jobs (its "ms" log
field: whether sharing an instance slows a job) and the peak resident memory of the
worker's processes (VmHWM of functions-framework's gunicorn master and its worker).

The stack, the emulators and the test client share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.machine import describe
from shared.config import REPO_ROOT
from stack.run import Stack, StackOptions, running_stack
from stack.send import deliver, photo_message_update

# The photo the e2e test sends (../shared/faces, beside the repository).
PHOTOS = REPO_ROOT.parent / "shared" / "faces" / "labelled" / "Barack_Obama"


def _photo() -> bytes:
    return sorted(p for p in PHOTOS.iterdir() if p.is_file())[-1].read_bytes()


def _tree(pid: int) -> list[int]:
    """The process and its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def _peak_rss_mib(pid: int) -> float:
    total = 0
    for member in _tree(pid):
        try:
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def _job_ms(stack: Stack, chats: set[int]) -> list[float]:
    """The worker's own milliseconds for the jobs of `chats` (its "job ..." log lines)."""
    assert stack.log_dir is not None
    values = []
    for line in (stack.log_dir / "worker.log").read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        fields = record if "ms" in record else record.get("fields", {})
        if "ms" in fields and "outcome" in fields and int(str(fields.get(
                "job", "0/0")).split("/")[0]) in chats:
            values.append(float(fields["ms"]))
    return values


def _one(stack: Stack, data: bytes, chat: int) -> float:
    started = time.time()
    posted = deliver(stack, photo_message_update(stack.bot_api, data, chat_id=chat))
    assert posted.status == 200
    [reply] = stack.wait_replies(chat)
    return reply.time - started


def measure(threads: int, rounds: int, burst: int) -> dict[str, float]:
    data = _photo()
    with running_stack(StackOptions(worker_threads=threads)) as stack:
        _one(stack, data, 1)  # cold start
        ordinary = [_one(stack, data, chat) for chat in range(10, 10 + 2 * rounds)]
        waits = []
        for n in range(rounds):
            chat, other = 1000 + n, 2000 + n
            updates = [photo_message_update(stack.bot_api, data, chat_id=chat)
                       for _ in range(burst)]
            with ThreadPoolExecutor(burst) as pool:
                list(pool.map(lambda update: deliver(stack, update), updates))
            waits.append(_one(stack, data, other))
            stack.wait_replies(chat, burst, timeout=120)
        ordinary_ms = _job_ms(stack, set(range(10, 10 + 2 * rounds)))
        other_ms = _job_ms(stack, set(range(2000, 2000 + rounds)))
        rss = _peak_rss_mib(stack.worker.process.pid)
    median_ordinary = statistics.median(ordinary)
    return {"threads": threads, "ordinary_s": median_ordinary,
            "other_s": statistics.median(waits), "other_max_s": max(waits),
            "ratio": statistics.median(waits) / median_ordinary,
            "ordinary_ms": statistics.median(ordinary_ms),
            "other_ms": statistics.median(other_ms), "peak_rss_mib": rss}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args(argv)
    print(describe(), flush=True)
    print("| worker threads | ordinary photo: post to reply, worker ms (medians) | "
          "another chat's photo after a burst: post to reply (median, max), worker ms | "
          "ratio of the medians | worker peak RSS |")
    print("| --- | --- | --- | --- | --- |")
    for threads in args.threads:
        row = measure(threads, args.rounds, args.burst)
        print(f"| {threads} | {row['ordinary_s']:.2f} s, {row['ordinary_ms']:.0f} ms | "
              f"{row['other_s']:.2f} s ({row['other_max_s']:.2f} s), {row['other_ms']:.0f} ms"
              f" | {row['ratio']:.2f} | {row['peak_rss_mib']:.0f} MiB |", flush=True)


if __name__ == "__main__":
    main()
