#!/usr/bin/env bash
# Builds Kiln with AddressSanitizer + UndefinedBehaviorSanitizer (-DKILN_SANITIZE=ON) and
# runs test suites under it (docs/HARDENING.md). scripts/test.sh (CI) runs the `runtime`
# mode; the whole sanitizer build takes tens of minutes on two cores, so it is not in CI.
#
#   bash scripts/test-asan.sh                 # build-asan/: unit (runtime gtests, runner), lit, conformance
#   bash scripts/test-asan.sh unit lit        # a subset; also: fuzz (the committed corpora, KILN_FUZZ=ON)
#   bash scripts/test-asan.sh runtime         # build-asan-runtime/: the runtime and its tests only,
#                                             # without the compiler (about a minute)
#   bash scripts/test-asan.sh importer        # build-asan-importer/: the ONNX importer alone (its
#                                             # fuzz target's replay driver) on the fuzz corpus, ONNX's
#                                             # backend test models and the lit tests' models
#   KILN_JOBS=1 bash scripts/test-asan.sh     # build and test with one job
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${KILN_JOBS:-$(nproc)}
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=(unit lit conformance)
CONFIG=(-DKILN_SANITIZE=ON -DKILN_BUILD_BENCH=OFF)
TARGETS=()
if [ "${SUITES[*]}" = runtime ]; then
  BUILD_DIR=${KILN_ASAN_BUILD_DIR:-build-asan-runtime}
  CONFIG+=(-DKILN_BUILD_COMPILER=OFF)
  SUITES=(unit)
elif [ "${SUITES[*]}" = importer ]; then
  BUILD_DIR=${KILN_ASAN_BUILD_DIR:-build-asan-importer}
  TARGETS=(kiln-replay-onnx)
else
  BUILD_DIR=${KILN_ASAN_BUILD_DIR:-build-asan}
fi
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 "${CONFIG[@]}" >/dev/null
fi
ninja -C "$BUILD_DIR" -j"$JOBS" "${TARGETS[@]}" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
source scripts/sanitizer-env.sh
cd "$BUILD_DIR"
rc=0
for suite in "${SUITES[@]}"; do
  case $suite in
    unit) args=(-LE 'lit|e2e|conformance|fuzz') ;;   # runtime gtests + kiln_runner.*
    lit) args=(-L lit) ;;
    conformance) args=(-L conformance) ;;
    fuzz) args=(-L fuzz) ;;
    importer) args=(-R '^fuzz\.onnx') ;;
    *) echo "unknown suite '$suite' (unit, lit, conformance, fuzz, or runtime or importer alone)" >&2; exit 2 ;;
  esac
  echo "== $suite (ASan + UBSan)"
  ctest --output-on-failure -j"$JOBS" "${args[@]}" || rc=1
done
exit $rc
