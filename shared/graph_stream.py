"""Loading an index's nmslib graph while its file downloads.

nmslib loads a saved graph only from a path, reading it from start to end. The graph
file is most of an index's bytes (945 MiB at a million entries), and loading it takes
about as long again as downloading it, so the two overlap: the loader reads a named pipe
on its own thread (nmslib releases the GIL) while the download hands each slice over in
order (`shared.storage.Reader`), hashing it on the way for the manifest's check.

A failure on either side ends the other without a hang: a loader that stops closes the
pipe, and the download, no longer feeding it, goes on for the file; a download that
stops closes the pipe too, and the loader reads an early end.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Any

from shared.index import empty_graph
from shared.manifest import Manifest

# A pipe holds 64 KiB by default, and a loader woken for every 64 KiB is much slower than
# one reading a file (docs/performance.md); 1 MiB is the most an unprivileged process may
# ask for (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 2**20


class GraphStreamError(RuntimeError):
    """The graph did not load from the stream (the downloaded file may still be good)."""


class GraphStream:
    """A `shared.storage.Reader` that loads the graph it is handed: call it with the
    graph file's bytes in order, then `finish()`; `close()` in every case."""

    def __init__(self, manifest: Manifest, fifo: Path, graph: Any | None = None) -> None:
        """`graph`: what loads the file (nmslib's `loadIndex`); by default an empty graph
        for the manifest's index."""
        self._graph = graph if graph is not None else empty_graph(manifest)
        self._fifo = Path(fifo)
        self._fifo.unlink(missing_ok=True)
        os.mkfifo(self._fifo, 0o600)
        self._digest = hashlib.sha256()
        self._failure: BaseException | None = None
        self._pipe: int | None = None
        self._ended = False
        self._broken = False
        self._thread = threading.Thread(target=self._load, name="graph-stream", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            self._graph.loadIndex(str(self._fifo), load_data=False)
        except BaseException as exc:  # handed to the feeding thread
            self._failure = exc

    def __call__(self, piece: memoryview) -> None:
        if self._ended:
            raise GraphStreamError("the graph stream has ended")
        if self._broken:
            return
        self._digest.update(piece)
        try:
            pipe = self._open()
            while piece:
                piece = piece[os.write(pipe, piece):]
        except (OSError, GraphStreamError):
            # The loader stopped (a broken pipe): `finish` says why. The download goes on, so the
            # graph can still load from the file (or be refused with a clear reason).
            self._broken = True

    def _open(self) -> int:
        """The pipe's writing end, once the loader has opened its reading end."""
        if self._pipe is None:
            while True:
                try:
                    self._pipe = os.open(self._fifo, os.O_WRONLY | os.O_NONBLOCK)
                    break
                except OSError as exc:  # ENXIO: no reader yet
                    if exc.errno != errno.ENXIO:
                        raise
                    if not self._thread.is_alive():
                        raise GraphStreamError(
                            f"the graph loader stopped: {self._failure}") from None
                    time.sleep(0.001)
            os.set_blocking(self._pipe, True)
            with contextlib.suppress(OSError):  # a smaller pipe is slower, not wrong
                fcntl.fcntl(self._pipe, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        return self._pipe

    def finish(self) -> tuple[Any, str]:
        """The loaded graph and the SHA-256 of the bytes it was handed (hex).

        Raises `GraphStreamError` when the graph did not load."""
        self._end()
        if self._failure is not None or self._broken:
            raise GraphStreamError(f"the graph did not load: {self._failure}")
        return self._graph, self._digest.hexdigest()

    def close(self) -> None:
        """End the stream (the loader fails if it was not whole) and remove the pipe."""
        with contextlib.suppress(GraphStreamError):
            self._end()
        self._fifo.unlink(missing_ok=True)

    def _end(self) -> None:
        if self._ended:
            return
        self._ended = True
        if self._thread.is_alive():
            with contextlib.suppress(OSError, GraphStreamError):
                self._open()  # a loader still waiting to open the pipe must see its end
        if self._pipe is not None:
            os.close(self._pipe)
        self._thread.join()
