// Bad plans are rejected with an error that names the layer; nothing is lowered.
// RUN: echo '{"layers": [{"name": "nope", "bits": 8, "input_range": [0, 1]}]}' > %t.missing.json
// RUN: not kiln-opt %s -kiln-quantize="plan=%t.missing.json" 2>&1 | FileCheck %s --check-prefix=MISSING
// MISSING: error: quantisation plan: the model has no quantisable layer named 'nope'
// RUN: echo '{"layers": [{"name": "conv1", "bits": 5, "input_range": [0, 1]}]}' > %t.bits.json
// RUN: not kiln-opt %s -kiln-quantize="plan=%t.bits.json" 2>&1 | FileCheck %s --check-prefix=BITS
// BITS: error: quantisation plan: layer 'conv1': "bits" must be 4, 8, 16 (bf16) or 32
// RUN: echo '{"layers": [{"name": "conv1", "bits": 8}]}' > %t.range.json
// RUN: not kiln-opt %s -kiln-quantize="plan=%t.range.json" 2>&1 | FileCheck %s --check-prefix=RANGE
// RANGE: error: quantisation plan: layer 'conv1' is planned at 8 bits but has no "input_range"
// RUN: echo '{"layers": [{"name": "conv1", "bits": 8, "input_range": [2, 1]}]}' > %t.order.json
// RUN: not kiln-opt %s -kiln-quantize="plan=%t.order.json" 2>&1 | FileCheck %s --check-prefix=ORDER
// ORDER: error: quantisation plan: layer 'conv1': "input_range" must be [lo, hi] with lo <= hi
// RUN: echo '{"layers": [' > %t.json.json
// RUN: not kiln-opt %s -kiln-quantize="plan=%t.json.json" 2>&1 | FileCheck %s --check-prefix=JSON
// JSON: error: quantisation plan '{{.*}}' is not valid JSON
// RUN: echo '{"layers": [{"name": "conv1", "bits": 8, "input_range": [0, 1]}, {"name": "conv1", "bits": 32}]}' > %t.twice.json
// RUN: not kiln-opt %s -kiln-quantize="plan=%t.twice.json" 2>&1 | FileCheck %s --check-prefix=TWICE
// TWICE: error: quantisation plan: layer 'conv1' appears twice
// RUN: not kiln-opt %s -kiln-quantize="plan=%t.does-not-exist.json" 2>&1 | FileCheck %s --check-prefix=NOFILE
// NOFILE: error: cannot read the quantisation plan

module {
  memref.global "private" constant @filter : memref<2x1x1x3xf32> = dense<1.0>
  func.func @forward(%in: memref<1x4x4x3xf32>, %out: memref<1x4x4x2xf32>) {
    %f = memref.get_global @filter : memref<2x1x1x3xf32>
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x4x4x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x4x4x2xf32>) loc("conv1")
    return
  }
}
