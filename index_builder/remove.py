"""`remove`: take people out of the published gallery and keep them out.

1. Their Q-ids are appended to the exclusion list beside the versions
   (`<out>/excluded.txt`, index_builder/exclusions.py), which every later harvest reads:
   this is the promise, so it is written first.
2. A new version is made from the current one without their entries and pictures (the
   graph is rebuilt from the remaining descriptors; nothing is embedded again) and
   published like any build; running workers load it at their next index refresh.
3. With `--photos`, their pictures are deleted from the harvest's photo store too.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from index_builder.assemble import measure_recall
from index_builder.build import version_name
from index_builder.exclusions import EXCLUSIONS_FILE, append_exclusions
from index_builder.publish import DEFAULT_KEEP, SwitchResult, publish
from shared.index import CelebrityIndex
from shared.index_store import fetch_current
from shared.storage import open_store


class RemoveError(Exception):
    """Nothing can be removed (no current version, or nobody would be left)."""


@dataclass
class RemoveResult:
    listed: int  # ids newly added to the exclusion list
    removed: list[str]  # ids that were in the current version
    version: str | None  # the version published without them (None: nothing to publish)
    switch: SwitchResult | None
    photos_deleted: int


def without(index: CelebrityIndex, ids: set[str]) -> CelebrityIndex:
    """The index minus the celebrities in `ids`, graph rebuilt with its own settings."""
    keep_rows = [row for row, c in enumerate(index.celebrities) if c.id not in ids]
    if not keep_rows:
        raise RemoveError("removing them would leave the gallery empty")
    new_row = np.full(len(index.celebrities), -1, dtype=np.int64)
    new_row[keep_rows] = np.arange(len(keep_rows))
    kept = new_row[index.entry_celebrity] >= 0
    smaller = CelebrityIndex.build(index.descriptors[kept], new_row[index.entry_celebrity][kept],
                                   [index.celebrities[r] for r in keep_rows],
                                   hnsw=index.manifest.hnsw)
    smaller.manifest.recall = measure_recall(smaller)
    return smaller


def _delete_photos(photos: str, ids: list[str]) -> int:
    store = open_store(photos)
    count = 0
    for qid in ids:
        for key in list(store.list(f"{qid}/")):
            store.delete(key)
            count += 1
    return count


def run_remove(out: str, ids: list[str], photos: str = "", keep: int = DEFAULT_KEEP,
               ) -> RemoveResult:
    ids = list(dict.fromkeys(i.strip() for i in ids if i.strip()))
    if not ids:
        raise RemoveError("no ids given")
    store = open_store(out)
    listed = append_exclusions(store, ids, EXCLUSIONS_FILE)
    deleted = _delete_photos(photos, ids) if photos else 0
    with tempfile.TemporaryDirectory(prefix="index-remove-") as tmp:
        current, directory = fetch_current(out, Path(tmp) / "fetched")
        if current is None:
            raise RemoveError(f"{out} has no current version (current.json)")
        index = CelebrityIndex.load(directory)
        present = [i for i in ids if any(c.id == i for c in index.celebrities)]
        if not present:
            return RemoveResult(listed, [], None, None, deleted)
        smaller = without(index, set(present))
        name = version_name(smaller, datetime.now(UTC))
        smaller.manifest.build = {**index.manifest.build, "removed": present,
                                  "removed_from": current, "version": name}
        stage = Path(tmp) / "stage"
        smaller.save(stage)
        for celebrity in smaller.celebrities:
            if celebrity.photo and (directory / celebrity.photo).is_file():
                (stage / celebrity.photo).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(directory / celebrity.photo, stage / celebrity.photo)
        switch = publish(store, stage, name, keep)
    return RemoveResult(listed, present, name, switch, deleted)
