//===- KilnDialect.h - The kiln dialect ----------------------------*- C++ -*-===//
#ifndef KILN_DIALECTS_KILN_IR_KILNDIALECT_H
#define KILN_DIALECTS_KILN_IR_KILNDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/kiln/IR/KilnOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/kiln/IR/KilnOps.h.inc"

namespace kiln {
/// Checks N:M index data: `indices` (rows x G*n) in [0, m) and strictly increasing in
/// each group. Returns "" or what is wrong.
std::string checkNMIndices(const int8_t *indices, int64_t rows, int64_t k, int64_t n, int64_t m);
} // namespace kiln

#endif
