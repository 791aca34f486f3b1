"""The opt-out list: Wikidata Q-ids never harvested, never indexed.

A text file, one Q-id per line, `#` starts a comment (`remove` writes the date after
it). It lives beside the index versions it protects, `<out>/excluded.txt`, so whoever
can publish a version sees it; `harvest --exclude` reads it from there (a path or a
`gs://` URI). Appends are conditional on the file's generation, so two removals at
once never lose one another.
"""

from __future__ import annotations

from datetime import UTC, datetime

from shared.storage import NotFound, PreconditionFailed, Store, open_store

EXCLUSIONS_FILE = "excluded.txt"
_ATTEMPTS = 5


def parse_exclusions(text: str) -> set[str]:
    ids = set()
    for line in text.splitlines():
        word = line.split("#", 1)[0].strip()
        if word:
            ids.add(word)
    return ids


def _split(uri: str) -> tuple[Store, str]:
    """A file URI as (store of its folder, key)."""
    head, _, name = uri.rstrip("/").rpartition("/")
    return open_store(head or "."), name


def read_exclusions(uri: str) -> set[str]:
    """The Q-ids of an exclusion file (path or gs:// URI); a missing file is an error,
    since a mistyped path must not silently let opted-out people in."""
    store, key = _split(uri)
    try:
        return parse_exclusions(store.read(key).decode("utf-8"))
    except NotFound:
        raise ValueError(f"the exclusion list {uri} does not exist (`remove` creates it; "
                         "make an empty one if nobody has opted out yet)") from None


def append_exclusions(store: Store, ids: list[str], key: str = EXCLUSIONS_FILE) -> int:
    """Add `ids` not yet listed to the list at `key` in `store`; returns how many."""
    for _ in range(_ATTEMPTS):
        generation = store.generation(key)
        old = store.read(key).decode("utf-8") if generation else ""
        new = [i for i in dict.fromkeys(ids) if i not in parse_exclusions(old)]
        if not new:
            return 0
        stamp = datetime.now(UTC).strftime("%Y-%m-%d")
        text = old + ("" if old.endswith("\n") or not old else "\n") + "".join(
            f"{i}  # removed {stamp}\n" for i in new)
        try:
            store.write(key, text.encode("utf-8"), if_generation=generation,
                        content_type="text/plain")
            return len(new)
        except PreconditionFailed:
            continue
    raise PreconditionFailed(f"{store.uri}/{key} kept changing; run again")
