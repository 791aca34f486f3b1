"""HTTP to Wikimedia as its policies ask: a User-Agent naming the project and a contact,
a bounded number of connections, 429/503 honoured with Retry-After, exponential backoff
with jitter otherwise, and `maxlag` on Action API calls (docs/catalog.md).

requests + urllib3's `Retry` do the status retries (Retry-After, backoff, jitter) and the
connection bound (`pool_block`); what they do not cover is handled here: a body cut
short (urllib3 raises on a short read, nothing retries it) and the Action API's
`maxlag` error, which arrives as HTTP 200 with a Retry-After header.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from itertools import takewhile
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

PROJECT = "lookalike-bot-index-builder/1.0"
MAXLAG_SECONDS = 5  # what API:Etiquette suggests for non-interactive tasks
RETRIED_STATUSES = (429, 500, 502, 503, 504)


class HttpFailure(Exception):
    """A request that failed for good; `reason` is a short word for the summary."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def user_agent(contact: str) -> str:
    """`name/version (contact) library/version`, the User-Agent policy's form; `contact`
    is the operator's URL and/or e-mail address."""
    return f"{PROJECT} ({contact}) python-requests/{requests.__version__}"


@dataclass
class Politeness:
    contact: str
    workers: int = 2  # upload.wikimedia.org's robot policy: at most 2 at once
    attempts: int = 6  # per request, the first included
    backoff: float = 1.0  # seconds; doubled per retry, plus up to as much jitter
    timeout: float = 60.0  # WDQS stops a query after 60 s; a read timeout above it
    max_mbps: float = 25.0  # upload.wikimedia.org's robot policy, over 10 s intervals; 0: none


@dataclass
class Traffic:
    """What went over the wire, for the summary and the benchmark."""

    requests: Counter[str] = field(default_factory=Counter)  # kind -> requests sent
    retries: Counter[str] = field(default_factory=Counter)  # reason -> retries
    bytes: int = 0  # response bodies received
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count(self, kind: str, body: int) -> None:
        with self._lock:
            self.requests[kind] += 1
            self.bytes += body

    def retried(self, reason: str) -> None:
        with self._lock:
            self.retries[reason] += 1


class ByteRate:
    """Keeps downloads under `mbps` megabits a second on average: each download's bytes
    are paid for after it arrives, and whoever is ahead of the budget waits."""

    def __init__(self, mbps: float) -> None:
        self.bytes_per_second = mbps * 1e6 / 8
        self._lock = threading.Lock()
        self._free_at = time.monotonic()  # when the bytes paid so far will have been due

    def spend(self, size: int) -> None:
        if self.bytes_per_second <= 0:
            return
        with self._lock:
            now = time.monotonic()
            self._free_at = max(self._free_at, now) + size / self.bytes_per_second
            wait = self._free_at - now
        if wait > 0:
            time.sleep(wait)


class _CountingRetry(Retry):
    """urllib3's Retry that reports each status retry to `Traffic`, and waits before the
    first retry too (urllib3 retries the first at once, which a 429 without Retry-After
    must not get)."""

    traffic: Traffic | None = None

    def get_backoff_time(self) -> float:
        errors = sum(1 for _ in takewhile(lambda h: h.redirect_location is None,
                                          reversed(self.history)))
        if errors == 0:
            return 0.0
        wait = self.backoff_factor * 2 ** (errors - 1) + random.uniform(0, self.backoff_jitter)
        return float(min(self.backoff_max, wait))

    def increment(self, *args: Any, **kwargs: Any) -> Retry:  # type: ignore[override]
        new = super().increment(*args, **kwargs)  # raises when no retry is left
        response = kwargs.get("response")
        if self.traffic is not None:
            self.traffic.retried(f"http_{response.status}" if response is not None
                                 else "connection")
        new.traffic = self.traffic
        return new


def _json_answer(response: requests.Response, endpoint: str, *,
                 quote_body: bool = False) -> dict[str, Any]:
    """The JSON object of a 200 answer; HttpFailure for another status or a body that is
    not JSON. `quote_body` puts the start of a failed answer in the message (WDQS explains
    a rejected query there)."""
    if response.status_code != 200:
        body = f" {response.text[:300]}" if quote_body else ""
        raise HttpFailure(f"http_{response.status_code}",
                          f"{endpoint}: {response.status_code}{body}")
    try:
        result: dict[str, Any] = response.json()
    except ValueError:
        raise HttpFailure("bad_response", f"{endpoint}: not JSON") from None
    return result


class PoliteClient:
    def __init__(self, politeness: Politeness) -> None:
        self.politeness = politeness
        self.traffic = Traffic()
        self.rate = ByteRate(politeness.max_mbps)
        retry = _CountingRetry(
            total=politeness.attempts - 1, status_forcelist=RETRIED_STATUSES,
            allowed_methods=None,  # POST too: SPARQL queries are read-only
            backoff_factor=politeness.backoff, backoff_jitter=politeness.backoff,
            backoff_max=120, respect_retry_after_header=True,  # all of it: never sooner
            raise_on_status=False)
        retry.traffic = self.traffic
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(1, politeness.workers),
                              pool_block=True, max_retries=retry)
        self.session = requests.Session()
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = user_agent(politeness.contact)
        self.session.headers["Accept-Encoding"] = "gzip"

    def _pause(self, attempt: int) -> None:
        base = self.politeness.backoff * 2 ** attempt
        time.sleep(min(120.0, base + random.uniform(0, self.politeness.backoff)))

    def _send(self, kind: str, method: str, url: str, **kwargs: Any) -> requests.Response:
        """One request with status retries (urllib3) and retries of cut-short bodies."""
        for attempt in range(self.politeness.attempts):
            try:
                response = self.session.request(method, url, timeout=self.politeness.timeout,
                                                **kwargs)
                body = response.content  # a short read raises here
            except (requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as exc:
                self.traffic.count(kind, 0)
                if attempt + 1 == self.politeness.attempts:
                    raise HttpFailure("truncated", f"{url}: {exc}") from None
                self.traffic.retried("truncated")
                self._pause(attempt)
                continue
            except requests.exceptions.RequestException as exc:
                # Connection errors and timeouts were retried by urllib3 already.
                self.traffic.count(kind, 0)
                raise HttpFailure("connection", f"{url}: {exc}") from None
            self.traffic.count(kind, len(body))
            return response
        raise AssertionError("unreachable")

    def get_bytes(self, kind: str, url: str) -> tuple[bytes, str]:
        """A file's bytes and content type; HttpFailure when it cannot be had."""
        response = self._send(kind, "GET", url)
        self.rate.spend(len(response.content))
        if response.status_code == 404:
            raise HttpFailure("missing", f"{url}: 404")
        if response.status_code != 200:
            raise HttpFailure(f"http_{response.status_code}", f"{url}: {response.status_code}")
        return response.content, response.headers.get("Content-Type", "")

    def sparql(self, endpoint: str, query: str) -> dict[str, Any]:
        """SPARQL 1.1 JSON results of a query sent by POST (long VALUES lists fit)."""
        response = self._send("sparql", "POST", endpoint, data={"query": query},
                              headers={"Accept": "application/sparql-results+json"})
        return _json_answer(response, endpoint, quote_body=True)

    def action_api(self, endpoint: str, params: dict[str, str]) -> dict[str, Any]:
        """A MediaWiki Action API query with maxlag; waits out `maxlag` errors."""
        params = {**params, "format": "json", "formatversion": "2",
                  "maxlag": str(MAXLAG_SECONDS)}
        for attempt in range(self.politeness.attempts):
            # GET: a title batch fits in a URL, and Wikimedia's caches can answer it.
            response = self._send("api", "GET", endpoint, params=params)
            result = _json_answer(response, endpoint)
            error = result.get("error") or {}
            if error.get("code") != "maxlag":
                if error:
                    raise HttpFailure("api_error", f"{endpoint}: {error}")
                return result
            self.traffic.retried("maxlag")
            wait = response.headers.get("Retry-After", "")
            if attempt + 1 < self.politeness.attempts:
                if wait.isdigit():
                    time.sleep(int(wait))
                else:
                    self._pause(attempt)
        raise HttpFailure("maxlag", f"{endpoint}: replication lag stayed above "
                          f"{MAXLAG_SECONDS} s")
