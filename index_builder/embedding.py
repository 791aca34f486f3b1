"""The per-photo step: photo key in, one row out (descriptor or rejection reason).

`embed_photos` is the one function every engine runs (through `fugue.transform`) on a
pandas partition of `photo`, `celebrity` rows. It reads each photo from the photos store
itself, hashes its bytes and looks the hash up in the embedding cache; only photos not
seen before with the same models, jitters and filter are decoded and described. Results
(rejections too) go to the cache, with a small crop of the face for the bot's replies.

Cache layout, below the cache root:

    <namespace>/<sha256[:2]>/<sha256>.json   {"status", "reason", "descriptor" (base64
                                              float32), "eye_distance", "face_width"}
    <namespace>/<sha256[:2]>/<sha256>.jpg    the face crop (accepted photos)

`namespace` hashes everything that changes a result (model files, jitters, detection and
filter settings), so changing any of them starts a fresh cache instead of mixing results.
The JSON is written after the crop: an entry that exists is complete.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from index_builder.quality import QualityFilter, choose_face
from shared.crops import TILE
from shared.detection import BUILDER_DETECTION, DetectionSettings
from shared.images import ImageError, ImageTooLarge, decode_image, encode_jpeg
from shared.instance import LazyMap
from shared.models import (
    FaceModels,
    ModelFiles,
    load_models,
    model_identity,
    packaged_model_dir,
)
from shared.storage import NotFound, Store, StoreError, open_store

CACHE_FORMAT = 2  # 2: detection on grayscale (other scores, same faces)
# Row schema of the per-photo step (Fugue schema syntax); `descriptor` is 128 float32.
SCHEMA = ("photo:str,celebrity:str,sha256:str,status:str,reason:str,from_cache:bool,"
          "descriptor:binary,eye_distance:double,face_width:long")
COLUMNS = [part.split(":")[0] for part in SCHEMA.split(",")]
OK, REJECTED, FAILED = "ok", "rejected", "failed"
UNREADABLE, TOO_LARGE, MISSING, STORAGE_ERROR, PROCESSING_ERROR = (
    "unreadable", "too_large", "missing", "storage_error", "processing_error")
_T = TypeVar("_T")


@dataclass(frozen=True)
class EmbedOptions:
    photos_uri: str
    cache_uri: str
    jitters: int = 0
    rule: QualityFilter = field(default_factory=QualityFilter)
    detection: DetectionSettings = BUILDER_DETECTION
    attempts: int = 3  # reads and writes of storage, with backoff between them

    def to_json(self) -> str:
        """Plain text, so engines can ship the options to their workers."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EmbedOptions:
        raw = json.loads(text)
        return cls(**{**raw, "rule": QualityFilter(**raw["rule"]),
                      "detection": DetectionSettings(**raw["detection"])})

    def namespace(self) -> str:
        """What a cached result depends on, as a short hash."""
        detection = asdict(self.detection)
        # The coarse pass, the threshold and the large-image rule became options later:
        # left out at the builder's own values, so the caches of earlier builds stay valid.
        for name in ("coarse_face_fraction", "detect_threshold", "large_image_side",
                     "large_face_fraction"):
            if detection[name] == getattr(BUILDER_DETECTION, name):
                del detection[name]
        key = {"format": CACHE_FORMAT, "models": model_identity(), "jitters": self.jitters,
               "rule": asdict(self.rule), **detection, "crop": TILE}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def cache_key(namespace: str, digest: str, suffix: str) -> str:
    return f"{namespace}/{digest[:2]}/{digest}.{suffix}"


def _retrying(action: Callable[[], _T], attempts: int) -> _T:
    """Run a storage call, retrying `StoreError` (transient) with exponential backoff."""
    for attempt in range(attempts):
        try:
            return action()
        except StoreError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")


# One store object per URI and worker process, reused across partitions.
stores: LazyMap[str, Store] = LazyMap()


def _store(uri: str) -> Store:
    return stores.get(uri, lambda: open_store(uri))


def _row(photo: str, celebrity: str, digest: str, status: str, reason: str = "",
         from_cache: bool = False, descriptor: bytes | None = None, eye_distance: float = 0.0,
         face_width: int = 0) -> dict[str, Any]:
    return {"photo": photo, "celebrity": celebrity, "sha256": digest, "status": status,
            "reason": reason, "from_cache": from_cache, "descriptor": descriptor,
            "eye_distance": eye_distance, "face_width": face_width}


def photo_models(jitters: int) -> FaceModels:
    """The models for one photo. dlib's encoder keeps the random generator of its jitters
    in the object, so with jitters a shared encoder makes a descriptor depend on what the
    process described before; a fresh one (0.1 s to load) makes it depend on the photo
    only, and every engine builds the same index."""
    models = load_models()
    if jitters == 0:
        return models
    import dlib

    files = ModelFiles.in_directory(packaged_model_dir())
    return replace(models, encoder=dlib.face_recognition_model_v1(str(files.descriptor)))


def describe_photo(data: bytes, options: EmbedOptions) -> tuple[dict[str, Any], bytes | None]:
    """The cache entry of one photo's bytes, and its face crop as JPEG when accepted."""
    from shared.crops import face_crop
    from shared.faces import find_faces

    try:
        image = decode_image(data, options.detection.max_image_pixels)
    except ImageTooLarge:
        return {"status": REJECTED, "reason": TOO_LARGE}, None
    except ImageError:
        return {"status": REJECTED, "reason": UNREADABLE}, None
    scan = find_faces(image, photo_models(options.jitters), jitters=options.jitters,
                      detection=options.detection)
    face, reason = choose_face(scan.faces, options.rule)
    if face is None:
        return {"status": REJECTED, "reason": reason}, None
    crop = encode_jpeg(face_crop(scan.image, face.box))
    entry = {"status": OK, "reason": "",
             "descriptor": base64.b64encode(face.descriptor.astype("<f4").tobytes()).decode(),
             "eye_distance": face.quality.eye_distance, "face_width": face.quality.width}
    return entry, crop


def embed_one(photo: str, celebrity: str, options: EmbedOptions, namespace: str) -> dict[str, Any]:
    photos, cache = _store(options.photos_uri), _store(options.cache_uri)
    try:
        data = _retrying(lambda: photos.read(photo), options.attempts)
    except NotFound:
        return _row(photo, celebrity, "", REJECTED, MISSING)  # deleted since it was listed
    except StoreError:
        return _row(photo, celebrity, "", FAILED, STORAGE_ERROR)
    digest = hashlib.sha256(data).hexdigest()
    entry_key = cache_key(namespace, digest, "json")
    from_cache = True
    try:
        entry = json.loads(_retrying(lambda: cache.read(entry_key), options.attempts))
    except (NotFound, StoreError, ValueError):
        from_cache = False
        try:
            entry, crop = describe_photo(data, options)
        except Exception as exc:  # one odd photo must not stop a million-photo build
            return _row(photo, celebrity, digest, FAILED,
                        f"{PROCESSING_ERROR}: {type(exc).__name__}: {exc}"[:300])
        try:
            if crop is not None:
                _retrying(lambda: cache.write(cache_key(namespace, digest, "jpg"), crop,
                                              content_type="image/jpeg"), options.attempts)
            _retrying(lambda: cache.write(entry_key, json.dumps(entry).encode(),
                                          content_type="application/json"), options.attempts)
        except StoreError:
            # The crop is needed later for accepted photos; without it the photo is retried
            # on the next build rather than indexed without its picture.
            if entry["status"] == OK:
                return _row(photo, celebrity, digest, FAILED, STORAGE_ERROR)
    if entry["status"] != OK:
        return _row(photo, celebrity, digest, REJECTED, entry["reason"], from_cache)
    return _row(photo, celebrity, digest, OK, "", from_cache,
                base64.b64decode(entry["descriptor"]), float(entry["eye_distance"]),
                int(entry["face_width"]))


def embed_photos(df: pd.DataFrame, options: str) -> pd.DataFrame:
    """The per-photo step on one partition: `photo`, `celebrity` rows in, `SCHEMA` rows out.

    `options` is `EmbedOptions.to_json()`: Fugue passes plain values to workers.
    """
    parsed = EmbedOptions.from_json(options)
    namespace = parsed.namespace()
    rows = [embed_one(str(photo), str(celebrity), parsed, namespace)
            for photo, celebrity in zip(df["photo"], df["celebrity"], strict=True)]
    return pd.DataFrame(rows, columns=COLUMNS)


def descriptor_array(values: list[bytes]) -> np.ndarray:
    """Stack the `descriptor` column into a float32 (n, 128) array."""
    return np.stack([np.frombuffer(v, dtype="<f4") for v in values]).astype(np.float32)
