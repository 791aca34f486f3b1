"""`python main.py match` as a user runs it, against the bundled demo gallery."""

import json
import os
import subprocess
import sys

from shared.similarity import SAME_PERSON_DISTANCE
from tests.conftest import REPO


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO / "main.py"), "match", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=300, env=env)


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
        assert record["similarity_method"] == "calibrated"
        best = record["faces"][0]["matches"][0]
        assert best["themself"] == (best["distance"] < SAME_PERSON_DISTANCE)
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


def _without_names_links_and_credits(directory):
    """The demo gallery as an index made before names, links and credits existed."""
    import shutil

    from shared.config import DEMO_GALLERY
    from shared.index import Celebrity, CelebrityIndex

    demo = CelebrityIndex.load(DEMO_GALLERY)
    bare = CelebrityIndex.build(demo.descriptors, demo.entry_celebrity,
                                [Celebrity(c.id, c.name, photo=c.photo)
                                 for c in demo.celebrities], stats=demo.stats)
    bare.save(directory)
    shutil.copytree(DEMO_GALLERY / "photos", directory / "photos")
    return directory


def test_json_and_text_carry_names_links_and_credits_when_the_index_has_them(tmp_path):
    sample = str(REPO / "demo" / "samples" / "Rose_Leslie_fr_img2.jpg")
    gallery = {c["id"]: c for c in json.loads(
        (REPO / "demo" / "gallery" / "celebrities.json").read_text())}
    rose = gallery["Rose_Leslie"]

    [record] = map(json.loads, _run("--json", sample).stdout.splitlines())
    best = record["faces"][0]["matches"][0]
    assert (best["id"], best["name"], best["names"]) == ("Rose_Leslie", "Rose Leslie",
                                                         rose["names"])
    assert best["url"] == rose["links"]["en"] and best["credit"] == rose["credit"]
    for match in record["faces"][0]["matches"]:
        assert match["credit"] == gallery[match["id"]]["credit"]
    russian = json.loads(_run("--json", "--language", "ru-RU", sample).stdout)
    assert russian["faces"][0]["matches"][0]["url"] == rose["links"]["ru"]

    text = _run("--language", "ru", "--top", "1", sample).stdout.splitlines()
    credit = rose["credit"]
    assert text[2].split()[:3] == ["1.", "Роуз", "Лесли"]
    assert text[3].strip() == rose["links"]["ru"]
    assert text[4].strip() == (f"photo: {credit['author']}, {credit['licence']} "
                               f"<{credit['licence_url']}>, {credit['source']}")

    bare = _without_names_links_and_credits(tmp_path / "bare")
    [old] = map(json.loads, _run("--json", "--index", str(bare), sample).stdout.splitlines())
    assert set(old["faces"][0]["matches"][0]) == {"id", "name", "distance", "similarity",
                                                  "themself"}
    assert old["faces"][0]["matches"][0]["name"] == "Rose Leslie"
    old_text = _run("--index", str(bare), "--top", "1", "--language", "ru", sample).stdout
    assert old_text.splitlines()[2].split()[:3] == ["1.", "Rose", "Leslie"]
    assert len(old_text.splitlines()) == 3  # no link, no credit line


def test_top_k_comes_from_the_settings_unless_given():
    sample = str(REPO / "demo" / "samples" / "multi_obama_and_biden.jpg")
    for args, top_k, per_face in (([], "5", 5), (["--top", "2"], "5", 2), ([], None, 3)):
        env = {k: v for k, v in os.environ.items() if k != "LOOKALIKE_TOP_K"}
        if top_k is not None:
            env["LOOKALIKE_TOP_K"] = top_k
        run = _run(sample, "--json", *args, env=env)
        assert run.returncode == 0, run.stderr
        faces = json.loads(run.stdout)["faces"]
        assert len(faces) == 3 and all(len(f["matches"]) == per_face for f in faces), args
