// RUN: kiln-opt %s -split-input-file -kiln-lower-to-kernels | FileCheck %s

// SmartDeal weights no kernel takes (here copied out) are decoded at run time into a
// dense buffer; rows last, the decoder's rows[3][4] are transposed into [1, 4, 3].
// CHECK-LABEL: func @forward
// CHECK: %[[H:.*]] = memref.alloca() {alignment = 8 : i64} : memref<11xi64>
// CHECK: %[[D:.*]] = memref.alloc() {alignment = 64 : i64} : memref<1x4x3xf32>
// CHECK: %[[R:.*]] = memref.alloc() {alignment = 64 : i64} : memref<3x4xf32>
// CHECK: call @kiln_smartdeal_decode(
// CHECK: %[[KR:.*]] = memref.collapse_shape %[[D]] {{\[}}[0, 1], [2]] : memref<1x4x3xf32> into memref<4x3xf32>
// CHECK: linalg.transpose ins(%[[R]] : memref<3x4xf32>) outs(%[[KR]] : memref<4x3xf32>) permutation = [1, 0]
// CHECK-NOT: kiln.smartdeal_weights
// CHECK: memref.copy %[[D]], %{{.*}}
func.func @forward(%m: memref<1xi64>, %r: memref<4xi32>, %c: memref<17xi8>, %b: memref<1x9xbf16>, %out: memref<1x4x3xf32>) {
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 2, layout = "flat", rows_last}
      : memref<1xi64>, memref<4xi32>, memref<17xi8>, memref<1x9xbf16> -> memref<1x4x3xf32>
  memref.copy %w, %out : memref<1x4x3xf32> to memref<1x4x3xf32>
  return
}

// -----

// Rows first (a filter), the decoder writes the buffer directly.
// CHECK-LABEL: func @forward
// CHECK: %[[D:.*]] = memref.alloc() {alignment = 64 : i64} : memref<2x3x3x4xf32>
// CHECK: call @kiln_smartdeal_decode(
// CHECK-NOT: linalg.transpose
// CHECK: memref.copy %[[D]], %{{.*}}
func.func @forward(%m: memref<1xi64>, %r: memref<3xi32>, %c: memref<44xi8>, %b: memref<2x9xbf16>, %out: memref<2x3x3x4xf32>) {
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 2, layout = "taps3"}
      : memref<1xi64>, memref<3xi32>, memref<44xi8>, memref<2x9xbf16> -> memref<2x3x3x4xf32>
  memref.copy %w, %out : memref<2x3x3x4xf32> to memref<2x3x3x4xf32>
  return
}
