//===- KilnDialect.h - The kiln dialect ----------------------------*- C++ -*-===//
#ifndef KILN_DIALECTS_KILN_IR_KILNDIALECT_H
#define KILN_DIALECTS_KILN_IR_KILNDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/Value.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include <array>
#include <cstring>
#include <vector>
#include <optional>
#include <string>

#include "dialects/kiln/IR/KilnOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/kiln/IR/KilnOps.h.inc"

namespace kiln {
/// Checks N:M index data: `indices` (rows x G*n) in [0, m) and strictly increasing in
/// each group. Returns "" or what is wrong.
std::string checkNMIndices(const int8_t *indices, int64_t rows, int64_t k, int64_t n, int64_t m);

/// Checks SmartDeal data against its sizes: mask bits past rows * positions clear,
/// row_start[0] = 0 and each row's count equal to its mask bits, codes exactly as long
/// as the kept chunks need (plus 8 bytes), finite bases. An empty array (not a
/// constant) skips its checks. Returns "" or what is wrong.
std::string checkSmartDeal(int64_t rows, int64_t positions, int64_t exponentBits, llvm::ArrayRef<uint64_t> mask,
                           llvm::ArrayRef<uint32_t> rowStart, int64_t codesBytes, llvm::ArrayRef<uint16_t> bases);

/// The bytes of the constant global that `v` reads (a memref.get_global), if it does;
/// a splat gives one element.
std::optional<llvm::ArrayRef<char>> constantBytes(mlir::Operation *from, mlir::Value v);

/// Those bytes as `count` elements of T (copied: the data need not be aligned for T;
/// a splat repeated); empty when `v` is not such a constant or its size differs.
template <typename T> std::vector<T> constantArray(mlir::Operation *from, mlir::Value v, int64_t count) {
  auto bytes = constantBytes(from, v);
  if (!bytes || count <= 0) return {};
  std::vector<T> out(static_cast<size_t>(count));
  if (int64_t(bytes->size()) == count * int64_t(sizeof(T)))
    std::memcpy(out.data(), bytes->data(), bytes->size());
  else if (bytes->size() == sizeof(T))
    for (T &x : out) std::memcpy(&x, bytes->data(), sizeof(T));
  else
    return {};
  return out;
}
} // namespace kiln

#endif
