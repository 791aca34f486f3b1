"""Per-stage medians of the per-photo path, for a 640 px and a 1280 px photo.

    python -m benchmarks.pipeline [--photo PATH] [--repeat N]

Stages: decode, detect (coarse-to-fine, as shared.faces plans it), landmarks,
descriptor and query (demo gallery), and the whole path; beside it the seed pipeline
(the seed: the earlier bot this project was rebuilt from, README; upsample 1 on the full
image) on the same photo, measured in the same run, and their ratio. Then the bot's path
as deployed (the 800 px photo size the webhook picks) against the seed's (the largest
size Telegram offers, 1280 px), on that photo and, when `../shared/faces` (the
project's face photos beside the repository, README) is there (or `--corpus DIR`), on
every readable photo in it: the median and p90 over the photos (each the median of 3
runs; the seed's, of 1).
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from shared.config import DEMO_GALLERY, REPO_ROOT
from shared.faces import describe_face, find_faces, locate_faces
from shared.images import ImageError, decode_image
from shared.index import CelebrityIndex
from shared.models import load_models

DEFAULT_PHOTO = REPO_ROOT / "demo" / "samples" / "Barack_Obama_fr_obama2.jpg"
DEFAULT_CORPUS = REPO_ROOT.parent / "shared" / "faces"


def median_ms(run: Callable[[], object], repeat: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def photo_at(path: Path, long_side: int, enlarge: bool = True) -> bytes:
    """The photo as a JPEG with `long_side` pixels on its longest side (as Telegram's
    size of that name; without `enlarge`, smaller photos keep their size)."""
    with Image.open(path) as image:
        image = image.convert("RGB")
        scale = long_side / max(image.size)
        if not enlarge:
            scale = min(scale, 1.0)
        image = image.resize((round(image.width * scale), round(image.height * scale)),
                             Image.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()


def seed_pipeline(models, image: np.ndarray) -> list[np.ndarray]:
    """The seed bot's path: upsample 1 on the full image, then each descriptor."""

    rects = models.detector(image, 1)
    out = []
    for rect in rects:
        shape = models.predictor(image, rect)
        out.append(np.asarray(models.encoder.compute_face_descriptor(image, shape)))
    return out


def bench_size(models, index: CelebrityIndex, data: bytes, repeat: int) -> str:
    import dlib

    image = decode_image(data)
    box, score = locate_faces(models, image)[0]
    face = describe_face(models, image, box, score)
    rect = dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1)
    shape = models.predictor(image, rect)

    def whole() -> None:
        scan = find_faces(decode_image(data), models)
        for item in scan.faces:
            index.query(item.descriptor, 3)

    decode = median_ms(lambda: decode_image(data), repeat)
    detect = median_ms(lambda: locate_faces(models, image), repeat)
    landmarks = median_ms(lambda: models.predictor(image, rect), repeat)
    descriptor = median_ms(lambda: models.encoder.compute_face_descriptor(image, shape), repeat)
    query = median_ms(lambda: index.query(face.descriptor, 3), repeat * 10)
    total = median_ms(whole, repeat)
    seed = median_ms(lambda: seed_pipeline(models, decode_image(data)), repeat)
    size = f"{image.shape[1]}x{image.shape[0]}"
    return (f"{size:>10} {decode:8.1f} {detect:8.1f} {landmarks:8.2f} {descriptor:8.1f} "
            f"{query:8.3f} {total:8.1f} {seed:8.1f} {seed / total:9.2f}x")


def bench(photo: Path, repeat: int) -> None:
    models = load_models()
    index = CelebrityIndex.load(DEMO_GALLERY)
    print(f"photo: {photo.name}; medians of {repeat} runs, one thread, milliseconds")
    print(f"{'size':>10} {'decode':>8} {'detect':>8} {'landmk':>8} {'descr':>8} "
          f"{'query':>8} {'total':>8} {'seed':>8} {'seed/total':>10}")
    for side in (640, 800, 1280):
        print(bench_size(models, index, photo_at(photo, side), repeat), flush=True)
    bot_photo, seed_photo = photo_at(photo, 800), photo_at(photo, 1280)

    def bot() -> None:
        for item in find_faces(decode_image(bot_photo), models).faces:
            index.query(item.descriptor, 3)

    ours = median_ms(bot, repeat)
    seed = median_ms(lambda: seed_pipeline(models, decode_image(seed_photo)), repeat)
    print(f"bot path (800 px photo) {ours:.1f} ms; seed path (1280 px photo) {seed:.1f} ms; "
          f"{seed / ours:.2f}x faster")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def bench_corpus(corpus: Path, repeat: int = 3) -> None:
    """The bot's path and the seed's on every readable photo of a folder."""
    models = load_models()
    index = CelebrityIndex.load(DEMO_GALLERY)
    ours, seeds, faces = [], [], 0
    for path in sorted(corpus.rglob("*")):
        if path.suffix.lower() not in (".jpg", ".jpeg", ".png", ".webp", ".gif"):
            continue
        try:
            bot_photo = photo_at(path, 800, enlarge=False)
            seed_photo = photo_at(path, 1280, enlarge=False)
            decode_image(bot_photo)
        except (ImageError, OSError, ValueError):
            continue

        def bot(data: bytes = bot_photo) -> int:
            scan = find_faces(decode_image(data), models)
            for item in scan.faces:
                index.query(item.descriptor, 3)
            return len(scan.faces)

        faces += bot()
        ours.append(median_ms(bot, repeat))
        seeds.append(median_ms(lambda data=seed_photo: seed_pipeline(models,
                                                                      decode_image(data)), 1))
    if not ours:
        print(f"no readable photos in {corpus}")
        return
    p50, seed50 = statistics.median(ours), statistics.median(seeds)
    print(f"{len(ours)} photos of {corpus} ({faces} faces found): bot path (800 px) "
          f"p50 {p50:.1f} ms, p90 {percentile(ours, 0.9):.1f} ms; seed path (1280 px) "
          f"p50 {seed50:.1f} ms, p90 {percentile(seeds, 0.9):.1f} ms; "
          f"{seed50 / p50:.2f}x faster at the median")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help="a folder of photos (default ../shared/faces; skipped if absent)")
    args = parser.parse_args()
    bench(args.photo, args.repeat)
    if args.corpus.is_dir():
        bench_corpus(args.corpus)


if __name__ == "__main__":
    main()
