//===- Passes.h - Kiln passes -----------------------------------*- C++ -*-===//
#ifndef KILN_PASSES_PASSES_H
#define KILN_PASSES_PASSES_H

#include "dialects/accel/IR/AccelDialect.h"
#include "dialects/kiln/IR/KilnDialect.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>
#include <vector>

namespace kiln {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// The entry function `name` of `module`; null after reporting "no entry function
/// 'NAME'" on the module (the pass then signals failure).
inline mlir::func::FuncOp lookupEntry(mlir::ModuleOp module, llvm::StringRef name) {
  auto func = module.lookupSymbol<mlir::func::FuncOp>(name);
  if (!func) module.emitError() << "no entry function '" << name << "'";
  return func;
}

/// Module attribute names shared by the passes and the code generators.
/// The bytes of a constant's initial value (dense or dense_resource, splats expanded), or
/// failure if it has none that can be laid out byte for byte.
mlir::FailureOr<std::vector<char>> constantBytes(mlir::ElementsAttr attr);

inline constexpr const char *kWeightsAttr = "kiln.weights";
inline constexpr const char *kWeightsSizeAttr = "kiln.weights_size";
inline constexpr const char *kArenaSizeAttr = "kiln.arena_size";
inline constexpr const char *kArenaAlignAttr = "kiln.arena_alignment";
inline constexpr const char *kRoleAttr = "kiln.role";
/// On a constant global that must stay in the object (small kernel parameters).
inline constexpr const char *kKeepInCodeAttr = "kiln.keep_in_code";
/// On a convolution or matmul: execute at int8 ({bits, scale, zero_point}; kiln-quantize).
inline constexpr const char *kQuantAttr = "kiln.quant";
/// On a convolution or matmul: record its input range under this index (calibration).
inline constexpr const char *kObserveAttr = "kiln.observe";
/// On a quantised convolution or matmul: also run it in fp32 and record the int8
/// output's error under this index (diagnostic builds).
inline constexpr const char *kCompareAttr = "kiln.compare";
/// On a convolution or matmul: accumulate its input Gram matrix under this index
/// (calibration for kiln-sparsify-nm and kiln-butterfly).
inline constexpr const char *kObserveGramAttr = "kiln.observe_gram";

} // namespace kiln

#endif
