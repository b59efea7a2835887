//===- KilnOps.td - Compressed weight ops --------------------*- tablegen -*-===//
#ifndef KILN_OPS_TD
#define KILN_OPS_TD

include "dialects/kiln/IR/KilnDialect.td"
include "mlir/Interfaces/SideEffectInterfaces.td"

def Kiln_NMWeightsOp : Kiln_Op<"nm_weights", [MemoryEffects<[MemAlloc<DefaultResource>, MemRead]>]> {
  let summary = "N:M sparse weights: kept values and their positions in each group";
  let description = [{
    A weight matrix of R rows (output channels) by K reduction elements in which
    every group of `m` consecutive elements of a row keeps at most `n` non-zeros.
    `values` holds the kept weights, `n` per group, rows of G * n with
    G = ceil(K / m); `indices` holds, for each value, its position inside its group
    (0 <= i < m, strictly increasing inside a group). When `m` does not divide K
    the last group is padded: positions at or past K stand for zeros (their values
    are 0). A group with fewer than `n` non-zeros stores zero values. The result is the dense weight buffer: with
    `rows_last` absent it is [R, ...] with the row's K elements in row-major order
    over the trailing dimensions (a convolution filter F x KH x KW x C); with
    `rows_last` it is [..., R] with K the product of the leading dimensions (a
    matmul's right operand, 1 x K x N).

    Example (2:4 on a 32 x 3 x 3 x 16 filter, K = 144, G = 36):

    ```mlir
    %w = kiln.nm_weights %values, %indices {n = 2, m = 4}
        : memref<32x72xf32>, memref<32x72xi8> -> memref<32x3x3x16xf32>
    ```
  }];
  let arguments = (ins MemRefRankOf<[F32], [2]>:$values, MemRefRankOf<[I8], [2]>:$indices,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$n,
                       ConfinedAttr<I64Attr, [IntMinValue<2>, IntMaxValue<16>]>:$m,
                       UnitAttr:$rows_last);
  let results = (outs AnyStaticShapeMemRef:$result);
  let assemblyFormat = [{
    $values `,` $indices attr-dict `:` type($values) `,` type($indices) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Rows (output channels) and reduction length of the dense matrix.
    int64_t getRows();
    int64_t getReduction();
  }];
}

def Kiln_SmartDealWeightsOp : Kiln_Op<"smartdeal_weights", [MemoryEffects<[MemAlloc<DefaultResource>, MemRead]>]> {
  let summary = "SmartDeal weights: W ~ C x B, sparse power-of-two coefficients times small bases";
  let description = [{
    A weight matrix of R rows (output channels) by K reduction elements stored in the
    SmartDeal format of `runtime/include/kiln/smartdeal.h` (docs/SMARTDEAL.md). Each
    row is cut into 3-weight chunks; a kept chunk is three coefficients, each 0 or
    +-2^(exponent_offset - (e - 1)) with 1 <= e < 2^exponent_bits, times the 3x3 basis
    of its group. The operands are the format's arrays: `mask` (a bit per chunk,
    ceil(R * P / 64) words, P chunk positions per row), `row_start` (R + 1 running
    counts of kept chunks), `codes` (3 * (exponent_bits + 1) bits per kept chunk, then
    8 zero bytes) and `bases` (groups x 9 bf16). `layout` is "taps3" (a chunk is the
    three kw taps of a 3-wide filter; `group` input channels share a basis) or "flat"
    (a chunk is 3 consecutive reduction elements; `group` consecutive chunk positions
    share a basis). The result is the dense weight buffer, as for kiln.nm_weights: with
    `rows_last` absent it is [R, ...] (a convolution filter F x KH x KW x C); with
    `rows_last` it is [..., R] with K the product of the leading dimensions (a matmul's
    right operand, 1 x K x N).

    Example (a 32 x 3 x 3 x 16 filter, taps3, P = 48, 4 kept chunks):

    ```mlir
    %w = kiln.smartdeal_weights %mask, %row_start, %codes, %bases
        {exponent_bits = 3, exponent_offset = 0, group = 4, layout = "taps3"}
        : memref<24xi64>, memref<33xi32>, memref<14xi8>, memref<4x9xbf16> -> memref<32x3x3x16xf32>
    ```
  }];
  let arguments = (ins MemRefRankOf<[I64], [1]>:$mask, MemRefRankOf<[I32], [1]>:$row_start,
                       MemRefRankOf<[I8], [1]>:$codes, MemRefRankOf<[BF16], [2]>:$bases,
                       ConfinedAttr<I64Attr, [IntMinValue<1>, IntMaxValue<7>]>:$exponent_bits,
                       I64Attr:$exponent_offset,
                       ConfinedAttr<I64Attr, [IntMinValue<1>]>:$group,
                       StrAttr:$layout,
                       UnitAttr:$rows_last);
  let results = (outs AnyStaticShapeMemRef:$result);
  let assemblyFormat = [{
    $mask `,` $row_start `,` $codes `,` $bases attr-dict `:` type($mask) `,` type($row_start) `,` type($codes) `,`
    type($bases) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Rows (output channels) and reduction length of the dense matrix.
    int64_t getRows();
    int64_t getReduction();
    /// The rows' (kh, kw, c): the filter's for a rank-4 rows-first result, else (1, 1, K).
    std::array<int64_t, 3> getTaps();
    /// Chunk positions per row and bases, as kiln_smartdeal_positions / _groups count them.
    int64_t getPositions();
    int64_t getGroups();
    bool isFlat() { return getLayout() == "flat"; }
  }];
}

def Kiln_ButterflyWeightsOp : Kiln_Op<"butterfly_weights", [MemoryEffects<[MemAlloc<DefaultResource>, MemRead]>]> {
  let summary = "Butterfly-factorised weights: log2(n) sparse factors of a K x N matrix";
  let description = [{
    A dense K x N weight (y = x W) stood for by the product of L = log2(n) butterfly
    factors, n the power of two >= max(K, N) (runtime/include/kiln/butterfly.h):
    W = the top-left K x N block of F_0 F_1 ... F_{L-1}, where factor s maps a row
    vector v to v'[i] = a_s[i] v[i] + b_s[i] v[i XOR 2^s]. `factors` is [L, 2, n]:
    factors[s][0] = a_s, factors[s][1] = b_s, exactly the kernel's layout. The
    result is the dense weight buffer: with `rows_last` it is [..., N] with K the
    product of the leading dimensions (a matmul's right operand, 1 x K x N); without
    it, [N, ...] with K the product of the trailing dimensions (row j holds column j
    of W).

    Example (a 64 x 192 matmul weight, n = 256, 8 stages):

    ```mlir
    %w = kiln.butterfly_weights %factors {rows_last}
        : memref<8x2x256xf32> -> memref<1x64x192xf32>
    ```
  }];
  let arguments = (ins MemRefRankOf<[F32], [3]>:$factors, UnitAttr:$rows_last);
  let results = (outs AnyStaticShapeMemRef:$result);
  let assemblyFormat = [{
    $factors attr-dict `:` type($factors) `->` type($result)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    /// Outputs N (columns of W) and reduction K (rows of W); n, the butterfly's size.
    int64_t getOutputs();
    int64_t getReduction();
    int64_t getSize() { return getFactors().getType().getDimSize(2); }
  }];
}

#endif
