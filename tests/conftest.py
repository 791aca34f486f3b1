"""Shared test fixtures: the real face photos beside the repository and the dlib models."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.cpu import choose_blas_kernels  # noqa: E402  (the repository is on the path now)

# Before any test module imports dlib (test_detector_file.py does at the top), as the
# entry points do: see shared/cpu.py.
choose_blas_kernels()

FACES = Path(os.environ.get("LOOKALIKE_FACES_DIR", REPO.parent / "shared" / "faces"))



def shell_script(path: Path, body: str) -> Path:
    """An executable bash script at `path` (its folder made): a stand-in for a program."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | 0o111)
    return path

@pytest.fixture(scope="session")
def faces_dir() -> Path:
    """`../shared/faces`, the project's face photos beside the repository (README, "Two
    names"): required in CI, skipped (with the reason) elsewhere."""
    if not (FACES / "hard" / "EXPECTED.json").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the face photos are missing at {FACES}")
        pytest.skip(f"face photos not found at {FACES} (set LOOKALIKE_FACES_DIR)")
    return FACES


@pytest.fixture(scope="session")
def expected(faces_dir: Path) -> dict:
    return json.loads((faces_dir / "hard" / "EXPECTED.json").read_text())


@pytest.fixture(scope="session")
def models():
    from shared.models import load_models

    return load_models()


@pytest.fixture(scope="session")
def labelled(faces_dir: Path) -> dict[str, list[Path]]:
    """person label -> photo paths, from `labelled/<person>/`."""
    people = {}
    for person in sorted(p for p in (faces_dir / "labelled").iterdir() if p.is_dir()):
        people[person.name] = sorted(f for f in person.iterdir() if f.is_file())
    return people


@pytest.fixture(scope="session")
def gcs_emulator():
    """fake-gcs-server for the whole session, with clients in this process pointed at it."""
    from shared import storage
    from stack.emulators import start_fake_gcs

    emulator = start_fake_gcs()
    saved = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
    storage.gcs_client.reset()
    yield emulator
    emulator.stop()
    storage.gcs_client.reset()
    if saved is None:
        os.environ.pop("STORAGE_EMULATOR_HOST", None)
    else:
        os.environ["STORAGE_EMULATOR_HOST"] = saved


@pytest.fixture
def gcs_bucket(gcs_emulator) -> str:
    """A new, empty bucket in the emulator; returns its name."""
    import uuid

    from shared.storage import gcs_client

    name = f"test-{uuid.uuid4().hex[:12]}"
    gcs_client().create_bucket(name)
    return name
