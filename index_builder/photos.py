"""Finding the catalogue's photos in a store: `<id>/<any>.jpg` or `<id>.jpg`.

Listing returns keys only (relative to the photos root); the photos themselves are read
by the per-photo step wherever it runs, so a million photos never pass through the
machine that starts the build.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from shared.storage import Store

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class PhotoListing:
    photos: list[tuple[str, str]]  # (key, celebrity id), sorted by key
    ignored: list[str] = field(default_factory=list)  # keys not laid out as photos


def celebrity_of(key: str) -> str | None:
    """The celebrity id a photo key belongs to, or None when the key is not a photo."""
    parts = key.split("/")
    name = parts[-1]
    if name.startswith(".") or not name.lower().endswith(IMAGE_SUFFIXES):
        return None
    if len(parts) == 1:
        stem = name.rsplit(".", 1)[0]
        return stem or None
    if len(parts) == 2 and parts[0] and not parts[0].startswith("."):
        return parts[0]
    return None


def classify(keys: Iterable[str]) -> PhotoListing:
    listing = PhotoListing(photos=[])
    for key in sorted(keys):
        celebrity = celebrity_of(key)
        if celebrity is None:
            listing.ignored.append(key)
        else:
            listing.photos.append((key, celebrity))
    return listing


def list_photos(store: Store) -> PhotoListing:
    return classify(store.list(""))
