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
#include "runtime/include/kiln/smartdeal.h"

#include <map>
#include <memory>
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

/// N:M sparse weights (a kiln.nm_weights filter with constant values and indices).
struct NMWeights {
  int64_t n, m;
  std::vector<float> values;    ///< [rows][G * n]
  std::vector<uint8_t> indices; ///< [rows][G * n], position inside the group
  mlir::Operation *op;          ///< the kiln.nm_weights op
};

/// SmartDeal weights (a kiln.smartdeal_weights filter with constant arrays).
struct SmartDealWeights {
  kiln_smartdeal_t header; ///< scalar fields; pointers null (the arrays stay the op's constants)
  int64_t bytes;           ///< the whole format (kiln_smartdeal_bytes)
  mlir::Operation *op;     ///< the kiln.smartdeal_weights op
};

/// The scalar fields of a kiln.smartdeal_weights op (`op`) as the runtime's header.
kiln_smartdeal_t smartDealFields(mlir::Operation *op);

/// The constant arrays of a kiln.smartdeal_weights op and the runtime's view of them
/// (`view` points into the vectors, so the struct is held by pointer).
struct SmartDealArrays {
  std::vector<uint64_t> mask;
  std::vector<uint32_t> rowStart;
  std::vector<uint8_t> codes;
  std::vector<uint16_t> bases;
  kiln_smartdeal_t view;
};
/// Null when an array is not a constant.
std::unique_ptr<SmartDealArrays> smartDealArrays(mlir::Operation *op);

/// Butterfly-factorised weights (a kiln.butterfly_weights matmul operand with constant
/// factors).
struct ButterflyWeights {
  int64_t n;
  std::vector<float> factors; ///< [log2 n][2][n], kiln/butterfly.h's layout
  mlir::Operation *op;        ///< the kiln.butterfly_weights op
};

/// A convolution, or a matmul by a constant matrix, that a packed kernel runs.
struct PackedLayer {
  const char *kind;        ///< "conv" or "matmul"
  int64_t m, taps, c;      ///< output channels, kernel taps (KH*KW), input channels
  std::vector<float> rows; ///< weights [m][taps * c], (kh, kw, c) order (decoded when sparse or butterfly)
  std::optional<NMWeights> nm;
  std::optional<SmartDealWeights> smartdeal = std::nullopt;
  std::optional<ButterflyWeights> butterfly = std::nullopt;
};
/// The constant global (through reshapes) a layer's weight operand reads, or null: the
/// operand kiln-sparsify-nm, kiln-decompose and kiln-butterfly replace.
mlir::Value weightOperand(mlir::Operation *op);
std::optional<PackedLayer> matchPackedLayer(mlir::Operation *op, mlir::SymbolTable &symbols);

/// Symmetric per-row quantisation of rows[m][k] to `bits` (8 or 4): q in [-qmax, qmax]
/// with qmax = 2^(bits-1) - 1, w ~ q * scale[row], round half to even.
void quantizeRows(const std::vector<float> &rows, int64_t m, int64_t k, int bits, std::vector<int8_t> &q,
                  std::vector<float> &scale);
/// Signal-to-noise ratio (dB) of that quantisation (999 when exact).
double quantizationSqnrDb(const std::vector<float> &rows, int64_t m, int64_t k, int bits);

/// Layer names as kiln-quantize and kiln-sparsify-nm give them: the ONNX node name, with
/// "#k" appended for the k-th further layer of the same node.
struct LayerNamer {
  std::map<std::string, int> seen;
  std::string operator()(mlir::Operation *op);
};

/// The ONNX node name a location carries (the first name found in it), or "".
std::string locationName(mlir::Location loc);

/// The bias `prev` broadcasts into `out` along its last dimension (the way
/// tosa.conv2d's lowering initialises the output), or null.
mlir::Value biasFill(mlir::Operation *prev, mlir::Value out);
/// The clamp [lo, hi] the rest of `body` applies to the result of `first` (one of its
/// ops): a chain of min/max with constants ending at the yield; `count` ops long (0:
/// none). Null if the rest is anything else.
std::optional<std::pair<float, float>> clampTail(mlir::Block &body, mlir::Operation *first, int &count);
/// [lo, hi] when `next` clamps `out` in place with constant bounds (ReLU, ReLU6, Clip).
std::optional<std::pair<float, float>> clampAfter(mlir::Operation *next, mlir::Value out);
/// The buffer a memref value views (through subviews, reshapes and casts).
mlir::Value rootBuffer(mlir::Value v);
/// True if `op` only fills `buf` with +0.0 (linalg.fill, or a linalg.map of no input).
bool isZeroFill(mlir::Operation *op, mlir::Value buf);
/// A convolution input that is only a zero-padded copy of another buffer: `pad` =
/// alloc, zero fill, subview of the interior, copy of `src` into it. The kernel can read
/// `src` with implicit padding instead; the fill, the copy and the buffer go.
struct ImplicitPad {
  mlir::Value src;
  int64_t padH, padW, h, w, offset;
  llvm::SmallVector<int64_t> strides;
  llvm::SmallVector<mlir::Operation *> dead; ///< in the order they can be erased (after the consumer)
};

/// `ownInit`: an op between the copy and `consumer` that may write `src`'s buffer because
/// it initialises `consumer`'s output there (a caller that gives the output its own
/// storage, as the accelerator does); null for none.
std::optional<ImplicitPad> implicitPad(mlir::Value in, mlir::Operation *consumer, mlir::Operation *ownInit = nullptr);

} // namespace kiln::kernels

#endif
