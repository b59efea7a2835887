// RUN: kiln-opt %s -split-input-file | kiln-opt -split-input-file | FileCheck %s

// 2:4 weights of a 3x3 convolution filter (K = 144, 36 groups) round-trip.
// CHECK-LABEL: func @conv_filter
// CHECK: kiln.nm_weights %{{.*}}, %{{.*}} {m = 4 : i64, n = 2 : i64} : memref<32x72xf32>, memref<32x72xi8> -> memref<32x3x3x16xf32>
func.func @conv_filter(%v: memref<32x72xf32>, %i: memref<32x72xi8>) -> memref<32x3x3x16xf32> {
  %w = kiln.nm_weights %v, %i {n = 2, m = 4} : memref<32x72xf32>, memref<32x72xi8> -> memref<32x3x3x16xf32>
  return %w : memref<32x3x3x16xf32>
}

// -----

// A matmul's right operand (rows last), 1:8 with a short last group (K = 20: groups of 8, 8, 4).
// CHECK-LABEL: func @matmul_rhs
// CHECK: kiln.nm_weights %{{.*}}, %{{.*}} {m = 8 : i64, n = 1 : i64, rows_last} : memref<6x3xf32>, memref<6x3xi8> -> memref<1x20x6xf32>
func.func @matmul_rhs(%v: memref<6x3xf32>, %i: memref<6x3xi8>) -> memref<1x20x6xf32> {
  %w = kiln.nm_weights %v, %i {n = 1, m = 8, rows_last} : memref<6x3xf32>, memref<6x3xi8> -> memref<1x20x6xf32>
  return %w : memref<1x20x6xf32>
}

// -----

// Constant indices are checked and accepted when every group is well formed.
// CHECK-LABEL: func @constant_indices
// CHECK: kiln.nm_weights
memref.global "private" constant @idx : memref<2x2xi8> = dense<[[0, 3], [1, 2]]>
func.func @constant_indices(%v: memref<2x2xf32>) -> memref<2x4xf32> {
  %i = memref.get_global @idx : memref<2x2xi8>
  %w = kiln.nm_weights %v, %i {n = 2, m = 4} : memref<2x2xf32>, memref<2x2xi8> -> memref<2x4xf32>
  return %w : memref<2x4xf32>
}

// -----

// kiln.quant on another op is verified by the dialect and kept.
// CHECK-LABEL: func @quant_attr
// CHECK: kiln.quant = {bits = 8 : i32, scale = 1.000000e-01 : f32, zero_point = 3 : i32}
func.func @quant_attr(%a: memref<1x4x8xf32>, %b: memref<1x8x2xf32>, %c: memref<1x4x2xf32>) {
  linalg.batch_matmul {kiln.quant = {bits = 8 : i32, scale = 0.1 : f32, zero_point = 3 : i32}}
      ins(%a, %b : memref<1x4x8xf32>, memref<1x8x2xf32>) outs(%c : memref<1x4x2xf32>)
  return
}

// -----

// Butterfly factors of a 64 x 192 matmul weight (n = 256, 8 stages) round-trip.
// CHECK-LABEL: func @butterfly_rhs
// CHECK: kiln.butterfly_weights %{{.*}} {rows_last} : memref<8x2x256xf32> -> memref<1x64x192xf32>
func.func @butterfly_rhs(%f: memref<8x2x256xf32>) -> memref<1x64x192xf32> {
  %w = kiln.butterfly_weights %f {rows_last} : memref<8x2x256xf32> -> memref<1x64x192xf32>
  return %w : memref<1x64x192xf32>
}

// -----

// Rows first (N x K) with K = 5 padded to n = 8; constant factors are checked and accepted.
// CHECK-LABEL: func @butterfly_rows_first
// CHECK: kiln.butterfly_weights %{{.*}} : memref<3x2x8xf32> -> memref<3x5xf32>
memref.global "private" constant @bf : memref<3x2x8xf32> = dense<0.5>
func.func @butterfly_rows_first() -> memref<3x5xf32> {
  %f = memref.get_global @bf : memref<3x2x8xf32>
  %w = kiln.butterfly_weights %f : memref<3x2x8xf32> -> memref<3x5xf32>
  return %w : memref<3x5xf32>
}
