#!/usr/bin/env bash
# One screen for the operator: the deployed revisions, the current index version and its
# size, what Telegram knows about the webhook (pending updates, last error), the
# dead-letter depth and the functions' last errors.
# Usage: [DRY_RUN=1] [ERRORS=10] [FRESHNESS=1d] infra/status.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ERRORS=${ERRORS:-10}
FRESHNESS=${FRESHNESS:-1d}

section() { printf '\n== %s\n' "$*" >&2; }

section "functions ($REGION)"
for function in "$WEBHOOK_FUNCTION" "$WORKER_FUNCTION"; do
    attempt gcloud functions describe "$function" --project="$PROJECT" --region="$REGION" \
        --gen2 --format='table[box,no-heading](name.basename(),state,serviceConfig.revision,serviceConfig.availableCpu,serviceConfig.availableMemory,serviceConfig.minInstanceCount,serviceConfig.maxInstanceCount,updateTime)'
done

section "index ($INDEX_URI)"
if version=$(capture '{"version": "20260101-000000"}' gcloud storage cat \
        "$INDEX_URI/current.json" --project="$PROJECT" 2>/dev/null); then
    version=$(printf '%s' "$version" | sed -n 's/.*"version": *"\([^"]*\)".*/\1/p')
    printf 'current version: %s\n' "${version:-?}" >&2
    attempt gcloud storage du --summarize --readable-sizes \
        "$INDEX_URI/versions/$version/" --project="$PROJECT"
    manifest=$(capture '{}' gcloud storage cat "$INDEX_URI/versions/$version/manifest.json" \
        --project="$PROJECT" 2>/dev/null) || manifest='{}'
    for field in celebrities entries photos created; do
        value=$(printf '%s' "$manifest" | tr -d '\n' |
            sed -n "s/.*\"$field\": *\"\{0,1\}\([^\",}]*\).*/\1/p")
        [[ -n $value ]] && printf '%s: %s\n' "$field" "$value" >&2
    done
else
    warn "no index version at $INDEX_URI (infra/setup.sh publishes the demo gallery)"
fi

section "Telegram webhook"
"$INFRA_DIR/webhook.sh" info ||
    warn "getWebhookInfo failed (is the bot token secret $TOKEN_SECRET set?)"

section "dead letters ($DEAD_LETTER_SUBSCRIPTION)"
# Pub/Sub has no call for a subscription's backlog; Cloud Monitoring has it, a minute
# or two late. The access token goes to curl on standard input, as webhook.sh does.
token=$(capture ACCESS_TOKEN gcloud auth print-access-token --project="$PROJECT")
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
since=$(date -u -d '-10 minutes' +%Y-%m-%dT%H:%M:%SZ)
filter="metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.labels.subscription_id=\"$DEAD_LETTER_SUBSCRIPTION\""
url="https://monitoring.googleapis.com/v3/projects/$PROJECT/timeSeries"
depth=$(run_stdin 'header = "Authorization: Bearer <ACCESS_TOKEN>"' \
    "header = \"Authorization: Bearer $token\"" \
    curl --silent --show-error --max-time 30 --get --config - "$url" \
    --data-urlencode "filter=$filter" --data-urlencode "interval.startTime=$since" \
    --data-urlencode "interval.endTime=$now") || depth=
if ! is_dry_run; then
    value=$(printf '%s' "$depth" | tr -d '\n ' | sed -n 's/.*"int64Value":"\([0-9]*\)".*/\1/p' |
        head -n1)
    printf 'undelivered: %s\n' "${value:-0 (no data in the last 10 minutes)}" >&2
    [[ ${value:-0} == 0 ]] ||
        log "read them: gcloud pubsub subscriptions pull $DEAD_LETTER_SUBSCRIPTION --limit=5"
fi

section "last $ERRORS errors ($FRESHNESS)"
attempt gcloud logging read --project="$PROJECT" --freshness="$FRESHNESS" --limit="$ERRORS" \
    "severity>=ERROR AND resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(\"$WEBHOOK_FUNCTION\" OR \"$WORKER_FUNCTION\")" \
    --format='table(timestamp,resource.labels.service_name,severity,jsonPayload.message,textPayload)'
