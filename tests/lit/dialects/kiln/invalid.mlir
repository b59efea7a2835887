// RUN: kiln-opt %s -split-input-file -verify-diagnostics

// n must be below m: keeping every weight is not a sparse format.
func.func @dense(%v: memref<4x4xf32>, %i: memref<4x4xi8>) -> memref<4x4xf32> {
  // expected-error @+1 {{keeps n = 4 of every m = 4: n must be less than m}}
  %w = kiln.nm_weights %v, %i {n = 4, m = 4} : memref<4x4xf32>, memref<4x4xi8> -> memref<4x4xf32>
  return %w : memref<4x4xf32>
}

// -----

// Groups are at most 16 wide (indices are small).
func.func @wide(%v: memref<4x2xf32>, %i: memref<4x2xi8>) -> memref<4x32xf32> {
  // expected-error @+1 {{attribute 'm' failed to satisfy constraint}}
  %w = kiln.nm_weights %v, %i {n = 2, m = 32} : memref<4x2xf32>, memref<4x2xi8> -> memref<4x32xf32>
  return %w : memref<4x32xf32>
}

// -----

// The values must hold n per group: K = 10 in groups of 4 is 3 groups, 6 values per row.
func.func @too_few_values(%v: memref<4x4xf32>, %i: memref<4x4xi8>) -> memref<4x10xf32> {
  // expected-error @+1 {{values must be 4x6 (4 rows, ceil(10 / 4) groups of 2), got 'memref<4x4xf32>'}}
  %w = kiln.nm_weights %v, %i {n = 2, m = 4} : memref<4x4xf32>, memref<4x4xi8> -> memref<4x10xf32>
  return %w : memref<4x10xf32>
}

// -----

// Values and indices go together.
func.func @mismatch(%v: memref<4x6xf32>, %i: memref<4x4xi8>) -> memref<4x10xf32> {
  // expected-error @+1 {{must have the same shape}}
  %w = kiln.nm_weights %v, %i {n = 2, m = 4} : memref<4x6xf32>, memref<4x4xi8> -> memref<4x10xf32>
  return %w : memref<4x10xf32>
}

// -----

// Indices are bytes.
func.func @index_type(%v: memref<4x6xf32>, %i: memref<4x6xi32>) -> memref<4x10xf32> {
  // expected-error @+1 {{operand #1 must be 2D memref of 8-bit signless integer values}}
  %w = kiln.nm_weights %v, %i {n = 2, m = 4} : memref<4x6xf32>, memref<4x6xi32> -> memref<4x10xf32>
  return %w : memref<4x10xf32>
}

// -----

// A constant index outside its group.
memref.global "private" constant @idx : memref<1x2xi8> = dense<[[1, 4]]>
func.func @outside() -> memref<1x4xf32> {
  %v = memref.alloc() : memref<1x2xf32>
  %i = memref.get_global @idx : memref<1x2xi8>
  // expected-error @+1 {{indices: row 0, group 0: index 4 is outside the group (m = 4)}}
  %w = kiln.nm_weights %v, %i {n = 2, m = 4} : memref<1x2xf32>, memref<1x2xi8> -> memref<1x4xf32>
  return %w : memref<1x4xf32>
}

// -----

// Constant indices must increase inside a group (each position once).
memref.global "private" constant @idx : memref<1x4xi8> = dense<[[2, 1, 0, 1]]>
func.func @order() -> memref<1x6xf32> {
  %v = memref.alloc() : memref<1x4xf32>
  %i = memref.get_global @idx : memref<1x4xi8>
  // expected-error @+1 {{indices: row 0, group 0: index 1 does not increase}}
  %w = kiln.nm_weights %v, %i {n = 2, m = 4} : memref<1x4xf32>, memref<1x4xi8> -> memref<1x6xf32>
  return %w : memref<1x6xf32>
}

// -----

// kiln.quant must say how: bits 4, 8 or 16, with a scale and zero point below 16.
func.func @bad_quant(%a: memref<1x4x8xf32>, %b: memref<1x8x2xf32>, %c: memref<1x4x2xf32>) {
  // expected-error @+1 {{'kiln.quant' needs a zero_point in [0, 255]}}
  linalg.batch_matmul {kiln.quant = {bits = 8 : i32, scale = 0.1 : f32, zero_point = 300 : i32}}
      ins(%a, %b : memref<1x4x8xf32>, memref<1x8x2xf32>) outs(%c : memref<1x4x2xf32>)
  return
}

// -----

func.func @bad_bits(%a: memref<1x4x8xf32>, %b: memref<1x8x2xf32>, %c: memref<1x4x2xf32>) {
  // expected-error @+1 {{'kiln.quant' needs bits = 4, 8 or 16}}
  linalg.batch_matmul {kiln.quant = {bits = 3 : i32}}
      ins(%a, %b : memref<1x4x8xf32>, memref<1x8x2xf32>) outs(%c : memref<1x4x2xf32>)
  return
}

// -----

// A butterfly's size must be a power of two.
func.func @butterfly_not_pow2(%f: memref<3x2x6xf32>) -> memref<1x6x6xf32> {
  // expected-error @+1 {{butterfly size n = 6 must be a power of two of at least 2}}
  %w = kiln.butterfly_weights %f {rows_last} : memref<3x2x6xf32> -> memref<1x6x6xf32>
  return %w : memref<1x6x6xf32>
}

// -----

// n must cover the reduction: K = 20 does not fit in n = 16.
func.func @butterfly_small_k(%f: memref<4x2x16xf32>) -> memref<1x20x8xf32> {
  // expected-error @+1 {{butterfly size n = 16 is smaller than the weight's 20 x 8 (K x N)}}
  %w = kiln.butterfly_weights %f {rows_last} : memref<4x2x16xf32> -> memref<1x20x8xf32>
  return %w : memref<1x20x8xf32>
}

// -----

// n must cover the outputs too: N = 40 does not fit in n = 32.
func.func @butterfly_small_n(%f: memref<5x2x32xf32>) -> memref<1x8x40xf32> {
  // expected-error @+1 {{butterfly size n = 32 is smaller than the weight's 8 x 40 (K x N)}}
  %w = kiln.butterfly_weights %f {rows_last} : memref<5x2x32xf32> -> memref<1x8x40xf32>
  return %w : memref<1x8x40xf32>
}

// -----

// One factor per stage: n = 16 has 4, not 3.
func.func @butterfly_stages(%f: memref<3x2x16xf32>) -> memref<1x16x16xf32> {
  // expected-error @+1 {{a butterfly of size n = 16 has log2(n) = 4 factors, got 3}}
  %w = kiln.butterfly_weights %f {rows_last} : memref<3x2x16xf32> -> memref<1x16x16xf32>
  return %w : memref<1x16x16xf32>
}

// -----

// Each stage holds two vectors, a_s and b_s.
func.func @butterfly_pairs(%f: memref<4x3x16xf32>) -> memref<1x16x16xf32> {
  // expected-error @+1 {{factors must be [log2(n), 2, n] (a_s then b_s), got 'memref<4x3x16xf32>'}}
  %w = kiln.butterfly_weights %f {rows_last} : memref<4x3x16xf32> -> memref<1x16x16xf32>
  return %w : memref<1x16x16xf32>
}

// -----

// Factors are f32.
func.func @butterfly_type(%f: memref<1x2x2xf16>) -> memref<1x2x2xf32> {
  // expected-error @+1 {{operand #0 must be 3D memref of 32-bit float values}}
  %w = kiln.butterfly_weights %f {rows_last} : memref<1x2x2xf16> -> memref<1x2x2xf32>
  return %w : memref<1x2x2xf32>
}

// -----

// Constant factors must be finite (here b_1[1] is NaN).
memref.global "private" constant @bf : memref<2x2x4xf32> = dense<[[[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]], [[1.0, 1.0, 1.0, 1.0], [0.0, 0x7FC00000, 0.0, 0.0]]]>
func.func @butterfly_nan() -> memref<1x4x4xf32> {
  %f = memref.get_global @bf : memref<2x2x4xf32>
  // expected-error @+1 {{factors: stage 1, b[1] is not finite}}
  %w = kiln.butterfly_weights %f {rows_last} : memref<2x2x4xf32> -> memref<1x4x4xf32>
  return %w : memref<1x4x4xf32>
}
