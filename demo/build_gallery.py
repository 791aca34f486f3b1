"""Regenerate the bundled demo gallery (`demo/gallery/`) from the photos in `demo/photos/`.

    python demo/build_gallery.py                      # rebuild the index
    python demo/build_gallery.py --import ../shared/faces   # re-copy photos, then rebuild

`--import` copies up to two photos per person from `<faces>/labelled/<person>/`
(scaled down to 512 px, provenance in `demo/photos/SOURCES.json`) and one sample of
each of a few people held out of the gallery into `demo/samples/`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.faces import find_faces
from shared.images import decode_image
from shared.index import Celebrity, CelebrityIndex
from shared.render import face_crop

DEMO = Path(__file__).resolve().parent
PHOTOS, GALLERY, SAMPLES = DEMO / "photos", DEMO / "gallery", DEMO / "samples"
PER_PERSON = 2
SAMPLE_PEOPLE = ("Barack_Obama", "Kit_Harington", "Rose_Leslie")
JITTERS = 10


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
    celebrities: list[Celebrity] = []
    descriptors, entries = [], []
    shutil.rmtree(GALLERY, ignore_errors=True)
    (GALLERY / "photos").mkdir(parents=True)
    for person in sorted(p for p in PHOTOS.iterdir() if p.is_dir()):
        best = None
        for file in sorted(person.glob("*.jpg")):
            scan = find_faces(decode_image(file.read_bytes()), jitters=JITTERS)
            if not scan.faces:
                print(f"no face in {file}, skipped", file=sys.stderr)
                continue
            face = scan.faces[0]
            descriptors.append(face.descriptor)
            entries.append(len(celebrities))
            if best is None or face.quality.width > best[1].quality.width:
                best = (scan, face)
        if best is None:
            continue
        photo = f"photos/{person.name}.jpg"
        face_crop(best[0].image, best[1].box, 256).save(GALLERY / photo, quality=88)
        celebrities.append(Celebrity(id=person.name, name=person.name.replace("_", " "),
                                     photo=photo))
    index = CelebrityIndex.build(np.stack(descriptors), entries, celebrities)
    index.manifest.build = {"source": "demo/photos", "num_jitters": JITTERS}
    index.save(GALLERY)
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--import", dest="faces", type=Path,
                        help="the shared faces folder to copy photos from first")
    args = parser.parse_args()
    if args.faces:
        import_photos(args.faces)
    index = build()
    stats = index.stats
    print(f"demo gallery: {len(index)} photos of {len(index.celebrities)} people in {GALLERY}; "
          f"stranger distances mean {stats.mean:.3f}, std {stats.std:.3f} ({stats.pairs} pairs)")


if __name__ == "__main__":
    main()
