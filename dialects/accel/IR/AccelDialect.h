//===- AccelDialect.h - The accel dialect ---------------------------*- C++ -*-===//
#ifndef KILN_DIALECTS_ACCEL_IR_ACCELDIALECT_H
#define KILN_DIALECTS_ACCEL_IR_ACCELDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/SymbolTable.h"

#include "dialects/accel/IR/AccelOpsDialect.h.inc"

#define GET_OP_CLASSES
#include "dialects/accel/IR/AccelOps.h.inc"

#endif
