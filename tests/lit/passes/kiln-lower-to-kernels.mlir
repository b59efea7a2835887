// RUN: kiln-opt %s -split-input-file -kiln-lower-to-kernels | FileCheck %s
// RUN: kiln-opt %s -split-input-file -kiln-lower-to-kernels | FileCheck %s --check-prefix=GONE
// GONE-NOT: @filter

// A convolution with a constant filter, preceded by the bias broadcast and followed
// by a ReLU6 clamp on its output, becomes one call of the fused kernel: the filter is
// packed into a new constant, the two generics disappear, the original filter too.
// CHECK-LABEL: module
// CHECK-DAG: func.func private @kiln_conv2d_nhwc_f32_packed_fused(!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, f32, f32)
// CHECK-DAG: memref.global "private" constant @kiln_packed_0 : memref<96xf32>
// CHECK-DAG: memref.global "private" constant @kiln_geometry_0 : memref<14xi64> = dense<[1, 3, 2, 1, 1, 4, 4, 1, 1, 1, 1, 48, 12, 3]>
// CHECK-LABEL: func.func @forward
// CHECK-NOT: linalg.generic
// CHECK-NOT: linalg.conv_2d_nhwc_fhwc
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: %[[LO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[HI:.*]] = arith.constant 6.000000e+00 : f32
// CHECK: call @kiln_conv2d_nhwc_f32_packed_fused({{.*}}, %[[ONE]], %[[LO]], %[[HI]])
// CHECK-NOT: linalg.generic
#bias = affine_map<(d0, d1, d2, d3) -> (d3)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
module {
  memref.global "private" constant @filter : memref<2x1x1x3xf32> = dense<[[[[1.0, 2.0, 3.0]]], [[[4.0, 5.0, 6.0]]]]>
  memref.global "private" constant @bias : memref<2xf32> = dense<[0.5, -0.5]>
  func.func @forward(%in: memref<1x4x4x3xf32>, %out: memref<1x4x4x2xf32>) {
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
        ins(%in, %f : memref<1x4x4x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x4x4x2xf32>)
    linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%out : memref<1x4x4x2xf32>) outs(%out : memref<1x4x4x2xf32>) {
    ^bb0(%x: f32, %y: f32):
      %0 = arith.minimumf %x, %hi : f32
      %1 = arith.maximumf %0, %lo : f32
      linalg.yield %1 : f32
    }
    return
  }
}

// -----

// A filter that is not a constant (here a function argument) is left to the loops.
// CHECK-LABEL: func.func @forward
// CHECK: linalg.conv_2d_nhwc_fhwc
// CHECK-NOT: call @kiln_conv2d
module {
  func.func @forward(%in: memref<1x4x4x3xf32>, %f: memref<2x1x1x3xf32>, %out: memref<1x4x4x2xf32>) {
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x4x4x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x4x4x2xf32>)
    return
  }
}

// -----

// A matmul of two activations calls the unpacked kernel with batch, M, N, K.
// CHECK-LABEL: func.func @forward
// CHECK-DAG: %[[B:.*]] = arith.constant 4 : i64
// CHECK-DAG: %[[M:.*]] = arith.constant 8 : i64
// CHECK-DAG: %[[N:.*]] = arith.constant 16 : i64
// CHECK-DAG: %[[K:.*]] = arith.constant 32 : i64
// CHECK: call @kiln_batch_matmul_f32({{.*}}, %[[B]], %[[M]], %[[N]], %[[K]])
// CHECK-NOT: linalg.batch_matmul
module {
  func.func @forward(%a: memref<4x8x32xf32>, %b: memref<4x32x16xf32>, %c: memref<4x8x16xf32>) {
    linalg.batch_matmul ins(%a, %b : memref<4x8x32xf32>, memref<4x32x16xf32>) outs(%c : memref<4x8x16xf32>)
    return
  }
}
