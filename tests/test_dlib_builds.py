"""The dlib build benchmark: its photo crops, its descriptor comparison and a real worker."""

from __future__ import annotations

import io
import sys
import tempfile
from pathlib import Path

from PIL import Image

from benchmarks.dlib_builds import (
    DEFAULT_PHOTO,
    SIZES,
    STAGES,
    Worker,
    crop_resize,
    max_abs_difference,
)
from shared.models import packaged_model_dir


def test_crop_resize_gives_the_exact_size_of_a_portrait_photo(tmp_path: Path) -> None:
    photo = tmp_path / "portrait.png"
    Image.new("RGB", (300, 600), "red").save(photo)
    for size in SIZES:
        with Image.open(io.BytesIO(crop_resize(photo, size))) as image:
            assert image.size == size


def test_max_abs_difference_compares_faces_and_counts_other_face_counts() -> None:
    first = [[[0.0, 1.0]], [[0.5, 0.5]], []]
    other = [[[0.0, 1.25]], [[0.5, 0.5], [0.1, 0.1]], []]
    worst, compared, mismatched = max_abs_difference(first, other)
    assert (worst, compared, mismatched) == (0.25, 1, 1)


def test_a_worker_times_every_stage_of_both_sizes_with_this_dlib(faces_dir: Path) -> None:
    assert DEFAULT_PHOTO.resolve().is_relative_to(faces_dir.resolve()), DEFAULT_PHOTO
    with tempfile.TemporaryDirectory() as tmp:
        photos = Path(tmp)
        for width, height in SIZES:
            (photos / f"{width}x{height}.jpg").write_bytes(
                crop_resize(DEFAULT_PHOTO, (width, height)))
        worker = Worker(sys.executable, ["--models", str(packaged_model_dir()),
                                         "--photos-dir", str(photos)])
        try:
            assert worker.info["version"].startswith("20.")
            assert worker.ask("warm") == "ok"
            times = worker.ask("round")
        finally:
            worker.close()
    assert set(times) == {f"{w}x{h}/{stage}" for w, h in SIZES for stage in STAGES}
    assert all(value > 0 for value in times.values())
