"""The worker's size for an index (shared/worker_size.py): the rule the deploy applies to
the current manifest, its command line, and the worker's warning when a version it
loads needs more memory than its instance has."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from functions.worker_assets import AssetCache
from shared.config import DEMO_GALLERY, Settings
from shared.index_versions import pointer_bytes, version_prefix
from shared.manifest import Manifest
from shared.worker_size import (
    GIB,
    HUGE_PAGES,
    MIB,
    SizeError,
    choose,
    instance_memory_limit,
    memory_needed,
    parse_memory,
    undersized,
    version_bytes,
)

REPO = Path(__file__).resolve().parent.parent
THRESHOLD = 100_000
MILLION = 1_000_661  # the million-entry gallery of docs/performance.md, hnsw M 48


def _size(entries: int | None, m: int | None = 48, **explicit: str):
    return choose(entries, m, huge_pages_from=THRESHOLD, version="v", **explicit)


def test_no_index_gets_the_smallest_size_without_huge_pages():
    size = _size(None)
    assert (size.memory, size.cpu, size.glibc_tunables) == ("2Gi", "1", "")
    assert any("no index" in reason for reason in size.reasons)


@pytest.mark.parametrize(("entries", "memory", "cpu"), [
    (31, "2Gi", "1"),          # the demo gallery
    (12_000, "2Gi", "1"),      # the stack's gallery
    (300_000, "2Gi", "1"),
    (500_000, "4Gi", "1"),     # 4 GiB still goes with 1 vCPU
    (MILLION, "8Gi", "2"),     # above 4 GiB Cloud Run wants 2 vCPU
    (3_000_000, "16Gi", "4"),  # above 8 GiB, 4
])
def test_memory_is_the_smallest_size_that_holds_two_versions(entries, memory, cpu):
    size = _size(entries)
    assert (size.memory, size.cpu) == (memory, cpu)
    assert parse_memory(size.memory) >= memory_needed(entries, 48)
    smaller = [s for s in (2, 4, 8, 16) if s * GIB < parse_memory(size.memory)]
    assert all(s * GIB < memory_needed(entries, 48) for s in smaller)


def test_the_rule_holds_the_measured_million_entry_gallery():
    """docs/performance.md: 1.23 GiB of process memory (264 MiB of it without the index)
    and 0.95 GiB of index files in /tmp per loaded version, two during a refresh."""
    measured_version = (1232 - 264 + 945) * MIB
    assert version_bytes(MILLION, 48) >= measured_version
    assert memory_needed(MILLION, 48) >= 2 * measured_version + 264 * MIB
    assert memory_needed(MILLION, 48) > 4 * GIB  # 4 GiB holds one version, not a refresh


def test_a_larger_graph_needs_more_memory_per_entry():
    assert version_bytes(1000, 16) < version_bytes(1000, 48) < version_bytes(1000, 96)
    assert version_bytes(1000, None) == version_bytes(1000, 48)


def test_huge_pages_from_the_threshold_on():
    assert _size(THRESHOLD - 1).glibc_tunables == ""
    assert _size(THRESHOLD).glibc_tunables == HUGE_PAGES
    assert _size(MILLION).glibc_tunables == HUGE_PAGES
    assert choose(50, 32, huge_pages_from=10).glibc_tunables == HUGE_PAGES


def test_explicit_values_win():
    size = _size(MILLION, memory="16Gi", glibc_tunables="")
    assert (size.memory, size.cpu, size.glibc_tunables) == ("16Gi", "4", "")
    assert any("set by WORKER_MEMORY" in reason for reason in size.reasons)
    size = _size(31, cpu="2", glibc_tunables=HUGE_PAGES)
    assert (size.memory, size.cpu, size.glibc_tunables) == ("2Gi", "2", HUGE_PAGES)
    assert not size.warnings


def test_explicit_memory_below_the_need_is_kept_with_a_warning():
    size = _size(MILLION, memory="4Gi")
    assert (size.memory, size.cpu) == ("4Gi", "1")
    [warning] = size.warnings
    assert "WORKER_MEMORY=4Gi" in warning and "refresh" in warning


def test_sizes_that_cannot_be_deployed_are_refused():
    with pytest.raises(SizeError, match="WORKER_CPU=1 is too few for 8Gi"):
        _size(MILLION, cpu="1")
    with pytest.raises(SizeError, match="more than the largest worker"):
        _size(20_000_000)
    with pytest.raises(SizeError, match="not a memory size"):
        _size(31, memory="lots")
    with pytest.raises(SizeError, match="more memory than Cloud Run offers"):
        _size(31, memory="64Gi")
    with pytest.raises(SizeError, match="not a number of vCPU"):
        _size(31, cpu="two")


@pytest.mark.parametrize(("text", "size"), [
    ("8Gi", 8 * GIB), ("512Mi", 512 * MIB), ("2048MB", 2_048_000_000), ("2048", 2_048_000_000),
    ("1.5Gi", 3 * GIB // 2), ("4G", 4_000_000_000), ("2GiB", 2 * GIB),
])
def test_memory_sizes_as_gcloud_takes_them(text, size):
    assert parse_memory(text) == size


def test_undersized_says_why_and_what_to_do():
    assert undersized(MILLION, 48, None) is None  # no limit known
    assert undersized(MILLION, 48, 8 * GIB) is None
    why = undersized(MILLION, 48, 2 * GIB)
    assert why is not None and "1,000,661 entries" in why and "2.0 GiB" in why
    assert "infra/deploy.sh worker" in why


def test_instance_memory_limit_from_cgroup(tmp_path):
    v2, v1 = tmp_path / "memory.max", tmp_path / "memory.limit_in_bytes"
    assert instance_memory_limit((v2, v1)) is None  # neither file
    v1.write_text("9223372036854771712\n")  # cgroup v1 without a limit
    assert instance_memory_limit((v2, v1)) is None
    v1.write_text(f"{4 * GIB}\n")
    assert instance_memory_limit((v2, v1)) == 4 * GIB
    v2.write_text("max\n")  # v2 comes first: no limit
    assert instance_memory_limit((v2, v1)) is None
    v2.write_text(f"{8 * GIB}\n")
    assert instance_memory_limit((v2, v1)) == 8 * GIB


def _cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shared.worker_size", *args], cwd=REPO,
                          input=stdin, capture_output=True, text=True, timeout=60)


def _million_manifest() -> str:
    manifest = Manifest.from_json((DEMO_GALLERY / "manifest.json").read_text())
    manifest.entries, manifest.hnsw = MILLION, {**manifest.hnsw, "M": 48}
    return manifest.to_json()


def test_cli_prints_the_size_and_why():
    result = _cli("--huge-pages-from", "100000", "--manifest", "-", "--version", "v9",
                  stdin=_million_manifest())
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:3] == ["memory=8Gi", "cpu=2", f"glibc_tunables={HUGE_PAGES}"]
    reasons = [line for line in lines if line.startswith("reason=")]
    assert "v9" in reasons[0] and "1,000,661 entries" in reasons[0]
    demo = _cli("--huge-pages-from", "100000", "--manifest",
                str(DEMO_GALLERY / "manifest.json"), "--memory", "512Mi")
    assert demo.stdout.splitlines()[:3] == ["memory=512Mi", "cpu=1", "glibc_tunables="]
    assert any(line.startswith("warning=WORKER_MEMORY=512Mi") for line in demo.stdout.splitlines())
    nothing = _cli("--huge-pages-from", "100000")
    assert nothing.stdout.splitlines()[:3] == ["memory=2Gi", "cpu=1", "glibc_tunables="]


def test_cli_refuses_what_it_cannot_size():
    bad = _cli("--huge-pages-from", "100000", "--manifest", "-", stdin='{"schema_version": 99}')
    assert bad.returncode == 1 and bad.stdout == ""
    assert "schema version 99" in bad.stderr
    refused = _cli("--huge-pages-from", "100000", "--manifest", "-", "--cpu", "1",
                   stdin=_million_manifest())
    assert refused.returncode == 1 and "too few for 8Gi" in refused.stderr


def _publish(root: Path, name: str) -> None:
    shutil.copytree(DEMO_GALLERY, root / version_prefix(name))
    (root / "current.json").write_bytes(pointer_bytes(name))


def test_worker_warns_when_a_version_needs_more_than_the_instance_has(tmp_path, caplog):
    """At the cold start and at each refresh; nothing when the limit is unknown."""
    root = tmp_path / "index"
    _publish(root, "v1")
    limits = iter([600 * MIB, 8 * GIB, None])
    cache = AssetCache(Settings(index_uri=str(root), cache_dir=str(tmp_path / "cache"),
                                index_refresh_seconds=0), memory_limit=lambda: next(limits))
    with caplog.at_level(logging.WARNING, logger="functions.worker_assets"):
        assert cache.get().index_version == "v1"
        [cold] = [r for r in caplog.records if "need about" in r.getMessage()]
        assert cold.getMessage().startswith("index version v1: 31 entries need about")
        assert "600 MiB" in cold.getMessage()
        for name in ("v2", "v3"):  # 8 GiB holds it; then no limit known
            _publish(root, name)
            assert cache.get().index_version == name
        assert [r for r in caplog.records if "need about" in r.getMessage()] == [cold]
