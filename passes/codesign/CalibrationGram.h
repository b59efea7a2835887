//===- CalibrationGram.h - Calibration Gram matrices for co-design passes -*- C++ -*-===//
//
// The runner's `--observe-gram` file (runtime/src/kernels/observe.c): per layer index,
// the Gram matrix X^T X of the inputs the layer's weights multiply, summed over the
// calibration runs. kiln-sparsify-nm and kiln-butterfly read it.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_CODESIGN_CALIBRATIONGRAM_H
#define KILN_PASSES_CODESIGN_CALIBRATIONGRAM_H

#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln {

/// One layer's Gram matrix: k x k row-major, summed over `rows` input rows.
struct Gram {
  int64_t k = 0, rows = 0;
  std::vector<double> sum;
};

/// Reads `path` into `out` (by layer index), summing the records of each layer. Errors
/// are reported on `module`.
mlir::LogicalResult readGrams(mlir::ModuleOp module, const std::string &path, std::map<int64_t, Gram> &out);

/// The Gram of layer `id` when calibration recorded one of `k` inputs, else null.
const Gram *findGram(const std::map<int64_t, Gram> &grams, int64_t id, int64_t k);

} // namespace kiln

#endif
