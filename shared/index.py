"""The celebrity index: descriptors in an nmslib HNSW graph, each pointing to a celebrity.

A celebrity may have several photos (entries); a query returns each celebrity at most
once, at the distance of their closest entry. HNSW gives candidates fast, each with its
exact (squared) Euclidean distance, computed from the float32 vectors the graph stores:
the graph's approximation decides which entries are found, never the distances reported.

On disk an index is a directory:

    manifest.json      what it is and how it was built (see shared/manifest.py); its
                       `files` name the data files below, with their hashes
    hnsw.bin           the nmslib graph, with a copy of the vectors (nmslib's layout
                       for dense vectors in l2 space keeps them beside each node's links)
    descriptors.npy    float32 (entries, 128)
    entries.npy        int32 (entries,): row of each entry's celebrity
    celebrities.jsonl  celebrity records (id, name, alias, photo, any extra fields), one
    celebrities.rows.npy   per line, and where each line starts (shared/celebrities.py;
                       indexes written before hold them as one `celebrities.json`)
    photos/            optional pictures shown in replies, referenced by `photo`

Loading maps `descriptors.npy` and `celebrities.jsonl` instead of reading them (a
worker's /tmp is memory, so a mapped file costs nothing twice) and gives nmslib no copy
of the vectors: its graph file holds them.

An index builder output root holds `versions/<name>/` directories and a pointer file
`current.json` (shared/index_versions.py); `load` follows the pointer.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.celebrities import FILES as CELEBRITY_FILES
from shared.celebrities import LEGACY_FILE as LEGACY_CELEBRITY_FILE
from shared.celebrities import Celebrity as Celebrity
from shared.celebrities import read_celebrities, sexes_of, write_celebrities
from shared.config import SimilarityMethod
from shared.hnsw_file import graph_vectors
from shared.index_versions import IndexMismatch, resolve_index_dir
from shared.manifest import Manifest
from shared.models import file_sha256
from shared.similarity import (
    CALIBRATED,
    SEED,
    Calibration,
    DistanceStats,
    Scorer,
    calibration_from,
    distance_stats,
)

DESCRIPTOR_SIZE = 128
# The one source of the HNSW settings (the index builder uses them too). M and
# efConstruction from benchmarks/hnsw_params.py (docs/index_builder.md); efSearch 100 from
# benchmarks/index_query.py (docs/performance.md): the recall of 200 at half its time.
DEFAULT_HNSW = {"space": "l2", "M": 32, "efConstruction": 200, "efSearch": 100}
# Stranger distances of dlib's ResNet model, used when a gallery is too small to measure
# its own (fewer than two celebrities).
TYPICAL_STRANGER_DISTANCES = DistanceStats(mean=0.90, std=0.09, pairs=0)
# Entries whose nearest other celebrity calibrates the score (all of them in a smaller
# gallery); quantiles of 2,000 best matches are within a percent or two of the whole.
CALIBRATION_SAMPLE = 2000
GRAPH_FILE = "hnsw.bin"
DESCRIPTORS_FILE = "descriptors.npy"  # also inside GRAPH_FILE: a worker does without it
_ARRAY_FILES = (GRAPH_FILE, DESCRIPTORS_FILE, "entries.npy")
# A query restricted to some celebrities (by `sex`) over-fetches graph candidates in
# proportion to the share of entries it may return; past this many it computes exact
# distances to the allowed entries instead (a few ms at 12k entries), so a rare value
# cannot make the graph search walk the whole index.
MAX_RESTRICTED_CANDIDATES = 2048

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Match:
    celebrity: Celebrity
    distance: float
    similarity: float
    themself: bool = False  # the best match is close enough to be the person themself


# Held while file descriptor 2 points at /dev/null (see `import_nmslib`).
_stderr_lock = threading.Lock()


def import_nmslib() -> Any:
    """Import nmslib (on first use: the webhook never pays for it), keeping stderr clean.

    The generic wheel writes a note about unused CPU instructions to file descriptor 2
    when it loads, from C++ where Python cannot catch it; the choice of build is
    documented in docs/performance.md, so the note goes to /dev/null. That descriptor is
    the whole process's, so while it is redirected other threads' stderr is lost too, and
    two first imports at once could leave it on /dev/null for good. Hence the lock, and
    the worker's cold start importing nmslib before it starts loading the models and the
    index on two threads (functions/worker_assets.py).
    """
    with _stderr_lock:
        if "nmslib" in sys.modules:
            return sys.modules["nmslib"]
        saved = os.dup(2)
        try:
            with open(os.devnull, "wb") as devnull:
                os.dup2(devnull.fileno(), 2)
                import nmslib
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        return nmslib


def _new_hnsw(params: dict[str, Any]) -> Any:
    nmslib = import_nmslib()
    return nmslib.init(method="hnsw", space=params.get("space", "l2"),
                       data_type=nmslib.DataType.DENSE_VECTOR)


def _data_files(manifest: Manifest) -> tuple[str, ...]:
    """The data files of an index, by the form its manifest names."""
    return _ARRAY_FILES + (CELEBRITY_FILES if CELEBRITY_FILES[0] in manifest.files
                           else (LEGACY_CELEBRITY_FILE,))


def empty_graph(manifest: Manifest) -> Any:
    """An nmslib graph ready for `loadIndex` of the manifest's saved graph.

    nmslib only counts the data points it is given before `loadIndex` (the search reads
    the vectors stored beside the links), so one-float placeholders stand in for the
    descriptors: no copy of them in nmslib's memory (half a GB at a million entries) and
    no time spent making it.
    """
    graph = _new_hnsw(manifest.hnsw)
    graph.addDataPointBatch(np.zeros((manifest.entries, 1), dtype=np.float32))
    return graph


def _load_graph(path: Path, manifest: Manifest, descriptors: np.ndarray,
                graph: Any | None = None) -> Any:
    """The saved graph (or `graph`, already loaded from it), searching the vectors its own
    file holds. That they are the same as `descriptors` is checked on one query: the
    (squared) distances it reports must be the descriptors'.
    """
    if graph is None:
        graph = empty_graph(manifest)
        graph.loadIndex(str(path), load_data=False)
    graph.setQueryTimeParams({"efSearch": manifest.hnsw.get("efSearch", 100)})
    probe = np.asarray(descriptors[0], dtype=np.float32)
    ids, distances = graph.knnQuery(probe, k=min(10, manifest.entries))
    expected = np.sum((descriptors[np.sort(ids)] - probe) ** 2, axis=1)
    if len(ids) == 0 or not np.allclose(np.sort(distances), np.sort(expected),
                                        rtol=1e-4, atol=1e-6):
        raise IndexMismatch(f"graph {path} does not hold the vectors of {DESCRIPTORS_FILE}")
    return graph


class CelebrityIndex:
    def __init__(self, directory: Path | None, manifest: Manifest, hnsw: Any,
                 descriptors: np.ndarray, entry_celebrity: np.ndarray,
                 celebrities: Sequence[Celebrity]) -> None:
        self.directory = directory
        self.manifest = manifest
        self._hnsw = hnsw
        self.descriptors = descriptors
        self.entry_celebrity = entry_celebrity
        self.celebrities = celebrities
        self._scorers: dict[tuple[SimilarityMethod, float], Scorer] = {}
        sexes = sexes_of(celebrities)
        # Per `sex` value: which celebrity rows have it, and their entries.
        self._by_sex: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for value in sorted(set(sexes.tolist()) - {""}):
            rows = sexes == value
            self._by_sex[value] = (rows, np.flatnonzero(rows[entry_celebrity]))

    def __len__(self) -> int:
        return len(self.descriptors)

    @property
    def stats(self) -> DistanceStats:
        return self.manifest.distance_stats

    # -- building -----------------------------------------------------------------------

    @classmethod
    def build(cls, descriptors: np.ndarray, entry_celebrity: Sequence[int],
              celebrities: Sequence[Celebrity], hnsw: dict[str, Any] | None = None,
              stats: DistanceStats | None = None, threads: int = 0,
              calibration: Calibration | None = None) -> CelebrityIndex:
        """Build an in-memory index; `entry_celebrity[i]` is the celebrity row of entry i.

        Without `calibration`, it is measured on the gallery itself (it needs two
        celebrities at least; with one, the index scores with the seed's formula).
        """
        descriptors = np.ascontiguousarray(descriptors, dtype=np.float32)
        entries = np.asarray(entry_celebrity, dtype=np.int32)
        celebrities = list(celebrities)
        if descriptors.ndim != 2 or descriptors.shape[1] != DESCRIPTOR_SIZE:
            raise ValueError(f"descriptors must have shape (n, {DESCRIPTOR_SIZE})")
        if len(descriptors) == 0:
            raise ValueError("an index needs at least one descriptor")
        if len(entries) != len(descriptors):
            raise ValueError("one celebrity row per descriptor is needed")
        if entries.min() < 0 or entries.max() >= len(celebrities):
            raise ValueError("entry_celebrity refers to a celebrity that is not listed")
        params = {**DEFAULT_HNSW, **(hnsw or {})}
        if stats is None:
            stats = (distance_stats(descriptors, entries) if len(set(entries.tolist())) > 1
                     else TYPICAL_STRANGER_DISTANCES)
        graph = _new_hnsw(params)
        graph.addDataPointBatch(descriptors)
        graph.createIndex({"M": params["M"], "efConstruction": params["efConstruction"],
                           "indexThreadQty": threads or os.cpu_count() or 1, "post": 0},
                          print_progress=False)
        graph.setQueryTimeParams({"efSearch": params["efSearch"]})
        manifest = Manifest(entries=len(descriptors), celebrities=len(celebrities),
                            hnsw=params, distance_stats=stats, files={},
                            photos=sum(1 for c in celebrities if c.photo),
                            calibration=calibration)
        index = cls(None, manifest, graph, descriptors, entries, celebrities)
        if calibration is None and len(set(entries.tolist())) > 1:
            manifest.calibration = calibration_from(index.strangers_best_distances())
        return index

    def save(self, directory: str | Path) -> Path:
        """Write the index files and then the manifest (last, with the files' hashes)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._hnsw.saveIndex(str(directory / GRAPH_FILE), save_data=False)
        np.save(directory / DESCRIPTORS_FILE, self.descriptors)
        np.save(directory / "entries.npy", self.entry_celebrity)
        names = _ARRAY_FILES + write_celebrities(directory, self.celebrities)
        (directory / LEGACY_CELEBRITY_FILE).unlink(missing_ok=True)  # saved over an old form
        self.manifest.files = {name: file_sha256(directory / name) for name in names}
        self.manifest.write(directory)
        self.directory = directory
        return directory

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path, *, verify_files: bool = True, graph: Any | None = None,
             hashes: Mapping[str, str] | None = None) -> CelebrityIndex:
        """Load an index directory (or an output root, through its pointer).

        `graph` is its graph when already loaded (while the file downloaded,
        shared/graph_stream.py) and `hashes` the SHA-256 of files already hashed then.

        Without `descriptors.npy` (a worker does not download it) the descriptors are
        read from the graph file, which holds them too (shared/hnsw_file.py). The files'
        hashes are checked while they load, on other threads (hashing releases the GIL,
        and so does nmslib's loading): at a million entries each takes about a second.

        Raises `IndexMismatch` with a readable reason for a wrong schema or models,
        missing files, hash mismatches or inconsistent counts.
        """
        directory = resolve_index_dir(path)
        manifest = Manifest.read(directory)
        manifest.check_models()
        names = [name for name in _data_files(manifest)
                 if name != DESCRIPTORS_FILE or (directory / name).is_file()]
        for name in names:
            if not (directory / name).is_file():
                raise IndexMismatch(f"index file {directory / name} is missing")
        with ThreadPoolExecutor(max(1, len(names))) as pool:
            known = dict(hashes or {})
            digests = {name: pool.submit(file_sha256, directory / name)
                       for name in (names if verify_files else []) if name not in known}
            try:
                index, failure = cls._load_files(directory, manifest, graph), None
            except IndexMismatch as exc:  # a wrong hash, if any, is the better reason
                failure = exc
            found = {**known, **{name: digest.result() for name, digest in digests.items()}}
            for name, digest in found.items():
                if manifest.files.get(name) != digest:
                    raise IndexMismatch(f"index file {directory / name} does not match its "
                                        "manifest hash (partial copy or a file from another "
                                        "build)")
        if failure is not None:
            raise failure
        return index

    @classmethod
    def _load_files(cls, directory: Path, manifest: Manifest,
                    graph: Any | None) -> CelebrityIndex:
        try:
            if (directory / DESCRIPTORS_FILE).is_file():
                descriptors = np.load(directory / DESCRIPTORS_FILE, mmap_mode="r")
            else:
                descriptors = graph_vectors(directory / GRAPH_FILE, DESCRIPTOR_SIZE)
            entries = np.load(directory / "entries.npy")
            celebrities = read_celebrities(directory, manifest.files)
        except ValueError as exc:
            raise IndexMismatch(f"index at {directory} has a malformed file: {exc}") from None
        if (descriptors.shape != (manifest.entries, DESCRIPTOR_SIZE)
                or len(entries) != manifest.entries or len(celebrities) != manifest.celebrities):
            raise IndexMismatch(f"index at {directory} has counts that differ from its manifest")
        graph = _load_graph(directory / GRAPH_FILE, manifest, descriptors, graph)
        return cls(directory, manifest, graph, descriptors, entries, celebrities)

    # -- querying -----------------------------------------------------------------------

    @property
    def sexes(self) -> frozenset[str]:
        """The `sex` values the gallery records (empty when it records none)."""
        return frozenset(self._by_sex)

    def query(self, descriptor: np.ndarray, k: int = 3, floor: float = 0.01,
              method: SimilarityMethod = CALIBRATED, sex: str | None = None) -> list[Match]:
        """The k celebrities closest to `descriptor`, each once, closest first, scored with
        `method` (see `scorer`); only those whose `sex` is `sex`, when given. Only the
        first can be the person themself."""
        scorer = self.scorer(method, floor)
        return [Match(self.celebrities[row], distance, scorer.similarity(distance),
                      themself=rank == 0 and scorer.themself(distance))
                for rank, (row, distance) in enumerate(self.nearest(descriptor, k, sex))]

    def scorer(self, method: SimilarityMethod = CALIBRATED, floor: float = 0.01) -> Scorer:
        """The scoring of this index for `method`; an index without calibration (built
        before it existed, or of one celebrity) scores with the seed's formula."""
        key: tuple[SimilarityMethod, float] = (method, floor)
        if key not in self._scorers:
            calibration = self.manifest.calibration
            effective: SimilarityMethod = method
            if method == CALIBRATED and calibration is None:
                effective = SEED
                log.warning("index %s has no calibration: similarity uses the seed's formula "
                            "(rebuild the index to calibrate it)", self.directory or "in memory")
            self._scorers[key] = Scorer(effective, self.stats, calibration, floor)
        return self._scorers[key]

    def nearest(self, descriptor: np.ndarray, k: int,
                sex: str | None = None) -> list[tuple[int, float]]:
        """(celebrity row, distance) of the k celebrities closest to `descriptor` (of
        `sex`, when given)."""
        query = np.asarray(descriptor, dtype=np.float32).reshape(DESCRIPTOR_SIZE)
        total = len(self.descriptors)
        allowed: np.ndarray | None = None
        wanted = max(4 * k, 16)
        if sex is not None:
            if sex not in self._by_sex:
                return []
            allowed, entries = self._by_sex[sex]
            # As many candidates as make 4k allowed ones on average.
            wanted = -(-wanted * total // len(entries))
            if wanted > MAX_RESTRICTED_CANDIDATES:
                return sorted(self._exact_best(query, entries, k).items(),
                              key=lambda item: item[1])
        wanted = min(total, wanted)
        while True:
            ids, squared = self._hnsw.knnQuery(query, k=wanted)
            ids = np.asarray(ids, dtype=np.int64)
            if allowed is not None:
                kept = allowed[self.entry_celebrity[ids]]
                ids, squared = ids[kept], squared[kept]
            best = self._closest_per_celebrity(ids, squared)
            if len(best) >= k or wanted >= total:
                break
            if allowed is not None and wanted * 4 > MAX_RESTRICTED_CANDIDATES:
                best = self._exact_best(query, self._by_sex[str(sex)][1], k)
                break
            wanted = min(total, wanted * 4)
        return sorted(best.items(), key=lambda item: item[1])[:k]

    def _closest_per_celebrity(self, ids: np.ndarray,
                               squared: np.ndarray) -> dict[int, float]:
        """Distance of each celebrity row's closest entry among `ids`, from the squared
        distances the graph reported for them: reading their descriptors again would be
        scattered reads over the graph file (a GB at a million entries) for the same
        numbers."""
        distances = np.sqrt(np.asarray(squared, dtype=np.float64))
        best: dict[int, float] = {}
        for entry, distance in zip(ids.tolist(), distances.tolist(), strict=True):
            row = int(self.entry_celebrity[entry])
            if distance < best.get(row, np.inf):
                best[row] = distance
        return best

    def _exact_best(self, query: np.ndarray, entries: np.ndarray, k: int) -> dict[int, float]:
        """The k closest celebrities among `entries` by exact search (no graph)."""
        distances = np.linalg.norm(self.descriptors[entries] - query, axis=1)
        order = np.argsort(distances, kind="stable")
        best: dict[int, float] = {}
        for position in order.tolist():
            row = int(self.entry_celebrity[entries[position]])
            if row not in best:
                best[row] = float(distances[position])
                if len(best) >= k:
                    break
        return best

    def strangers_best_distances(self, sample: int = CALIBRATION_SAMPLE,
                                 seed: int = 0) -> np.ndarray:
        """Each sampled entry's distance to the nearest *other* celebrity: the best match of
        someone who is not in the gallery, at this gallery's size (less one)."""
        total = len(self.descriptors)
        rows = np.arange(total) if total <= sample else np.sort(
            np.random.default_rng(seed).choice(total, size=sample, replace=False))
        best = []
        for row in rows.tolist():
            own = int(self.entry_celebrity[row])
            for celebrity, distance in self.nearest(self.descriptors[row], 2):
                if celebrity != own:
                    best.append(distance)
                    break
        return np.asarray(best, dtype=np.float64)

    def set_ef_search(self, ef_search: int) -> None:
        """Change the graph's search breadth in place (benchmarks compare settings on one
        build; the manifest keeps the value the index was built with)."""
        self._hnsw.setQueryTimeParams({"efSearch": int(ef_search)})

    def graph_neighbours(self, descriptor: np.ndarray, k: int) -> np.ndarray:
        """Entry rows the HNSW graph returns for `descriptor`, nearest first (no grouping;
        the index builder measures the graph's recall with it)."""
        query = np.asarray(descriptor, dtype=np.float32).reshape(DESCRIPTOR_SIZE)
        ids, _ = self._hnsw.knnQuery(query, k=min(k, len(self.descriptors)))
        return np.asarray(ids, dtype=np.int64)

    def photo_path(self, celebrity: Celebrity) -> Path | None:
        """Local path of the celebrity's picture, if the index has one."""
        if not celebrity.photo or self.directory is None:
            return None
        path = self.directory / celebrity.photo
        return path if path.is_file() else None

