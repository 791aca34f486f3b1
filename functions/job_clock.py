"""Where one job's time goes: milliseconds per named stage, for the job's log line.

The worker times its stages (download, match, picture, JPEG, send, markers) with one
`perf_counter` pair each, so `benchmarks.stack_latency` can read the split from the
logs of a real worker process and production logs carry the same figures.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator


class JobClock:
    """Milliseconds per stage of one job; a stage entered twice adds up."""

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.ms[name] = self.ms.get(name, 0.0) + (time.perf_counter() - started) * 1000

    def rounded(self) -> dict[str, float]:
        """The stages in milliseconds with one decimal, for a log line."""
        return {name: round(value, 1) for name, value in self.ms.items()}
