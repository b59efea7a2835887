#!/usr/bin/env bash
# Sets up, builds and runs every test suite (lit, unit, end to end against ONNX Runtime),
# then the runtime's tests again under AddressSanitizer + UndefinedBehaviorSanitizer
# (a separate small build of the runtime alone: about half a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd "${KILN_BUILD_DIR:-build}" && ctest --output-on-failure -j"$(nproc)" "$@")
bash scripts/test-asan.sh runtime
