#!/usr/bin/env bash
# Sets up, builds and runs every test suite (lit, unit, end to end against ONNX Runtime),
# then, under AddressSanitizer + UndefinedBehaviorSanitizer, the runtime's tests (a separate
# small build of the runtime alone: about half a minute) and the ONNX importer on every
# model of ONNX's backend test data and of the lit tests (the importer alone: about
# four minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd "${KILN_BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" "$@")
bash scripts/test-asan.sh runtime
bash scripts/test-asan.sh importer
