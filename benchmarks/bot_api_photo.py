"""The local Bot API server's own handling of a `sendPhoto`, as the worker sends its
reply pictures: the reply picture of each demo sample (640 px wide, 320 px high per
face row), sent with python-telegram-bot over HTTP in turn, median ms per picture of
the server's time from the request read to the answer written (`handling_ms`, the
figure the stack benchmark subtracts). Most of it is making Telegram's photo sizes of
the picture and their JPEGs (`add_photo`, timed alone beside it).

    python -m benchmarks.bot_api_photo [--repeat 31]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import tempfile
import time
from collections import defaultdict

import telegram
from PIL import Image

from benchmarks.machine import describe
from shared.config import REPO_ROOT
from stack.bot_api import BotApiServer

SAMPLES = sorted((REPO_ROOT / "demo" / "samples").glob("*.jpg"))
TOKEN = "123:BENCH"


def reply_pictures() -> dict[str, bytes]:
    """The worker's reply picture (JPEG) for each demo sample, by sample name."""
    from shared.index_store import load_current
    from shared.matching import match_photo
    from shared.models import load_models
    from shared.render import render_jpeg

    with tempfile.TemporaryDirectory(prefix="bot-api-photo-") as cache:
        _, index, photos = load_current(str(REPO_ROOT / "demo" / "gallery"), cache)
        models = load_models()
        return {sample.stem: render_jpeg(match_photo(sample.read_bytes(), index, models),
                                         photos) for sample in SAMPLES}


async def send(api: BotApiServer, picture: bytes, repeat: int) -> None:
    async with telegram.Bot(TOKEN, base_url=api.url + "/bot") as bot:
        for _ in range(repeat):
            await bot.send_photo(chat_id=1, photo=picture, caption="<b>87%</b> Someone",
                                 parse_mode="HTML")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=31, help="sends of each picture")
    args = parser.parse_args(argv)
    pictures = reply_pictures()
    print(describe())
    handling: dict[str, list[float]] = defaultdict(list)
    sizes_ms: dict[str, list[float]] = defaultdict(list)
    with BotApiServer(TOKEN) as api:
        for name, picture in pictures.items():
            api.handling_ms.clear()
            asyncio.run(send(api, picture, args.repeat))
            deadline = time.monotonic() + 5  # the server records a call after answering it
            while len(sent := [ms for method, ms in api.handling_ms if method == "sendPhoto"]) \
                    < args.repeat and time.monotonic() < deadline:
                time.sleep(0.001)
            handling[name] = sent
            for _ in range(args.repeat):
                started = time.perf_counter()
                api.add_photo(picture)
                sizes_ms[name].append((time.perf_counter() - started) * 1000)
    print(f"{'reply picture of':<36}{'size':>10}{'sendPhoto ms':>14}{'add_photo ms':>14}")
    for name, picture in pictures.items():
        with Image.open(io.BytesIO(picture)) as opened:
            size = f"{opened.width}×{opened.height}"
        print(f"{name:<36}{size:>10}{statistics.median(handling[name]):>14.2f}"
              f"{statistics.median(sizes_ms[name]):>14.2f}")
    every = [ms for values in handling.values() for ms in values]
    print(f"sendPhoto handling, all pictures: median {statistics.median(every):.2f} ms "
          f"over {len(every)} calls")
    print(describe())


if __name__ == "__main__":
    main()
