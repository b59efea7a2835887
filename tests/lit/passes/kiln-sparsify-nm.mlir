// RUN: kiln-opt %s -kiln-sparsify-nm="report=%t.report.json" | FileCheck %s --check-prefix=PRUNE
// RUN: FileCheck %s --check-prefix=REPORT < %t.report.json
// RUN: kiln-opt %s -kiln-sparsify-nm -kiln-lower-to-kernels | FileCheck %s --check-prefix=LOWER
// RUN: kiln-opt %s -kiln-sparsify-nm="observe=true" -kiln-lower-to-kernels | FileCheck %s --check-prefix=OBSERVE
// RUN: kiln-opt %s -kiln-sparsify-nm="layers=conv1=1:4,fc=dense min-reduction=4" | FileCheck %s --check-prefix=LAYERS
// RUN: kiln-opt %s -kiln-sparsify-nm="min-reduction=4" -kiln-quantize="default-bits=16" -kiln-lower-to-kernels | FileCheck %s --check-prefix=QUANT
// RUN: not kiln-opt %s -kiln-sparsify-nm="pattern=4:4" 2>&1 | FileCheck %s --check-prefix=BADPATTERN
// RUN: %python -c "import struct,sys; k=36; sys.stdout.buffer.write(b'KGRM'+struct.pack('<iqq',0,k,10)+b''.join(struct.pack('<d',(2.0 if i==j else 0.5)) for i in range(k) for j in range(k)))" > %t.gram
// RUN: kiln-opt %s -kiln-sparsify-nm="gram=%t.gram report=%t.recon.json" | FileCheck %s --check-prefix=PRUNE
// RUN: FileCheck %s --check-prefix=RECON < %t.recon.json
// RUN: echo garbage > %t.bad.gram
// RUN: not kiln-opt %s -kiln-sparsify-nm="gram=%t.bad.gram" 2>&1 | FileCheck %s --check-prefix=BADGRAM
// RUN: %python -c "import struct,sys; sys.stdout.buffer.write(b'KGRM'+struct.pack('<iqq',0,1000,10))" > %t.short.gram
// RUN: not kiln-opt %s -kiln-sparsify-nm="gram=%t.short.gram" 2>&1 | FileCheck %s --check-prefix=SHORTGRAM
// RUN: not kiln-opt %s -kiln-sparsify-nm="layers=nope=2:4" 2>&1 | FileCheck %s --check-prefix=NOLAYER

// Magnitude pruning (no Gram file): each row of the 3x3x4 filter (K = 36) keeps the 2
// largest of every 4 weights. Values and positions are new constants; the 1x1 matmul
// (K = 4) is below min-reduction and stays dense.
// PRUNE-DAG: memref.global "private" constant @kiln_nm_0_values : memref<2x18xf32>
// PRUNE-DAG: memref.global "private" constant @kiln_nm_0_indices : memref<2x18xi8>
// PRUNE: %[[V:.*]] = memref.get_global @kiln_nm_0_values
// PRUNE: %[[I:.*]] = memref.get_global @kiln_nm_0_indices
// PRUNE: %[[W:.*]] = kiln.nm_weights %[[V]], %[[I]] {m = 4 : i64, n = 2 : i64} : memref<2x18xf32>, memref<2x18xi8> -> memref<2x3x3x4xf32>
// PRUNE: linalg.conv_2d_nhwc_fhwc {{.*}} ins(%{{.*}}, %[[W]] :
// PRUNE: linalg.batch_matmul ins(%{{.*}}, %{{.*}} : memref<1x16x4xf32>, memref<1x4x3xf32>)

// The report: pattern, method, errors and bytes for the pruned layer, why for the other.
// REPORT: "dense_bytes": 288
// REPORT: "method": "magnitude"
// REPORT: "name": "conv1"
// REPORT: "pattern": "2:4"
// REPORT: "sparse_bytes": 180
// REPORT: "weight_rel_error":
// REPORT: "name": "fc"
// REPORT: "pattern": "dense"
// REPORT: "reason": "reduction shorter than min-reduction"

// Lowered: the N:M kernel with the panel-packed weights (1 panel x 18 slots x 16 lanes:
// 288 floats and 288 position bytes), the bias fused (flags 0), the dense matmul as before.
// LOWER-DAG: memref.global "private" constant @kiln_packed_{{[0-9]+}} : memref<288xf32>
// LOWER-DAG: memref.global "private" constant @kiln_packed_{{[0-9]+}} : memref<288xi8>
// LOWER-NOT: kiln.nm_weights
// LOWER-NOT: @kiln_nm_0_values
// LOWER: %[[F:.*]] = arith.constant 0 : i32
// LOWER: call @kiln_conv2d_nhwc_f32_nm({{.*}}, %[[F]], {{.*}})
// LOWER: call @kiln_conv2d_nhwc_f32_packed(

// A calibration build: the layers to be pruned record their input Gram matrix; nothing is pruned.
// OBSERVE-NOT: kiln.nm_weights
// OBSERVE: call @kiln_observe_gram(
// OBSERVE-NOT: call @kiln_observe_gram(
// OBSERVE: call @kiln_conv2d_nhwc_f32_packed_fused(

// Per-layer choices override the pattern and the minimum.
// LAYERS: kiln.nm_weights %{{.*}}, %{{.*}} {m = 4 : i64, n = 1 : i64}
// LAYERS-NOT: kiln.nm_weights

// With quantisation too (bf16 here), the quantised kernel runs the pruned weights,
// decoded at compile time; the matmul (2:4 with K = 4) likewise.
// QUANT-NOT: kiln.nm_weights
// QUANT: call @kiln_conv2d_nhwc_bf16_packed(
// QUANT: call @kiln_conv2d_nhwc_bf16_packed(

// With a calibration Gram matrix for layer 0 (a correlated one: 2 on the diagonal, 0.5
// off it), the pruning reconstructs, and the report has the output error it predicts on
// the calibration data, lower than the weight error.
// RECON: "calibration_rows": 10
// RECON: "method": "reconstruction"
// RECON: "output_rel_error": 0.{{[0-9]+}}
// RECON: "pattern": "2:4"

// Malformed Gram files are errors, not crashes.
// BADGRAM: error: calibration Gram file '{{.*}}' is malformed at byte 0
// SHORTGRAM: error: calibration Gram file '{{.*}}': a record claims 1000 inputs, more than the file holds

// BADPATTERN: error: kiln-sparsify-nm: pattern '4:4' is not N:M with 1 <= N < M <= 16 or 'dense'
// NOLAYER: error: kiln-sparsify-nm: the model has no layer named 'nope'

#bias = affine_map<(n, h, w, c) -> (c)>
#id = affine_map<(n, h, w, c) -> (n, h, w, c)>
module {
  memref.global "private" constant @filter : memref<2x3x3x4xf32> = dense<[[[[1.0, -2.0, 0.5, 0.1], [3.0, 0.2, -0.3, 4.0], [0.5, 0.6, -0.7, 0.8]], [[1.0, 2.0, 3.0, 4.0], [-4.0, -3.0, -2.0, -1.0], [0.1, 0.2, 0.3, 0.4]], [[9.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]], [[[1.0, -2.0, 0.5, 0.1], [3.0, 0.2, -0.3, 4.0], [0.5, 0.6, -0.7, 0.8]], [[1.0, 2.0, 3.0, 4.0], [-4.0, -3.0, -2.0, -1.0], [0.1, 0.2, 0.3, 0.4]], [[9.0, 0.0, 0.0, 1.0], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]]]>
  memref.global "private" constant @bias : memref<2xf32> = dense<[0.5, -0.5]>
  memref.global "private" constant @w : memref<1x4x3xf32> = dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.0, 0.0, -1.0]]]>
  func.func @forward(%in: memref<1x6x6x4xf32>, %out: memref<1x4x4x2xf32>, %a: memref<1x16x4xf32>, %out2: memref<1x16x3xf32>) {
    %f = memref.get_global @filter : memref<2x3x3x4xf32>
    %b = memref.get_global @bias : memref<2xf32>
    linalg.generic {indexing_maps = [#bias, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%b : memref<2xf32>) outs(%out : memref<1x4x4x2xf32>) {
    ^bb0(%x: f32, %y: f32):
      linalg.yield %x : f32
    }
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x6x6x4xf32>, memref<2x3x3x4xf32>) outs(%out : memref<1x4x4x2xf32>) loc("conv1")
    %w = memref.get_global @w : memref<1x4x3xf32>
    linalg.batch_matmul ins(%a, %w : memref<1x16x4xf32>, memref<1x4x3xf32>) outs(%out2 : memref<1x16x3xf32>) loc("fc")
    return
  }
}
