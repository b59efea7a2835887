//===- Codesign.h - What the weight-compressing passes share -----*- C++ -*-===//
//
// kiln-sparsify-nm and kiln-butterfly: the runner's calibration Gram file, new weight
// constants, and the per-layer report.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_CODESIGN_CODESIGN_H
#define KILN_PASSES_CODESIGN_CODESIGN_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln {

/// The runner's `--observe-gram` file (runtime/src/kernels/observe.c): per layer index,
/// the Gram matrix X^T X of the inputs the layer's weights multiply, summed over the
/// calibration runs. One layer's Gram matrix: k x k row-major, summed over `rows` input rows.
struct Gram {
  int64_t k = 0, rows = 0;
  std::vector<double> sum;
};

/// Reads `path` into `out` (by layer index), summing the records of each layer. Errors
/// are reported on `module`.
mlir::LogicalResult readGrams(mlir::ModuleOp module, const std::string &path, std::map<int64_t, Gram> &out);

/// The Gram of layer `id` when calibration recorded one of `k` inputs, else null.
const Gram *findGram(const std::map<int64_t, Gram> &grams, int64_t id, int64_t k);

/// A new private constant global `name` of `bytes` (shape x elem, 64-byte aligned, in
/// the weights file), read where `b` stands.
mlir::Value weightConstant(mlir::OpBuilder &b, mlir::ModuleOp module, mlir::Location loc, const std::string &name,
                           mlir::Type elem, llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<char> bytes);

/// Writes {"layers": layers} to `path` (pretty JSON). Errors are reported on `module`.
mlir::LogicalResult writeLayerReport(mlir::ModuleOp module, const std::string &path, llvm::json::Array layers);

} // namespace kiln

#endif
