# shellcheck shell=bash
# The one place to configure the deployment. Sourced by every script in infra/; each
# value can be overridden from the environment, e.g. `PROJECT=my-proj infra/deploy.sh`.
# Sizes and limits are explained in docs/deploy.md.

# -- where --------------------------------------------------------------------------
# Empty means gcloud's configured project (`gcloud config set project ...`).
PROJECT=${PROJECT:-}
REGION=${REGION:-europe-west1}
# Holds the index, the model files and the dedupe markers. Empty means
# PROJECT-lookalike (bucket names are global, hence the project prefix).
BUCKET=${BUCKET:-}
# Prefixes inside the bucket; the markers prefix must match infra/lifecycle.json.
INDEX_PREFIX=${INDEX_PREFIX:-index}
MODELS_PREFIX=${MODELS_PREFIX:-models}
MARKERS_PREFIX=${MARKERS_PREFIX:-markers}
# The webhook's per-chat photo counts (functions/quota.py; the numbers are in
# shared/config.py); infra/lifecycle.json deletes them too.
QUOTAS_PREFIX=${QUOTAS_PREFIX:-quotas}

# -- Pub/Sub ------------------------------------------------------------------------
JOBS_TOPIC=${JOBS_TOPIC:-lookalike-jobs}
DEAD_LETTER_TOPIC=${DEAD_LETTER_TOPIC:-lookalike-jobs-dead}
DEAD_LETTER_SUBSCRIPTION=${DEAD_LETTER_SUBSCRIPTION:-lookalike-jobs-dead}
# The push subscription that hands jobs to the worker, made by deploy.sh with message
# ordering: one chat's jobs (ordering key: the chat) reach the worker one at a time, in
# order, so a chat's burst cannot fill the workers (docs/reliability.md). An Eventarc
# trigger's own subscription cannot have ordering, which is set only at creation.
WORKER_SUBSCRIPTION=${WORKER_SUBSCRIPTION:-lookalike-jobs-worker}
# Dead-lettered jobs are kept for inspection this long (Pub/Sub allows up to 31 days).
DEAD_LETTER_RETENTION=${DEAD_LETTER_RETENTION:-7d}
# Pub/Sub retries a failed push with exponential backoff between these delays; after
# MAX_DELIVERY_ATTEMPTS (5-100) the job goes to the dead-letter topic. 7 attempts from
# 10 s to 300 s span about the worker's LOOKALIKE_MAX_JOB_AGE_SECONDS.
MAX_DELIVERY_ATTEMPTS=${MAX_DELIVERY_ATTEMPTS:-7}
MIN_RETRY_DELAY=${MIN_RETRY_DELAY:-10s}
MAX_RETRY_DELAY=${MAX_RETRY_DELAY:-300s}

# -- functions ----------------------------------------------------------------------
WEBHOOK_FUNCTION=${WEBHOOK_FUNCTION:-lookalike-webhook}
WORKER_FUNCTION=${WORKER_FUNCTION:-lookalike-worker}
# python311 because the fast wheels below are built for the local Python 3.11 (cp311);
# with wheels built by a Python 3.12 (PYTHON=python3.12 packaging/build_*_wheel.sh),
# RUNTIME=python312 works too. infra/deploy.sh refuses a mismatch.
RUNTIME=${RUNTIME:-python311}
# fast: the worker ships dlib (AVX2 + FMA, OpenBLAS) and nmslib (AVX2 + FMA) wheels built by
# packaging/, faster per face descriptor and per index query (docs/performance.md),
# compiled on first use (15-30 min); each instance then checks its CPU has AVX2 and FMA.
# pypi: the PyPI wheels of requirements.txt, slower but for any x86-64 CPU. auto: fast
# when they are already built, fit RUNTIME_GLIBC and the local Python is RUNTIME's
# version; otherwise pypi, saying why. auto never compiles.
WORKER_WHEELS=${WORKER_WHEELS:-auto}
# glibc of RUNTIME's base image: python311 runs on Ubuntu 22.04 (google-22), glibc 2.35.
# A wheel's manylinux_2_X tag names the oldest glibc it runs on; X must not exceed this.
RUNTIME_GLIBC=${RUNTIME_GLIBC:-2.35}
# glibc tunables of the worker (its GLIBC_TUNABLES); empty: glibc's own. auto (the
# default): glibc.malloc.hugetlb=1 for an index of HUGE_PAGES_FROM_ENTRIES or more, else
# empty. With it malloc asks for transparent huge pages for large blocks (glibc >= 2.35)
# and the graph's random walk misses the TLB less: queries 8 % faster at 100k entries,
# 23 % at 1M; at 12k they gain nothing and may cost memory (docs/performance.md, "A
# million-entry gallery, served").
WORKER_GLIBC_TUNABLES=${WORKER_GLIBC_TUNABLES-auto}
HUGE_PAGES_FROM_ENTRIES=${HUGE_PAGES_FROM_ENTRIES:-100000}

# The webhook only checks the secret header, answers commands and publishes a job:
# short I/O-bound requests, so many share one instance (concurrency > 1 needs 1 vCPU).
WEBHOOK_MEMORY=${WEBHOOK_MEMORY:-256Mi}
WEBHOOK_CPU=${WEBHOOK_CPU:-1}
WEBHOOK_CONCURRENCY=${WEBHOOK_CONCURRENCY:-80}
# Above LOOKALIKE_PUBLISH_TIMEOUT_SECONDS (10 s), so a slow publish ends in the webhook's
# own 503 (Telegram delivers the update again) rather than a cut-off request.
WEBHOOK_TIMEOUT=${WEBHOOK_TIMEOUT:-30s}
WEBHOOK_MIN_INSTANCES=${WEBHOOK_MIN_INSTANCES:-0}
WEBHOOK_MAX_INSTANCES=${WEBHOOK_MAX_INSTANCES:-3}

# The worker runs dlib, which is CPU-bound and holds the GIL: one photo at a time per
# vCPU. Memory holds the models, the index (twice while a new version loads, and again
# as files: /tmp is in memory) and a decoded photo (up to 40 MP) in a few copies. auto
# (the default): infra/deploy.sh sizes the worker from the index it will serve, the
# smallest of 2Gi, 4Gi, 8Gi, 16Gi and 32Gi that holds it, with the fewest vCPU Cloud Run
# allows for that memory: 2Gi and 1 vCPU up to about 320,000 entries (hnsw M 48), 8Gi
# and 2 vCPU for a million (the rule: shared/worker_size.py; docs/deploy.md, "The
# worker's size"). Any other value is kept.
WORKER_MEMORY=${WORKER_MEMORY:-auto}
WORKER_CPU=${WORKER_CPU:-auto}
# The index the worker is sized for: empty means the current version at INDEX_URI,
# read with `gcloud storage cat` (a dry run does not read it). A local index directory
# (an index root with current.json, or one version) sizes the worker for that index
# instead, e.g. a large build before it is published.
SIZE_FOR_INDEX=${SIZE_FOR_INDEX:-}
# Jobs an instance takes at once. Their face work takes turns (one photo decoded and
# matched at a time), so the others only wait for downloads and their chats' send
# slots (Telegram's 1 message/s per chat) without holding the CPU from another chat.
WORKER_CONCURRENCY=${WORKER_CONCURRENCY:-4}
WORKER_TIMEOUT=${WORKER_TIMEOUT:-120s}
# 1 keeps a warm worker (no cold start of model and index loading) at a monthly cost.
WORKER_MIN_INSTANCES=${WORKER_MIN_INSTANCES:-0}
# Caps cost and parallel photos; excess jobs wait in Pub/Sub.
WORKER_MAX_INSTANCES=${WORKER_MAX_INSTANCES:-10}
# How long Pub/Sub waits for the worker's answer before redelivering; above the timeout.
WORKER_ACK_DEADLINE=${WORKER_ACK_DEADLINE:-180}

# -- identities ---------------------------------------------------------------------
# Service account ids (the part before @); each gets only what its function needs.
WEBHOOK_SA=${WEBHOOK_SA:-lookalike-webhook}
WORKER_SA=${WORKER_SA:-lookalike-worker}
# Pub/Sub pushes to the worker as this account; it may only invoke the worker.
INVOKER_SA=${INVOKER_SA:-lookalike-invoker}
# Cloud Build builds the functions' images as this account instead of the Compute
# Engine default account, which new projects no longer grant any role.
BUILD_SA=${BUILD_SA:-lookalike-build}

# -- secrets and the bot ------------------------------------------------------------
TOKEN_SECRET=${TOKEN_SECRET:-lookalike-bot-token}
WEBHOOK_SECRET_NAME=${WEBHOOK_SECRET_NAME:-lookalike-webhook-secret}
BOT_USERNAME=${BOT_USERNAME:-}
# Where a person in the gallery asks to be removed (an e-mail address, a @username or a
# web page); /privacy names it (LOOKALIKE_CONTACT).
CONTACT=${CONTACT:-}
MAX_JOB_AGE_SECONDS=${MAX_JOB_AGE_SECONDS:-600}
INDEX_REFRESH_SECONDS=${INDEX_REFRESH_SECONDS:-300}
TELEGRAM_API_URL=${TELEGRAM_API_URL:-https://api.telegram.org}
# Updates Telegram sends: messages (photos, image documents, commands) and presses of
# the buttons under answers (callback queries).
ALLOWED_UPDATES=${ALLOWED_UPDATES:-'["message","callback_query"]'}
# Parallel HTTPS connections Telegram opens to the webhook (1-100); below one
# instance's concurrency, so a single warm instance takes all of them.
MAX_CONNECTIONS=${MAX_CONNECTIONS:-40}

# -- alerts and budget (infra/monitoring.sh) ----------------------------------------
# Alerts go to this address (an e-mail notification channel); empty: alert policies
# exist but notify no one.
ALERT_EMAIL=${ALERT_EMAIL:-}
# The worker alert fires when more than this share of its pushes fail over 10 minutes.
WORKER_ERROR_SHARE=${WORKER_ERROR_SHARE:-0.2}
# The webhook alert fires above this many 5xx answers in 5 minutes (Telegram delivers
# those updates again, so one Pub/Sub hiccup is not worth a page).
WEBHOOK_5XX_THRESHOLD=${WEBHOOK_5XX_THRESHOLD:-5}
# A monthly budget on the project, in the billing account's currency, with e-mails at
# these shares of it (actual spend). docs/deploy.md has the cost per photo.
BUDGET_AMOUNT=${BUDGET_AMOUNT:-50USD}
BUDGET_THRESHOLDS=${BUDGET_THRESHOLDS:-0.5 0.9 1.0}

# -- local tools --------------------------------------------------------------------
# The index builder and the model lookup run locally with the project's virtualenv.
PYTHON=${PYTHON:-}

# -- index builds on Dataproc Serverless (infra/index.sh build --engine spark) ----------
# Spark runtime: 2.3 is Spark 3.5 (LTS). The Python is the image's (packaging/dataproc).
DATAPROC_RUNTIME=${DATAPROC_RUNTIME:-2.3}
# Executors x cores: the per-photo step is one core per photo (dlib holds the GIL), so
# every core runs one Python worker; 4 cores and 16 GB (4 DCU) is Dataproc's default
# executor. The builder's waves and partitions follow their product (--workers).
DATAPROC_EXECUTORS=${DATAPROC_EXECUTORS:-8}
DATAPROC_EXECUTOR_CORES=${DATAPROC_EXECUTOR_CORES:-4}
# fast: the image installs the dlib and nmslib wheels packaging/ builds (AVX2 + FMA,
# like the worker's); pypi: the PyPI wheels.
BUILD_WHEELS=${BUILD_WHEELS:-fast}
# Artifact Registry repository (docker format, in REGION) for the builder's image.
IMAGE_REPOSITORY=${IMAGE_REPOSITORY:-lookalike}
# The account the batch runs as; empty means the Compute Engine default account. It
# needs roles/dataproc.worker and read/write on the bucket.
DATAPROC_SA=${DATAPROC_SA:-}
