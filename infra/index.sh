#!/usr/bin/env bash
# Build, list or activate celebrity index versions in the artefact bucket. The worker
# follows gs://BUCKET/index/current.json, so a build or an activate reaches the bot
# within LOOKALIKE_INDEX_REFRESH_SECONDS, without a redeploy.
# Usage: [DRY_RUN=1] infra/index.sh build --catalog FILE --photos DIR|gs://... [builder options]
#        [DRY_RUN=1] infra/index.sh versions
#        [DRY_RUN=1] infra/index.sh activate VERSION
# Runs on this machine with Application Default Credentials
# (gcloud auth application-default login); see docs/deploy.md for Dask and Spark.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: infra/index.sh build --catalog FILE --photos DIR|gs://... [options]
       infra/index.sh versions
       infra/index.sh activate VERSION"
action=${1:-}
[[ -n $action ]] || die "$usage"
shift
cd "$REPO_ROOT"
PYTHON=${PYTHON#"$REPO_ROOT"/}
export GOOGLE_CLOUD_PROJECT=$PROJECT

case $action in
    build)
        for arg in "$@"; do
            [[ $arg == --out || $arg == --out=* ]] && die "--out is always $INDEX_URI here"
        done
        run "$PYTHON" -m index_builder build "$@" --out "$INDEX_URI"
        ;;
    versions)
        run "$PYTHON" -m index_builder versions --out "$INDEX_URI"
        ;;
    activate)
        [[ $# -eq 1 ]] || die "$usage"
        run "$PYTHON" -m index_builder activate --out "$INDEX_URI" "$1"
        ;;
    *)
        die "$usage"
        ;;
esac
