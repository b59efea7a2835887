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

#endif
