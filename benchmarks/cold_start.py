"""The worker's cold start: a new process with an empty cache, models and a 12,000-
celebrity index in Cloud Storage (fake-gcs-server), until the first answer is ready.

    python -m benchmarks.cold_start [--runs 5]
    python -m benchmarks.cold_start --million [--runs 3]   # adds the 1M-entry index

Each run is a fresh interpreter (`python -m benchmarks.cold_start --child MODE`) with a
new empty LOOKALIKE_CACHE_DIR, as a new instance has an empty /tmp, and the project's
modules byte-compiled beforehand, as the deployment's build leaves them. Two modes
alternate:

- `worker`: the worker's own path: `main` imported, then the worker's code as its first
  event imports it (`main.worker_code()`), `AssetCache(settings).get()`, one photo
  matched and its reply picture drawn; the total from process start is the cold start
  figure.
- `stages`: the same steps one by one, to see where the time goes: interpreter start,
  imports (main and functions.worker), model download, model hash check, dlib model
  load, index download, index load (hash check of its files included), first match,
  reply picture (with the first fetch of the matched celebrity's picture). Here the
  index downloads and then loads from its files; the worker path loads the graph while
  it downloads (shared/graph_stream.py), so its index time is less than the two added.

Both report the process's peak RSS (VmHWM at the end). The index is synthetic
(benchmarks.hnsw_params), built once with the index builder's HNSW settings and kept
under `${XDG_CACHE_HOME:-~/.cache}/lookalike-bench/`; its files are as large as a real
12k index's data files, and every celebrity has a picture of 20 KB in storage (`--photos N`
uploads only the first N; the others get the placeholder).
The photo matched is demo/samples/Barack_Obama_fr_obama2.jpg.

`--million` then does the same with the million-entry index of `benchmarks.index_query
--million --intrinsic 48` (M 48, efConstruction 300; built once and cached, about 40
minutes on 2 cores) served at efSearch 125, in the index form the builder writes, and
after each cold start the child measures what that index answers: graph search and
`query()` p50 over 1,000 queries, recall@10 against exact search. It prints the storage
throughput of the run (bytes downloaded over the index download stage) and the memory
an instance needs: peak RSS plus the index files in /tmp, which is memory on Cloud Run.
The 12k children run with the environment's GLIBC_TUNABLES (the deploy leaves them empty
for a 12k index). The million case runs as the deploy sizes its worker, with
`glibc.malloc.hugetlb=1` (from HUGE_PAGES_FROM_ENTRIES entries, infra/config.sh;
shared/worker_size.py); `--huge-pages off|env` measures it without, `--huge-pages both`
alternates runs with and without.
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
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

BUCKET = "bench-cold-start"
PHOTO = "demo/samples/Barack_Obama_fr_obama2.jpg"
GALLERY_PICTURE = Path(__file__).resolve().parent.parent / "demo/gallery/photos/Joe_Biden.jpg"
CELEBRITIES = 12_000
GOAL_MS, GOAL_MIB = 1000, 300  # issue 17, goal 1 (12k index)
MILLION_GOAL_MS, MILLION_GOAL_QUERY_MS, MILLION_GOAL_RECALL = 5000, 1.0, 0.95  # goal 4
MILLION_CELEBRITIES = 500_000  # 1-3 photos each: 999,924 entries
MILLION_EF_SEARCH = 125
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

    import main  # functions-framework imports it when the instance starts

    main.worker_code()  # what the function's first event imports
    from functions.worker_assets import AssetCache
    from shared.config import REPO_ROOT, Settings
    from shared.index import DESCRIPTORS_FILE, CelebrityIndex
    from shared.index_store import CelebrityPhotos, fetch_current
    from shared.instance import long_lived
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
        with long_lived():  # as AssetCache's cold start
            store = open_store(settings.models_uri)
            for name in (LANDMARKS_FILE, DESCRIPTOR_FILE):
                store.download(name, cache / "models" / name, sliced=True)
            mark("model download")
            files = ModelFiles.in_directory(cache / "models")
            files.verify()
            mark("model hash check")
            models = load_models(files, verify=False)
            mark("dlib model load")
            version, directory = fetch_current(settings.index_uri, cache / "index",
                                               photos=False,
                                               skip={DESCRIPTORS_FILE})  # as load_current
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
    marks["peak_rss_mib"] = peak_rss_mib()
    cache = Path(settings.cache_dir)
    marks["tmp_mib"] = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file()) / 2**20
    if os.environ.get("BENCH_PROBES"):
        marks.update(answers(index, Path(os.environ["BENCH_PROBES"])))
    return marks


def peak_rss_mib() -> float:
    """This process's peak RSS. Not ru_maxrss: that survives exec, so a child would
    report its parent's peak when the parent's was higher (it holds a whole index while
    publishing it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def answers(index, probes_file: Path) -> dict[str, float]:
    """Graph search and query() p50 (ms) and recall@10 of `index` on the saved probes."""
    import numpy as np

    from benchmarks.index_query import timed_ms
    from index_builder.assemble import recall_at

    saved = np.load(probes_file)
    probes, exact = saved["probes"], saved["exact"]
    found = [index.graph_neighbours(p, 10) for p in probes]
    graph = index._hnsw  # the raw call, as benchmarks.index_query times it
    raw = timed_ms(lambda p: graph.knnQuery(p, k=10), probes)
    full = timed_ms(lambda p: index.query(p, k=3), probes)
    return {"recall10": recall_at(found, exact, 10), "knn_p50": statistics.median(raw),
            "query_p50": statistics.median(full)}


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
        people = [Celebrity(celebrity_id(i), f"Celebrity {i}") for i in range(CELEBRITIES)]
        CelebrityIndex.build(descriptors, entries, people, hnsw=HNSW_PARAMS).save(directory)
    return directory


@dataclass(frozen=True)
class Case:
    """One index to start with: its cached files and what the version in storage sets."""
    label: str
    directory: Path
    photos: int
    ef_search: int | None = None  # None: the cached manifest's
    probes: Path | None = None  # queries and their exact neighbours, for `answers`


def million_case(queries: int) -> Case:
    """The cached million-entry index of benchmarks.index_query (built on first use) and
    its queries, at the efSearch that gives recall@10 0.95 (docs/performance.md)."""
    import numpy as np

    from benchmarks.index_query import million_index

    index, probes, exact, _ = million_index(MILLION_CELEBRITIES, queries, 48, 48, 300, 0)
    assert index.directory is not None
    saved = index.directory / f"probes-q{queries}.npz"
    if not saved.is_file():
        np.savez(saved, probes=probes, exact=exact)
    return Case(f"{len(index):,} entries of {MILLION_CELEBRITIES:,} celebrities",
                index.directory, photos=0, ef_search=MILLION_EF_SEARCH, probes=saved)


def celebrity_id(row: int) -> str:
    return f"c{row:06d}"


def stage_version(case: Case, stage: Path, picture: Path) -> None:
    """The version to publish: links to the cached graph, descriptors and entries,
    celebrity records (with a picture and a sex each) in the form the index builder
    writes, pictures for the first `case.photos`, and the manifest naming them all."""
    from shared.celebrities import Celebrity, write_celebrities
    from shared.manifest import Manifest
    from shared.models import file_sha256

    (stage / "photos").mkdir(parents=True)
    arrays = ("hnsw.bin", "descriptors.npy", "entries.npy")
    for name in arrays:
        (stage / name).symlink_to(case.directory / name)
    manifest = Manifest.read(case.directory)
    written = write_celebrities(stage, (
        Celebrity(celebrity_id(i), f"Celebrity {i}", photo=f"photos/{celebrity_id(i)}.jpg",
                  extra={"sex": "female" if i % 2 else "male"})
        for i in range(manifest.celebrities)))
    for i in range(case.photos):
        (stage / "photos" / f"{celebrity_id(i)}.jpg").symlink_to(picture)
    manifest.files = {name: file_sha256(stage / name) for name in arrays + written}
    if case.ef_search is not None:
        manifest.hnsw = {**manifest.hnsw, "efSearch": case.ef_search}
    manifest.photos = manifest.celebrities
    manifest.write(stage)


def fill_storage(gcs_url: str, case: Case) -> int:
    """Models under models/ and the case's index published under index/ as version v1;
    the bytes of the index files a worker downloads."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    from index_builder.publish import publish
    from shared.index import DESCRIPTORS_FILE
    from shared.manifest import Manifest
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
        stage_version(case, stage, picture)
        fetched = sum((stage / name).stat().st_size for name in Manifest.read(stage).files
                      if name != DESCRIPTORS_FILE) + (stage / "manifest.json").stat().st_size
        publish(GcsStore(BUCKET, "index", client=client), stage, "v1")
    return fetched


def run_child(mode: str, gcs_url: str, case: Case, tunables: str | None) -> dict[str, float]:
    from shared.config import REPO_ROOT

    with tempfile.TemporaryDirectory(prefix="cold-start-") as cache:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOKALIKE_")}
        env.update(STORAGE_EMULATOR_HOST=gcs_url, GOOGLE_CLOUD_PROJECT="bench",
                   LOOKALIKE_MODELS_URI=f"gs://{BUCKET}/models",
                   LOOKALIKE_INDEX_URI=f"gs://{BUCKET}/index", LOOKALIKE_CACHE_DIR=cache)
        if case.probes is not None:
            env["BENCH_PROBES"] = str(case.probes)
        if tunables is not None:
            env["GLIBC_TUNABLES"] = tunables
        spawned = time.time()
        done = subprocess.run([sys.executable, "-m", "benchmarks.cold_start", "--child", mode,
                               "--spawned", repr(spawned)], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"cold start child failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def report(case: Case, runs: int, huge_pages: str) -> None:
    from benchmarks.machine import WORKER_GLIBC_TUNABLES, compile_sources, describe
    from stack.emulators import start_fake_gcs

    print(describe(), flush=True)
    choices: dict[str, list[str | None]] = {
        "both": [WORKER_GLIBC_TUNABLES, ""], "on": [WORKER_GLIBC_TUNABLES], "off": [""],
        "env": [None]}
    settings = choices[huge_pages]
    compile_sources()
    gcs = start_fake_gcs()
    try:
        fetched = fill_storage(gcs.url, case)
        # The emulator's copy of the index (1.4 GB at a million entries) is written back
        # to disk now, not in the runs' downloads; Cloud Storage is on other machines.
        os.sync()
        results: dict[tuple[str, str | None], list[dict[str, float]]] = {
            (mode, tunables): [] for tunables in settings for mode in ("worker", "stages")}
        for _ in range(runs):
            for (mode, tunables), done in results.items():
                done.append(run_child(mode, gcs.url, case, tunables))
    finally:
        gcs.stop()
    print(f"{case.label}, {fetched / 2**20:.0f} MiB of index files to download and "
          f"{case.photos} photos; {runs} runs per mode, each a new process with an empty "
          "cache; medians")
    for tunables in settings:
        shown = os.environ.get("GLIBC_TUNABLES") if tunables is None else tunables
        if len(settings) > 1 or shown:
            print(f"\nGLIBC_TUNABLES={shown or '(empty)'}")
        print_runs(results[("worker", tunables)], results[("stages", tunables)], fetched)
    record_goal(case, results[("worker", settings[0])])
    print(describe())


def record_goal(case: Case, worker: list[dict[str, float]]) -> None:
    """The `make bench` summary's goal 1 (12k) or goal 4 (a million entries), from the
    first GLIBC_TUNABLES setting measured (the deployed one)."""
    from benchmarks.goals import GoalFigure, record

    total_ms = statistics.median(r["total"] for r in worker) * 1000
    peak_mib = statistics.median(r["peak_rss_mib"] for r in worker)
    if case.probes is None:
        record(GoalFigure("1", f"cold start ≤ {GOAL_MS} ms, peak RSS ≤ {GOAL_MIB} MiB "
                          "(12k index)", f"{total_ms:.0f} ms, {peak_mib:.0f} MiB",
                          total_ms <= GOAL_MS and peak_mib <= GOAL_MIB, "cold_start"))
        return
    recall = statistics.median(r["recall10"] for r in worker)
    knn = statistics.median(r["knn_p50"] for r in worker)
    record(GoalFigure("4", f"1M index: cold start ≤ {MILLION_GOAL_MS} ms, graph search ≤ "
                      f"{MILLION_GOAL_QUERY_MS} ms at recall@10 ≥ {MILLION_GOAL_RECALL}",
                      f"{total_ms:.0f} ms, {knn:.3f} ms at {recall:.3f}, {peak_mib:.0f} MiB",
                      total_ms <= MILLION_GOAL_MS and knn <= MILLION_GOAL_QUERY_MS
                      and recall >= MILLION_GOAL_RECALL, "cold_start_million"))


def print_runs(worker: list[dict[str, float]], stages: list[dict[str, float]],
               fetched: int) -> None:
    def median(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(f"{'stage':<22}{'median ms':>10}")
    for stage in STAGES:
        print(f"{stage:<22}{median(stages, stage) * 1000:>10.0f}")
    print(f"{'total (stages)':<22}{median(stages, 'total') * 1000:>10.0f}")
    download = median(stages, "index download")
    print(f"storage throughput (index download stage): {fetched / 2**20 / download:.0f} MiB/s")
    for label, key in (("interpreter", "interpreter"), ("imports", "imports"),
                       ("AssetCache.get()", "models and index"), ("first match", "first match"),
                       ("reply picture", "reply picture"),
                       ("total", "total")):
        print(f"worker path: {label:<18}{median(worker, key) * 1000:>8.0f} ms")
    each = ", ".join(f"{r['total'] * 1000:.0f}" for r in worker)
    print(f"cold start to first answer ready (worker path), median: "
          f"{median(worker, 'total') * 1000:.0f} ms (runs: {each})")
    peak = [r["peak_rss_mib"] for r in worker + stages]
    print(f"peak RSS after the first answer: median {statistics.median(peak):.0f} MiB, "
          f"max {max(peak):.0f} MiB; index and model files in /tmp: "
          f"{median(worker, 'tmp_mib'):.0f} MiB")
    if "recall10" in worker[0]:
        print(f"answers after the cold start (worker path): recall@10 "
              f"{median(worker, 'recall10'):.3f}, graph search p50 "
              f"{median(worker, 'knn_p50'):.3f} ms, query() p50 "
              f"{median(worker, 'query_p50'):.3f} ms")


def main(argv: list[str] | None = None) -> None:
    # Run with the environment given: the deployed worker's GLIBC_TUNABLES are empty for a
    # 12k index (infra/config.sh); GLIBC_TUNABLES=glibc.malloc.hugetlb=1 measures huge pages.
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photos", type=int, default=CELEBRITIES,
                        help="celebrity pictures (20 KB each) in the 12k index version")
    parser.add_argument("--million", action="store_true",
                        help="then the million-entry index (its graph is built once)")
    parser.add_argument("--million-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--million-runs", type=int, default=3)
    parser.add_argument("--huge-pages", choices=["env", "on", "off", "both"], default="on",
                        help="GLIBC_TUNABLES of the million case's runs (default: on, as "
                        "the deploy sizes a million-entry worker)")
    parser.add_argument("--child", choices=["worker", "stages"], help=argparse.SUPPRESS)
    parser.add_argument("--spawned", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.spawned)))
        return
    if not args.million_only:
        report(Case(f"{CELEBRITIES:,} celebrities", synthetic_index_dir(), args.photos),
               args.runs, "env")
    if args.million or args.million_only:
        print()
        report(million_case(1000), args.million_runs, args.huge_pages)


if __name__ == "__main__":
    main()
