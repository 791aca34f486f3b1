"""Regenerate the bundled demo gallery (`demo/gallery/`) from the photos in `demo/photos/`
and the catalogue `demo/catalog.json` with the index builder (num_jitters 10).

    python demo/build_gallery.py                      # rebuild the index
    python demo/build_gallery.py --import ../shared/faces   # re-copy photos, then rebuild

`../shared/faces` is the project's face photo collection beside the repository (README).

`--import` copies up to two photos per person from `<faces>/labelled/<person>/`
(scaled down to 512 px, provenance in `demo/SOURCES.json`) and one sample of
each of a few people held out of the gallery into `demo/samples/`.

`demo/catalog.json` is kept by hand: per photo folder, the person's name (and Russian
name), sex and Wikipedia links where the folder names a known person, and the credit of
their pictures from `demo/SOURCES.json` (tests/test_demo_catalog.py checks it). The
`deepface_pNN` folders are groups of photos of one person whose identity their source
does not record: they are listed as unnamed people, with no sex and no links.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from index_builder.build import BuildConfig, format_summary, run_build
from index_builder.catalog import load_catalog
from index_builder.quality import QualityFilter
from shared.index import CelebrityIndex
from shared.index_versions import resolve_index_dir

DEMO = Path(__file__).resolve().parent
REPO = DEMO.parent
CATALOG = DEMO / "catalog.json"
PHOTOS, GALLERY, SAMPLES = DEMO / "photos", DEMO / "gallery", DEMO / "samples"
PER_PERSON = 2
SAMPLE_PEOPLE = ("Barack_Obama", "Kit_Harington", "Rose_Leslie")
JITTERS = 10
# The demo photos are scaled down to 512 px, which leaves one face (Kit_Harington/fr_john1,
# 53 px) 21.5 px between the eyes, under the builder's default of 24.
RULE = QualityFilter(min_eye_distance=20.0)


def _copy_scaled(source: Path, target: Path, max_side: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with Image.open(source) as image:
        image = image.convert("RGB")
        image.thumbnail((max_side, max_side), Image.LANCZOS)
        image.save(target.with_suffix(".jpg"), quality=88)


def import_photos(faces: Path) -> None:
    sources = {entry["file"]: entry for entry in json.loads((faces / "SOURCES.json").read_text())}
    shutil.rmtree(PHOTOS, ignore_errors=True)
    shutil.rmtree(SAMPLES, ignore_errors=True)
    provenance = []
    for person in sorted(p for p in (faces / "labelled").iterdir() if p.is_dir()):
        files = sorted(person.iterdir())
        chosen = files[:PER_PERSON] if len(files) > PER_PERSON else files[:1]
        for file in chosen:
            _copy_scaled(file, PHOTOS / person.name / file.name, 512)
            provenance.append({**sources[f"labelled/{person.name}/{file.name}"],
                               "copy": f"photos/{person.name}/{file.stem}.jpg",
                               "changes": "scaled to at most 512 px, re-encoded as JPEG"})
        if person.name in SAMPLE_PEOPLE:
            held_out = files[len(chosen)]
            _copy_scaled(held_out, SAMPLES / f"{person.name}_{held_out.name}", 1280)
            provenance.append({**sources[f"labelled/{person.name}/{held_out.name}"],
                               "copy": f"samples/{person.name}_{held_out.stem}.jpg",
                               "changes": "scaled to at most 1280 px, re-encoded as JPEG"})
    group = faces / "hard" / "multi_obama_and_biden.jpg"
    _copy_scaled(group, SAMPLES / group.name, 1280)
    provenance.append({**sources["hard/multi_obama_and_biden.jpg"],
                       "copy": "samples/multi_obama_and_biden.jpg",
                       "changes": "scaled to at most 1280 px, re-encoded as JPEG"})
    (DEMO / "SOURCES.json").write_text(json.dumps(provenance, indent=1) + "\n")


def build() -> CelebrityIndex:
    """Build the gallery with the index builder and unpack its version into GALLERY."""
    people = {p.name for p in PHOTOS.iterdir() if p.is_dir()}
    missing = sorted(people - set(load_catalog(CATALOG).ids()))
    if missing:
        raise SystemExit(f"{CATALOG} has no entry for {', '.join(missing)}: add one "
                         "(name, and credit from demo/SOURCES.json)")
    with tempfile.TemporaryDirectory(prefix="demo-gallery-") as tmp:
        # Relative paths: the manifest and report are bundled and should not name this machine.
        config = BuildConfig(catalog=CATALOG.relative_to(REPO),
                             photos=str(PHOTOS.relative_to(REPO)), out=str(Path(tmp) / "out"),
                             cache=str(Path(tmp) / "cache"), jitters=JITTERS, rule=RULE, keep=1)
        result = run_build(config, log=lambda line: print(line, file=sys.stderr))
        print(format_summary(result, "a temporary directory"), file=sys.stderr)
        version = resolve_index_dir(Path(tmp) / "out")
        shutil.rmtree(GALLERY, ignore_errors=True)
        # The local store's generation counters (dot files) are not part of the index.
        shutil.copytree(version, GALLERY, ignore=shutil.ignore_patterns(".*"))
    return CelebrityIndex.load(GALLERY)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import", dest="faces", type=Path,
                        help="the shared faces folder to copy photos from first")
    args = parser.parse_args()
    os.chdir(REPO)  # the build records the catalogue and photos paths relative to it
    if args.faces:
        import_photos(args.faces)
    index = build()
    stats = index.stats
    print(f"demo gallery: {len(index)} photos of {len(index.celebrities)} people in {GALLERY}; "
          f"stranger distances mean {stats.mean:.3f}, std {stats.std:.3f} ({stats.pairs} pairs)")


if __name__ == "__main__":
    main()
