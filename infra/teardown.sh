#!/usr/bin/env bash
# Remove what setup.sh and deploy.sh created. The bucket (index versions, models) is
# deleted only after a yes on a terminal, or with ASSUME_YES=1.
# Usage: [DRY_RUN=1] [ASSUME_YES=1] infra/teardown.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log "tearing down the look-alike bot in project $PROJECT"
# Telegram would otherwise keep retrying a URL that no longer exists.
"$INFRA_DIR/webhook.sh" delete || warn "could not remove the Telegram webhook"

for function in "$WEBHOOK_FUNCTION" "$WORKER_FUNCTION"; do
    attempt gcloud functions delete "$function" --project="$PROJECT" --region="$REGION" \
        --gen2 --quiet
done
attempt gcloud pubsub subscriptions delete "$WORKER_SUBSCRIPTION" "$DEAD_LETTER_SUBSCRIPTION" \
    --project="$PROJECT"
attempt gcloud pubsub topics delete "$JOBS_TOPIC" "$DEAD_LETTER_TOPIC" --project="$PROJECT"
attempt gcloud secrets delete "$TOKEN_SECRET" --project="$PROJECT" --quiet
attempt gcloud secrets delete "$WEBHOOK_SECRET_NAME" --project="$PROJECT" --quiet
attempt gcloud projects remove-iam-policy-binding "$PROJECT" --project="$PROJECT" \
    --condition=None --member="serviceAccount:$BUILD_SA_EMAIL" --role=roles/cloudbuild.builds.builder
for email in "$WEBHOOK_SA_EMAIL" "$WORKER_SA_EMAIL" "$INVOKER_SA_EMAIL" "$BUILD_SA_EMAIL"; do
    attempt gcloud iam service-accounts delete "$email" --project="$PROJECT" --quiet
done

if confirm "Delete gs://$BUCKET with every index version and the models?"; then
    attempt gcloud storage rm --recursive "gs://$BUCKET" --project="$PROJECT"
else
    log "kept gs://$BUCKET (delete it with: gcloud storage rm --recursive gs://$BUCKET)"
fi
