#!/usr/bin/env bash
# Harvest a gallery, build, list or activate celebrity index versions in the artefact
# bucket, or remove people from it. The worker follows gs://BUCKET/index/current.json, so
# a build, an activate or a remove reaches the bot within LOOKALIKE_INDEX_REFRESH_SECONDS,
# without a redeploy.
# Usage: [DRY_RUN=1] infra/index.sh harvest --catalog-out FILE --photos DIR|gs://... --contact TEXT [options]
#        [DRY_RUN=1] infra/index.sh build --catalog FILE --photos DIR|gs://... [builder options]
#        [DRY_RUN=1] infra/index.sh remove [--photos DIR|gs://...] QID [QID...]
#        [DRY_RUN=1] infra/index.sh versions
#        [DRY_RUN=1] infra/index.sh activate VERSION
# Runs on this machine with Application Default Credentials
# (gcloud auth application-default login); see docs/deploy.md for Dask and Spark.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: infra/index.sh harvest --catalog-out FILE --photos DIR|gs://... --contact TEXT [options]
       infra/index.sh build --catalog FILE --photos DIR|gs://... [options]
       infra/index.sh remove [--photos DIR|gs://...] QID [QID...]
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
    harvest)
        # The opt-out list that `remove` keeps beside the versions (docs/catalog.md).
        run "$PYTHON" -m index_builder harvest "$@" --exclude "$INDEX_URI/excluded.txt"
        ;;
    remove)
        [[ $# -ge 1 ]] || die "$usage"
        run "$PYTHON" -m index_builder remove --out "$INDEX_URI" "$@"
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
