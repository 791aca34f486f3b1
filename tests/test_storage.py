import http.server
import threading

import pytest

from shared.storage import NotFound, PreconditionFailed, open_store


def test_local_store_generations_and_preconditions(tmp_path):
    store = open_store(tmp_path / "bucket")
    assert store.generation("a/b.txt") == 0
    first = store.write("a/b.txt", b"one", if_generation=0)
    assert store.read("a/b.txt") == b"one" and first == 1
    with pytest.raises(PreconditionFailed):
        store.write("a/b.txt", b"again", if_generation=0)  # create-only marker
    with pytest.raises(PreconditionFailed):
        store.write("a/b.txt", b"stale", if_generation=first + 5)
    assert store.write("a/b.txt", b"two", if_generation=first) == 2
    assert store.read("a/b.txt") == b"two"
    store.write("a/c.txt", b"x")
    assert list(store.list("a/")) == ["a/b.txt", "a/c.txt"]
    store.delete("a/b.txt")
    with pytest.raises(NotFound):
        store.read("a/b.txt")
    with pytest.raises(ValueError):
        store.read("../escape")


def test_settings_read_environment(monkeypatch):
    from shared.config import Settings

    monkeypatch.setenv("LOOKALIKE_TOP_K", "5")
    monkeypatch.setenv("LOOKALIKE_INDEX_URI", "gs://bucket/index")
    monkeypatch.setenv("LOOKALIKE_MIN_FACE_FRACTION", "0.1")
    settings = Settings.from_env()
    assert settings.top_k == 5 and settings.index_uri == "gs://bucket/index"
    assert settings.detection.min_face_fraction == 0.1 and settings.max_job_age_seconds == 600


def test_gcs_download_writes_the_object_or_nothing(gcs_bucket, tmp_path):
    from shared.storage import GcsStore

    store = GcsStore(gcs_bucket, "models")
    data = bytes(range(256)) * 4096  # 1 MiB
    store.write("a.dat", data)
    target = tmp_path / "cache" / "a.dat"
    store.download("a.dat", target)
    assert target.read_bytes() == data
    with pytest.raises(NotFound):
        store.download("missing.dat", tmp_path / "cache" / "missing.dat")
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["a.dat"]


PAYLOAD = bytes(range(256)) * 1024  # 256 KiB


class _MediaServer(http.server.ThreadingHTTPServer):
    """Serves PAYLOAD to ranged GETs as Cloud Storage's media downloads do (206 with a
    Content-Range), after the failures queued in `faults`: "short" (a body cut off
    half way), "503", or "whole" (the range ignored: a 200 with the whole object)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MediaHandler)
        self.faults: list[str] = []
        self.requests = 0
        self.url = f"http://127.0.0.1:{self.server_address[1]}/o?alt=media"


class _MediaHandler(http.server.BaseHTTPRequestHandler):
    server: _MediaServer

    def do_GET(self) -> None:
        self.server.requests += 1
        fault = self.server.faults.pop(0) if self.server.faults else None
        first, last = (int(n) for n in self.headers["Range"].removeprefix("bytes=").split("-"))
        body = PAYLOAD[first:last + 1]
        if fault == "503":
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if fault == "whole":
            body = PAYLOAD
        self.send_response(200 if fault == "whole" else 206)
        if fault != "whole":
            self.send_header("Content-Range", f"bytes {first}-{last}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:len(body) // 2] if fault == "short" else body)
        if fault == "short":
            self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def media_server():
    server = _MediaServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_ranged_reads_are_whole_or_fail_in_a_way_the_retry_policy_retries(media_server,
                                                                          tmp_path):
    import requests
    import urllib3
    from google.api_core import exceptions
    from google.cloud.storage.retry import DEFAULT_RETRY

    from shared.storage import StoreError, _fetch_range

    target = tmp_path / "object"
    target.write_bytes(bytes(len(PAYLOAD)))
    session = requests.Session()
    _fetch_range(session, media_server.url, target, 1000, 70_000)
    assert target.read_bytes()[1000:70_000] == PAYLOAD[1000:70_000]
    assert target.read_bytes()[:1000] == bytes(1000)  # written in place, nothing else

    for fault, error in (("short", urllib3.exceptions.ProtocolError),
                         ("503", exceptions.ServiceUnavailable)):
        media_server.faults = [fault]
        with pytest.raises(error) as raised:
            _fetch_range(session, media_server.url, target, 0, 70_000)
        assert DEFAULT_RETRY._predicate(raised.value), fault  # the library's retry policy
    media_server.faults = ["whole"]  # a ranged read answered with the whole object
    with pytest.raises(StoreError, match="HTTP 200"):
        _fetch_range(session, media_server.url, target, 1000, 70_000)
    media_server.faults = ["whole"]  # ... is the read asked for when that was the whole
    _fetch_range(session, media_server.url, target, 0, len(PAYLOAD))
    assert target.read_bytes() == PAYLOAD


def test_a_failed_slice_is_read_again_and_the_download_is_whole(gcs_bucket, tmp_path,
                                                               monkeypatch):
    import shared.storage
    from shared.storage import GcsStore

    monkeypatch.setattr(shared.storage, "SLICE_BYTES", 64 * 1024)
    monkeypatch.setattr(shared.storage, "_retry_seconds", 30.0)
    real, calls = shared.storage._fetch_range, []

    def once_cut_off(session, url, target, start, end):
        calls.append(start)
        if calls.count(start) == 1 and start == 128 * 1024:
            raise ConnectionResetError("connection reset by peer")
        real(session, url, target, start, end)

    monkeypatch.setattr(shared.storage, "_fetch_range", once_cut_off)
    store = GcsStore(gcs_bucket, "data")
    store.write("big.bin", PAYLOAD + b"tail")
    store.download("big.bin", tmp_path / "big.bin", sliced=True)
    assert (tmp_path / "big.bin").read_bytes() == PAYLOAD + b"tail"
    assert sorted(calls) == [0, 65536, 131072, 131072, 196608, 262144]
    store.write("empty.bin", b"")
    store.download("empty.bin", tmp_path / "empty.bin", sliced=True)
    assert (tmp_path / "empty.bin").read_bytes() == b""
