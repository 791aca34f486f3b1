"""The webhook's handler latency in-process, without the publish round trip.

    python -m benchmarks.webhook [--repeat N]

Each kind of update (a photo that becomes a job, /start answered in the response body,
a group message that is ignored, a forged secret) goes through `functions.webhook.handle`
with a Flask request and a publisher that does nothing; log lines go to /dev/null.
Prints the median and the 99th percentile per kind, and the import time of the module.

    python -m benchmarks.webhook --photo-sizes [FACES_DIR]

measures the photo size choice instead: every held-out labelled photo (not in the demo
gallery) is made into the JPEG sizes Telegram keeps (longest side 320, 800, 1280, as the
local Bot API server makes them) and matched against the demo gallery; per size it prints
faces found, the right person first, the bytes to download and the time to match.
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
from pathlib import Path

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


def photo_sizes(faces_dir: Path) -> None:
    import io

    from PIL import Image

    from shared.config import DEMO_GALLERY
    from shared.index import CelebrityIndex
    from shared.matching import match_photo
    from shared.models import load_models

    index, models = CelebrityIndex.load(DEMO_GALLERY), load_models()
    photos = []
    for person in sorted((faces_dir / "labelled").iterdir()):
        used = {p.stem for p in (REPO_ROOT / "demo" / "photos" / person.name).glob("*")}
        photos += [(person.name, p) for p in sorted(person.iterdir()) if p.stem not in used]
    groups = sorted((faces_dir / "hard").glob("multi_*"))
    print(f"{len(photos)} held-out photos of {len({n for n, _ in photos})} people; "
          f"{len(groups)} group photos from hard/")
    print(f"{'longest side':<14}{'photos with a face':>19}{'right first':>12}"
          f"{'faces in groups':>16}{'median KiB':>11}{'median match ms':>16}")
    for side in (320, 800, 1280):
        found = right = group_faces = 0
        sizes, times = [], []
        for person, path in [*photos, *(("", p) for p in groups)]:
            with Image.open(path) as opened:
                image = opened.convert("RGB")
            scale = min(1.0, side / max(image.size))
            if scale < 1:
                image = image.resize((round(image.width * scale), round(image.height * scale)),
                                     Image.LANCZOS)
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=87)
            data = buffer.getvalue()
            sizes.append(len(data) / 1024)
            started = time.perf_counter()
            result = match_photo(data, index, models)
            times.append((time.perf_counter() - started) * 1000)
            if not person:
                group_faces += len(result.faces)
            elif result.faces:
                found += 1
                right += result.faces[0].matches[0].celebrity.id == person
        print(f"{side:<14}{found:>19}{right:>12}{group_faces:>16}"
              f"{statistics.median(sizes):>11.0f}{statistics.median(times):>16.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=2000)
    parser.add_argument("--photo-sizes", nargs="?", type=Path, metavar="FACES_DIR",
                        const=REPO_ROOT.parent / "shared" / "faces")
    args = parser.parse_args(argv)
    if args.photo_sizes:
        photo_sizes(args.photo_sizes)
        return 0
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
