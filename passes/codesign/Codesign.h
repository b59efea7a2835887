//===- Codesign.h - What the weight-compressing passes share -----*- C++ -*-===//
//
// kiln-sparsify-nm and kiln-butterfly: the runner's calibration Gram file, new weight
// constants, and the per-layer report.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_CODESIGN_CODESIGN_H
#define KILN_PASSES_CODESIGN_CODESIGN_H

#include "passes/cpu/KernelMatch.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln {

/// One layer's record in the runner's `--observe-gram` file (runtime/src/kernels/observe.c):
/// the Gram matrix X^T X (k x k, row-major) of the inputs its weights multiply, summed
/// over `rows` input rows of the calibration runs.
struct Gram {
  int64_t k = 0, rows = 0;
  std::vector<double> sum;
};

/// Reads `path` into `out` (by layer index), summing the records of each layer. Errors
/// are reported on `module`.
mlir::LogicalResult readGrams(mlir::ModuleOp module, const std::string &path, std::map<int64_t, Gram> &out);

/// The Gram of layer `id` when calibration recorded one of `k` inputs, else null.
const Gram *findGram(const std::map<int64_t, Gram> &grams, int64_t id, int64_t k);

/// Calls fn(op, layer, name, index) for each layer the packed kernels run (KernelMatch.h),
/// in walk order: `name` as kiln-quantize gives it, `index` the one the Gram file uses.
/// Compressed layers count too, so that every pass and the calibration build agree.
void forEachPackedLayer(
    mlir::func::FuncOp func, mlir::SymbolTable &symbols,
    llvm::function_ref<void(mlir::Operation *, kernels::PackedLayer &, const std::string &, int64_t)> fn);

/// A new private constant global `name` of `bytes` (shape x elem, 64-byte aligned, in
/// the weights file), read where `b` stands.
mlir::Value weightConstant(mlir::OpBuilder &b, mlir::ModuleOp module, mlir::Location loc, const std::string &name,
                           mlir::Type elem, llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<char> bytes);

/// Writes {"layers": layers} to `path` (pretty JSON). Errors are reported on `module`.
mlir::LogicalResult writeLayerReport(mlir::ModuleOp module, const std::string &path, llvm::json::Array layers);

} // namespace kiln

#endif
