#!/usr/bin/env bash
# Deploy (or redeploy) the two Cloud Functions from the repository root, then attach
# the dead-letter topic and retry policy to the worker's trigger subscription.
# Usage: [DRY_RUN=1] infra/deploy.sh [all|worker|webhook]
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

target=${1:-all}
case $target in
    all | worker | webhook) ;;
    *) die "usage: infra/deploy.sh [all|worker|webhook]" ;;
esac
# --source=. uploads the repository root, filtered by .gcloudignore.
cd "$REPO_ROOT"

env_vars=(
    "GOOGLE_CLOUD_PROJECT=$PROJECT"
    "LOOKALIKE_INDEX_URI=$INDEX_URI"
    "LOOKALIKE_MODELS_URI=$MODELS_URI"
    "LOOKALIKE_MARKERS_URI=$MARKERS_URI"
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
joined() { local IFS=,; printf '%s' "$*"; }

common=(
    --project="$PROJECT" --region="$REGION" --gen2 --runtime="$RUNTIME" --source=.
    --build-service-account="projects/$PROJECT/serviceAccounts/$BUILD_SA_EMAIL"
)

deploy_worker() {
    log "deploying $WORKER_FUNCTION"
    # Only Pub/Sub calls the worker, as the invoker account; --retry redelivers a job
    # whose processing failed, bounded by the dead-letter policy below.
    run gcloud functions deploy "$WORKER_FUNCTION" "${common[@]}" --entry-point=worker \
        --trigger-topic="$JOBS_TOPIC" --retry \
        --trigger-service-account="$INVOKER_SA_EMAIL" \
        --service-account="$WORKER_SA_EMAIL" --ingress-settings=internal-only \
        --memory="$WORKER_MEMORY" --cpu="$WORKER_CPU" --concurrency="$WORKER_CONCURRENCY" \
        --timeout="$WORKER_TIMEOUT" --min-instances="$WORKER_MIN_INSTANCES" \
        --max-instances="$WORKER_MAX_INSTANCES" \
        --set-env-vars="$(joined "${env_vars[@]}")" \
        --set-secrets="TELEGRAM_BOT_TOKEN=$TOKEN_SECRET:latest"
    run gcloud functions add-invoker-policy-binding "$WORKER_FUNCTION" \
        --project="$PROJECT" --region="$REGION" --member="serviceAccount:$INVOKER_SA_EMAIL"

    # Eventarc owns the push subscription; it is found through the function's trigger.
    local trigger subscription number
    trigger=$(capture "projects/$PROJECT/locations/$REGION/triggers/$WORKER_FUNCTION-000000" \
        gcloud functions describe "$WORKER_FUNCTION" --project="$PROJECT" \
        --region="$REGION" --gen2 --format='value(eventTrigger.trigger)')
    [[ -n $trigger ]] || die "$WORKER_FUNCTION has no event trigger"
    subscription=$(capture \
        "projects/$PROJECT/subscriptions/eventarc-$REGION-$WORKER_FUNCTION-000000-sub-000" \
        gcloud eventarc triggers describe "$trigger" --project="$PROJECT" \
        --location="$REGION" --format='value(transport.pubsub.subscription)')
    [[ -n $subscription ]] || die "trigger $trigger has no Pub/Sub subscription"
    log "configuring $subscription"
    run gcloud pubsub subscriptions update "$subscription" --project="$PROJECT" \
        --ack-deadline="$WORKER_ACK_DEADLINE" \
        --min-retry-delay="$MIN_RETRY_DELAY" --max-retry-delay="$MAX_RETRY_DELAY" \
        --dead-letter-topic="projects/$PROJECT/topics/$DEAD_LETTER_TOPIC" \
        --max-delivery-attempts="$MAX_DELIVERY_ATTEMPTS"
    # Dead-lettering needs Pub/Sub's service agent to acknowledge on this subscription.
    number=$(project_number)
    run gcloud pubsub subscriptions add-iam-policy-binding "$subscription" \
        --project="$PROJECT" --role=roles/pubsub.subscriber \
        --member="serviceAccount:service-$number@gcp-sa-pubsub.iam.gserviceaccount.com"
}

deploy_webhook() {
    log "deploying $WEBHOOK_FUNCTION"
    # Telegram calls the webhook without Google credentials; the function checks the
    # X-Telegram-Bot-Api-Secret-Token header instead. THREADS lets functions-framework's
    # gunicorn serve as many requests at once as Cloud Run sends.
    run gcloud functions deploy "$WEBHOOK_FUNCTION" "${common[@]}" --entry-point=webhook \
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
