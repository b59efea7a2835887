#!/usr/bin/env bash
# Sets up, builds and runs every test suite (lit, unit, end to end against ONNX Runtime).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${KILN_BUILD_DIR:-build}"
ctest --output-on-failure -j"$(nproc)" "$@"
