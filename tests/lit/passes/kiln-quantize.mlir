// RUN: echo '{"kiln_plan": 1, "layers": [{"name": "conv1", "bits": 8, "input_range": [-1.0, 3.0]}, {"name": "fc", "bits": 32, "input_range": [0.0, 1.0]}]}' > %t.plan.json
// RUN: kiln-opt %s -kiln-quantize="plan=%t.plan.json report=%t.report.json" | FileCheck %s --check-prefix=PLAN
// RUN: FileCheck %s --check-prefix=REPORT < %t.report.json
// RUN: kiln-opt %s -kiln-quantize="observe=true" | FileCheck %s --check-prefix=OBSERVE
// RUN: kiln-opt %s -kiln-quantize="plan=%t.plan.json" -kiln-lower-to-kernels | FileCheck %s --check-prefix=LOWER
// RUN: kiln-opt %s -kiln-quantize="observe=true" -kiln-lower-to-kernels | FileCheck %s --check-prefix=OBSLOWER
// RUN: kiln-opt %s -kiln-quantize="default-bits=16" -kiln-lower-to-kernels | FileCheck %s --check-prefix=BF16
// RUN: echo '{"layers": [{"name": "conv1", "bits": 4, "input_range": [-1.0, 3.0]}]}' > %t.int4.json
// RUN: kiln-opt %s -kiln-quantize="plan=%t.int4.json" | FileCheck %s --check-prefix=INT4
// RUN: kiln-opt %s -kiln-quantize="plan=%t.int4.json" -kiln-lower-to-kernels | FileCheck %s --check-prefix=INT4LOWER

// bf16 for every layer (no plan, no ranges): the bf16 kernel with pair-packed weights
// (32 lanes x 1 tap x 4 channels = 128 halves = 256 bytes for the convolution), the bias
// passed in place of its fill (flags: clamp only), then the matmul (accumulate).
// BF16-DAG: memref.global "private" constant @kiln_packed_{{[0-9]+}} : memref<256xi8>
// BF16-LABEL: func.func @forward
// BF16-NOT: linalg.generic
// BF16: %[[C2:.*]] = arith.constant 2 : i32
// BF16: call @kiln_conv2d_nhwc_bf16_packed({{.*}}, %[[C2]], {{.*}})
// BF16: %[[C1:.*]] = arith.constant 1 : i32
// BF16: call @kiln_conv2d_nhwc_bf16_packed({{.*}}, %[[C1]], {{.*}})

// int4 weights (W4A8): the same activation parameters, bits = 4; the weights packed two
// per byte (64 bytes where int8 takes 128), flags clamp | int4.
// INT4: kiln.quant = {bits = 4 : i32, scale = 0.01568{{[0-9]*}} : f32, zero_point = 64 : i32}
// INT4LOWER-DAG: memref.global "private" constant @kiln_packed_{{[0-9]+}} : memref<64xi8>
// INT4LOWER-DAG: %[[FLAGS:.*]] = arith.constant 6 : i32
// INT4LOWER: call @kiln_conv2d_nhwc_u8s8_packed({{.*}}, %[[FLAGS]], {{.*}})

// The convolution planned at 8 bits gets its activation parameters: [-1, 3] over 255
// steps, zero point round(1 / scale) = 64. The matmul planned at 32 bits stays float.
// PLAN: linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, kiln.quant = {bits = 8 : i32, scale = 0.01568{{[0-9]*}} : f32, zero_point = 64 : i32}
// PLAN: linalg.batch_matmul
// PLAN-NOT: kiln.quant
// PLAN-SAME: ins

// The report names every layer, its weight SQNR when quantised, why not otherwise.
// REPORT: "index": 0
// REPORT: "name": "conv1"
// REPORT: "op": "conv"
// REPORT: "weight_sqnr_db":
// REPORT: "bits": 32
// REPORT: "float_reason": "planned at 32 bits"
// REPORT: "name": "fc"

// Calibration marks every quantisable layer with its index.
// OBSERVE: linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, kiln.observe = 0 : i32
// OBSERVE: linalg.batch_matmul {kiln.observe = 1 : i32}

// Lowered: the int8 kernel with s8 packed weights (2 rows padded to a 32-wide panel,
// 1 tap x 4 channels: 128 bytes), the requantisation constants (2 x M floats), an
// arena scratch buffer, 1 / scale and the zero point; the bias fill is folded in
// (flags: clamp only, no accumulate). The float matmul keeps the f32 kernel.
// LOWER-DAG: memref.global "private" constant @kiln_packed_{{[0-9]+}} : memref<128xi8>
// LOWER-DAG: memref.global "private" constant @kiln_packed_{{[0-9]+}} : memref<4xf32>
// LOWER-LABEL: func.func @forward
// LOWER-NOT: linalg.generic
// LOWER: memref.alloc() {alignment = 64 : i64} : memref<{{[0-9]+}}xi8>
// LOWER-DAG: %[[INV:.*]] = arith.constant 63.7{{[0-9]*}} : f32
// LOWER-DAG: %[[ZP:.*]] = arith.constant 64 : i32
// LOWER-DAG: %[[FLAGS:.*]] = arith.constant 2 : i32
// LOWER: call @kiln_conv2d_nhwc_u8s8_packed({{.*}}, %[[INV]], %[[ZP]], %[[FLAGS]], {{.*}})
// LOWER: call @kiln_conv2d_nhwc_f32_packed(
// Per-channel weight scales: channel 0 (max |w| = 2) -> 1, -2, 0.5 become 64, -127, 32
// (63.5 rounds to even); channel 1 (max 6) -> 4, 5, -6 become 85, 106, -127; the fourth
// byte of each is channel padding (C = 3 -> 4); the other 30 lanes of the panel are 0.
// LOWER: kiln_packed_0: "0x0100000040812000556A8100{{0+}}"

// Calibration: each layer's input before its kernel, its output (index + 2^20) after.
// OBSLOWER: %[[IN0:.*]] = arith.constant 0 : i32
// OBSLOWER: call @kiln_observe_f32(%[[IN0]],
// OBSLOWER: call @kiln_conv2d_nhwc_f32_packed_fused
// OBSLOWER: %[[OUT0:.*]] = arith.constant 1048576 : i32
// OBSLOWER: call @kiln_observe_f32(%[[OUT0]],
// OBSLOWER: %[[IN1:.*]] = arith.constant 1 : i32
// OBSLOWER: call @kiln_observe_f32(%[[IN1]],
// OBSLOWER: call @kiln_conv2d_nhwc_f32_packed(
// OBSLOWER: %[[OUT1:.*]] = arith.constant 1048577 : i32
// OBSLOWER: call @kiln_observe_f32(%[[OUT1]],

#bias = affine_map<(d0, d1, d2, d3) -> (d3)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
module {
  memref.global "private" constant @filter : memref<2x1x1x3xf32> = dense<[[[[1.0, -2.0, 0.5]]], [[[4.0, 5.0, -6.0]]]]>
  memref.global "private" constant @bias : memref<2xf32> = dense<[0.5, -0.5]>
  memref.global "private" constant @w : memref<1x2x3xf32> = dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]>
  func.func @forward(%in: memref<1x4x4x3xf32>, %out: memref<1x4x4x2xf32>, %a: memref<1x16x2xf32>, %out2: memref<1x16x3xf32>) {
    %lo = arith.constant 0.0 : f32
    %hi = arith.constant 6.0 : f32
    %f = memref.get_global @filter : memref<2x1x1x3xf32>
    %b = memref.get_global @bias : memref<2xf32>
    linalg.generic {indexing_maps = [#bias, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%b : memref<2xf32>) outs(%out : memref<1x4x4x2xf32>) {
    ^bb0(%x: f32, %y: f32):
      linalg.yield %x : f32
    }
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x4x4x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x4x4x2xf32>) loc("conv1")
    linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%out : memref<1x4x4x2xf32>) outs(%out : memref<1x4x4x2xf32>) {
    ^bb0(%x: f32, %y: f32):
      %0 = arith.minimumf %x, %hi : f32
      %1 = arith.maximumf %0, %lo : f32
      linalg.yield %1 : f32
    }
    %w = memref.get_global @w : memref<1x2x3xf32>
    linalg.batch_matmul ins(%a, %w : memref<1x16x2xf32>, memref<1x2x3xf32>) outs(%out2 : memref<1x16x3xf32>) loc("fc")
    return
  }
}
