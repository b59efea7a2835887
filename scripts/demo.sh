#!/usr/bin/env bash
# Sets up, builds, then compiles the bundled Fashion-MNIST CNN with kiln and runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
echo "== kiln compile models/fmnist_cnn.onnx (batch 4) for x86-64"
build/bin/kiln compile models/fmnist_cnn.onnx --shape input=4,1,28,28 -o build/demo/fmnist_cnn
echo "== kiln run on 4 held-out test images (true labels: $(grep -o '^[0-9]' models/samples/fmnist_sample_labels.txt | tr '\n' ' '))"
build/bin/kiln run models/fmnist_cnn.onnx --input input=models/samples/fmnist_sample.npy --output build/demo/outputs
echo "== outputs written to build/demo/outputs/"
