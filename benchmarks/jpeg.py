"""JPEG encoding with and without Pillow's `optimize` (a second pass for Huffman tables),
on the reply picture of a demo sample (three faces: 640 × 960) and on one 320 px face crop
as the index builder keeps it: median ms over interleaved runs, and the bytes.

    python -m benchmarks.jpeg [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from PIL import Image

from shared.config import REPO_ROOT
from shared.crops import face_crop
from shared.images import decode_image
from shared.matching import match_photo
from shared.render import render_matches

SAMPLE = REPO_ROOT / "demo" / "samples" / "multi_obama_and_biden.jpg"


def encode(image: Image.Image, optimize: bool) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=85, optimize=optimize)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args(argv)
    from benchmarks.machine import describe
    from shared.index_store import load_current
    from shared.models import load_models

    _, index, photos = load_current(str(REPO_ROOT / "demo" / "gallery"), "/tmp/jpeg-bench")
    result = match_photo(SAMPLE.read_bytes(), index, load_models())
    reply = render_matches(result, photos)
    crop = face_crop(decode_image(SAMPLE.read_bytes()), result.faces[0].face.box)
    print(describe())
    print(f"{'picture':<22}{'plain ms':>10}{'optimize ms':>13}{'plain KiB':>11}"
          f"{'optimize KiB':>14}")
    for name, image in ((f"reply {reply.width}×{reply.height}", reply),
                        (f"crop {crop.width}×{crop.height}", crop)):
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeat):
            for optimize in (False, True):
                started = time.perf_counter()
                encode(image, optimize)
                times[optimize].append((time.perf_counter() - started) * 1000)
        plain, optimized = statistics.median(times[False]), statistics.median(times[True])
        print(f"{name:<22}{plain:>10.2f}{optimized:>13.2f}"
              f"{len(encode(image, False)) / 1024:>11.1f}{len(encode(image, True)) / 1024:>14.1f}")


if __name__ == "__main__":
    main()
