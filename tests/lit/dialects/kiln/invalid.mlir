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

// SmartDeal layouts are "taps3" and "flat".
func.func @sd_layout(%m: memref<1xi64>, %r: memref<2xi32>, %c: memref<10xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  // expected-error @+1 {{layout must be "taps3" or "flat", got "blocks"}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "blocks"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// taps3 chunks are the three kw taps: a 1x1 filter has none.
func.func @sd_taps3_1x1(%m: memref<1xi64>, %r: memref<5xi32>, %c: memref<10xi8>, %b: memref<1x9xbf16>) -> memref<4x1x1x8xf32> {
  // expected-error @+1 {{layout "taps3" needs a filter [F, KH, 3, C] (rows first), got 'memref<4x1x1x8xf32>'}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 8, layout = "taps3"}
      : memref<1xi64>, memref<5xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<4x1x1x8xf32>
  return %w : memref<4x1x1x8xf32>
}

// -----

// Exponent bits are 1..7 (b + 1 bits per code).
func.func @sd_bits(%m: memref<1xi64>, %r: memref<2xi32>, %c: memref<10xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  // expected-error @+1 {{attribute 'exponent_bits' failed to satisfy constraint}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 8, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// Every coefficient must be a normal f32 power of two, or the rebuild is not exact.
func.func @sd_offset(%m: memref<1xi64>, %r: memref<2xi32>, %c: memref<10xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  // expected-error @+1 {{exponent_offset -125 with exponent_bits 3 puts coefficients outside the normal f32 range}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = -125, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// The mask holds a bit per chunk: 8 rows x 48 positions is 6 words.
func.func @sd_mask_size(%m: memref<4xi64>, %r: memref<9xi32>, %c: memref<10xi8>, %b: memref<4x9xbf16>) -> memref<8x3x3x16xf32> {
  // expected-error @+1 {{mask must hold ceil(8 rows x 48 chunks / 64) = 6 words, got 4}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 4, layout = "taps3"}
      : memref<4xi64>, memref<9xi32>, memref<10xi8>, memref<4x9xbf16> -> memref<8x3x3x16xf32>
  return %w : memref<8x3x3x16xf32>
}

// -----

// row_start holds rows + 1 running counts.
func.func @sd_row_start(%m: memref<1xi64>, %r: memref<1xi32>, %c: memref<10xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  // expected-error @+1 {{row_start must hold rows + 1 = 2 counts, got 1}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<1xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// Codes cannot be longer than every chunk kept needs (1 chunk x 12 bits + 8 bytes).
func.func @sd_codes_size(%m: memref<1xi64>, %r: memref<2xi32>, %c: memref<11xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  // expected-error @+1 {{codes must hold 8 to 10 bytes (every chunk kept, plus 8 of padding), got 11}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<11xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// One 3x3 basis per group: 16 channels in groups of 4 are 4 bases.
func.func @sd_bases(%m: memref<1xi64>, %r: memref<2xi32>, %c: memref<10xi8>, %b: memref<2x9xbf16>) -> memref<1x3x3x16xf32> {
  // expected-error @+1 {{bases must be 4x9 (4 groups of a 3x3 basis), got 'memref<2x9xbf16>'}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 4, layout = "taps3"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<2x9xbf16> -> memref<1x3x3x16xf32>
  return %w : memref<1x3x3x16xf32>
}

// -----

// A constant mask with a bit past the last chunk.
memref.global "private" constant @sd_mask2 : memref<1xi64> = dense<[3]>
func.func @sd_mask_tail(%r: memref<2xi32>, %c: memref<10xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  %m = memref.get_global @sd_mask2 : memref<1xi64>
  // expected-error @+1 {{mask has bits set past the 1 chunks}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// Constant row starts must count each row's kept chunks.
memref.global "private" constant @sd_mask1 : memref<1xi64> = dense<[1]>
memref.global "private" constant @sd_rows0 : memref<2xi32> = dense<[0, 0]>
func.func @sd_row_count(%c: memref<10xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  %m = memref.get_global @sd_mask1 : memref<1xi64>
  %r = memref.get_global @sd_rows0 : memref<2xi32>
  // expected-error @+1 {{row 0 keeps 1 chunks in the mask but row_start counts 0}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// With constant row starts, the codes are exactly as long as the kept chunks need.
memref.global "private" constant @sd_rows1 : memref<2xi32> = dense<[0, 1]>
func.func @sd_codes_exact(%m: memref<1xi64>, %c: memref<9xi8>, %b: memref<1x9xbf16>) -> memref<1x3xf32> {
  %r = memref.get_global @sd_rows1 : memref<2xi32>
  // expected-error @+1 {{codes hold 9 bytes; 1 kept chunks need 10 (with 8 bytes of padding)}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<9xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
}

// -----

// Constant bases must be finite.
memref.global "private" constant @sd_inf : memref<1x9xbf16> = dense<[[0x7F80, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]]>
func.func @sd_basis_inf(%m: memref<1xi64>, %r: memref<2xi32>, %c: memref<10xi8>) -> memref<1x3xf32> {
  %b = memref.get_global @sd_inf : memref<1x9xbf16>
  // expected-error @+1 {{basis 0 entry 0 is not finite}}
  %w = kiln.smartdeal_weights %m, %r, %c, %b {exponent_bits = 3, exponent_offset = 0, group = 1, layout = "flat"}
      : memref<1xi64>, memref<2xi32>, memref<10xi8>, memref<1x9xbf16> -> memref<1x3xf32>
  return %w : memref<1x3xf32>
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
