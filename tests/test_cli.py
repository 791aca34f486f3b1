"""`python main.py match` as a user runs it, against the bundled demo gallery."""

import json
import subprocess
import sys

from tests.conftest import REPO


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), "match", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300)


def test_json_names_people_from_held_out_photos(labelled):
    gallery_photos = {p.parent.name + "/" + p.stem for p in (REPO / "demo" / "photos").glob("*/*")}
    held_out = [f for person, files in labelled.items() for f in files
                if f"{person}/{f.stem}" not in gallery_photos]
    assert len(held_out) == 75 - len(gallery_photos)
    run = _run("--json", *map(str, held_out))
    assert run.returncode == 0, run.stderr
    records = [json.loads(line) for line in run.stdout.splitlines()]
    assert len(records) == len(held_out)
    for photo, record in zip(held_out, records, strict=True):
        assert record["photo"] == str(photo)
        best = record["faces"][0]["matches"][0]
        assert best["id"] == photo.parent.name, record
        assert 0 < best["similarity"] <= 1 and best["distance"] < 0.6


def test_json_on_hard_files(faces_dir, expected):
    names = sorted(expected)
    run = _run("--json", *(str(faces_dir / n) for n in names))
    assert run.returncode == 1  # the broken files could not be read
    records = {r["photo"]: r for r in map(json.loads, run.stdout.splitlines())}
    for name, info in expected.items():
        record = records[str(faces_dir / name)]
        if "info" not in info:
            assert record["error"]["code"] == "unreadable_image", name
        elif info["dlib_hog_faces_upsample1"] or "rot" in name:
            assert len(record["faces"]) >= max(1, info["dlib_hog_faces_upsample1"]), name
            if "rot90" in name or "rot180" in name:
                assert len(record["faces"]) == 1
        else:
            assert record["error"]["code"] == "no_face" or "faces" in record, name


def test_text_output_draw_and_exit_codes(tmp_path):
    out = tmp_path / "pairs.png"
    sample = REPO / "demo" / "samples" / "multi_obama_and_biden.jpg"
    run = _run(str(sample), "--top", "2", "--draw", str(out))
    assert run.returncode == 0, run.stderr
    assert "face 3 at" in run.stdout and "Barack Obama" in run.stdout
    assert "Joe Biden" in run.stdout and out.stat().st_size > 10_000
    from PIL import Image

    with Image.open(out) as picture:
        assert picture.size == (640, 960)  # three rows of face | best match
    missing = _run(str(tmp_path / "nope.jpg"), "--json")
    assert missing.returncode == 1
    assert json.loads(missing.stdout)["error"]["code"] == "unreadable_image"
    bad_index = _run(str(sample), "--index", str(tmp_path))
    assert bad_index.returncode == 2 and "manifest.json" in bad_index.stderr
