//===- ImportContext.h - What an op import function sees --------------------===//
//
// Each ONNX op is imported by one function of type ImportFn (see OpTable.cpp).
// It reads its inputs and attributes through NodeImporter, emits TOSA (or
// tensor/linalg where TOSA lacks the op) with the helpers below, and either sets
// its outputs or calls fail() with the reason. A result that can be computed on
// the host (a shape subgraph, a constant weight transform) is set with outConst
// and never reaches the IR unless something needs it as a tensor.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_ONNX_IMPORTCONTEXT_H
#define KILN_FRONTEND_ONNX_IMPORTCONTEXT_H

#include "frontend/onnx/HostTensor.h"
#include "frontend/onnx/Importer.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Value.h"
#include "llvm/ADT/StringMap.h"

#include <onnx/onnx_pb.h>

#include <functional>
#include <optional>
#include <tuple>
#include <utility>

namespace kiln::onnx_frontend {

class GraphImporter;

/// The importer's record of one ONNX value.
struct ValueEntry {
  mlir::Value value;                 ///< materialised tensor (may be null for constants)
  std::optional<HostTensor> constant;
};

class NodeImporter {
public:
  NodeImporter(GraphImporter &graph, const onnx::NodeProto &node, int64_t opset,
               const std::string &displayName);

  /// The node's name as reports and locations show it (op type and index if unnamed).
  const std::string displayName;

  const onnx::NodeProto &node;
  const int64_t opset;
  mlir::OpBuilder &b;
  mlir::Location loc;

  // Inputs.
  size_t numInputs() const { return node.input_size(); }
  bool hasInput(size_t i) const { return i < size_t(node.input_size()) && !node.input(i).empty(); }
  mlir::Value in(size_t i);                   ///< materialised as a tensor
  const HostTensor *inConst(size_t i) const;  ///< null unless known at import time
  mlir::RankedTensorType inType(size_t i) const;
  std::vector<int64_t> inShape(size_t i) const;
  DType inDType(size_t i) const;
  int64_t inRank(size_t i) const { return int64_t(inShape(i).size()); }

  // Attributes.
  const onnx::AttributeProto *attr(llvm::StringRef name) const;
  bool hasAttr(llvm::StringRef name) const { return attr(name) != nullptr; }
  int64_t attrInt(llvm::StringRef name, int64_t def) const;
  float attrFloat(llvm::StringRef name, float def) const;
  std::string attrString(llvm::StringRef name, const std::string &def) const;
  std::vector<int64_t> attrInts(llvm::StringRef name) const;
  std::vector<float> attrFloats(llvm::StringRef name) const;

  // Outputs.
  size_t numOutputs() const { return node.output_size(); }
  bool wantsOutput(size_t i) const { return i < size_t(node.output_size()) && !node.output(i).empty(); }
  void out(size_t i, mlir::Value v);
  void outConst(size_t i, HostTensor t);

  // Subgraphs (If branches, Loop and Scan bodies).
  /// Input `i` as the importer holds it: a tensor, a host constant, or both.
  ValueEntry inEntry(size_t i) const;
  /// Sets output `i` to an entry (tensor and/or host constant).
  void outEntry(size_t i, ValueEntry e);
  /// The entry as a tensor (its constant is emitted here if it has none yet).
  mlir::Value materialize(const ValueEntry &e);
  mlir::RankedTensorType entryType(const ValueEntry &e) const;
  /// Imports the graph attribute `attrName` inline at the current insertion point,
  /// in a scope nested in this node's: names of the enclosing graphs stay visible,
  /// the subgraph's inputs are bound to `inputs`, and its outputs are returned.
  /// Errors inside name this node (and `iteration`, when >= 0) as their context.
  /// With `region`, the insertion point is in a new region (an scf.for body): host
  /// constants of the enclosing graphs are emitted again there when used.
  mlir::FailureOr<std::vector<ValueEntry>> subgraph(llvm::StringRef attrName, llvm::ArrayRef<ValueEntry> inputs,
                                                    int64_t iteration = -1, bool region = false);

  /// Records why this node cannot be imported; returns failure().
  mlir::LogicalResult fail(const llvm::Twine &reason);

  // ---- Emission helpers (all results carry this node's location) ----
  mlir::Type elementType(DType t) const;
  mlir::RankedTensorType tensorType(llvm::ArrayRef<int64_t> shape, mlir::Type elem) const;
  /// Generic op creation: name, operands, one result type, attributes.
  mlir::Value emit(llvm::StringRef opName, mlir::ValueRange operands, mlir::Type result,
                   llvm::ArrayRef<mlir::NamedAttribute> attrs = {});
  mlir::NamedAttribute named(llvm::StringRef name, mlir::Attribute a) { return b.getNamedAttr(name, a); }

  mlir::Value constant(const HostTensor &t);
  mlir::Value constF32(llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<float> data);
  /// A [1,...,1] tensor of `rank` holding v, of element type `elem`.
  mlir::Value splat(double v, int64_t rank, mlir::Type elem);
  /// A tensor of `shape` holding v everywhere, without materialising it on the host.
  mlir::Value splat(double v, llvm::ArrayRef<int64_t> shape, mlir::Type elem);
  mlir::Value zeroPoint(mlir::Type elem); ///< tensor<1xelem> zero, for TOSA zp operands
  mlir::Value shapeValue(llvm::ArrayRef<int64_t> values); ///< tosa.const_shape

  mlir::Value reshape(mlir::Value x, llvm::ArrayRef<int64_t> shape);
  mlir::Value transpose(mlir::Value x, llvm::ArrayRef<int64_t> perm);
  mlir::Value toRank(mlir::Value x, int64_t rank); ///< prepend unit dims
  /// Elementwise TOSA binary op with numpy broadcasting (add, sub, mul, ...).
  mlir::Value binary(llvm::StringRef tosaOp, mlir::Value a, mlir::Value c, mlir::Type resultElem = {});
  mlir::Value add(mlir::Value a, mlir::Value c) { return binary("tosa.add", a, c); }
  mlir::Value sub(mlir::Value a, mlir::Value c) { return binary("tosa.sub", a, c); }
  mlir::Value mul(mlir::Value a, mlir::Value c);
  mlir::Value unary(llvm::StringRef tosaOp, mlir::Value x);
  mlir::Value clamp(mlir::Value x, double lo, double hi);
  /// Elementwise linalg.generic over broadcast operands for what TOSA lacks.
  mlir::Value generic(mlir::ValueRange operands, mlir::Type resultElem,
                      const std::function<mlir::Value(mlir::OpBuilder &, mlir::Location,
                                                      mlir::ValueRange)> &body);
  /// linalg.generic over `outShape` (all loops parallel) whose body may also read any
  /// element of tensors captured from outside (gathers, resizes, scatters).
  mlir::Value indexed(mlir::ValueRange ins, llvm::ArrayRef<mlir::AffineMap> inMaps,
                      llvm::ArrayRef<int64_t> outShape, mlir::Type elem,
                      const std::function<mlir::Value(mlir::OpBuilder &, mlir::Location,
                                                      mlir::ValueRange)> &body);
  /// Fails (with the reason) unless input `i` is float32.
  mlir::LogicalResult requireF32(size_t i);
  /// Reduce over one axis keeping it as size 1 (tosa.reduce_sum/max/min/prod).
  mlir::Value reduce(llvm::StringRef tosaOp, mlir::Value x, int64_t axis);
  mlir::Value slice(mlir::Value x, llvm::ArrayRef<int64_t> start, llvm::ArrayRef<int64_t> size);
  mlir::Value concat(mlir::ValueRange parts, int64_t axis);

  static std::vector<int64_t> shapeOf(mlir::Value v);
  GraphImporter &graph;
};

using ImportFn = mlir::LogicalResult (*)(NodeImporter &);

/// One row of the op table: ONNX op type and the opset range one function imports.
struct OpTableEntry {
  const char *opType;
  int64_t minOpset, maxOpset;
  ImportFn fn;
};

/// The table (OpTable.cpp). Lookup returns null if (op, opset) is not supported.
const OpTableEntry *lookupOp(llvm::StringRef opType, int64_t opset);
llvm::ArrayRef<OpTableEntry> opTable();

/// Reads a binary .onnx or a textual .onnxtxt model; returns the reason on failure.
bool loadModelProto(const std::string &path, onnx::ModelProto &model, std::string &err);

/// The MLIR element type Kiln computes an ONNX element type in (see DType).
mlir::Type computeType(mlir::Builder &b, DType t);

/// "[d0,d1,...]" for messages.
std::string shapeText(const std::vector<int64_t> &dims);

/// Decodes an ONNX TensorProto; returns the reason on failure.
std::optional<std::string> decodeTensor(const onnx::TensorProto &t, HostTensor &out);
/// Why a tensor of static shape `dims` is too large to compile (more than
/// kMaxTensorElements elements), if it is.
std::optional<std::string> tooLarge(const std::vector<int64_t> &dims);

/// The bias of a convolution with `channels` outputs: input `input` checked to be
/// [channels], or zeros when the node has none.
mlir::FailureOr<mlir::Value> convBias(NodeImporter &n, size_t input, int64_t channels);

/// Casts input `input` to `to` with ONNX's semantics (floats to integers truncate
/// toward zero; f64/f16 are computed in f32) and sets output 0.
mlir::LogicalResult castInput(NodeImporter &n, size_t input, DType to);

/// auto_pad SAME_UPPER/SAME_LOWER: the {begin, end} padding of an axis of extent
/// `in` that keeps ceil(in / stride) outputs for a window spanning `eff` elements
/// (the odd element goes at the end for SAME_UPPER, at the beginning for SAME_LOWER).
std::pair<int64_t, int64_t> samePads(int64_t in, int64_t stride, int64_t eff, bool upper);

/// Normalises a possibly negative axis; nullopt if out of range.
std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank);

// Import functions, grouped by file.
#define KILN_OP(opType, lo, hi, name) mlir::LogicalResult import##name(NodeImporter &n);
#include "frontend/onnx/OpList.def"
#undef KILN_OP

} // namespace kiln::onnx_frontend

#endif
