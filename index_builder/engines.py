"""Running the per-photo step on an engine: a local process pool, Dask or Spark.

Every engine runs the same `fugue.transform(rows, embed_photos, ...)`. Fugue's own
native engine is one thread in one process, and dlib holds the GIL, so "native" splits
the rows into small chunks and runs that transform per chunk in a process pool over all
cores. Dask and Spark get the rows in waves (so progress can be shown and the driver
never holds more than a wave of pending work); each wave is repartitioned so every
worker gets several partitions.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from index_builder.embedding import SCHEMA, embed_photos

ENGINES = ("native", "dask", "spark")
# `--spark-master` value for a driver started by spark-submit, as on Dataproc Serverless:
# the session takes the master and the shipped code (--py-files) that spark-submit set.
SUBMITTED = "submitted"
REPO_ROOT = Path(__file__).resolve().parent.parent
Progress = Callable[[int], object]  # its return value is ignored (tqdm's update)


@dataclass(frozen=True)
class EngineChoice:
    name: str = "native"
    workers: int = 0  # 0: all cores
    dask_address: str = ""  # a running Dask scheduler; empty starts a local cluster
    spark_master: str = ""  # e.g. yarn on Dataproc; empty runs Spark locally

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1


def _transform(rows: pd.DataFrame, options: str, engine: Any = None,
               partitions: int = 0) -> pd.DataFrame:
    """The one code path: the per-photo function applied by Fugue on `engine`."""
    import fugue

    result = fugue.transform(rows, embed_photos, schema=SCHEMA, params={"options": options},
                             partition={"num": partitions} if partitions else None,
                             engine=engine, as_local=True)
    return result if isinstance(result, pd.DataFrame) else result.as_pandas()


def _chunks(rows: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(rows), size):
        yield rows.iloc[start:start + size].reset_index(drop=True)


def _with_repo_on_path() -> None:
    """Worker processes of Dask and Spark import this package by name: make it findable."""
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(REPO_ROOT) not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO_ROOT), *paths] if p)


def run_native(rows: pd.DataFrame, options: str, workers: int,
               progress: Progress) -> list[pd.DataFrame]:
    if workers <= 1:  # no pool to start: the same transform in this process
        results = []
        for chunk in _chunks(rows, 16):
            results.append(_transform(chunk, options))
            progress(len(chunk))
        return results
    # Small chunks balance load (photos take very different times, docs/index_builder.md);
    # spawn, not fork: the parent may hold threads (storage clients, progress bar).
    size = max(1, min(32, math.ceil(len(rows) / (workers * 8))))
    results = []
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {pool.submit(_transform, chunk, options): len(chunk)
                   for chunk in _chunks(rows, size)}
        for future in as_completed(futures):
            results.append(future.result())
            progress(futures[future])
    return results


def _waves(rows: pd.DataFrame, workers: int, options: str, engine: Any,
           progress: Progress) -> list[pd.DataFrame]:
    wave = max(256, 64 * workers)
    results = []
    for chunk in _chunks(rows, wave):
        partitions = max(1, min(len(chunk), 4 * workers))
        results.append(_transform(chunk, options, engine, partitions))
        progress(len(chunk))
    return results


def run_dask(rows: pd.DataFrame, options: str, choice: EngineChoice,
             progress: Progress) -> list[pd.DataFrame]:
    from distributed import Client, LocalCluster

    _with_repo_on_path()
    with contextlib.ExitStack() as stack:
        if choice.dask_address:
            client = stack.enter_context(Client(choice.dask_address))
            workers = max(1, len(client.scheduler_info().get("workers", {})))
        else:
            workers = choice.worker_count
            cluster = stack.enter_context(LocalCluster(
                n_workers=workers, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=40))
            client = stack.enter_context(Client(cluster))
        return _waves(rows, workers, options, client, progress)


def run_spark(rows: pd.DataFrame, options: str, choice: EngineChoice,
              progress: Progress) -> list[pd.DataFrame]:
    from pyspark.sql import SparkSession

    workers = choice.worker_count
    builder = (SparkSession.builder.appName("lookalike-index-builder")
               .config("spark.sql.shuffle.partitions", str(4 * workers)))
    if choice.spark_master != SUBMITTED:
        _with_repo_on_path()
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        builder = (builder.config("spark.ui.enabled", "false")
                   .config("spark.executorEnv.PYTHONPATH", os.environ["PYTHONPATH"])
                   .master(choice.spark_master or f"local[{workers}]"))
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        return _waves(rows, workers, options, session, progress)
    finally:
        if not choice.spark_master:
            session.stop()


def run_step(rows: pd.DataFrame, options: str, choice: EngineChoice,
             progress: Progress) -> pd.DataFrame:
    """The per-photo step over all `rows` on the chosen engine, in the order of `rows`."""
    if choice.name not in ENGINES:
        raise ValueError(f"unknown engine {choice.name!r}; choose one of {', '.join(ENGINES)}")
    if rows.empty:
        return pd.DataFrame(columns=[p.split(":")[0] for p in SCHEMA.split(",")])
    if choice.name == "native":
        parts = run_native(rows, options, choice.worker_count, progress)
    elif choice.name == "dask":
        parts = run_dask(rows, options, choice, progress)
    else:
        parts = run_spark(rows, options, choice, progress)
    result = pd.concat(parts, ignore_index=True)
    # Engines return partitions in any order; the build must not depend on it.
    order = {photo: i for i, photo in enumerate(rows["photo"])}
    result = result.iloc[result["photo"].map(order).argsort(kind="stable")]
    return result.reset_index(drop=True)
