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
