"""Loading the nmslib graph from its bytes as they come (shared/graph_stream.py)."""

import hashlib
import threading

import numpy as np
import pytest

from shared.graph_stream import GraphStream, GraphStreamError
from shared.index import GRAPH_FILE, Celebrity, CelebrityIndex


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    rng = np.random.default_rng(3)
    index = CelebrityIndex.build(rng.normal(size=(400, 128)).astype(np.float32),
                                 list(range(400)),
                                 [Celebrity(id=f"c{i}", name=f"C {i}") for i in range(400)])
    return index.save(tmp_path_factory.mktemp("graph") / "v1")


def _feed(stream: GraphStream, data: bytes, piece: int = 4096) -> None:
    view = memoryview(data)
    for start in range(0, len(view), piece):
        stream(view[start:start + piece])


def _within(seconds: float, action):
    """Run `action` on a thread and fail (instead of hanging the suite) if it blocks."""
    outcome: dict = {}

    def run():
        try:
            outcome["value"] = action()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "blocked"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_a_graph_handed_over_in_pieces_loads_and_answers_as_from_its_file(saved, tmp_path):
    data = (saved / GRAPH_FILE).read_bytes()
    from_file = CelebrityIndex.load(saved)
    stream = GraphStream(from_file.manifest, tmp_path / "graph.fifo")
    try:
        _within(30, lambda: _feed(stream, data))
        graph, digest = _within(30, stream.finish)
    finally:
        stream.close()
    assert digest == hashlib.sha256(data).hexdigest() == from_file.manifest.files[GRAPH_FILE]
    assert not (tmp_path / "graph.fifo").exists()
    streamed = CelebrityIndex.load(saved, graph=graph, hashes={GRAPH_FILE: digest})
    for row in (0, 17, 399):
        query = from_file.descriptors[row] + 0.01
        assert streamed.graph_neighbours(query, 5).tolist() == \
            from_file.graph_neighbours(query, 5).tolist()
        assert streamed.query(query, 3) == from_file.query(query, 3)


def test_a_stream_that_ends_early_fails_instead_of_hanging(saved, tmp_path):
    data = (saved / GRAPH_FILE).read_bytes()
    manifest = CelebrityIndex.load(saved).manifest
    stream = GraphStream(manifest, tmp_path / "graph.fifo")
    _within(30, lambda: _feed(stream, data[:len(data) // 2]))
    with pytest.raises(GraphStreamError, match="did not load"):
        _within(30, stream.finish)
    stream.close()
    assert not (tmp_path / "graph.fifo").exists()
    with pytest.raises(GraphStreamError, match="ended"):
        stream(memoryview(data[:10]))


def test_a_stream_closed_before_any_byte_ends_its_loader(saved, tmp_path):
    stream = GraphStream(CelebrityIndex.load(saved).manifest, tmp_path / "graph.fifo")
    _within(30, stream.close)  # the loader, waiting to open the pipe, sees its end
    assert not stream._thread.is_alive()
    assert not (tmp_path / "graph.fifo").exists()


def test_a_graph_that_differs_from_its_manifest_is_refused_after_streaming(saved, tmp_path):
    data = bytearray((saved / GRAPH_FILE).read_bytes())
    index = CelebrityIndex.load(saved)
    vector = data.find(np.asarray(index.descriptors[5]).tobytes())
    data[vector + 3] ^= 0x01  # a vector changed a little: nmslib loads it all the same
    stream = GraphStream(index.manifest, tmp_path / "graph.fifo")
    try:
        _within(30, lambda: _feed(stream, bytes(data)))
        graph, digest = _within(30, stream.finish)
    finally:
        stream.close()
    from shared.manifest import IndexMismatch

    with pytest.raises(IndexMismatch, match="manifest hash"):
        CelebrityIndex.load(saved, graph=graph, hashes={GRAPH_FILE: digest})


def test_a_loader_that_fails_midway_lets_the_download_go_on(saved, tmp_path):
    """nmslib giving up (a bad graph, no memory) must not stop the download: the graph
    can still load from the file, or be refused with its reason."""
    data = (saved / GRAPH_FILE).read_bytes()

    class GivesUp:  # what nmslib does when it runs out of memory part of the way
        def loadIndex(self, path, load_data):
            with open(path, "rb") as pipe:
                pipe.read(10)
            raise RuntimeError("std::bad_alloc")

    stream = GraphStream(CelebrityIndex.load(saved).manifest, tmp_path / "graph.fifo",
                         graph=GivesUp())
    _within(30, lambda: _feed(stream, data))  # every piece accepted, none raises
    with pytest.raises(GraphStreamError, match="bad_alloc"):
        stream.finish()
    stream.close()
    assert not (tmp_path / "graph.fifo").exists()
