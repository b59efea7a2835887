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
