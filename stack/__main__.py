"""`python -m stack up` runs the local bot until Ctrl-C; `python -m stack demo [PHOTO]`
sends a photo through it and shows the bot's reply."""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

from shared.config import REPO_ROOT
from stack.bot_api import SentMessage
from stack.emulators import EmulatorUnavailable
from stack.run import Stack, running_stack, wait_forever

DEFAULT_PHOTO = REPO_ROOT / "demo" / "samples" / "Barack_Obama_fr_obama2.jpg"


def describe(stack: Stack) -> str:
    return "\n".join([
        f"webhook      {stack.webhook_url}  (header X-Telegram-Bot-Api-Secret-Token: "
        f"{stack.secret})",
        f"worker       {stack.worker_url}  (Pub/Sub pushes through {stack.tap.url})",
        f"Bot API      {stack.bot_api.url}  (token {stack.options.token})",
        f"Cloud Storage {stack.gcs.url}  bucket {stack.options.bucket}",
        f"Pub/Sub      {stack.pubsub.host}  topic {stack.topic}",
        f"logs         {stack.webhook.log.parent}",
    ])


def up(photos: list[Path]) -> int:
    from stack.send import deliver, photo_message_update

    with running_stack() as stack:
        print(describe(stack), flush=True)
        print("post an update yourself (the webhook answers commands in its response body):\n"
              f"  curl -H 'X-Telegram-Bot-Api-Secret-Token: {stack.secret}' "
              "-H 'Content-Type: application/json' -d '{\"update_id\": 1, \"message\": "
              "{\"message_id\": 1, \"date\": 0, \"chat\": {\"id\": 1, \"type\": "
              "\"private\"}, \"text\": \"hi\"}}' " + stack.webhook_url + "\n"
              "what the bot sends is printed here; Ctrl-C stops everything", flush=True)
        for photo in photos:
            deliver(stack, photo_message_update(stack.bot_api, photo.read_bytes()))
            print(f"sent {photo}", flush=True)
        printer = threading.Thread(target=print_sent, args=(stack,), daemon=True)
        printer.start()
        try:
            wait_forever()
        except KeyboardInterrupt:
            print("\nstopping", flush=True)
    return 0


def print_sent(stack: Stack) -> None:
    """Print each message the bot sends, as it is sent (a Telegram window of sorts)."""
    shown = 0
    while True:
        sent = stack.bot_api.wait_for_sent(shown + 1, timeout=3600)
        for message in sent[shown:]:
            picture = " [with a picture]" if message.photo else ""
            print(f"-> chat {message.chat_id}{picture} ({message.method}):\n"
                  f"{message.readable}{_buttons(message)}\n", flush=True)
        shown = len(sent)


def demo(photo: Path, out: Path, timeout: float) -> int:
    from stack.send import deliver, photo_message_update, text_update

    started = time.monotonic()
    with running_stack() as stack:
        print(f"stack up in {time.monotonic() - started:.1f} s", flush=True)
        deliver(stack, text_update("/start"))
        print(f"\n/start ->\n{stack.bot_api.wait_for_sent(1, 10)[0].body}\n", flush=True)

        update = photo_message_update(stack.bot_api, photo.read_bytes())
        posted = deliver(stack, update)
        print(f"sent {photo.name}: webhook answered {posted.status} in "
              f"{posted.seconds * 1000:.0f} ms; waiting for the worker...", flush=True)
        sent_at = time.monotonic()
        try:
            replies = stack.bot_api.wait_for_sent(2, timeout)[1:]
        except TimeoutError:
            print(f"no reply within {timeout:.0f} s\n{stack.logs()}", file=sys.stderr)
            return 1
        time.sleep(1)  # a reply may come in several messages
        replies = stack.bot_api.sent[1:]
        print(f"reply after {time.monotonic() - sent_at:.1f} s (worker cold start "
              f"included):\n", flush=True)
        for message in replies:
            print(message.readable + _buttons(message))
            if message.photo:
                out.write_bytes(message.photo)
                print(f"\n[picture saved to {out}]")
    return 0


def _buttons(message: SentMessage) -> str:
    """The message's inline keyboard as text: one line per row, buttons in brackets."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return "".join("\n" + " ".join(f"[{button.get('text', '')}]" for button in row)
                   for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m stack", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run_up = commands.add_parser("up", help="run the local bot until Ctrl-C")
    run_up.add_argument("photos", nargs="*", type=Path, help="photos to send once it is up")
    run_demo = commands.add_parser("demo", help="send a photo and show the reply")
    run_demo.add_argument("photo", nargs="?", type=Path, default=DEFAULT_PHOTO)
    run_demo.add_argument("--out", type=Path, default=Path("demo-bot-reply.jpg"))
    run_demo.add_argument("--timeout", type=float, default=180.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            return up(args.photos)
        return demo(args.photo, args.out, args.timeout)
    except EmulatorUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
