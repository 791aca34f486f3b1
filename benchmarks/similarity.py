"""What the answer's percentage says: same and different people, strangers' best matches
in galleries of 18, 1,000 and 12,000 people, and the person themself (docs/similarity.md).

    python -m benchmarks.similarity [--faces ../shared/faces] [--plots docs/similarity]

Descriptors are those the bot computes: a query photo as the worker does (no jitter), a
gallery photo as the index builder does (10 jitters); they are cached in the settings'
cache directory. All distances are from a query descriptor to gallery descriptors.

- Same person / different people: every query photo against every other gallery photo,
  with the normal fit the seed's formula assumes and its Kolmogorov-Smirnov statistic.
- Leave-one-out: each photo against a gallery of all the other photos (its person's other
  photos included); how often the answer says it may be that person, or someone else.
- Strangers: each person's photos against a gallery without them. 18: the other real
  people. 1,000 and 12,000: synthetic celebrities with the measured spread
  (`SyntheticFaces`), every real photo a query. Each gallery is built by
  `CelebrityIndex.build`, which measures its own calibration, and queried with both
  formulas.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.config import REPO_ROOT, Settings
from shared.index import Celebrity, CelebrityIndex
from shared.similarity import CALIBRATED, SAME_PERSON_DISTANCE, SEED

DEFAULT_FACES = REPO_ROOT.parent / "shared" / "faces"
GALLERY_JITTERS = 10  # the index builder's default (index_builder/build.py)
SIZES = (18, 1000, 12_000)


@dataclass(frozen=True)
class Labelled:
    person: np.ndarray  # (n,) person label of each photo
    query: np.ndarray  # (n, 128) as the worker describes a photo
    gallery: np.ndarray  # (n, 128) as the index builder describes it


def labelled_descriptors(faces: Path, cache_dir: Path) -> Labelled:
    from index_builder.embedding import photo_models
    from shared.faces import find_faces
    from shared.images import decode_image
    from shared.models import load_models, model_identity

    files = sorted(f for f in (faces / "labelled").glob("*/*") if f.is_file())
    key = hashlib.sha256(json.dumps(
        [model_identity(), GALLERY_JITTERS,
         [(f.parent.name, f.name, f.stat().st_size) for f in files]], sort_keys=True).encode())
    cache = cache_dir / f"similarity-{key.hexdigest()[:16]}.npz"
    if cache.is_file():
        saved = np.load(cache)
        return Labelled(saved["person"], saved["query"], saved["gallery"])
    models, jittered = load_models(), photo_models(GALLERY_JITTERS)
    query, gallery = [], []
    for file in files:
        image = decode_image(file.read_bytes())
        query.append(find_faces(image, models).faces[0].descriptor)
        gallery.append(find_faces(image, jittered, jitters=GALLERY_JITTERS).faces[0].descriptor)
    result = Labelled(np.array([f.parent.name for f in files]), np.stack(query),
                      np.stack(gallery))
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, person=result.person, query=result.query, gallery=result.gallery)
    return result


def cross_distances(faces: Labelled) -> tuple[np.ndarray, np.ndarray]:
    """Distances from each query photo to each *other* gallery photo: same person, different."""
    distances = np.linalg.norm(faces.query[:, None].astype(np.float64)
                               - faces.gallery[None].astype(np.float64), axis=2)
    same = faces.person[:, None] == faces.person[None]
    other_photo = ~np.eye(len(faces.person), dtype=bool)
    return distances[same & other_photo], distances[~same]


def normal_cdf(x: np.ndarray, mean: float, std: float) -> np.ndarray:
    return 0.5 * np.array([math.erfc(-(v - mean) / (std * math.sqrt(2))) for v in x])


def ks_normal(values: np.ndarray) -> float:
    """Kolmogorov-Smirnov distance between `values` and the normal with their mean and std."""
    values = np.sort(values)
    fitted = normal_cdf(values, float(values.mean()), float(values.std()))
    n = len(values)
    return float(max((np.arange(1, n + 1) / n - fitted).max(),
                     (fitted - np.arange(n) / n).max()))


class SyntheticFaces:
    """Synthetic celebrities with the measured spread, in the directions real faces vary in.

    Real face descriptors vary in a few dozen directions. Distances between different
    people measured on real photos (mean m, standard deviation s) are those of a normal
    distribution isotropic in D = m^2 / (2 s^2) directions. So synthetic celebrities are
    drawn around the real faces' mean, isotropic within the D leading principal
    directions of the real descriptors, with their scale set by m; each has 1-3 photos,
    scattered about their centre by the measured same-person distance. Within those
    directions a real face and a synthetic one are alike, so a real face's nearest
    synthetic celebrity is what a newcomer's nearest celebrity would be.
    """

    def __init__(self, descriptors: np.ndarray, different: np.ndarray, same: np.ndarray) -> None:
        data = descriptors.astype(np.float64)
        self.mean = data.mean(axis=0)
        self.dimensions = round(float(different.mean()) ** 2 / (2 * float(different.std()) ** 2)
                                + 0.5)
        self.directions = np.linalg.svd(data - self.mean, full_matrices=False)[2][
            :self.dimensions]
        # |a - b| of two N(0, v I_D) points is about sqrt(2 v (D - 1/2)).
        self.noise = float(same.mean()) / math.sqrt(2 * (self.dimensions - 0.5))
        total = float(different.mean()) ** 2 / (2 * (self.dimensions - 0.5))
        self.spread = math.sqrt(total - self.noise**2)

    def sample(self, celebrities: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Descriptors and their celebrity rows."""
        rng = np.random.default_rng(seed)
        centres = rng.normal(scale=self.spread, size=(celebrities, self.dimensions))
        entries = np.repeat(np.arange(celebrities), rng.integers(1, 4, size=celebrities))
        photos = centres[entries] + rng.normal(scale=self.noise,
                                               size=(len(entries), self.dimensions))
        return (self.mean + photos @ self.directions).astype(np.float32), entries


@dataclass
class Answers:
    """The best match of each query against a gallery without its person."""

    distance: list[float]
    calibrated: list[float]
    seed: list[float]
    themself: list[bool]
    calibration_medians: list[float]  # each gallery's median stranger best match

    def add(self, index: CelebrityIndex, queries: np.ndarray) -> None:
        for descriptor in queries:
            best = index.query(descriptor, 1, method=CALIBRATED)[0]
            self.distance.append(best.distance)
            self.calibrated.append(best.similarity)
            self.seed.append(index.query(descriptor, 1, method=SEED)[0].similarity)
            self.themself.append(best.themself)
        calibration = index.manifest.calibration
        assert calibration is not None
        self.calibration_medians.append(calibration.distances[len(calibration.distances) // 2])


def strangers(faces: Labelled, size: int, model: SyntheticFaces) -> Answers:
    answers = Answers([], [], [], [], [])
    people = np.unique(faces.person)
    if size <= len(people):  # real galleries: every other person
        for held_out in people:
            rest = faces.person != held_out
            rows = np.unique(faces.person[rest], return_inverse=True)[1]
            index = CelebrityIndex.build(faces.gallery[rest], rows.tolist(),
                                         [Celebrity(str(i), str(i)) for i in range(rows.max() + 1)])
            answers.add(index, faces.query[~rest])
        return answers
    descriptors, entries = model.sample(size, seed=size)
    index = CelebrityIndex.build(descriptors, entries.tolist(),
                                 [Celebrity(str(i), str(i)) for i in range(size)])
    answers.add(index, faces.query)
    return answers


def leave_one_out(faces: Labelled) -> tuple[int, int, list[str]]:
    """Photos answered "may be <their person>", "may be <someone else>", and the others."""
    people = sorted(set(faces.person.tolist()))
    celebrities = [Celebrity(p, p) for p in people]
    rows = np.array([people.index(p) for p in faces.person])
    right = wrong = 0
    others = []
    for held_out in range(len(rows)):
        rest = np.arange(len(rows)) != held_out
        index = CelebrityIndex.build(faces.gallery[rest], rows[rest], celebrities)
        best = index.query(faces.query[held_out], 3)[0]
        if best.themself:
            right += best.celebrity.id == faces.person[held_out]
            wrong += best.celebrity.id != faces.person[held_out]
        else:
            others.append(f"{faces.person[held_out]} photo {held_out}: {best.celebrity.id} at"
                          f" {best.distance:.3f}, {best.similarity:.0%}")
    return right, wrong, others


def percent(values: list[float] | np.ndarray, q: float) -> str:
    return f"{np.percentile(values, q):.2%}"


def plot(faces: Labelled, same: np.ndarray, different: np.ndarray,
         results: dict[int, Answers], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    mean, std = float(different.mean()), float(different.std())
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(0.0, 1.3, 66)
    left.hist(same, bins, density=True, alpha=0.6, label=f"same person ({len(same)} pairs)")
    left.hist(different, bins, density=True, alpha=0.6,
              label=f"different people ({len(different)} pairs)")
    grid = np.linspace(0.4, 1.3, 200)
    left.plot(grid, np.exp(-0.5 * ((grid - mean) / std) ** 2) / (std * math.sqrt(2 * math.pi)),
              "k-", lw=1, label=f"normal fit N({mean:.3f}, {std:.3f})")
    left.axvline(SAME_PERSON_DISTANCE, color="r", ls="--", lw=1,
                 label=f"themself below {SAME_PERSON_DISTANCE}")
    left.set_xlabel("distance from a query photo to a gallery photo")
    left.set_ylabel("density")
    left.legend(fontsize=8)
    left.set_title("../shared/faces: 18 people, 75 photos")
    ordered = np.sort(different)
    levels = (np.arange(len(ordered)) + 0.5) / len(ordered)
    theory = np.array([mean + std * math.sqrt(2) * _erfinv(2 * p - 1) for p in levels])
    right.plot(theory, ordered, ".", ms=2)
    right.plot(theory[[0, -1]], theory[[0, -1]], "k-", lw=1)
    right.set_xlabel("normal quantile")
    right.set_ylabel("measured different-people distance")
    right.set_title(f"different people against the normal fit (KS {ks_normal(different):.3f})")
    figure.tight_layout()
    figure.savefig(out / "same_and_different.png", dpi=110)
    plt.close(figure)

    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    bins = np.linspace(0.45, 1.0, 56)
    for size, answers in results.items():
        left.hist(answers.distance, bins, histtype="step", lw=1.5,
                  label=f"{size:,} people: median {np.median(answers.distance):.3f}")
    left.axvline(SAME_PERSON_DISTANCE, color="r", ls="--", lw=1)
    left.set_xlabel("a stranger's best-match distance")
    left.set_ylabel("faces")
    left.legend(fontsize=8)
    left.set_title("best matches of faces not in the gallery")
    positions = np.arange(len(results))
    right.boxplot([a.seed for a in results.values()], positions=positions - 0.18, widths=0.3,
                  patch_artist=True, boxprops={"facecolor": "#f4b183"})
    right.boxplot([a.calibrated for a in results.values()], positions=positions + 0.18,
                  widths=0.3, patch_artist=True, boxprops={"facecolor": "#9dc3e6"})
    right.set_xticks(positions, [f"{size:,}" for size in results])
    right.set_xlabel("people in the gallery")
    right.set_ylabel("best match's score")
    right.set_title("their best match's score: seed (orange), calibrated (blue)")
    right.set_ylim(0, 1.02)
    figure.tight_layout()
    figure.savefig(out / "strangers.png", dpi=110)
    plt.close(figure)


def _erfinv(y: float) -> float:
    """Inverse of math.erf by Newton's method (the standard library has none)."""
    x = 0.0
    for _ in range(60):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=DEFAULT_FACES)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    parser.add_argument("--plots", type=Path, help="write the PNG plots into this folder")
    args = parser.parse_args()

    faces = labelled_descriptors(args.faces, Path(Settings.from_env().cache_dir))
    same, different = cross_distances(faces)
    print(f"{len(set(faces.person.tolist()))} people, {len(faces.person)} photos")
    print(f"same person: {len(same)} distances, mean {same.mean():.3f}, std {same.std():.3f},"
          f" max {same.max():.3f}")
    print(f"different people: {len(different)} distances, mean {different.mean():.3f},"
          f" std {different.std():.3f}, min {different.min():.3f};"
          f" Kolmogorov-Smirnov distance to its normal fit {ks_normal(different):.3f}")
    print(f"under {SAME_PERSON_DISTANCE}: {np.mean(same < SAME_PERSON_DISTANCE):.1%} of"
          f" same-person distances, {np.sum(different < SAME_PERSON_DISTANCE)} different-people")
    right, wrong, others = leave_one_out(faces)
    total = len(faces.person)
    print(f"leave-one-out (the person's other photos in the gallery): 'may be <that person>'"
          f" for {right} of {total} photos ({right / total:.1%}), 'may be <someone else>'"
          f" for {wrong}; a percentage for: {'; '.join(others) or 'none'}")
    model = SyntheticFaces(np.concatenate([faces.query, faces.gallery]), different, same)
    synthetic, synthetic_rows = model.sample(3000, seed=0)
    pairs = np.random.default_rng(0).integers(0, len(synthetic), size=(2, 20_000))
    pairs = pairs[:, synthetic_rows[pairs[0]] != synthetic_rows[pairs[1]]]
    between = np.linalg.norm(synthetic[pairs[0]] - synthetic[pairs[1]], axis=1)
    to_real = np.linalg.norm(faces.query[:, None] - synthetic[None, :500], axis=2)
    print(f"synthetic celebrities: {model.dimensions} directions; different people"
          f" {between.mean():.3f} apart, std {between.std():.3f}; real faces to them"
          f" {to_real.mean():.3f}, std {to_real.std():.3f}")
    results = {}
    print("faces not in the gallery, best match (distance; score, median / p90; themself):")
    for size in args.sizes:
        answers = results[size] = strangers(faces, size, model)
        kind = "real" if size <= len(set(faces.person.tolist())) else "synthetic"
        print(f"  {size:>6,} people ({kind}, {len(answers.distance)} faces): distance median"
              f" {np.median(answers.distance):.3f} (galleries' calibration median"
              f" {np.median(answers.calibration_medians):.3f}); calibrated"
              f" {percent(answers.calibrated, 50)} / {percent(answers.calibrated, 90)};"
              f" seed {percent(answers.seed, 50)} / {percent(answers.seed, 90)};"
              f" said themself {np.mean(answers.themself):.1%}; best match under 0.6"
              f" {np.mean(np.array(answers.distance) < 0.6):.0%}", flush=True)
    if 12_000 in results:
        answers = results[12_000]
        print(f"at 12,000: calibrated median {percent(answers.calibrated, 50)} (30-70% wanted),"
              f" p90 {percent(answers.calibrated, 90)} (under 95% wanted); seed median"
              f" {percent(answers.seed, 50)}, p10 {percent(answers.seed, 10)}")
    if args.plots:
        plot(faces, same, different, results, args.plots)
        print(f"plots written to {args.plots}")


if __name__ == "__main__":
    main()
