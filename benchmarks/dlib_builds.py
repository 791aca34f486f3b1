"""Compare dlib builds on the per-photo path: one worker process per build, run alternately.

    python -m benchmarks.dlib_builds [--python PY ...] [--repeat N] [--photo PATH]

Each `--python` is an interpreter whose environment holds one dlib build, plus numpy and
Pillow (default: this interpreter, and /tmp/venv-dlib-blas/bin/python when it exists).
Every worker runs on one thread (OPENBLAS_NUM_THREADS=1, OMP_NUM_THREADS=1) pinned to
CPU 0 with `taskset` when available. The workers take turns, one round of every stage
each, so a busy machine slows all builds alike; compare medians and ratios from one run.

Stages, on a 640×480 and a 1280×960 crop of the photo: the HOG detector at upsample 0
and 1 on the full image, the 5 landmarks, the 128-d descriptor (no jitter) and the
whole `shared.faces.find_faces`. Then each build describes the faces of the demo
samples and of the labelled collection, and the largest per-component difference from
the first build is printed: an index built with one build must stay valid for another.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
BLAS_VENV_PYTHON = Path("/tmp/venv-dlib-blas/bin/python")
LABELLED = REPO_ROOT.parent / "shared" / "faces" / "labelled"
# A 4:3 photo with one face (a third of the width), so the crops lose nothing.
DEFAULT_PHOTO = LABELLED / "deepface_p01" / "img2.jpg"
if not DEFAULT_PHOTO.exists():
    DEFAULT_PHOTO = REPO_ROOT / "demo" / "samples" / "Rose_Leslie_fr_img2.jpg"
SIZES = ((640, 480), (1280, 960))
STAGES = ("detect_up0", "detect_up1", "landmarks", "descriptor", "find_faces")
ONE_THREAD = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- parent: prepares photos, drives the workers, prints the table -----------------------


def crop_resize(path: Path, size: tuple[int, int]) -> bytes:
    """The photo centre-cropped to the aspect of `size`, resized to it, as JPEG."""
    from PIL import Image

    with Image.open(path) as image:
        image = image.convert("RGB")
        width, height = size
        crop_w = min(image.width, round(image.height * width / height))
        crop_h = min(image.height, round(image.width * height / width))
        left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
        image = image.crop((left, top, left + crop_w, top + crop_h))
        image = image.resize(size, Image.LANCZOS)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()


def check_photos() -> list[Path]:
    photos = sorted((REPO_ROOT / "demo" / "samples").glob("*.jpg"))
    if LABELLED.is_dir():
        photos += sorted(p for p in LABELLED.rglob("*")
                         if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    return photos


class Worker:
    """One build's worker process, answering one JSON line per command."""

    def __init__(self, python: str, args: list[str]) -> None:
        command = [python, "-m", "benchmarks.dlib_builds", "--worker", *args]
        if shutil.which("taskset"):
            command = ["taskset", "-c", "0", *command]
        env = {**os.environ, **ONE_THREAD, "PYTHONPATH": str(REPO_ROOT)}
        env.pop("LD_LIBRARY_PATH", None)
        self.python = python
        self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.info = self.ask("info")

    def ask(self, command: str) -> Any:
        assert self.process.stdin and self.process.stdout
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.python} exited with {self.process.wait()}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=30)


def default_pythons() -> list[str]:
    pythons = [sys.executable]
    if BLAS_VENV_PYTHON.exists():
        pythons.append(str(BLAS_VENV_PYTHON))
    return pythons


def max_abs_difference(first: list[list[list[float]]],
                       other: list[list[list[float]]]) -> tuple[float, int, int]:
    """Largest per-component difference over faces found by both builds, and face counts."""
    import numpy as np

    worst, compared, mismatched = 0.0, 0, 0
    for faces_a, faces_b in zip(first, other, strict=True):
        if len(faces_a) != len(faces_b):
            mismatched += 1
            continue
        for a, b in zip(faces_a, faces_b, strict=True):
            worst = max(worst, float(np.max(np.abs(np.asarray(a) - np.asarray(b)))))
            compared += 1
    return worst, compared, mismatched


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", action="append", help="interpreter of one build")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", help=argparse.SUPPRESS)
    parser.add_argument("--photos-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        serve(Path(args.models), Path(args.photos_dir))
        return

    from shared.models import packaged_model_dir

    pythons = args.python or default_pythons()
    with tempfile.TemporaryDirectory(prefix="dlib-builds-") as tmp:
        photos_dir = Path(tmp)
        for width, height in SIZES:
            (photos_dir / f"{width}x{height}.jpg").write_bytes(crop_resize(args.photo,
                                                                           (width, height)))
        (photos_dir / "check.json").write_text(json.dumps([str(p) for p in check_photos()]))
        worker_args = ["--models", str(packaged_model_dir()), "--photos-dir", str(photos_dir)]
        workers = [Worker(python, worker_args) for python in pythons]
        try:
            run(workers, args.repeat, args.photo)
        finally:
            for worker in workers:
                worker.close()


def run(workers: list[Worker], repeat: int, photo: Path) -> None:
    for worker in workers:
        worker.ask("warm")
    samples: list[dict[str, list[float]]] = [{} for _ in workers]
    for _ in range(repeat):
        for worker, sample in zip(workers, samples, strict=True):
            for key, value in worker.ask("round").items():
                sample.setdefault(key, []).append(value)

    print(f"photo: {photo.name}; {repeat} alternating rounds, medians in ms, one thread"
          f"{' on CPU 0' if shutil.which('taskset') else ''}")
    for index, worker in enumerate(workers):
        print(f"  build {index}: {worker.info['label']} ({worker.python}) "
              f"dlib {worker.info['version']}, BLAS {worker.info['blas']}, "
              f"AVX {worker.info['avx']}")
    header = f"{'size':<10}{'stage':<13}" + "".join(f"{'build ' + str(i):>10}" for i in
                                                     range(len(workers)))
    if len(workers) > 1:
        header += "".join(f"{'0/' + str(i):>8}" for i in range(1, len(workers)))
    print(header)
    for width, height in SIZES:
        for stage in STAGES:
            key = f"{width}x{height}/{stage}"
            medians = [statistics.median(sample[key]) for sample in samples]
            line = f"{f'{width}x{height}':<10}{stage:<13}" + "".join(f"{m:>10.1f}" for m in medians)
            line += "".join(f"{medians[0] / m:>8.2f}" for m in medians[1:])
            print(line)

    descriptors = [worker.ask("describe") for worker in workers]
    faces = sum(len(f) for f in descriptors[0])
    print(f"descriptor check: {len(descriptors[0])} photos, {faces} faces (build 0)")
    for index, other in enumerate(descriptors[1:], start=1):
        worst, compared, mismatched = max_abs_difference(descriptors[0], other)
        print(f"  build {index} vs build 0: max |difference| per component {worst:.2e} "
              f"over {compared} faces; photos with another face count: {mismatched}")


# --- worker: runs inside one build's environment ---------------------------------------------


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def stage_times(models: Any, image: Any, rect: Any, shape: Any) -> dict[str, float]:
    """One timing of every stage on one image, in the order of STAGES."""
    from shared.faces import find_faces

    return {
        "detect_up0": timed(lambda: models.detector(image, 0)),
        "detect_up1": timed(lambda: models.detector(image, 1)),
        "landmarks": timed(lambda: models.predictor(image, rect)),
        "descriptor": timed(lambda: models.encoder.compute_face_descriptor(image, shape, 0)),
        "find_faces": timed(lambda: find_faces(image, models)),
    }


def serve(models_dir: Path, photos_dir: Path) -> None:
    """Answer commands from stdin, one JSON line each, until stdin closes."""
    for command in commands():
        answer = handle(command, models_dir, photos_dir)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def commands() -> Iterator[str]:
    for line in sys.stdin:
        yield line.strip()


_state: dict[str, Any] = {}


def handle(command: str, models_dir: Path, photos_dir: Path) -> Any:
    from shared.cpu import choose_blas_kernels

    choose_blas_kernels()  # as the worker does, before dlib loads its OpenBLAS
    import dlib
    import numpy as np

    from shared import faces
    from shared.images import decode_image
    from shared.models import ModelFiles, load_models

    if command == "info":
        blas = bool(getattr(dlib, "DLIB_USE_BLAS", False))
        avx = bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False))
        return {"version": dlib.__version__, "blas": blas, "avx": avx,
                "label": installed_distribution() or "dlib"}
    models = _state.get("models")
    if models is None:
        models = _state["models"] = load_models(ModelFiles.in_directory(models_dir))
    if command == "warm":
        for width, height in SIZES:
            data = (photos_dir / f"{width}x{height}.jpg").read_bytes()
            image = decode_image(data)
            scan = faces.find_faces(image, models)
            if not scan.faces:
                raise SystemExit(f"no face in the {width}x{height} photo")
            face = scan.faces[0]
            box = face.box
            rect = dlib.rectangle(box[0], box[1], box[2] - 1, box[3] - 1)
            shape = models.predictor(image, rect)
            _state[(width, height)] = (image, rect, shape)
        return "ok"
    if command == "round":
        out: dict[str, float] = {}
        for width, height in SIZES:
            image, rect, shape = _state[(width, height)]
            for stage, elapsed in stage_times(models, image, rect, shape).items():
                out[f"{width}x{height}/{stage}"] = elapsed
        return out
    if command == "describe":
        result = []
        for path in json.loads((photos_dir / "check.json").read_text()):
            scan = faces.find_faces(decode_image(Path(path).read_bytes()), models)
            result.append([np.asarray(f.descriptor, dtype=np.float64).tolist()
                           for f in scan.faces])
        return result
    raise SystemExit(f"unknown command {command!r}")


def installed_distribution() -> str | None:
    """The installed distribution whose files include the loaded dlib extension.

    dlib-bin and a dlib wheel install the same module names, so the extension's hash is
    compared with each distribution's record.
    """
    import base64
    import hashlib
    from importlib import metadata

    import _dlib_pybind11

    path = Path(_dlib_pybind11.__file__)
    digest = base64.urlsafe_b64encode(hashlib.sha256(path.read_bytes()).digest())
    for name in ("dlib-bin", "dlib"):
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            continue
        for file in files:
            if file.name == path.name and file.hash and \
                    file.hash.value == digest.decode().rstrip("="):
                return f"{name} {metadata.version(name)}"
    return None


if __name__ == "__main__":
    main()
