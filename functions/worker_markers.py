"""Exactly one answer per photo under at-least-once delivery: two-phase markers in storage.

Before working on an update the worker claims `<chat_id>/<update_id>` with a create-only
write; after the reply is sent it marks the claim done, conditional on its own
generation. A redelivery then finds the marker and:

- "done"                      -> skips (the user already has the answer);
- "claimed", younger than the lease -> another worker is on it: `MarkerBusy`, so the
  message is redelivered later, when it will be done (or stale);
- "claimed" but stale (its worker crashed), or "released" (its worker hit a transient
  error before answering) -> taken over with a write conditional on the generation read.

Every conditional write that loses a race re-reads the marker, so two workers can never
both hold a claim. Markers are tiny JSON objects; a lifecycle rule deletes them after a day.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.storage import NotFound, PreconditionFailed, Store

CLAIMED, DONE, RELEASED = "claimed", "done", "released"
_ATTEMPTS = 5  # lost races in a row before giving up (then the message is redelivered)


class MarkerBusy(Exception):
    """Another worker holds a fresh claim on this update; retry later."""


@dataclass(frozen=True)
class Claim:
    key: str
    generation: int  # of the marker this worker wrote; 0 when markers are disabled
    took_over: bool = False


class Markers:
    def __init__(self, store: Store, lease_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.clock = clock

    def _body(self, state: str) -> bytes:
        return json.dumps({"state": state, "at": round(self.clock(), 3)}).encode()

    def _write(self, key: str, state: str, generation: int) -> int:
        return self.store.write(key, self._body(state), if_generation=generation,
                                content_type="application/json")

    def claim(self, key: str) -> Claim | None:
        """Claim `key`; None when it is already done. Raises `MarkerBusy` while another
        worker's claim is fresh, `shared.storage.StoreError` when storage fails."""
        for _ in range(_ATTEMPTS):
            try:
                return Claim(key, self._write(key, CLAIMED, 0))
            except PreconditionFailed:
                pass
            # Read the generation before the body: a takeover conditional on it fails if
            # the body read was of a newer version, and the loop reads again.
            generation = self.store.generation(key)
            if generation == 0:
                continue  # deleted meanwhile (lifecycle rule): create it again
            try:
                state, at = _parse(self.store.read(key))
            except NotFound:
                continue
            if state == DONE:
                return None
            if state == CLAIMED and self.clock() - at < self.lease_seconds:
                raise MarkerBusy(f"{key} is claimed since {self.clock() - at:.0f} s")
            try:
                return Claim(key, self._write(key, CLAIMED, generation), took_over=True)
            except PreconditionFailed:
                continue
        raise MarkerBusy(f"{key}: lost {_ATTEMPTS} races for the marker")

    def done(self, claim: Claim) -> None:
        """Mark the claimed update answered. Raises PreconditionFailed if the claim was
        taken over meanwhile (this worker was too slow: the lease is too short)."""
        self._write(claim.key, DONE, claim.generation)

    def release(self, claim: Claim) -> None:
        """Give the claim up without an answer, so a redelivery need not wait for the lease."""
        self._write(claim.key, RELEASED, claim.generation)


class NoMarkers:
    """Markers disabled (local ad-hoc use): every delivery is answered."""

    def claim(self, key: str) -> Claim | None:
        return Claim(key, 0)

    def done(self, claim: Claim) -> None:
        pass

    def release(self, claim: Claim) -> None:
        pass


def _parse(data: bytes) -> tuple[str, float]:
    """State and time of a marker; unreadable markers count as stale claims."""
    try:
        raw = json.loads(data)
        return str(raw["state"]), float(raw["at"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        return CLAIMED, 0.0
