"""The worker's cold start: a new process with an empty cache, models and a 12,000-
celebrity index in Cloud Storage (fake-gcs-server), until the first answer is ready.

    python -m benchmarks.cold_start [--runs 5]

Each run is a fresh interpreter (`python -m benchmarks.cold_start --child MODE`) with a
new empty LOOKALIKE_CACHE_DIR, as a new instance has an empty /tmp. Two modes alternate:

- `worker`: the worker's own path, `AssetCache(settings).get()`, one photo matched and
  its reply picture drawn; the total from process start is the cold start figure.
- `stages`: the same steps one by one, to see where the time goes: interpreter start,
  imports (main and functions.worker), model download, model hash check, dlib model
  load, index download, index load (hash check of its files included), first match,
  reply picture (with the first fetch of the matched celebrity's picture).

Both report the process's peak RSS (ru_maxrss at the end). The index is synthetic
(benchmarks.hnsw_params), built once with the index builder's HNSW settings and kept
under `${XDG_CACHE_HOME:-~/.cache}/lookalike-bench/`; its files are as large as a real
12k index's data files, and every celebrity has a picture of 20 KB in storage (`--photos N`
uploads only the first N; the others get the placeholder).
The photo matched is demo/samples/Barack_Obama_fr_obama2.jpg.
"""

from __future__ import annotations

import time

STARTED = time.time()  # first statement: what a new interpreter took to get here

import argparse  # noqa: E402 - after the clock on purpose
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

BUCKET = "bench-cold-start"
PHOTO = "demo/samples/Barack_Obama_fr_obama2.jpg"
GALLERY_PICTURE = Path(__file__).resolve().parent.parent / "demo/gallery/photos/Joe_Biden.jpg"
CELEBRITIES = 12_000
GOAL_MS, GOAL_MIB = 1000, 300  # issue 17, goal 1
STAGES = ["interpreter", "imports", "model download", "model hash check", "dlib model load",
          "index download", "index load", "first match", "reply picture"]


# -- the child: one cold start ------------------------------------------------------------

def child(mode: str, spawned: float) -> dict[str, float]:
    marks = {"interpreter": STARTED - spawned}
    last = STARTED

    def mark(stage: str) -> None:
        nonlocal last
        now = time.time()
        marks[stage] = now - last
        last = now

    import functions.worker  # noqa: F401 - what the function's first event imports
    import main  # noqa: F401
    from functions.worker_assets import AssetCache
    from shared.config import REPO_ROOT, Settings
    from shared.index import CelebrityIndex
    from shared.index_store import CelebrityPhotos, fetch_current
    from shared.matching import match_photo
    from shared.models import DESCRIPTOR_FILE, LANDMARKS_FILE, ModelFiles, load_models
    from shared.render import render_jpeg
    from shared.storage import open_store
    mark("imports")
    settings = Settings.from_env()
    photo = (REPO_ROOT / PHOTO).read_bytes()
    if mode == "worker":
        assets = AssetCache(settings).get()
        mark("models and index")
        index, models, photos = assets.index, assets.models, assets.photos
    else:
        cache = Path(settings.cache_dir)
        store = open_store(settings.models_uri)
        for name in (LANDMARKS_FILE, DESCRIPTOR_FILE):
            store.download(name, cache / "models" / name)
        mark("model download")
        files = ModelFiles.in_directory(cache / "models")
        files.verify()
        mark("model hash check")
        models = load_models(files, verify=False)
        mark("dlib model load")
        version, directory = fetch_current(settings.index_uri, cache / "index", photos=False)
        mark("index download")
        index = CelebrityIndex.load(directory)
        photos = CelebrityPhotos(directory, settings.index_uri, version)
        mark("index load")
    result = match_photo(photo, index, models, settings)
    mark("first match")
    render_jpeg(result, photos)
    mark("reply picture")
    marks["total"] = time.time() - spawned
    marks["faces"] = len(result.faces)
    marks["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return marks


# -- the parent: storage, runs, figures -----------------------------------------------------

def synthetic_index_dir() -> Path:
    """A 12k-celebrity index with the builder's HNSW settings, built once and cached."""
    from benchmarks.hnsw_params import synthetic_gallery
    from benchmarks.index_query import cache_root
    from index_builder.build import HNSW_PARAMS
    from shared.index import Celebrity, CelebrityIndex

    directory = cache_root() / (f"catalogue-c{CELEBRITIES}-M{HNSW_PARAMS['M']}"
                                f"-efc{HNSW_PARAMS['efConstruction']}-pictures-seed0")
    if not (directory / "manifest.json").is_file():
        descriptors, entries, _, _ = synthetic_gallery(CELEBRITIES, 1)
        people = [Celebrity(f"c{i:05d}", f"Celebrity {i}", photo=f"photos/c{i:05d}.jpg")
                  for i in range(CELEBRITIES)]
        CelebrityIndex.build(descriptors, entries, people, hnsw=HNSW_PARAMS).save(directory)
    return directory


def fill_storage(gcs_url: str, index_dir: Path, photos: int) -> None:
    """Models under models/ and the index published under index/ as version v1, with
    `photos` of its celebrities' pictures."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from index_builder.publish import publish
    from shared.models import DESCRIPTOR_FILE, LANDMARKS_FILE, packaged_model_dir
    from shared.storage import GcsStore

    client = storage.Client(project="bench", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": gcs_url})
    bucket = client.create_bucket(BUCKET)
    for name in (LANDMARKS_FILE, DESCRIPTOR_FILE):
        bucket.blob(f"models/{name}").upload_from_filename(str(packaged_model_dir() / name))
    # A published index holds a picture per celebrity (about 20 KB each); the worker
    # fetches one when a reply first shows it. The version is staged from links to the
    # cached index files and to one picture.
    with tempfile.TemporaryDirectory(prefix="cold-start-version-") as tmp:
        picture, stage = Path(tmp) / "picture.jpg", Path(tmp) / "v1"
        picture.write_bytes((GALLERY_PICTURE.read_bytes() * 2)[:20_000])
        (stage / "photos").mkdir(parents=True)
        for file in index_dir.iterdir():
            if file.is_file():
                (stage / file.name).symlink_to(file)
        for i in range(photos):
            (stage / "photos" / f"c{i:05d}.jpg").symlink_to(picture)
        publish(GcsStore(BUCKET, "index", client=client), stage, "v1")


def run_child(mode: str, gcs_url: str) -> dict[str, float]:
    from shared.config import REPO_ROOT

    with tempfile.TemporaryDirectory(prefix="cold-start-") as cache:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
        env.update(STORAGE_EMULATOR_HOST=gcs_url, GOOGLE_CLOUD_PROJECT="bench",
                   LOOKALIKE_MODELS_URI=f"gs://{BUCKET}/models",
                   LOOKALIKE_INDEX_URI=f"gs://{BUCKET}/index", LOOKALIKE_CACHE_DIR=cache)
        spawned = time.time()
        done = subprocess.run([sys.executable, "-m", "benchmarks.cold_start", "--child", mode,
                               "--spawned", repr(spawned)], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, check=False, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"cold start child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(runs: int, photos: int) -> None:
    from benchmarks.goals import GoalFigure, record
    from benchmarks.machine import describe
    from stack.emulators import start_fake_gcs

    print(describe())
    index_dir = synthetic_index_dir()
    size = sum(p.stat().st_size for p in index_dir.rglob("*") if p.is_file()) / 2**20
    gcs = start_fake_gcs()
    try:
        fill_storage(gcs.url, index_dir, photos)
        results: dict[str, list[dict[str, float]]] = {"worker": [], "stages": []}
        for _ in range(runs):
            for mode in results:
                results[mode].append(run_child(mode, gcs.url))
    finally:
        gcs.stop()
    print(f"12,000 celebrities, {size:.0f} MiB of index files and {photos} photos; {runs} "
          "runs per mode, each a new process with an empty cache; medians")
    stages = results["stages"]
    print(f"{'stage':<22}{'median ms':>10}")
    for stage in STAGES:
        print(f"{stage:<22}{statistics.median(r[stage] for r in stages) * 1000:>10.0f}")
    print(f"{'total (stages)':<22}{statistics.median(r['total'] for r in stages) * 1000:>10.0f}")
    worker = results["worker"]
    for label, key in (("interpreter", "interpreter"), ("imports", "imports"),
                       ("AssetCache.get()", "models and index"), ("first match", "first match"),
                       ("reply picture", "reply picture"),
                       ("total", "total")):
        median = statistics.median(r[key] for r in worker) * 1000
        print(f"worker path: {label:<18}{median:>8.0f} ms")
    each = ", ".join(f"{r['total'] * 1000:.0f}" for r in worker)
    print(f"cold start to first answer ready (worker path), median: "
          f"{statistics.median(r['total'] for r in worker) * 1000:.0f} ms (runs: {each})")
    peak = [r["peak_rss_mib"] for r in worker + stages]
    print(f"peak RSS after the first answer: median {statistics.median(peak):.0f} MiB, "
          f"max {max(peak):.0f} MiB")
    total_ms = statistics.median(r["total"] for r in worker) * 1000
    peak_mib = statistics.median(r["peak_rss_mib"] for r in worker)
    record(GoalFigure("1", f"cold start ≤ {GOAL_MS} ms, peak RSS ≤ {GOAL_MIB} MiB (12k index)",
                      f"{total_ms:.0f} ms, {peak_mib:.0f} MiB",
                      total_ms <= GOAL_MS and peak_mib <= GOAL_MIB, "cold_start"))
    print(describe())


def main(argv: list[str] | None = None) -> None:
    # Run with the environment given: the deployed worker's GLIBC_TUNABLES are empty for a
    # 12k index (infra/config.sh); GLIBC_TUNABLES=glibc.malloc.hugetlb=1 measures huge pages.
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=CELEBRITIES,
                        help="celebrity pictures (20 KB each) in the index version")
    parser.add_argument("--child", choices=["worker", "stages"], help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.spawned)))
    else:
        report(args.runs, args.photos)


if __name__ == "__main__":
    main()
