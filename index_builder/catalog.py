"""The celebrity catalogue: a JSON list or a CSV file of `id`, `name` and any other fields.

`alias`, `role` and `n_movies` have a meaning for the bot; every other field is carried
through to the index's celebrity records (shared/celebrities.py) as it is. Rows without
an id or a name, and repeated ids, are reported, not fatal.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.index import Celebrity


class CatalogError(Exception):
    """The catalogue file cannot be read at all (missing, not JSON/CSV, not a list)."""


@dataclass
class Catalog:
    celebrities: list[Celebrity]
    problems: list[dict[str, Any]] = field(default_factory=list)  # rows that were skipped

    def ids(self) -> dict[str, int]:
        """id -> row, in catalogue order."""
        return {c.id: row for row, c in enumerate(self.celebrities)}


def _clean(record: dict[str, Any]) -> dict[str, Any]:
    cleaned = {}
    for key, value in record.items():
        if key is None:  # CSV row with more cells than the header
            continue
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        if value is None:
            continue
        cleaned[str(key).strip()] = value
    if isinstance(cleaned.get("n_movies"), str):
        with contextlib.suppress(ValueError):  # otherwise kept as written; it is only shown
            cleaned["n_movies"] = int(cleaned["n_movies"])
    return cleaned


def parse_catalog(records: list[Any]) -> Catalog:
    """Celebrities from raw records, first occurrence of an id wins."""
    celebrities: list[Celebrity] = []
    problems: list[dict[str, Any]] = []
    seen: set[str] = set()
    for number, raw in enumerate(records, start=1):
        if not isinstance(raw, dict):
            problems.append({"row": number, "reason": "not an object"})
            continue
        record = _clean(raw)
        if "id" not in record or "name" not in record:
            problems.append({"row": number, "reason": "missing id or name"})
            continue
        record["id"] = str(record["id"])
        if "/" in record["id"] or record["id"] in (".", ".."):
            problems.append({"row": number, "id": record["id"], "reason": "invalid id"})
            continue
        if record["id"] in seen:
            problems.append({"row": number, "id": record["id"], "reason": "repeated id"})
            continue
        seen.add(record["id"])
        record.pop("photo", None)  # the builder chooses the photo shown in replies
        celebrities.append(Celebrity.from_record(record))
    return Catalog(celebrities, problems)


def load_catalog(path: str | Path) -> Catalog:
    """Read a `.json` list or a `.csv` file with a header row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise CatalogError(f"cannot read the catalogue {path}: {exc}") from None
    if path.suffix.lower() == ".csv":
        return parse_catalog(list(csv.DictReader(io.StringIO(text))))
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"the catalogue {path} is not valid JSON ({exc}); "
                           "use a JSON list or a .csv file") from None
    if not isinstance(records, list):
        raise CatalogError(f"the catalogue {path} must be a JSON list of objects")
    return parse_catalog(records)


def catalog_from_ids(ids: list[str]) -> list[dict[str, str]]:
    """A minimal catalogue from photo folder names: `Barack_Obama` -> "Barack Obama"."""
    return [{"id": i, "name": i.replace("_", " ")} for i in sorted(set(ids))]
