//===- KernelMatch.h - Which ops the runtime's packed kernels run -*- C++ -*-===//
//
// Shared by kiln-quantize and kiln-lower-to-kernels, so that the layers one plans
// are exactly the ones the other lowers.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_CPU_KERNELMATCH_H
#define KILN_PASSES_CPU_KERNELMATCH_H

#include "mlir/IR/Location.h"
#include "mlir/IR/Operation.h"
#include "mlir/IR/SymbolTable.h"

#include <optional>
#include <string>
#include <vector>

namespace kiln::kernels {

/// Dense, row-major, offset-0 f32 memref with a static shape.
bool isDenseF32(mlir::Value v);
/// Static strides and offset of a memref whose innermost stride is 1.
std::optional<std::pair<llvm::SmallVector<int64_t>, int64_t>> unitStrided(mlir::Value v);
/// The float data of a constant global read by `v` (through reshapes), if it is one.
std::optional<std::vector<float>> constantData(mlir::Value v, mlir::SymbolTable &symbols);

/// A convolution, or a matmul by a constant matrix, that a packed kernel runs.
struct PackedLayer {
  const char *kind;        ///< "conv" or "matmul"
  int64_t m, taps, c;      ///< output channels, kernel taps (KH*KW), input channels
  std::vector<float> rows; ///< weights [m][taps * c], (kh, kw, c) order
};
std::optional<PackedLayer> matchPackedLayer(mlir::Operation *op, mlir::SymbolTable &symbols);

/// Symmetric per-row quantisation of rows[m][k] to `bits` (8 or 4): q in [-qmax, qmax]
/// with qmax = 2^(bits-1) - 1, w ~ q * scale[row], round half to even.
void quantizeRows(const std::vector<float> &rows, int64_t m, int64_t k, int bits, std::vector<int8_t> &q,
                  std::vector<float> &scale);
/// Signal-to-noise ratio (dB) of that quantisation (999 when exact).
double quantizationSqnrDb(const std::vector<float> &rows, int64_t m, int64_t k, int bits);

/// The ONNX node name a location carries (the first name found in it), or "".
std::string locationName(mlir::Location loc);

} // namespace kiln::kernels

#endif
