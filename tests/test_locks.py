"""The lock files in locks/ agree with the direct requirements, offline.

`make lock` writes them with uv from requirements-dev.txt (locks/dev.txt, what make and
CI install) and from requirements.txt with locks/<function>.in (what each deployed
function installs). These tests fail when a requirements file changed without a
`make lock`, and when a function imports a package its lock does not install.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "locks"
FUNCTIONS = ("webhook", "worker")


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked(lock: Path) -> dict[str, tuple[str, list[str]]]:
    """{project: (version, hashes)} of a lock file."""
    entries: dict[str, tuple[str, list[str]]] = {}
    current = None
    for line in lock.read_text().splitlines():
        stripped = line.strip().removesuffix("\\").strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("--hash=sha256:"):
            assert current is not None, line
            entries[current][1].append(stripped.removeprefix("--hash=sha256:"))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;]+)(\s*;.*)?", stripped)
        assert match, f"{lock.name}: not a pinned requirement: {line!r}"
        current = normalized(match[1])
        entries[current] = (match[3], [])
    return entries


def direct(path: Path) -> dict[str, str]:
    """{project: version} of a requirements file, following -r includes."""
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        if line.startswith("-r "):
            pins.update(direct(path.parent / line[3:].strip()))
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", line)
        assert match, f"{path.name}: pin every direct requirement with ==: {line!r}"
        pins[normalized(match[1])] = match[3]
    return pins


def names(path: Path) -> set[str]:
    return {normalized(line.split("#")[0].strip()) for line in path.read_text().splitlines()
            if line.split("#")[0].strip()}


def stale(what: str) -> str:
    return f"{what}: run `make lock` and commit locks/"


def test_every_locked_package_is_pinned_with_hashes():
    for lock in sorted(LOCKS.glob("*.txt")):
        entries = locked(lock)
        assert entries, lock
        for project, (_, hashes) in entries.items():
            assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), (
                lock.name, project)
        assert "make lock" in lock.read_text().splitlines()[1], lock.name


def test_dev_lock_holds_requirements_dev_at_their_versions():
    entries = locked(LOCKS / "dev.txt")
    for project, version in direct(REPO / "requirements-dev.txt").items():
        assert project in entries, stale(f"{project} is not in locks/dev.txt")
        assert entries[project][0] == version, stale(
            f"{project} {version} in requirements, {entries[project][0]} in locks/dev.txt")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_lock_holds_its_direct_requirements(function):
    pins = direct(REPO / "requirements.txt")
    wanted = names(LOCKS / f"{function}.in")
    assert wanted <= set(pins), f"locks/{function}.in names what requirements.txt does not pin"
    entries = locked(LOCKS / f"{function}.txt")
    for project in wanted:
        assert project in entries, stale(f"{project} is not in locks/{function}.txt")
        assert entries[project][0] == pins[project], stale(f"{project} in locks/{function}.txt")
    # CI tests the versions the functions run: each function's lock is part of dev's.
    dev = locked(LOCKS / "dev.txt")
    for project, (version, _) in entries.items():
        assert project in dev and dev[project][0] == version, stale(
            f"{project} {version} in locks/{function}.txt, not in locks/dev.txt")
    # Every package requirements.txt pins is installed by one function or the other.
    if function == FUNCTIONS[-1]:
        used = set().union(*(names(LOCKS / f"{f}.in") for f in FUNCTIONS))
        assert set(pins) == used, f"requirements.txt pins {set(pins) - used}, used by no function"


# Import a function's modules with every installed project outside its lock hidden: a
# finder first on sys.meta_path refuses their modules, as if they were not installed.
# Packages that import optional extras (httpx's zstandard, ...) then take their fallback,
# as they would in the deployed function.
_IMPORTS = r"""
import importlib, importlib.abc, importlib.metadata as md, json, re, sys
lock, modules = set(json.loads(sys.argv[1])), sys.argv[2:]
hidden = set()
for dist in md.distributions():
    # The project's own metadata (an egg-info left by `pip wheel .`) is not a dependency.
    if re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower() in lock | {"lookalike-bot"}:
        continue
    for file in dist.files or []:
        parts = file.with_suffix("").parts if file.suffix in (".py", ".so") else ()
        if parts and not parts[0].endswith((".dist-info", ".data")) and ".." not in parts:
            name = ".".join(parts).removesuffix(".__init__").split(".cpython-")[0]
            hidden.add(name)
hidden -= {"__editable__", ""}

class Hidden(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in hidden:
            raise ModuleNotFoundError(f"No module named {name!r} (not in the lock)", name=name)
        return None

sys.meta_path.insert(0, Hidden())
failed = {}
for name in modules:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        failed[name] = str(exc)
print(json.dumps(failed))
"""
_MODULES = {
    # The photo quota (functions/quota.py) opens Cloud Storage on the first photo.
    "webhook": ["main", "functions.webhook", "functions.publisher", "google.cloud.pubsub_v1",
                "google.cloud.storage"],
    # The worker imports its face code and storage on its first job, and registers the
    # HEIF decoder when it first decodes an image.
    "worker": ["main", "functions.worker", "shared.matching", "shared.render",
               "shared.index_store", "shared.faces", "shared.models", "shared.index",
               "google.cloud.storage", "pillow_heif"],
}


def _import_with_only(lock: set[str], modules: list[str]) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-c", _IMPORTS, json.dumps(sorted(lock)),
                             *modules], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_lock_installs_what_the_function_imports(function):
    entries = set(locked(LOCKS / f"{function}.txt"))
    # The fast dlib wheel installs as "dlib" where the lock has dlib-bin.
    allowed = entries | ({"dlib"} if "dlib-bin" in entries else set())
    assert _import_with_only(allowed, _MODULES[function]) == {}
    if function == "webhook":
        assert not entries & {"dlib-bin", "nmslib", "numpy", "pillow"}
        # The hiding works: the worker's face code does not import with this lock.
        refused = _import_with_only(allowed, ["shared.faces"])
        assert "not in the lock" in refused["shared.faces"]
