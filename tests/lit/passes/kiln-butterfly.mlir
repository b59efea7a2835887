// RUN: kiln-opt %s -kiln-butterfly="layers=fc1 report=%t.report.json" | FileCheck %s --check-prefix=FIT
// RUN: FileCheck %s --check-prefix=REPORT < %t.report.json
// RUN: kiln-opt %s -kiln-butterfly="layers=fc1" -kiln-lower-to-kernels | FileCheck %s --check-prefix=LOWER
// RUN: kiln-opt %s -kiln-butterfly="layers=fc1 observe=true" -kiln-lower-to-kernels | FileCheck %s --check-prefix=OBSERVE
// RUN: kiln-opt %s -kiln-butterfly="layers=all report=%t.all.json" | FileCheck %s --check-prefix=ALL
// RUN: FileCheck %s --check-prefix=ALLREPORT < %t.all.json
// RUN: kiln-opt %s -kiln-butterfly="layers=fc1" -kiln-quantize="default-bits=16" -kiln-lower-to-kernels | FileCheck %s --check-prefix=QUANT
// RUN: kiln-opt %s -kiln-butterfly="layers=fc1" -kiln-sparsify-nm="min-reduction=4" | FileCheck %s --check-prefix=NM
// RUN: kiln-opt %s -kiln-butterfly="layers=fc1" -kiln-decompose="min-reduction=4" | FileCheck %s --check-prefix=SD
// RUN: not kiln-opt %s -kiln-butterfly="layers=fc1" -kiln-decompose="layers=fc1=b3:d0.75" 2>&1 | FileCheck %s --check-prefix=BOTHSD
// RUN: not kiln-opt %s -kiln-butterfly="layers=conv1" 2>&1 | FileCheck %s --check-prefix=CONV
// RUN: not kiln-opt %s -kiln-butterfly="layers=fc1,nope" 2>&1 | FileCheck %s --check-prefix=NOLAYER
// RUN: not kiln-opt %s -kiln-butterfly="layers=fc1" -kiln-sparsify-nm="layers=fc1=2:4" 2>&1 | FileCheck %s --check-prefix=BOTH

// No Gram file: fc1's 4 x 4 weight (n = 4, 2 stages) is fitted to the weight itself and
// becomes a kiln.butterfly_weights of a new constant, right after the weight's read (the
// bias fill stays next to the matmul); the convolution and fc2 keep their weights.
// FIT: memref.global "private" constant @kiln_butterfly_0 : memref<2x2x4xf32>
// FIT: %[[F:.*]] = memref.get_global @kiln_butterfly_0 : memref<2x2x4xf32>
// FIT-NEXT: %[[W:.*]] = kiln.butterfly_weights %[[F]] {rows_last} : memref<2x2x4xf32> -> memref<1x4x4xf32>
// FIT: linalg.generic
// FIT-NEXT: ^bb0
// FIT-NEXT: linalg.yield
// FIT-NEXT: }
// FIT-NEXT: linalg.batch_matmul ins(%{{.*}}, %[[W]] : memref<1x16x4xf32>, memref<1x4x4xf32>)
// FIT: linalg.batch_matmul ins(%{{.*}}, %{{.*}} : memref<1x16x8xf32>, memref<1x8x3xf32>)
// FIT-NOT: kiln.butterfly_weights

// The report: fc1's weight is a diagonal scaling followed by a pair swap, which a
// 2-stage butterfly holds exactly, so the fit recovers it (error below 1e-3); 16
// parameters either way at this size.
// REPORT: "butterfly_params": 16
// REPORT: "dense_params": 16
// REPORT: "method": "weights"
// REPORT: "n": 4
// REPORT: "name": "fc1"
// REPORT: "weight_rel_error": {{([0-9]\.[0-9]+e-(0[4-9]|[1-9][0-9])|0)$}}

// Lowered: the butterfly kernel on 16 rows (stride 4), K = 4, the 16 factors read from
// the weights, bias fused (flags 0), N = 4 outputs at stride 4; fc1's dense weight is
// gone. A butterfly weight read by something else is decoded at run time.
// LOWER-DAG: memref.global "private" constant @kiln_packed_{{[0-9]+}} : memref<16xf32>
// LOWER-NOT: @w1
// LOWER-NOT: kiln.butterfly_weights
// LOWER: call @kiln_butterfly_decode_f32(
// LOWER: call @kiln_conv2d_nhwc_f32_packed(
// LOWER: %[[ZERO:.*]] = arith.constant 0 : i32
// LOWER: call @kiln_butterfly_f32({{.*}}, %[[ZERO]], {{.*}})
// LOWER: call @kiln_conv2d_nhwc_f32_packed(

// A calibration build: the chosen layer records its input Gram matrix; nothing is fitted.
// OBSERVE-NOT: kiln_butterfly_f32
// OBSERVE: call @kiln_observe_gram(
// OBSERVE-NOT: call @kiln_observe_gram(

// all: every linear layer the format makes smaller, never the convolution: fc3
// (16 x 16: 128 parameters instead of 256); fc1 (16 either way) and fc2 (8 x 3 pads to
// n = 8: 48 instead of 24) stay dense, and the report says why.
// ALL-NOT: kiln.butterfly_weights %{{.*}} : memref<{{.*}}x2x{{[48]}}xf32>
// ALL: kiln.butterfly_weights %{{.*}} {rows_last} : memref<4x2x16xf32> -> memref<1x16x16xf32>
// ALL-NOT: kiln.butterfly_weights
// ALLREPORT: "name": "fc1"
// ALLREPORT: "reason": "butterfly would not reduce parameters (16 >= 16)"
// ALLREPORT: "name": "fc2"
// ALLREPORT: "reason": "butterfly would not reduce parameters (48 >= 24)"
// ALLREPORT: "butterfly_params": 128
// ALLREPORT: "dense_params": 256
// ALLREPORT: "name": "fc3"

// Quantised (bf16 here): the quantised kernel runs the butterfly product, decoded at
// compile time.
// QUANT-NOT: kiln.butterfly_weights
// QUANT-NOT: call @kiln_butterfly_f32(
// QUANT: call @kiln_conv2d_nhwc_bf16_packed(

// N:M sparsity after it leaves the butterfly layer alone and prunes the others.
// NM: kiln.nm_weights
// NM: kiln.butterfly_weights %{{.*}} {rows_last} : memref<2x2x4xf32>
// NM: kiln.nm_weights
// NM: kiln.nm_weights
// NM-NOT: kiln.nm_weights

// So does SmartDeal decomposition.
// SD: kiln.smartdeal_weights
// SD: kiln.butterfly_weights %{{.*}} {rows_last} : memref<2x2x4xf32>
// SD: kiln.smartdeal_weights
// SD: kiln.smartdeal_weights
// SD-NOT: kiln.smartdeal_weights

// CONV: error: loc("conv1"): kiln-butterfly: layer 'conv1' is a convolution; only linear layers (MatMul, Gemm) can be butterfly-factorised
// NOLAYER: error: kiln-butterfly: the model has no layer named 'nope'
// BOTH: error: loc("fc1"): kiln-sparsify-nm: layer 'fc1' is butterfly-factorised; it cannot also be N:M sparse
// BOTHSD: error: loc("fc1"): kiln-decompose: layer 'fc1' is butterfly-factorised (kiln-butterfly); it cannot also be decomposed

#bias = affine_map<(b, m, n) -> (n)>
#id = affine_map<(b, m, n) -> (b, m, n)>
module {
  memref.global "private" constant @filter : memref<2x1x1x4xf32> = dense<[[[[1.0, -2.0, 0.5, 0.1]]], [[[3.0, 0.2, -0.3, 4.0]]]]>
  memref.global "private" constant @w1 : memref<1x4x4xf32> = dense<[[[0.0, 2.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 3.0, 0.0]]]>
  memref.global "private" constant @b1 : memref<4xf32> = dense<[0.5, -0.5, 1.0, 2.0]>
  memref.global "private" constant @w2 : memref<1x8x3xf32> = dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.0, 0.0, -1.0], [1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0], [1.0, 0.0, -1.0]]]>
  memref.global "private" constant @w3 : memref<1x16x16xf32> = dense<0.25>
  memref.global "private" constant @kept : memref<1x2x2xf32> = dense<[[[1.0, 1.0], [0.5, 0.25]]]>
  func.func @forward(%in: memref<1x4x4x4xf32>, %out: memref<1x4x4x2xf32>, %a: memref<1x16x4xf32>,
                     %out1: memref<1x16x4xf32>, %a2: memref<1x16x8xf32>, %out2: memref<1x16x3xf32>,
                     %out3: memref<2x2xf32>, %a3: memref<1x2x16xf32>, %out4: memref<1x2x16xf32>) {
    %k = memref.get_global @kept : memref<1x2x2xf32>
    %d = kiln.butterfly_weights %k {rows_last} : memref<1x2x2xf32> -> memref<2x2xf32>
    memref.copy %d, %out3 : memref<2x2xf32> to memref<2x2xf32>
    %f = memref.get_global @filter : memref<2x1x1x4xf32>
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x4x4x4xf32>, memref<2x1x1x4xf32>) outs(%out : memref<1x4x4x2xf32>) loc("conv1")
    %w1 = memref.get_global @w1 : memref<1x4x4xf32>
    %b1 = memref.get_global @b1 : memref<4xf32>
    linalg.generic {indexing_maps = [#bias, #id], iterator_types = ["parallel", "parallel", "parallel"]}
        ins(%b1 : memref<4xf32>) outs(%out1 : memref<1x16x4xf32>) {
    ^bb0(%x: f32, %y: f32):
      linalg.yield %x : f32
    }
    linalg.batch_matmul ins(%a, %w1 : memref<1x16x4xf32>, memref<1x4x4xf32>) outs(%out1 : memref<1x16x4xf32>) loc("fc1")
    %w2 = memref.get_global @w2 : memref<1x8x3xf32>
    linalg.batch_matmul ins(%a2, %w2 : memref<1x16x8xf32>, memref<1x8x3xf32>) outs(%out2 : memref<1x16x3xf32>) loc("fc2")
    %w3 = memref.get_global @w3 : memref<1x16x16xf32>
    linalg.batch_matmul ins(%a3, %w3 : memref<1x2x16xf32>, memref<1x16x16xf32>) outs(%out4 : memref<1x2x16xf32>) loc("fc3")
    return
  }
}
