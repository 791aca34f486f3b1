"""The dlib model files: where they are, what they must hash to, and loading them once.

Locally the files come from the `face-recognition-models` package; the deployed worker
downloads copies from Cloud Storage and passes their paths in. Either way the files are
checked against the hashes below, so an index is never queried with other models than
the ones that built it.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.cpu import choose_blas_kernels
from shared.instance import LazyMap

DETECTOR_NAME = "dlib_hog_frontal_face_detector"
LANDMARKS_FILE = "shape_predictor_5_face_landmarks.dat"
DESCRIPTOR_FILE = "dlib_face_recognition_resnet_model_v1.dat"

# dlib's HOG frontal face detector as `get_frontal_face_detector().save()` writes it. dlib
# builds that detector by decompressing a string compiled into the library, a large part
# of a cold start; the same detector loads from this file in a fraction of that
# (docs/performance.md, "Worker cold start").
DETECTOR_FILE = Path(__file__).with_name("frontal_face_detector.svm")
DETECTOR_SHA256 = "f3f7aa833fb4a14a46fc48689f45b98d85ef72d6dfaf8bdc012b7d3c522a5426"

# sha256 of the files shipped by face-recognition-models 0.3.0.
MODEL_SHA256 = {
    LANDMARKS_FILE: "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    DESCRIPTOR_FILE: "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
}


class ModelError(Exception):
    """Model files are missing or are not the expected ones."""


@dataclass(frozen=True)
class ModelFiles:
    landmarks: Path
    descriptor: Path

    @classmethod
    def in_directory(cls, directory: str | Path) -> ModelFiles:
        directory = Path(directory)
        return cls(directory / LANDMARKS_FILE, directory / DESCRIPTOR_FILE)

    def verify(self) -> None:
        """Raise `ModelError` unless both files exist and match the known hashes."""
        for path in (self.landmarks, self.descriptor):
            if not path.is_file():
                raise ModelError(f"model file {path} is missing")
            digest = file_sha256(path)
            if digest != MODEL_SHA256[path.name]:
                raise ModelError(f"model file {path} has sha256 {digest}, expected "
                                 f"{MODEL_SHA256[path.name]}")


def packaged_model_dir() -> Path:
    """The `models/` folder of the installed face-recognition-models package.

    Found without importing the package, whose `__init__` needs `pkg_resources`.
    """
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("the face-recognition-models package is not installed "
                         "(pip install -r requirements-dev.txt), and no model directory was given")
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_identity() -> dict[str, Any]:
    """What an index records about the models that computed its descriptors."""
    return {
        "detector": DETECTOR_NAME,
        "landmarks": {"file": LANDMARKS_FILE, "sha256": MODEL_SHA256[LANDMARKS_FILE]},
        "descriptor": {"file": DESCRIPTOR_FILE, "sha256": MODEL_SHA256[DESCRIPTOR_FILE]},
    }


@dataclass(frozen=True)
class FaceModels:
    """The three dlib objects the face pipeline needs."""

    detector: Any
    predictor: Any
    encoder: Any


def frontal_face_detector(dlib: Any) -> Any:
    """dlib's frontal face detector, from the saved copy when it is intact (fast), else
    built by dlib itself (the same detector, slowly)."""
    try:
        if file_sha256(DETECTOR_FILE) == DETECTOR_SHA256:
            return dlib.fhog_object_detector(str(DETECTOR_FILE))
    except OSError:
        pass
    return dlib.get_frontal_face_detector()


# The models of each file set, loaded once per process.
loaded: LazyMap[ModelFiles, FaceModels] = LazyMap()


def load_models(files: ModelFiles | None = None, *, verify: bool = True) -> FaceModels:
    """Load (once per process and file set) the detector, landmark and descriptor models;
    `verify` checks the files' hashes first."""
    chosen = files or ModelFiles.in_directory(packaged_model_dir())
    return loaded.get(chosen, lambda: _load(chosen, verify))


def _load(files: ModelFiles, verify: bool) -> FaceModels:
    if verify:
        files.verify()
    choose_blas_kernels()  # before dlib loads its OpenBLAS
    import dlib  # heavy: imported only when the models are needed

    return FaceModels(
        detector=frontal_face_detector(dlib),
        predictor=dlib.shape_predictor(str(files.landmarks)),
        encoder=dlib.face_recognition_model_v1(str(files.descriptor)),
    )
