// RUN: kiln-opt %s -kiln-decompose="report=%t.report.json" | FileCheck %s --check-prefix=DECOMP
// RUN: FileCheck %s --check-prefix=REPORT < %t.report.json
// RUN: kiln-opt %s -kiln-decompose -kiln-lower-to-kernels | FileCheck %s --check-prefix=LOWER
// RUN: kiln-opt %s -kiln-decompose="observe=true" -kiln-lower-to-kernels | FileCheck %s --check-prefix=OBSERVE
// RUN: kiln-opt %s -kiln-decompose="layers=conv1=b2:d0.5:g2,fc=b3:d1 min-reduction=4" | FileCheck %s --check-prefix=LAYERS
// RUN: kiln-opt %s -kiln-decompose="min-reduction=4" -kiln-quantize="default-bits=16" -kiln-lower-to-kernels | FileCheck %s --check-prefix=QUANT
// RUN: kiln-opt %s -kiln-sparsify-nm -kiln-decompose="min-reduction=4 report=%t.mixed.json" | FileCheck %s --check-prefix=MIXED
// RUN: FileCheck %s --check-prefix=MIXEDREPORT < %t.mixed.json
// RUN: not kiln-opt %s -kiln-sparsify-nm -kiln-decompose="layers=conv1=b3:d0.5" 2>&1 | FileCheck %s --check-prefix=CONFLICT
// RUN: not kiln-opt %s -kiln-decompose="layers=conv1=b9:d0.5" 2>&1 | FileCheck %s --check-prefix=BADSETTING
// RUN: not kiln-opt %s -kiln-decompose="layers=conv1=b3:d0" 2>&1 | FileCheck %s --check-prefix=BADDENSITY
// RUN: not kiln-opt %s -kiln-decompose="layers=nope=b3:d0.5" 2>&1 | FileCheck %s --check-prefix=NOLAYER
// RUN: not kiln-opt %s -kiln-decompose="method=svd" 2>&1 | FileCheck %s --check-prefix=BADMETHOD
// RUN: not kiln-opt %s -kiln-decompose="density=1.5" 2>&1 | FileCheck %s --check-prefix=BADDEFAULT
// RUN: not kiln-opt %s -kiln-decompose="gram=%s" 2>&1 | FileCheck %s --check-prefix=BADGRAM

// No Gram file: the 3x3x4 filter (K = 36, taps3: 2 rows x 12 chunk positions, one mask
// word, 3 row starts) is fitted to its weights at b3:d0.75. The four arrays are new
// constants read next to the dense filter, so the bias fill stays the layer's
// neighbour; the 1x1 matmul (K = 4) is below min-reduction and stays dense.
// DECOMP-DAG: memref.global "private" constant @kiln_smartdeal_0_mask : memref<1xi64>
// DECOMP-DAG: memref.global "private" constant @kiln_smartdeal_0_row_start : memref<3xi32>
// DECOMP-DAG: memref.global "private" constant @kiln_smartdeal_0_codes : memref<{{[0-9]+}}xi8>
// DECOMP-DAG: memref.global "private" constant @kiln_smartdeal_0_bases : memref<{{[0-9]+}}x9xbf16>
// DECOMP: memref.get_global @filter
// DECOMP: %[[M:.*]] = memref.get_global @kiln_smartdeal_0_mask
// DECOMP: %[[R:.*]] = memref.get_global @kiln_smartdeal_0_row_start
// DECOMP: %[[C:.*]] = memref.get_global @kiln_smartdeal_0_codes
// DECOMP: %[[B:.*]] = memref.get_global @kiln_smartdeal_0_bases
// DECOMP: %[[W:.*]] = kiln.smartdeal_weights %[[M]], %[[R]], %[[C]], %[[B]] {exponent_bits = 3 : i64, exponent_offset = 0 : i64, group = {{[0-9]+}} : i64, layout = "taps3"} : {{.*}} -> memref<2x3x3x4xf32>
// DECOMP: memref.get_global @bias
// DECOMP-NEXT: linalg.generic
// DECOMP: linalg.conv_2d_nhwc_fhwc {{.*}} ins(%{{.*}}, %[[W]] :
// DECOMP: linalg.batch_matmul ins(%{{.*}}, %{{.*}} : memref<1x16x4xf32>, memref<1x4x3xf32>)

// The report: setting, method, error and the bytes of the format, of int8 (2 x 36 + 2
// scales) and fp32, and why the other layer stays dense.
// REPORT: "bytes":
// REPORT: "fp32_bytes": 288
// REPORT: "int8_bytes": 80
// REPORT: "kept_chunks": 18
// REPORT: "layout": "taps3"
// REPORT: "method": "weights"
// REPORT: "name": "conv1"
// REPORT: "setting": "b3:d0.75"
// REPORT: "weight_rel_error":
// REPORT: "name": "fc"
// REPORT: "reason": "reduction shorter than min-reduction"
// REPORT: "setting": "dense"

// Lowered: the rebuilding kernel reads the four arrays where they are (no repacked
// copy), through a header built on the stack, with scratch from an alloc and the bias
// fused (the fill is gone); the dense matmul as before.
// LOWER-NOT: @filter
// LOWER: %[[MASK:.*]] = memref.get_global @kiln_smartdeal_0_mask
// LOWER-NOT: linalg.generic
// LOWER: %[[H:.*]] = memref.alloca() {alignment = 8 : i64} : memref<11xi64>
// LOWER: memref.extract_aligned_pointer_as_index %[[MASK]]
// LOWER: memref.alloc() {alignment = 64 : i64} : memref<{{[0-9]+}}xi8>
// LOWER: call @kiln_conv2d_nhwc_smartdeal_f32(
// LOWER-NOT: kiln.smartdeal_weights
// LOWER: call @kiln_conv2d_nhwc_f32_packed(

// A calibration build: the layer to be decomposed records its input Gram matrix;
// nothing is decomposed.
// OBSERVE-NOT: kiln.smartdeal_weights
// OBSERVE: call @kiln_observe_gram(
// OBSERVE-NOT: call @kiln_observe_gram(
// OBSERVE: call @kiln_conv2d_nhwc_f32_packed_fused(

// Per-layer settings override the default and the minimum: b2, 2 channels per basis for
// the filter; the matmul (rows last) in flat chunks of 3 along K = 4, all kept.
// LAYERS: kiln.smartdeal_weights {{.*}} {exponent_bits = 2 : i64, exponent_offset = 0 : i64, group = 2 : i64, layout = "taps3"} : {{.*}} -> memref<2x3x3x4xf32>
// LAYERS: kiln.smartdeal_weights {{.*}} {exponent_bits = 3 : i64, exponent_offset = 0 : i64, group = {{[0-9]+}} : i64, layout = "flat", rows_last} : memref<1xi64>, memref<4xi32>, {{.*}} -> memref<1x4x3xf32>

// With quantisation too (bf16 here), the quantised kernel runs the rebuilt weights,
// decoded at compile time: no SmartDeal arrays are left.
// QUANT-NOT: kiln_smartdeal_0
// QUANT: call @kiln_conv2d_nhwc_bf16_packed(
// QUANT: call @kiln_conv2d_nhwc_bf16_packed(
// QUANT-NOT: kiln_smartdeal_0

// After kiln-sparsify-nm, the layer it pruned stays N:M; decomposition takes the rest.
// MIXED: kiln.nm_weights
// MIXED: kiln.smartdeal_weights {{.*}} -> memref<1x4x3xf32>
// MIXEDREPORT: "name": "conv1"
// MIXEDREPORT: "reason": "N:M sparse (kiln-sparsify-nm)"
// MIXEDREPORT: "name": "fc"
// MIXEDREPORT: "setting": "b3:d0.75"

// CONFLICT: error: loc("conv1"): kiln-decompose: layer 'conv1' is N:M sparse already (kiln-sparsify-nm); a layer is sparsified or decomposed, not both
// BADSETTING: error: kiln-decompose: layer entry 'conv1=b9:d0.5' is not NAME=dense or NAME=bB:dD[:gG]
// BADDENSITY: error: kiln-decompose: layer entry 'conv1=b3:d0' is not NAME=dense or NAME=bB:dD[:gG]
// NOLAYER: error: kiln-decompose: the model has no layer named 'nope'
// BADMETHOD: error: kiln-decompose: method 'svd' is not known (smartdeal)
// BADDEFAULT: error: kiln-decompose: exponent-bits must be in 1..7, density in (0, 1] and iterations >= 0; got b3:d1.5 and 8 iterations
// BADGRAM: error: calibration Gram file '{{.*}}kiln-decompose.mlir' is malformed at byte 0

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
