#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS (docs/HARDENING.md), building it first in
# build-asan/ with -DKILN_FUZZ=ON (which implies the ASan + UBSan build).
#
#   bash scripts/fuzz.sh onnx|weights|npy|plan|gram|accel|vulkan SECONDS [libFuzzer options...]
#
# The run starts from the committed seeds (tests/fuzz/corpus/TARGET, read only) and
# grows a working corpus in build-asan/fuzz/TARGET/corpus; a crash, leak or timeout is
# written to build-asan/fuzz/TARGET/ as crash-*/leak-*/timeout-* and stops the run.
# KILN_FUZZ_NO_BUILD=1 runs the binary as it is, without configuring or building.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
if [ $# -lt 2 ]; then
  echo "usage: $0 onnx|weights|npy|plan|gram|accel|vulkan SECONDS [libFuzzer options...]" >&2
  exit 2
fi
TARGET=$1 SECONDS_=$2
shift 2
BUILD_DIR=${KILN_ASAN_BUILD_DIR:-build-asan}
JOBS=${KILN_JOBS:-$(nproc)}
if [ -n "${KILN_FUZZ_NO_BUILD:-}" ]; then
  :  # run the binary as built (e.g. while another build uses the tree)
elif [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 \
    -DKILN_SANITIZE=ON -DKILN_FUZZ=ON -DKILN_BUILD_BENCH=OFF >/dev/null
else
  cmake -S . -B "$BUILD_DIR" -DKILN_FUZZ=ON >/dev/null
fi
[ -n "${KILN_FUZZ_NO_BUILD:-}" ] || ninja -C "$BUILD_DIR" -j"$JOBS" "kiln-fuzz-$TARGET" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
if [ ! -x "$BUILD_DIR/bin/kiln-fuzz-$TARGET" ]; then
  # vulkan exists only where the Vulkan headers built kiln_runtime_vulkan.
  echo "$0: $BUILD_DIR/bin/kiln-fuzz-$TARGET was not built (unknown target, a build error, or" \
    "for vulkan no vulkan/vulkan.h)" >&2
  exit 1
fi
WORK=$BUILD_DIR/fuzz/$TARGET
mkdir -p "$WORK/corpus"
source scripts/sanitizer-env.sh
# libFuzzer reports its own crashes; the sanitizers must not abort() under it.
export ASAN_OPTIONS=${ASAN_OPTIONS/abort_on_error=1/abort_on_error=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS/abort_on_error=1/abort_on_error=0}
exec "$BUILD_DIR/bin/kiln-fuzz-$TARGET" -max_total_time="$SECONDS_" -timeout=10 -rss_limit_mb=2048 \
  -malloc_limit_mb=1024 -print_final_stats=1 -artifact_prefix="$WORK/" "$@" \
  "$WORK/corpus" "$ROOT/tests/fuzz/corpus/$TARGET"
