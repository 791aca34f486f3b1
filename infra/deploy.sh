#!/usr/bin/env bash
# Deploy (or redeploy) the two Cloud Functions from the repository root, and the push
# subscription that hands the worker its jobs (message ordering, retry policy,
# dead-letter topic).
# Usage: [DRY_RUN=1] [WORKER_WHEELS=auto|fast|pypi] [SIZE_FOR_INDEX=DIR] [KEEP_STAGING=1]
#        infra/deploy.sh [all|worker|webhook]
#
# The worker's memory, vCPU and huge pages left at auto (infra/config.sh) follow the
# index it will serve: the current version's manifest, or SIZE_FOR_INDEX's
# (shared/worker_size.py has the rule; docs/deploy.md, "The worker's size").
#
# With the fast wheels the worker deploys from a staging copy of what .gcloudignore lets
# upload, plus wheels/ with the dlib and nmslib wheels built by packaging/ (cached after
# the first build); its requirements.txt installs those files instead of dlib-bin and
# PyPI nmslib. KEEP_STAGING=1 keeps that copy for inspection. WORKER_WHEELS=auto (the
# default) takes them only when they are already built and fit the runtime, and never
# compiles; fast builds them when needed (15-30 minutes) and stops when they cannot fit.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target=${1:-all}
case $target in
    all | worker | webhook) ;;
    *) die "usage: infra/deploy.sh [all|worker|webhook]" ;;
esac
# A local SIZE_FOR_INDEX is relative to where the script was started.
if [[ -n $SIZE_FOR_INDEX && $SIZE_FOR_INDEX != gs://* ]]; then
    SIZE_FOR_INDEX=$(realpath -m -- "$SIZE_FOR_INDEX")
fi
cd "$REPO_ROOT"
KEEP_STAGING=${KEEP_STAGING:-0}
case $WORKER_WHEELS in
    auto | fast | pypi) ;;
    *) die "WORKER_WHEELS must be auto, fast or pypi, not '$WORKER_WHEELS'" ;;
esac

# The Python of RUNTIME's version (python311 -> 3.11): $PYTHON when it is that version,
# else pythonX.Y on PATH; the wheels are built by it, so their cp3XX tag matches.
runtime_python() {
    local want=$1 candidate
    for candidate in "$PYTHON" "python$want"; do
        if [[ $("$candidate" -c 'import sys; print("%d.%d" % sys.version_info[:2])' \
                2>/dev/null) == "$want" ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    return 1
}

# What .gcloudignore lets upload from the repository root: its `!/...` lines.
allowed_paths() {
    local line
    while IFS= read -r line; do
        [[ $line == '!/'* ]] || continue
        line=${line#!/}
        line=${line%/}
        [[ $line == wheels ]] || printf '%s\n' "$line"
    done <"$REPO_ROOT/.gcloudignore"
}

# The oldest glibc a wheel runs on, from its manylinux_2_X platform tags (the lowest of
# them when it has several), as 2.X; nothing when it has no such tag.
wheel_glibc() {
    local name=${1##*/}
    grep -o 'manylinux_2_[0-9]*' <<<"$name" | sed 's/manylinux_2_/2./' | sort -t. -k2 -n |
        head -n1
}

# Whether glibc version $1 (2.X) is at most $2 (2.Y).
glibc_at_most() { (( ${1#2.} <= ${2#2.} )); }

# Choose the worker's wheels: sets fast_dlib and fast_nmslib to the wheels to stage, or
# leaves them empty for the PyPI wheels. auto never builds; it says why it falls back.
fast_dlib=
fast_nmslib=
choose_worker_wheels() {
    [[ $WORKER_WHEELS == pypi ]] && return 0
    local want python reason='' wheel glibc cached_only=0
    [[ $WORKER_WHEELS == auto ]] && cached_only=1
    [[ $RUNTIME =~ ^python3([0-9]+)$ ]] || die "RUNTIME must look like python311, not '$RUNTIME'"
    want=3.${BASH_REMATCH[1]}
    [[ $RUNTIME_GLIBC =~ ^2\.[0-9]+$ ]] || die "RUNTIME_GLIBC must look like 2.35, not '$RUNTIME_GLIBC'"
    if ! python=$(runtime_python "$want"); then
        reason="neither PYTHON (${PYTHON:-unset}) nor python$want on PATH is Python $want,"
        reason+=" the runtime's version, which builds the wheels"
        [[ $WORKER_WHEELS == fast ]] && die "RUNTIME=$RUNTIME: $reason; set PYTHON to a" \
            "Python $want, or deploy the PyPI wheels with WORKER_WHEELS=pypi"
    fi
    if [[ -z $reason ]]; then
        [[ $cached_only == 1 ]] || log "fast wheels for $RUNTIME (built by $python once, then cached)"
        if ! fast_dlib=$(CACHED_ONLY=$cached_only PYTHON=$python \
                "$REPO_ROOT/packaging/build_dlib_wheel.sh") ||
            ! fast_nmslib=$(CACHED_ONLY=$cached_only PYTHON=$python \
                "$REPO_ROOT/packaging/build_nmslib_wheel.sh"); then
            reason="the fast wheels are not built for $RUNTIME"
            [[ $WORKER_WHEELS == fast ]] && die "$reason (packaging/build_dlib_wheel.sh," \
                "packaging/build_nmslib_wheel.sh); or use WORKER_WHEELS=pypi"
        fi
    fi
    if [[ -z $reason ]]; then
        for wheel in "$fast_dlib" "$fast_nmslib"; do
            glibc=$(wheel_glibc "$wheel")
            if [[ -z $glibc ]] || ! glibc_at_most "$glibc" "$RUNTIME_GLIBC"; then
                reason="${wheel##*/} needs glibc ${glibc:-of an unknown manylinux tag}, the"
                reason+=" runtime has $RUNTIME_GLIBC (RUNTIME_GLIBC)"
                [[ $WORKER_WHEELS == fast ]] && die "$reason; rebuild the wheels on a machine" \
                    "with glibc $RUNTIME_GLIBC or older, or use WORKER_WHEELS=pypi"
                break
            fi
        done
    fi
    if [[ -n $reason ]]; then
        fast_dlib='' fast_nmslib=''
        log "WORKER_WHEELS=auto: the worker gets the PyPI dlib-bin and nmslib wheels" \
            "($reason). For about 3x faster face descriptors build the fast wheels once" \
            "(15-30 min): WORKER_WHEELS=fast infra/deploy.sh worker"
        return 0
    fi
    log "the worker gets the fast wheels: ${fast_dlib##*/}, ${fast_nmslib##*/}" \
        "(glibc <= $RUNTIME_GLIBC, Python $want)"
}

# Fill directory STAGE with one function's upload: what .gcloudignore lets upload from the
# repository, and as requirements.txt that function's lock (locks/, pinned with hashes,
# `make lock`), which the buildpack installs. With the fast wheels (the worker), wheels/
# holds them and the lock's dlib-bin and nmslib entries become these files, with their
# hashes (pip's hash-checking mode takes a local wheel with a hash like any other).
stage_source() {
    local stage=$1 lock=$2 dlib=${3:-} nmslib=${4:-} line wheel skipping=0 replaced=0
    local -a paths
    mkdir -p "$stage"
    mapfile -t paths < <(allowed_paths)
    tar -C "$REPO_ROOT" --exclude=__pycache__ --exclude='*.py[cod]' -cf - "${paths[@]}" \
        | tar -C "$stage" -xf -
    cp "$REPO_ROOT/.gcloudignore" "$stage/"
    if [[ -z $dlib ]]; then
        cp "$lock" "$stage/requirements.txt"
        log "${stage##*/} source staged in $stage with ${lock#"$REPO_ROOT"/}"
        return 0
    fi
    mkdir "$stage/wheels"
    cp "$dlib" "$nmslib" "$stage/wheels/"
    # pip reads a path to a wheel as a requirement, relative to where it runs: the
    # buildpack runs it in the uploaded directory.
    while IFS= read -r line || [[ -n $line ]]; do
        if ((skipping)) && [[ $line =~ ^[[:space:]]+--hash= ]]; then continue; fi
        skipping=0
        case $line in
            dlib-bin==*) wheel=$dlib ;;
            nmslib==*) wheel=$nmslib ;;
            *) printf '%s\n' "$line"; continue ;;
        esac
        printf './wheels/%s \\\n    --hash=sha256:%s\n' "${wheel##*/}" \
            "$(sha256sum "$wheel" | cut -d' ' -f1)"
        skipping=1 replaced=$((replaced + 1))
    done <"$lock" >"$stage/requirements.txt"
    ((replaced == 2)) || die "${lock#"$REPO_ROOT"/} needs one dlib-bin== and one nmslib== entry"
    log "worker source staged in $stage ($(du -sk "$stage" | cut -f1) KiB), with" \
        "these requirements.txt lines in place of dlib-bin and PyPI nmslib:"
    grep '^\./wheels/' "$stage/requirements.txt" | sed 's/^/    /' >&2
}

# Print file KEY of the index at ROOT: gs://... through `gcloud storage cat`, else a
# local directory. Returns 3 when the file does not exist, 1 when it cannot be read.
index_file() {
    local root=$1 key=$2 errors
    if [[ $root != gs://* ]]; then
        [[ -f $root/$key ]] || return 3
        cat "$root/$key"
        return 0
    fi
    errors=$(mktemp)
    if gcloud storage cat "$root/$key" --project="$PROJECT" 2>"$errors"; then
        rm -f "$errors"
        return 0
    fi
    if grep -q 'matched no objects' "$errors"; then
        rm -f "$errors"
        return 3
    fi
    cat "$errors" >&2
    rm -f "$errors"
    return 1
}

# Set manifest to the manifest of the current version at ROOT, as the worker finds it
# (the version the pointer names, or ROOT itself when it has no pointer), and
# manifest_version to that version's name; both stay empty when there is no index.
manifest=
manifest_version=
read_current_manifest() {
    local root=$1 pointer status=0
    pointer=$(index_file "$root" current.json) || status=$?
    if ((status == 0)); then
        manifest_version=$(printf '%s' "$pointer" | "$PYTHON" -c '
import sys
from shared.index_versions import IndexMismatch, parse_pointer
try:
    print(parse_pointer(sys.stdin.buffer.read(), sys.argv[1]))
except IndexMismatch as exc:
    sys.exit(f"error: {exc}")' "$root/current.json") || return 1
        manifest=$(index_file "$root" "versions/$manifest_version/manifest.json") && return 0
        warn "$root/current.json names version $manifest_version, which has no manifest"
        return 1
    fi
    ((status == 3)) || return 1
    manifest=$(index_file "$root" manifest.json) || status=$?
    ((status == 3)) && return 0
    return "$status"
}

# Choose the worker's memory, vCPU and glibc tunables that are left at auto, for the
# index it will serve (SIZE_FOR_INDEX, else the current version at INDEX_URI), by the
# rule of shared/worker_size.py; the operator's explicit values are kept. No index yet:
# the size for the demo gallery.
size_worker() {
    local root=${SIZE_FOR_INDEX:-$INDEX_URI} chosen line
    local -a args=(--huge-pages-from="$HUGE_PAGES_FROM_ENTRIES")
    [[ $WORKER_MEMORY == auto ]] || args+=(--memory="$WORKER_MEMORY")
    [[ $WORKER_CPU == auto ]] || args+=(--cpu="$WORKER_CPU")
    [[ $WORKER_GLIBC_TUNABLES == auto ]] || args+=(--glibc-tunables="$WORKER_GLIBC_TUNABLES")
    local explicit="set WORKER_MEMORY, WORKER_CPU and WORKER_GLIBC_TUNABLES to deploy"
    explicit+=" without sizing from the index (docs/deploy.md, \"The worker's size\")"
    if [[ $root == gs://* ]] && is_dry_run; then
        show gcloud storage cat "$root/current.json" --project="$PROJECT"
        log "a dry run reads no index from $root: the worker is sized as without one" \
            "(SIZE_FOR_INDEX=DIR sizes it for a local index)"
    else
        [[ $root == gs://* || -d $root ]] || die "SIZE_FOR_INDEX=$root is not a directory"
        read_current_manifest "$root" || die "cannot read the index at $root; $explicit"
        [[ -n $manifest ]] || log "no index at $root yet"
    fi
    if [[ -n $manifest ]]; then
        args+=(--manifest=- --version="${manifest_version:-}")
    fi
    chosen=$(printf '%s' "$manifest" | "$PYTHON" -m shared.worker_size "${args[@]}") ||
        die "cannot size the worker for the index at $root (above); $explicit"
    while IFS= read -r line; do
        case $line in
            memory=*) WORKER_MEMORY=${line#memory=} ;;
            cpu=*) WORKER_CPU=${line#cpu=} ;;
            glibc_tunables=*) WORKER_GLIBC_TUNABLES=${line#glibc_tunables=} ;;
            reason=*) log "worker size: ${line#reason=}" ;;
            warning=*) warn "${line#warning=}" ;;
        esac
    done <<<"$chosen"
}

worker_env=()
if [[ $target == all || $target == worker ]]; then
    choose_worker_wheels
    size_worker
    if [[ -n $WORKER_GLIBC_TUNABLES ]]; then
        worker_env+=("GLIBC_TUNABLES=$WORKER_GLIBC_TUNABLES")
    fi
fi
# Each function deploys from its own staged copy, so each installs only its lock.
staging=$(mktemp -d "${TMPDIR:-/tmp}/lookalike-deploy.XXXXXX")
if [[ $KEEP_STAGING == 1 ]]; then
    log "KEEP_STAGING=1: $staging stays after the deployment"
else
    trap 'rm -rf "$staging"' EXIT
fi
worker_source=$staging/worker
webhook_source=$staging/webhook
if [[ $target == all || $target == worker ]]; then
    stage_source "$worker_source" "$REPO_ROOT/locks/worker.txt" "$fast_dlib" "$fast_nmslib"
    # The wheels use AVX2 and FMA; an instance without them says so (shared/cpu.py).
    [[ -n $fast_dlib ]] && worker_env+=("LOOKALIKE_REQUIRED_CPU_FLAGS=avx2,fma")
fi
if [[ $target == all || $target == webhook ]]; then
    stage_source "$webhook_source" "$REPO_ROOT/locks/webhook.txt"
fi

env_vars=(
    "GOOGLE_CLOUD_PROJECT=$PROJECT"
    "LOOKALIKE_INDEX_URI=$INDEX_URI"
    "LOOKALIKE_MODELS_URI=$MODELS_URI"
    "LOOKALIKE_MARKERS_URI=$MARKERS_URI"
    "LOOKALIKE_QUOTA_URI=$QUOTAS_URI"
    "LOOKALIKE_JOBS_TOPIC=$JOBS_TOPIC"
    "LOOKALIKE_MAX_JOB_AGE_SECONDS=$MAX_JOB_AGE_SECONDS"
    "LOOKALIKE_INDEX_REFRESH_SECONDS=$INDEX_REFRESH_SECONDS"
    "LOOKALIKE_TELEGRAM_API_URL=$TELEGRAM_API_URL"
)
if [[ -n $BOT_USERNAME ]]; then
    env_vars+=("LOOKALIKE_BOT_USERNAME=$BOT_USERNAME")
else
    warn "BOT_USERNAME is empty: the bot will not recognise mentions in groups"
fi
if [[ -n $CONTACT ]]; then
    env_vars+=("LOOKALIKE_CONTACT=$CONTACT")
else
    warn "CONTACT is empty: /privacy cannot say where to ask for removal from the gallery"
fi
# KEY=VALUE pairs for gcloud: joined by commas, or, when a value holds a comma, by `;`
# announced with gcloud's ^;^ prefix (see `gcloud topic escaping`).
joined() {
    local pair IFS=,
    for pair in "$@"; do
        if [[ $pair == *,* ]]; then
            IFS=';'
            printf '^;^'
            break
        fi
    done
    printf '%s' "$*"
}

common=(
    --project="$PROJECT" --region="$REGION" --gen2 --runtime="$RUNTIME"
    --build-service-account="projects/$PROJECT/serviceAccounts/$BUILD_SA_EMAIL"
)

deploy_worker() {
    log "deploying $WORKER_FUNCTION"
    # A worker of an earlier deploy.sh has an Eventarc trigger, whose subscription cannot
    # have message ordering; Cloud Functions cannot change a function's trigger type.
    local trigger
    trigger=$(capture "" gcloud functions describe "$WORKER_FUNCTION" --project="$PROJECT" \
        --region="$REGION" --gen2 --format='value(eventTrigger.trigger)' 2>/dev/null) || true
    [[ -z $trigger ]] || die "$WORKER_FUNCTION has the Eventarc trigger of an earlier" \
        "deploy; when no jobs are waiting, delete it (gcloud functions delete" \
        "$WORKER_FUNCTION --region=$REGION --gen2) and deploy again"
    # An HTTP function that only the push subscription below calls, as the invoker
    # account; functions-framework reads the push body as the CloudEvent main.py declares
    # (the local stack calls it the same way). THREADS lets its gunicorn serve as many
    # requests at once as Cloud Run sends.
    run gcloud functions deploy "$WORKER_FUNCTION" "${common[@]}" --source="$worker_source" \
        --entry-point=worker --trigger-http --no-allow-unauthenticated \
        --service-account="$WORKER_SA_EMAIL" --ingress-settings=internal-only \
        --memory="$WORKER_MEMORY" --cpu="$WORKER_CPU" --concurrency="$WORKER_CONCURRENCY" \
        --timeout="$WORKER_TIMEOUT" --min-instances="$WORKER_MIN_INSTANCES" \
        --max-instances="$WORKER_MAX_INSTANCES" \
        --set-env-vars="$(joined "${env_vars[@]}" "${worker_env[@]}" \
            "THREADS=$WORKER_CONCURRENCY")" \
        --set-secrets="TELEGRAM_BOT_TOKEN=$TOKEN_SECRET:latest"
    run gcloud functions add-invoker-policy-binding "$WORKER_FUNCTION" \
        --project="$PROJECT" --region="$REGION" --member="serviceAccount:$INVOKER_SA_EMAIL"

    local url
    url=$(capture "https://$WORKER_FUNCTION-$PROJECT.$REGION.run.app" \
        gcloud functions describe "$WORKER_FUNCTION" --project="$PROJECT" \
        --region="$REGION" --gen2 --format='value(serviceConfig.uri)')
    [[ -n $url ]] || die "$WORKER_FUNCTION has no URL"
    # The topic in the path becomes the CloudEvent's source, as in Eventarc's push URLs.
    local push=(
        --project="$PROJECT" --push-endpoint="$url/projects/$PROJECT/topics/$JOBS_TOPIC"
        --push-auth-service-account="$INVOKER_SA_EMAIL" --push-auth-token-audience="$url"
        --ack-deadline="$WORKER_ACK_DEADLINE"
        --min-retry-delay="$MIN_RETRY_DELAY" --max-retry-delay="$MAX_RETRY_DELAY"
        --dead-letter-topic="projects/$PROJECT/topics/$DEAD_LETTER_TOPIC"
        --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
    )
    if exists gcloud pubsub subscriptions describe "$WORKER_SUBSCRIPTION" --project="$PROJECT"; then
        log "configuring $WORKER_SUBSCRIPTION"
        [[ $(gcloud pubsub subscriptions describe "$WORKER_SUBSCRIPTION" --project="$PROJECT" \
            --format='value(enableMessageOrdering)') == True ]] ||
            warn "$WORKER_SUBSCRIPTION has no message ordering (set only at creation):" \
                "one chat's burst can fill the workers; delete it when no jobs wait" \
                "and deploy again"
        run gcloud pubsub subscriptions update "$WORKER_SUBSCRIPTION" "${push[@]}"
    else
        log "creating $WORKER_SUBSCRIPTION"
        run gcloud pubsub subscriptions create "$WORKER_SUBSCRIPTION" --topic="$JOBS_TOPIC" \
            --enable-message-ordering "${push[@]}"
    fi
    # Dead-lettering needs Pub/Sub's service agent to acknowledge on this subscription.
    local number
    number=$(project_number)
    run gcloud pubsub subscriptions add-iam-policy-binding "$WORKER_SUBSCRIPTION" \
        --project="$PROJECT" --role=roles/pubsub.subscriber \
        --member="serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com"
}

deploy_webhook() {
    log "deploying $WEBHOOK_FUNCTION"
    # Telegram calls the webhook without Google credentials; the function checks the
    # X-Telegram-Bot-Api-Secret-Token header instead. THREADS lets functions-framework's
    # gunicorn serve as many requests at once as Cloud Run sends. Its lock has no face
    # code (no dlib, nmslib, numpy or Pillow): it never imports any.
    run gcloud functions deploy "$WEBHOOK_FUNCTION" "${common[@]}" --source="$webhook_source" \
        --entry-point=webhook \
        --trigger-http --allow-unauthenticated \
        --service-account="$WEBHOOK_SA_EMAIL" --ingress-settings=all \
        --memory="$WEBHOOK_MEMORY" --cpu="$WEBHOOK_CPU" \
        --concurrency="$WEBHOOK_CONCURRENCY" --timeout="$WEBHOOK_TIMEOUT" \
        --min-instances="$WEBHOOK_MIN_INSTANCES" --max-instances="$WEBHOOK_MAX_INSTANCES" \
        --set-env-vars="$(joined "${env_vars[@]}" "THREADS=$WEBHOOK_CONCURRENCY")" \
        --set-secrets="TELEGRAM_WEBHOOK_SECRET=$WEBHOOK_SECRET_NAME:latest"
}

if [[ $target == all || $target == worker ]]; then deploy_worker; fi
if [[ $target == all || $target == webhook ]]; then deploy_webhook; fi
log "done; next: infra/webhook.sh set"
