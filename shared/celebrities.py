"""The celebrities of an index on disk, read one record at a time.

An index writes its celebrity records as

    celebrities.jsonl      one JSON record per line, in row order
    celebrities.rows.npy   a structured array, one element per row: `offset` (int64, where
                           the row's line starts in celebrities.jsonl) and `sex` (the
                           record's `sex` field, "" without one)

A worker parses a record only when a reply names that celebrity: at a million entries the
whole list as one JSON document took seconds to parse and hundreds of MB to hold. The
`sex` column is what the restricted queries ("Women only") need of every row. Indexes
written before this form hold `celebrities.json`, the whole list as one JSON array, and
still load (`read_celebrities`); the manifest's file list says which form a version has.
"""

from __future__ import annotations

import json
import mmap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

RECORDS_FILE = "celebrities.jsonl"
ROWS_FILE = "celebrities.rows.npy"
LEGACY_FILE = "celebrities.json"
FILES = (RECORDS_FILE, ROWS_FILE)


@dataclass(frozen=True)
class Celebrity:
    id: str
    name: str
    alias: str | None = None
    photo: str | None = None  # path relative to the index directory
    extra: dict[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        record = {"id": self.id, "name": self.name, **self.extra}
        if self.alias:
            record["alias"] = self.alias
        if self.photo:
            record["photo"] = self.photo
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Celebrity:
        record = dict(record)
        return cls(id=str(record.pop("id")), name=str(record.pop("name")),
                   alias=record.pop("alias", None) or None,
                   photo=record.pop("photo", None) or None, extra=record)


def sex_of(celebrity: Celebrity) -> str:
    return str(celebrity.extra.get("sex") or "")


def write_celebrities(directory: Path, celebrities: Iterable[Celebrity]) -> tuple[str, ...]:
    """Write the records and their row table into `directory`; the names written."""
    offsets, sexes = [], []
    position = 0
    with open(directory / RECORDS_FILE, "wb") as out:
        for celebrity in celebrities:
            line = (json.dumps(celebrity.to_record(), ensure_ascii=False) + "\n").encode()
            offsets.append(position)
            sexes.append(sex_of(celebrity))
            out.write(line)
            position += len(line)
    width = max((len(s) for s in sexes), default=0) or 1
    rows = np.zeros(len(offsets), dtype=[("offset", "<i8"), ("sex", f"<U{width}")])
    rows["offset"] = offsets
    rows["sex"] = sexes
    np.save(directory / ROWS_FILE, rows)
    return FILES


class CelebrityRecords(Sequence[Celebrity]):
    """The rows of `celebrities.jsonl`, each parsed when asked for (the file is mapped,
    not read)."""

    def __init__(self, directory: Path) -> None:
        rows = np.load(directory / ROWS_FILE)
        with open(directory / RECORDS_FILE, "rb") as handle:
            size = handle.seek(0, 2)
            # mmap cannot map an empty file (an index always has a celebrity, but a
            # damaged one may not).
            self._data: mmap.mmap | bytes = (mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                                             if size else b"")
        self._starts = rows["offset"]
        self._ends = np.append(self._starts[1:], size)
        self.sexes = rows["sex"].astype(object)
        if len(self._starts) and (self._starts[0] != 0 or np.any(self._ends < self._starts)):
            raise ValueError(f"{ROWS_FILE} does not match {RECORDS_FILE}")

    def __len__(self) -> int:
        return len(self._starts)

    @overload
    def __getitem__(self, row: int) -> Celebrity: ...

    @overload
    def __getitem__(self, row: slice) -> list[Celebrity]: ...

    def __getitem__(self, row: int | slice) -> Celebrity | list[Celebrity]:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        start, end = int(self._starts[row]), int(self._ends[row])
        return Celebrity.from_record(json.loads(self._data[start:end]))

    def __iter__(self) -> Iterator[Celebrity]:
        return (self[i] for i in range(len(self)))


def read_celebrities(directory: Path, files: Iterable[str]) -> Sequence[Celebrity]:
    """The celebrities of the index in `directory`, whose manifest names `files`."""
    if RECORDS_FILE in files:
        return CelebrityRecords(directory)
    records = json.loads((directory / LEGACY_FILE).read_text())
    return [Celebrity.from_record(r) for r in records]


def sexes_of(celebrities: Sequence[Celebrity]) -> np.ndarray:
    """Each row's `sex` ("" without one), as an object array."""
    if isinstance(celebrities, CelebrityRecords):
        return celebrities.sexes
    return np.array([sex_of(c) for c in celebrities], dtype=object)
