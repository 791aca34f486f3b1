"""Leave-one-out identification over the labelled photos: every photo must find its person
among galleries built from all the other photos."""

import numpy as np
import pytest

from shared.faces import find_faces
from shared.images import decode_image
from shared.index import Celebrity, CelebrityIndex


@pytest.fixture(scope="module")
def descriptors(labelled, models):
    rows = []
    for person, files in labelled.items():
        for file in files:
            scan = find_faces(decode_image(file.read_bytes()), models)
            assert scan.faces, f"no face in {file}"
            rows.append((person, file.name, scan.faces[0].descriptor))
    return rows


def test_leave_one_out_names_every_person(descriptors, labelled):
    assert len(descriptors) == sum(len(files) for files in labelled.values()) == 75
    people = sorted(labelled)
    celebrities = [Celebrity(id=p, name=p) for p in people]
    wrong = []
    for held_out, (person, name, descriptor) in enumerate(descriptors):
        rest = [row for i, row in enumerate(descriptors) if i != held_out]
        index = CelebrityIndex.build(np.stack([r[2] for r in rest]),
                                     [people.index(r[0]) for r in rest], celebrities)
        best = index.query(descriptor, k=3)[0]
        if best.celebrity.id != person:
            wrong.append(f"{person}/{name} -> {best.celebrity.id} ({best.distance:.3f})")
    assert wrong == [], wrong
