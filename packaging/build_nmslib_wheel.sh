#!/usr/bin/env bash
# Build an nmslib wheel for an explicit AVX2 + FMA baseline, once per (nmslib version,
# Python) into a cache outside the repository, and print the path of the wheel.
#
#   packaging/build_nmslib_wheel.sh          # uses python3
#
# Why: the PyPI wheel is compiled for plain SSE2 and says so at import; its distance
# loops are slower than a build with the CPU's vector instructions (figures in
# docs/performance.md). nmslib's setup.py compiles with -march=native unless CFLAGS
# names an architecture switch; native would tie the wheel to the build machine (this one
# has AVX-512), so the baseline is set explicitly, as for the dlib wheel. auditwheel
# bundles libgomp (OpenMP, used by nmslib's index building). Logs go to stderr; stdout is
# only the wheel path.
#
# Settings (environment): PYTHON, NMSLIB_VERSION, NICE, CACHED_ONLY=1 (print a cached
# wheel or exit 3, never build), LOOKALIKE_WHEEL_CACHE.
set -euo pipefail

NAME=build_nmslib_wheel
PYTHON=${PYTHON:-python3}
NMSLIB_VERSION=${NMSLIB_VERSION:-2.1.2}
NICE=${NICE:-10}
# shellcheck source=packaging/wheels.sh
source "$(dirname "$0")/wheels.sh"

KEY="nmslib-${NMSLIB_VERSION}-avx2-${PY_TAG}"
use_cached_wheel "$KEY" nmslib "$NMSLIB_VERSION"

build_tools "$KEY" "pybind11<3" "numpy<3"
SRC=$(unpacked_sdist nmslib "$NMSLIB_VERSION")

log "compiling ($KEY) with nice -n $NICE; this takes 5-10 minutes"
(
  cd "$SRC"
  CFLAGS="-mavx -mavx2 -mfma" nice -n "$NICE" "$TOOLS/python" setup.py bdist_wheel \
    -d "$WORK/dist" >&2
)
raw=$(compgen -G "$WORK/dist/nmslib-*.whl" | head -n 1)
[[ -n $raw ]] || { log "no wheel was built"; exit 1; }
repaired "$KEY" nmslib "$NMSLIB_VERSION" "$raw"
