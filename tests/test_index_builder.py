"""`python -m index_builder` as an operator runs it, on the labelled face photos.

Builds use `--jitters 0` and two workers to stay affordable on small machines; what is
checked does not depend on jitters.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from shared.index import CelebrityIndex
from shared.index_store import current_version, fetch_index
from shared.index_versions import resolve_index_dir
from shared.storage import open_store
from tests.conftest import REPO

# Compared byte for byte except the graph, which threads build in any order.
NOT_COMPARED = {"hnsw.bin"}


def _builder(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    run = subprocess.run([sys.executable, "-m", "index_builder", *args], capture_output=True,
                         text=True, cwd=REPO, timeout=900, env=env)
    return run


def _build(catalog: Path, photos: str, out: str, *extra: str) -> subprocess.CompletedProcess:
    run = _builder("build", "--catalog", str(catalog), "--photos", photos, "--out", out,
                   "--jitters", "0", "--workers", "2", "--no-progress", *extra)
    assert run.returncode == 0, run.stderr
    return run


def _match(index: str, photos: list[Path], env: dict | None = None) -> list[dict]:
    run = subprocess.run([sys.executable, str(REPO / "main.py"), "match", "--json", "--index",
                          index, *map(str, photos)], capture_output=True, text=True, cwd=REPO,
                         timeout=600, env=env)
    assert run.returncode == 0, run.stderr
    return [json.loads(line) for line in run.stdout.splitlines()]


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source)


@pytest.fixture(scope="module")
def leave_out(tmp_path_factory, labelled, faces_dir):
    """A build from every labelled photo but one per person, plus awkward extras."""
    root = tmp_path_factory.mktemp("leave_out")
    photos, out = root / "photos", root / "out"
    held_out = {person: files[-1] for person, files in labelled.items()}
    for person, files in labelled.items():
        for file in files[:-1]:
            _link(file, photos / person / file.name)
    hard = faces_dir / "hard"
    _link(hard / "noface_cars.jpg", photos / "Rose_Leslie" / "cars.jpg")
    _link(hard / "broken_truncated.jpg", photos / "Joe_Biden" / "broken.jpg")
    _link(hard / "multi_kit_with_rose.jpg", photos / "Kit_Harington" / "with_rose.jpg")
    _link(labelled["Joe_Biden"][0], photos / "Nobody_Known.jpg")  # no catalogue entry
    (photos / "notes.txt").write_text("not a photo")
    made = _builder("catalog", "--photos", str(photos))
    assert made.returncode == 0, made.stderr
    catalog = [entry for entry in json.loads(made.stdout) if entry["id"] != "Nobody_Known"]
    catalog[0].update(role="composer", n_movies=3)  # extra fields are carried through
    catalog.append({"id": "Ghost", "name": "Ghost Writer"})  # no photos at all
    (root / "catalog.json").write_text(json.dumps(catalog))
    run = _build(root / "catalog.json", str(photos), str(out))
    return {"root": root, "photos": photos, "out": out, "held_out": held_out, "run": run}


def test_leave_out_build_names_held_out_people(leave_out):
    out = leave_out["out"]
    version = resolve_index_dir(out)
    index = CelebrityIndex.load(out)
    assert len(index.celebrities) == 18 and len(index) == 75 - 18
    assert index.celebrities[0].extra == {"role": "composer", "n_movies": 3}
    assert all(index.photo_path(c) is not None for c in index.celebrities)
    manifest = index.manifest
    assert manifest.recall["at_1"] >= 0.9 and manifest.recall["at_10"] >= 0.9
    assert manifest.recall["nearest_same_celebrity"] == 1.0
    assert 0.8 < manifest.distance_stats.mean < 1.0
    summary = manifest.build["summary"]
    assert summary["embedded"] == 75 - 18 + 3 and summary["cached"] == 0
    assert summary["rejected"] == {"no_face": 1, "several_faces": 1, "unreadable": 1}
    assert manifest.build["version"] == version.name and manifest.build["num_jitters"] == 0

    report = json.loads((version / "report.json").read_text())
    assert report["unknown_ids"] == {"Nobody_Known": ["Nobody_Known.jpg"]}
    assert report["celebrities_without_photos"] == ["Ghost"]
    assert report["ignored_files"] == ["notes.txt"]
    assert {(r["photo"], r["reason"]) for r in report["rejected"]} == {
        ("Rose_Leslie/cars.jpg", "no_face"), ("Joe_Biden/broken.jpg", "unreadable"),
        ("Kit_Harington/with_rose.jpg", "several_faces")}
    assert f"{75 - 18 + 3} embedded, 0 from cache" in leave_out["run"].stdout

    held_out = list(leave_out["held_out"].values())
    for photo, record in zip(held_out, _match(str(out), held_out), strict=True):
        assert record["faces"][0]["matches"][0]["id"] == photo.parent.name, record


def test_rebuild_with_one_photo_added_embeds_only_it(leave_out):
    out, photos = leave_out["out"], leave_out["photos"]
    first = resolve_index_dir(out).name
    added = leave_out["held_out"]["Barack_Obama"]
    _link(added, photos / "Barack_Obama" / added.name)
    run = _build(leave_out["root"] / "catalog.json", str(photos), str(out))
    assert "1 embedded" in run.stdout
    index = CelebrityIndex.load(out)
    summary = index.manifest.build["summary"]
    assert summary["embedded"] == 1 and summary["cached"] == 75 - 18 + 3
    assert len(index) == 75 - 18 + 1
    second = resolve_index_dir(out).name
    assert second != first

    listed = _builder("versions", "--out", str(out))
    assert listed.returncode == 0
    lines = listed.stdout.splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"* {second}") and first in lines[0]
    rollback = _builder("activate", "--out", str(out), first)
    assert rollback.returncode == 0, rollback.stderr
    assert resolve_index_dir(out).name == first
    missing = _builder("activate", "--out", str(out), "20990101T000000Z-none")
    assert missing.returncode == 1 and "no complete version" in missing.stderr
    assert resolve_index_dir(out).name == first


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, labelled):
    """Two photos of each of three people (and one held-out photo of each)."""
    root = tmp_path_factory.mktemp("small")
    people = ["Barack_Obama", "Kit_Harington", "deepface_p05"]
    for person in people:
        for file in labelled[person][:2]:
            _link(file, root / "photos" / person / file.name)
    (root / "catalog.json").write_text(json.dumps(
        [{"id": p, "name": p.replace("_", " ")} for p in people]))
    native = root / "native"
    # Jitters are random: with two, the engines agree only if each photo's are reproducible.
    _build(root / "catalog.json", str(root / "photos"), str(native), "--engine", "native",
           "--jitters", "2")
    return {"root": root, "people": people, "native": native,
            "held_out": [labelled[p][2] for p in people]}


def _same_contents(first: Path, second: Path) -> None:
    a, b = resolve_index_dir(first), resolve_index_dir(second)
    ma = json.loads((a / "manifest.json").read_text())
    mb = json.loads((b / "manifest.json").read_text())
    assert set(ma["files"]) == set(mb["files"])
    for name in set(ma["files"]) - NOT_COMPARED:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    shown = sorted(p.name for p in (a / "photos").iterdir() if not p.name.startswith("."))
    assert shown == sorted(p.name for p in (b / "photos").iterdir() if not p.name.startswith("."))
    assert len(shown) == ma["celebrities"]
    for photo in (a / "photos").glob("[!.]*"):
        assert photo.read_bytes() == (b / "photos" / photo.name).read_bytes()
    assert ma["distance_stats"] == mb["distance_stats"] and ma["recall"] == mb["recall"]


@pytest.mark.parametrize("engine", ["dask", "spark"])
def test_engines_build_identical_indexes(small_set, engine):
    if engine == "spark" and shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    out = small_set["root"] / engine
    run = _build(small_set["root"] / "catalog.json", str(small_set["root"] / "photos"),
                 str(out), "--engine", engine, "--jitters", "2")
    assert "6 embedded" in run.stdout
    _same_contents(small_set["native"], out)
    assert CelebrityIndex.load(out).manifest.build["engine"] == engine


def test_the_dataproc_batch_runs_under_spark_submit(small_set, tmp_path):
    # What infra/index.sh ships to Dataproc Serverless (its dry run keeps the staged
    # files), run by spark-submit as Dataproc runs it: outside the repository, so that
    # the driver and the executors import the project from the zip.
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLOUDSDK_", "GOOGLE_", "LOOKALIKE_", "PYTHONPATH"))}
    env.update(DRY_RUN="1", PROJECT="dry-run", BUILD_WHEELS="pypi", KEEP_STAGING="1",
               TMPDIR=str(tmp_path), DATAPROC_EXECUTORS="1", DATAPROC_EXECUTOR_CORES="2")
    dry = subprocess.run(["bash", str(REPO / "infra" / "index.sh"), "build", "--catalog",
                          "catalog.json", "--photos", "gs://photos/celebrities", "--engine",
                          "spark", "--jitters", "2"], capture_output=True, text=True,
                         cwd=REPO, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    submit = next(line.split() for line in dry.stdout.splitlines() if "batches submit" in line)
    flags = dict(a.split("=", 1) for a in submit if a.startswith("--") and "=" in a)
    driver_args = submit[submit.index("--") + 1:]
    for flag, value in (("--photos", str(small_set["root"] / "photos")),
                        ("--out", str(tmp_path / "out"))):
        driver_args[driver_args.index(flag) + 1] = value
    work = tmp_path / "work"  # the driver's working directory, where --files land
    work.mkdir()
    shutil.copy(small_set["root"] / "catalog.json", work / flags["--files"])
    env = {k: v for k, v in env.items() if k not in ("DRY_RUN", "KEEP_STAGING")}
    env["PYSPARK_PYTHON"] = env["PYSPARK_DRIVER_PYTHON"] = sys.executable
    run = subprocess.run([str(Path(sys.executable).with_name("spark-submit")), "--master",
                          "local[2]", "--py-files", flags["--py-files"], submit[5],
                          *driver_args], capture_output=True, text=True, cwd=work, env=env,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "6 embedded" in run.stdout
    _same_contents(small_set["native"], tmp_path / "out")
    assert CelebrityIndex.load(tmp_path / "out").manifest.build["engine"] == "spark"


def test_the_printed_summary_is_the_saved_one(small_set, tmp_path):
    from index_builder.build import BuildResult, format_summary
    from index_builder.publish import SwitchResult

    out = tmp_path / "out"
    run = _build(small_set["root"] / "catalog.json", str(small_set["root"] / "photos"),
                 str(out), "--jitters", "2", "--cache", str(small_set["native"] / "cache"))
    version = resolve_index_dir(out)
    saved = CelebrityIndex.load(out).manifest.build
    assert saved["version"] == version.name and saved["summary"]["cached"] == 6
    report = json.loads((version / "report.json").read_text())
    # Publishing comes after the summary is saved: its time is printed beside it.
    publish_seconds = float(re.findall(r"then (\d+\.\d) s to publish", run.stdout)[-1])
    printed = format_summary(BuildResult(version.name, SwitchResult(True, version.name),
                                         saved["summary"], report, publish_seconds), str(out))
    assert run.stdout.strip() == printed


def _stage_copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".*"))
    return target


def test_publish_to_cloud_storage_and_concurrent_publishers(small_set, gcs_bucket, tmp_path):
    from index_builder.publish import prune_versions, publish

    store = open_store(f"gs://{gcs_bucket}/photos")
    for file in sorted((small_set["root"] / "photos").rglob("*.*")):
        store.write(file.relative_to(small_set["root"] / "photos").as_posix(),
                    file.read_bytes())
    uri = f"gs://{gcs_bucket}/index"
    run = _build(small_set["root"] / "catalog.json", f"gs://{gcs_bucket}/photos", uri,
                 "--jitters", "2")
    assert "6 embedded" in run.stdout
    version = current_version(uri)
    assert version and f"version {version} published to {uri}" in run.stdout
    index_store = open_store(uri)
    keys = list(index_store.list(""))
    assert f"versions/{version}/manifest.json" in keys and "current.json" in keys
    assert sum(k.startswith("cache/") and k.endswith(".json") for k in keys) == 6
    fetched = fetch_index(uri, tmp_path / "cache")
    _same_contents(small_set["native"], fetched)
    env = {**os.environ, "LOOKALIKE_CACHE_DIR": str(tmp_path / "match-cache")}
    records = _match(uri, small_set["held_out"], env)
    assert [r["faces"][0]["matches"][0]["id"] for r in records] == small_set["people"]

    # Two publishers race while a reader keeps loading whatever the pointer names: the
    # reader never meets a partial version, and the newest version ends up current.
    stages = [_stage_copy(fetched, tmp_path / f"stage{i}") for i in range(4)]
    names = [f"20990101T00000{i}Z-race" for i in range(4)]
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        loads = 0
        while not done.is_set() or loads == 0:
            try:
                CelebrityIndex.load(fetch_index(uri, tmp_path / "reader-cache"))
                loads += 1
            except BaseException as exc:
                errors.append(exc)
                return

    def publisher(pairs: list[tuple[Path, str]]) -> None:
        try:
            for stage, name in pairs:
                publish(open_store(uri), stage, name, keep=10)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=reader),
               threading.Thread(target=publisher, args=([(stages[0], names[0]),
                                                         (stages[3], names[3])],)),
               threading.Thread(target=publisher, args=([(stages[1], names[1]),
                                                         (stages[2], names[2])],))]
    for thread in threads:
        thread.start()
    for thread in threads[1:]:
        thread.join(timeout=300)
    done.set()
    threads[0].join(timeout=300)
    assert not errors, errors
    assert current_version(uri) == names[3]
    prune_versions(index_store, keep=3)
    remaining = {k.split("/")[1] for k in index_store.list("versions/")}
    assert remaining == set(names[1:])
    final = CelebrityIndex.load(fetch_index(uri, tmp_path / "final-cache"))
    assert np.array_equal(final.descriptors,
                          CelebrityIndex.load(small_set["native"]).descriptors)


def test_publish_first_puts_the_demo_gallery_in_an_empty_bucket_only(gcs_bucket, tmp_path):
    """What infra/setup.sh runs: the bundled gallery becomes the first version of an empty
    index root, a second run changes nothing, and a later build replaces it."""
    from shared.config import DEMO_GALLERY

    uri = f"gs://{gcs_bucket}/index"
    env = {**os.environ, "LOOKALIKE_CACHE_DIR": str(tmp_path / "match-cache")}
    first = _builder("publish", str(DEMO_GALLERY), "--out", uri, "--first", env=env)
    assert first.returncode == 0, first.stderr
    demo = current_version(uri)
    assert demo and demo.startswith("19700101T000000Z-") and f"published {demo}" in first.stdout
    _same_contents(DEMO_GALLERY, fetch_index(uri, tmp_path / "cache"))
    again = _builder("publish", str(DEMO_GALLERY), "--out", uri, "--first", env=env)
    assert again.returncode == 0 and "nothing published" in again.stdout
    assert [k for k in open_store(uri).list("versions/") if k.endswith("manifest.json")] == [
        f"versions/{demo}/manifest.json"]
    # A later publish of a build (here the same files, named by today's time) wins.
    later = _builder("publish", str(DEMO_GALLERY), "--out", uri, env=env)
    assert later.returncode == 0, later.stderr
    assert current_version(uri) > demo
    refused = _builder("publish", str(tmp_path), "--out", uri, env=env)
    assert refused.returncode == 1 and "not an index version" in refused.stderr
