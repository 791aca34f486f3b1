"""The demo gallery with a `sex` field on every celebrity, for the follow-up buttons.

The demo catalogue may record `sex` only for its named people; the tests of "Women
only" / "Men only" need every entry labelled, so this copy labels them all (the
unnamed deepface people by looking at their gallery pictures).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from shared.config import DEMO_GALLERY
from shared.index import Celebrity, CelebrityIndex

FEMALE = {"Rose_Leslie", "deepface_p01", "deepface_p02", "deepface_p03", "deepface_p08",
          "deepface_p10"}


def sex_of(celebrity_id: str) -> str:
    return "female" if celebrity_id in FEMALE else "male"


def gallery_with_sex(directory: Path) -> Path:
    """The demo gallery, every celebrity with `sex`, saved as an index in `directory`."""
    demo = CelebrityIndex.load(DEMO_GALLERY)
    people = [Celebrity(c.id, c.name, c.alias, c.photo, {**c.extra, "sex": sex_of(c.id)})
              for c in demo.celebrities]
    index = CelebrityIndex.build(demo.descriptors, demo.entry_celebrity, people,
                                 hnsw=demo.manifest.hnsw, stats=demo.stats)
    index.manifest.models = demo.manifest.models
    index.save(directory)
    shutil.copytree(DEMO_GALLERY / "photos", directory / "photos", dirs_exist_ok=True)
    return directory
