#!/usr/bin/env bash
# Build a dlib wheel with AVX2 and a bundled single-threaded OpenBLAS, once per
# (dlib version, build flags, Python, OpenBLAS) into a cache outside the repository,
# and print the path of the wheel.
#
#   packaging/build_dlib_wheel.sh            # uses python3
#   PYTHON=/path/to/python3.12 packaging/build_dlib_wheel.sh
#
# Why: the dlib-bin wheel has SIMD but no BLAS, so the ResNet descriptor runs on dlib's
# fallback matrix multiply, several times slower (docs/performance.md). The wheel is repaired
# with auditwheel so that OpenBLAS (and libgfortran) ship inside it and `import dlib`
# works on a machine without them. A second run with the same key prints the cached
# wheel without compiling. Build logs go to stderr; stdout is only the wheel path.
#
# Settings (environment): PYTHON, DLIB_VERSION, SIMD (avx2 | avx), JOBS, NICE,
# CACHED_ONLY=1 (print a cached wheel or exit 3, never build),
# LOOKALIKE_WHEEL_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/lookalike-wheels).
# Shared steps (cache, build tools, auditwheel) are in packaging/wheels.sh.
set -euo pipefail

NAME=build_dlib_wheel
PYTHON=${PYTHON:-python3}
DLIB_VERSION=${DLIB_VERSION:-20.0.1}
SIMD=${SIMD:-avx2}
JOBS=${JOBS:-2}
NICE=${NICE:-10}
OPENBLAS_DIR=/usr/lib/x86_64-linux-gnu/openblas-serial
OPENBLAS_INCLUDE=/usr/include/x86_64-linux-gnu/openblas-serial
# shellcheck source=packaging/wheels.sh
source "$(dirname "$0")/wheels.sh"

case "$SIMD" in
  # dlib's own switch compiles with -mavx only; its 8-lane integer SIMD (used by the HOG
  # detector) then falls back to emulation, and with this GCC the detector runs slower
  # than dlib-bin's (docs/performance.md, "What the figures say"). -mavx2 gives it native instructions. Never -march=native: the wheel
  # must run on any AVX2 machine, not only on the build machine.
  avx) EXTRA_FLAGS="" ;;
  avx2) EXTRA_FLAGS="-mavx2 -mfma" ;;
  *) log "SIMD must be avx or avx2, not '$SIMD'"; exit 2 ;;
esac

# Debian's single-threaded OpenBLAS: one request per instance, so threads only add
# start-up cost and contention. Installed on demand when running as root (CI, dev boxes).
if [[ ! -e $OPENBLAS_DIR/libopenblas.so || ! -e $OPENBLAS_INCLUDE/cblas.h ]]; then
  stop_if_cached_only "no libopenblas-serial-dev"
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    log "installing libopenblas-serial-dev"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q libopenblas-serial-dev >&2 \
      || { apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive \
             apt-get install -y -q libopenblas-serial-dev >&2; }
  else
    log "needs Debian's libopenblas-serial-dev (apt-get install libopenblas-serial-dev)"
    exit 2
  fi
fi
OPENBLAS_VERSION=$(basename "$(readlink -f "$OPENBLAS_DIR/libopenblas.so")" .so)
OPENBLAS_VERSION=${OPENBLAS_VERSION#libopenblas-}

KEY="dlib-${DLIB_VERSION}-${SIMD}-openblas-serial-${OPENBLAS_VERSION}-release-${PY_TAG}"
use_cached_wheel "$KEY" dlib "$DLIB_VERSION"

build_tools "$KEY"
# cmake from the build venv when the machine has none.
command -v cmake >/dev/null || "$TOOLS/pip" install --quiet "cmake<4" >&2
log "dlib $DLIB_VERSION source"
SRC=$(unpacked_sdist dlib "$DLIB_VERSION")

log "compiling ($KEY) with nice -n $NICE and $JOBS jobs; this takes 10-20 minutes"
(
  cd "$SRC"
  export CMAKE_BUILD_PARALLEL_LEVEL=$JOBS
  # Explicit switches rather than dlib's host probe, so the wheel does not depend on
  # the build machine; no GUI, CUDA or extra image formats (the pipeline passes arrays).
  # dlib's setup.py parses its --set options too late for bdist_wheel, but forwards
  # DLIB_* variables to cmake, and cmake reads CXXFLAGS and its own search paths.
  export CXXFLAGS="-mavx${EXTRA_FLAGS:+ $EXTRA_FLAGS}"
  export CMAKE_LIBRARY_PATH=$OPENBLAS_DIR CMAKE_INCLUDE_PATH=$OPENBLAS_INCLUDE
  DLIB_USE_BLAS=ON DLIB_USE_LAPACK=OFF DLIB_USE_CUDA=OFF DLIB_NO_GUI_SUPPORT=ON \
    DLIB_GIF_SUPPORT=OFF DLIB_WEBP_SUPPORT=OFF DLIB_JXL_SUPPORT=OFF \
    nice -n "$NICE" "$TOOLS/python" setup.py bdist_wheel -d "$WORK/dist" >&2
)

raw=$(compgen -G "$WORK/dist/dlib-*.whl" | head -n 1)
[[ -n $raw ]] || { log "no wheel was built"; exit 1; }
# The build must really use BLAS: dlib silently falls back to its own matrix multiply.
if ! "$TOOLS/python" - "$raw" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    ext = [n for n in wheel.namelist() if n.startswith("_dlib_pybind11")]
    sys.exit(not ext or b"cblas_sgemm" not in wheel.read(ext[0]))
PY
then
  log "the built extension does not call cblas_sgemm: BLAS was not found"
  exit 1
fi

log "auditwheel repair (bundles OpenBLAS and libgfortran)"
LD_LIBRARY_PATH="$OPENBLAS_DIR" repaired "$KEY" dlib "$DLIB_VERSION" "$raw"
