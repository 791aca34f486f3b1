"""The descriptors inside a saved nmslib HNSW graph, read in place.

For dense vectors in l2 space nmslib saves its optimised layout: a header, then one
fixed-size block per entry holding the entry's vector (after a small object header)
beside its level-0 links. So a graph file already holds every descriptor, and a worker
need not download `descriptors.npy` as well (half a GB at a million entries): the
vectors are a strided view of the mapped file.

The layout is nmslib 2.1.2's (the version requirements.txt pins); the reader checks the
header against the file's size and the first entry's object header, and
`shared.index` compares the graph's own distances with this view's on load, so another
layout is refused rather than misread.
"""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np

HEADER = np.dtype([
    ("format", "<u4"), ("entries", "<u4"), ("block_bytes", "<u8"), ("links_offset", "<u8"),
    ("data_offset", "<u8"), ("max_level", "<u4"), ("enter_point", "<u4"), ("max_m", "<u8"),
    ("max_m0", "<u8"), ("distance", "<u4"), ("search", "<u4"), ("reserved", "<u4")])
FORMAT = 1
# Before each vector: its id (int32), label (int32) and byte length (uint64).
OBJECT_HEADER = np.dtype([("id", "<i4"), ("label", "<i4"), ("length", "<u8")])


class GraphLayoutError(ValueError):
    """The file is not a graph in the layout this module reads."""


def graph_vectors(path: str | Path, dimensions: int) -> np.ndarray:
    """The float32 (entries, dimensions) vectors stored in the graph file at `path`, as
    a read-only view of the mapped file (entry i is row i)."""
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        if size < HEADER.itemsize:
            raise GraphLayoutError(f"{path} is too short for a graph")
        data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    header = np.frombuffer(data, HEADER, count=1)[0]
    entries, block = int(header["entries"]), int(header["block_bytes"])
    first = HEADER.itemsize + int(header["data_offset"])
    vector_bytes = dimensions * 4
    if (int(header["format"]) != FORMAT or entries == 0
            or HEADER.itemsize + entries * block > size
            or int(header["data_offset"]) + OBJECT_HEADER.itemsize + vector_bytes > block):
        raise GraphLayoutError(f"{path} is not an nmslib graph of {dimensions}-float vectors "
                               "in the layout this code reads")
    objects = np.ndarray((entries,), OBJECT_HEADER, buffer=data, offset=first,
                         strides=(block,))
    if int(objects["length"][0]) != vector_bytes or int(objects["id"][0]) != 0:
        raise GraphLayoutError(f"{path} does not hold {dimensions}-float vectors")
    return np.ndarray((entries, dimensions), np.float32, buffer=data,
                      offset=first + OBJECT_HEADER.itemsize, strides=(block, 4))
