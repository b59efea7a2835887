#!/usr/bin/env bash
# Configures (once) and builds Kiln into build/; incremental on later runs.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${KILN_BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_C_COMPILER=clang-22 -DCMAKE_CXX_COMPILER=clang++-22 >/dev/null
fi
ninja -C "$BUILD_DIR" -j"$(nproc)" | grep -vE '^\[[0-9]+/[0-9]+\] ' || true
test -x "$BUILD_DIR/bin/kiln"
