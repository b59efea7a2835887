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

// SmartDeal weights of a 3x3 convolution filter round-trip: taps3, P = KH * C = 48 chunk
// positions per row, 32 * 48 bits of mask in 24 words, 4 bases of 4 channels each.
// CHECK-LABEL: func @smartdeal_conv_filter
// CHECK: kiln.smartdeal_weights %{{.*}}, %{{.*}}, %{{.*}}, %{{.*}} {exponent_bits = 3 : i64, exponent_offset = 0 : i64, group = 4 : i64, layout = "taps3"} : memref<24xi64>, memref<33xi32>, memref<14xi8>, memref<4x9xbf16> -> memref<32x3x3x16xf32>
func.func @smartdeal_conv_filter(%m: memref<24xi64>, %r: memref<33xi32>, %c: memref<14xi8>, %b: memref<4x9xbf16>) -> memref<32x3x3x16xf32> {
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 4, layout = "taps3"}
      : memref<24xi64>, memref<33xi32>, memref<14xi8>, memref<4x9xbf16> -> memref<32x3x3x16xf32>
  return %w : memref<32x3x3x16xf32>
}

// -----

// A matmul's right operand (rows last), flat chunks: K = 20 is 7 positions (the last
// chunk 2 wide), 6 rows, one basis for all 7 positions.
// CHECK-LABEL: func @smartdeal_matmul_rhs
// CHECK: kiln.smartdeal_weights {{.*}} {exponent_bits = 2 : i64, exponent_offset = -1 : i64, group = 7 : i64, layout = "flat", rows_last} : memref<1xi64>, memref<7xi32>, memref<20xi8>, memref<1x9xbf16> -> memref<1x20x6xf32>
func.func @smartdeal_matmul_rhs(%m: memref<1xi64>, %r: memref<7xi32>, %c: memref<20xi8>, %b: memref<1x9xbf16>) -> memref<1x20x6xf32> {
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 2, exponent_offset = -1, group = 7, layout = "flat", rows_last}
      : memref<1xi64>, memref<7xi32>, memref<20xi8>, memref<1x9xbf16> -> memref<1x20x6xf32>
  return %w : memref<1x20x6xf32>
}

// -----

// Constant arrays are checked and accepted when consistent: one row of K = 3, its one
// chunk kept (mask 1, row_start [0, 1]), 12 bits of codes in 2 bytes + 8 of padding.
// CHECK-LABEL: func @smartdeal_constants
// CHECK: kiln.smartdeal_weights
memref.global "private" constant @sd_mask : memref<1xi64> = dense<[1]>
memref.global "private" constant @sd_rows : memref<2xi32> = dense<[0, 1]>
memref.global "private" constant @sd_codes : memref<10xi8> = dense<[1, 2, 0, 0, 0, 0, 0, 0, 0, 0]>
memref.global "private" constant @sd_bases : memref<1x9xbf16> = dense<[[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]]>
func.func @smartdeal_constants() -> memref<1x3xf32> {
  %m = memref.get_global @sd_mask : memref<1xi64>
  %r = memref.get_global @sd_rows : memref<2xi32>
  %c = memref.get_global @sd_codes : memref<10xi8>
  %b = memref.get_global @sd_bases : memref<1x9xbf16>
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
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
