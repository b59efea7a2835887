#!/usr/bin/env bash
# Installs every Debian and npm dependency Kiln needs; idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_PACKAGES=(
  cmake ninja-build g++ pkg-config
  llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools clang-22 lld-22
  libclang-rt-22-dev  # ASan, UBSan and libFuzzer runtimes (scripts/test-asan.sh, scripts/fuzz.sh)
  libonnx-dev libprotobuf-dev protobuf-compiler libonnx-testdata zlib1g-dev
  libgtest-dev
  qemu-user g++-aarch64-linux-gnu libc6-dev-arm64-cross
  python3-onnx python3-numpy python3-torch python3-torchvision
  dataset-fashion-mnist espeak-ng
  verilator  # the accelerator's RTL simulation (hw_gen/, tests/hw/)
  libvulkan-dev mesa-vulkan-drivers spirv-tools glslang-tools  # the Vulkan target, tested on lavapipe
  chromium  # kiln plan's report.html is checked rendered headless (tests/e2e: plan_fmnist)

)

missing=()
for p in "${DEB_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${#missing[@]} Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v npm >/dev/null; then
  DEB_NODE=(nodejs npm)
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${DEB_NODE[@]}" >/dev/null
fi

# ONNX Runtime is the out-of-process oracle; its install script tries a download, so skip it.
if [ ! -f tests/oracle/node_modules/onnxruntime-node/package.json ]; then
  echo "setup: installing onnxruntime-node (npm)"
  (cd tests/oracle && ONNXRUNTIME_NODE_INSTALL=skip npm install --silent --no-audit --no-fund >/dev/null)
fi

# Silero VAD v5 (e2e case silero_vad) is fetched, not committed: npm pack of a pinned
# @ricky0123/vad-web, sha256-checked, into models/generated/. Quiet when present.
/usr/bin/python3 models/fetch_silero_vad.py --quiet
