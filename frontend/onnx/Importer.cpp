//===- Importer.cpp - ONNX ModelProto to MLIR func + TOSA -------------------===//
//
// Loads a model with libonnx, runs the ONNX checker and shape inference with the
// user's input shapes fixed, then walks the (topologically sorted) graph calling
// one import function per node from the op table. Every problem is collected with
// the node's name; nothing is returned unless the whole graph imported.
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/Importer.h"
#include "frontend/onnx/ImportContext.h"
#include "frontend/onnx/LibOnnx.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/raw_ostream.h"

#include <onnx/checker.h>
#include <onnx/defs/parser.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <sstream>

using namespace mlir;

namespace kiln::onnx_frontend {

void registerImporterDialects(DialectRegistry &registry) {
  registry.insert<func::FuncDialect, tosa::TosaDialect, arith::ArithDialect, tensor::TensorDialect,
                  linalg::LinalgDialect, math::MathDialect, scf::SCFDialect,
                  bufferization::BufferizationDialect>();
}

std::string formatDiagnostics(const std::vector<ImportDiagnostic> &diags) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << "error: the model cannot be compiled (" << diags.size() << " problem"
     << (diags.size() == 1 ? "" : "s") << ")\n";
  for (const ImportDiagnostic &d : diags) {
    os << "  ";
    std::string within = d.within.empty() ? "" : " " + d.within;
    if (d.op == "model") os << "model: ";
    else if (d.op == "input" || d.op == "output" || d.op == "initializer")
      os << d.op << " '" << d.node << "'" << within << ": ";
    else if (!d.node.empty() || !d.op.empty()) os << "node '" << d.node << "' (" << d.op << ")" << within << ": ";
    os << d.reason << "\n";
  }
  return s;
}

//===----------------------------------------------------------------------===//
// Loading tensors from the protobuf.
//===----------------------------------------------------------------------===//

static float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
  if (exp == 0) {
    if (mant == 0) bits = sign;
    else {
      exp = 127 - 15 + 1;
      while (!(mant & 0x400)) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
  } else if (exp == 31) bits = sign | 0x7f800000 | (mant << 13);
  else bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

static std::string dimsToString(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t k = 0; k < dims.size(); ++k) s += (k ? "," : "") + (dims[k] < 0 ? std::string("?") : std::to_string(dims[k]));
  return s + "]";
}

std::optional<std::string> tooLarge(const std::vector<int64_t> &dims) {
  int64_t n = numElements(dims);
  if (n <= kMaxTensorElements) return std::nullopt;
  return "shape " + dimsToString(dims) + " has " +
         (n == std::numeric_limits<int64_t>::max() ? std::string("more than 2^63") : std::to_string(n)) +
         " elements; Kiln's limit is " + std::to_string(kMaxTensorElements) + " per tensor";
}

/// Decodes a TensorProto; returns a reason string on failure.
std::optional<std::string> decodeTensor(const onnx::TensorProto &t, HostTensor &out) {
  out.dtype = dtypeFromOnnx(t.data_type());
  if (out.dtype == DType::Unknown)
    return "tensor '" + t.name() + "' has element type " + onnxTypeName(t.data_type()) +
           ", which Kiln does not support";
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    return "tensor '" + t.name() + "' uses external data, which Kiln does not read yet";
  out.shape.assign(t.dims().begin(), t.dims().end());
  for (int64_t d : out.shape)
    if (d < 0) return "tensor '" + t.name() + "' has a negative dimension";
  if (auto why = tooLarge(out.shape)) return "tensor '" + t.name() + "': " + *why;
  int64_t n = numElements(out.shape);
  const std::string &raw = t.raw_data();
  size_t esz = out.dtype == DType::F64 || out.dtype == DType::I64 ? 8
               : out.dtype == DType::F32 || out.dtype == DType::I32 || out.dtype == DType::U32 ? 4
               : out.dtype == DType::F16 || out.dtype == DType::I16 || out.dtype == DType::U16 ? 2 : 1;
  bool useRaw = t.has_raw_data();
  if (useRaw && raw.size() != size_t(n) * esz)
    return "tensor '" + t.name() + "' holds " + std::to_string(raw.size()) + " bytes, expected " +
           std::to_string(size_t(n) * esz);
  auto rawAt = [&](int64_t k, auto dummy) {
    decltype(dummy) v;
    std::memcpy(&v, raw.data() + k * sizeof(v), sizeof(v));
    return v;
  };
  // The typed field the values come from when there is no raw_data. Its length is checked
  // before anything is allocated: a tensor may declare far more values than it holds.
  int held = 0;
  switch (out.dtype) {
  case DType::F32: held = t.float_data_size(); break;
  case DType::F64: held = t.double_data_size(); break;
  case DType::I64: held = t.int64_data_size(); break;
  case DType::U32: held = t.uint64_data_size(); break;
  default: held = t.int32_data_size(); break;
  }
  if (!useRaw && held != n)
    return "tensor '" + t.name() + "' holds " + std::to_string(held) + " values, expected " +
           std::to_string(n);
  if (out.floating()) out.f.resize(n);
  else out.i.resize(n);
  switch (out.dtype) {
  case DType::F32:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.f[k] = rawAt(k, float());
    else for (int64_t k = 0; k < n; ++k) out.f[k] = t.float_data(k);
    break;
  case DType::F64:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.f[k] = float(rawAt(k, double()));
    else for (int64_t k = 0; k < n; ++k) out.f[k] = float(t.double_data(k));
    break;
  case DType::F16:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.f[k] = halfToFloat(rawAt(k, uint16_t()));
    else for (int64_t k = 0; k < n; ++k) out.f[k] = halfToFloat(uint16_t(t.int32_data(k)));
    break;
  case DType::I64:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.i[k] = rawAt(k, int64_t());
    else for (int64_t k = 0; k < n; ++k) out.i[k] = t.int64_data(k);
    break;
  case DType::I32:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.i[k] = rawAt(k, int32_t());
    else for (int64_t k = 0; k < n; ++k) out.i[k] = t.int32_data(k);
    break;
  case DType::I16:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.i[k] = rawAt(k, int16_t());
    else for (int64_t k = 0; k < n; ++k) out.i[k] = t.int32_data(k);
    break;
  case DType::U16:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.i[k] = rawAt(k, uint16_t());
    else for (int64_t k = 0; k < n; ++k) out.i[k] = uint16_t(t.int32_data(k));
    break;
  case DType::U32:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.i[k] = rawAt(k, uint32_t());
    else for (int64_t k = 0; k < n; ++k) out.i[k] = uint32_t(t.uint64_data(k));
    break;
  case DType::I8:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.i[k] = rawAt(k, int8_t());
    else for (int64_t k = 0; k < n; ++k) out.i[k] = int8_t(t.int32_data(k));
    break;
  case DType::U8:
  case DType::Bool:
    if (useRaw) for (int64_t k = 0; k < n; ++k) out.i[k] = rawAt(k, uint8_t());
    else for (int64_t k = 0; k < n; ++k) out.i[k] = uint8_t(t.int32_data(k));
    if (out.dtype == DType::Bool) for (auto &v : out.i) v = v != 0;
    break;
  case DType::Unknown:
    break;
  }
  return std::nullopt;
}

//===----------------------------------------------------------------------===//
// GraphImporter
//===----------------------------------------------------------------------===//

class GraphImporter {
public:
  GraphImporter(MLIRContext &ctx, const ImportOptions &options, std::vector<ImportDiagnostic> &diags)
      : ctx(ctx), builder(&ctx), options(options), diags(diags) {
    scopes.push_back(std::make_unique<Scope>());
  }

  OwningOpRef<ModuleOp> run(onnx::ModelProto &model, const std::string &modelName);

  /// One graph's names: the model's graph, or a subgraph (If branch, Loop/Scan body)
  /// imported inline, which also sees every name of the scopes around it.
  struct Scope {
    llvm::StringMap<ValueEntry> values;
    llvm::StringSet<> poisoned;
    std::string within;    ///< "in 'body' of node 'Loop_0' (Loop)" for reports; empty at top level
    std::string locPrefix; ///< "Loop_0/body/" prepended to node locations
    bool region = false;   ///< imported into a new region (scf.for body), not inline
  };

  MLIRContext &ctx;
  OpBuilder builder;
  const ImportOptions &options;
  std::vector<ImportDiagnostic> &diags;
  std::vector<std::unique_ptr<Scope>> scopes; ///< innermost last
  int64_t opset = -1;
  llvm::StringMap<DType> onnxTypes; ///< from the main graph's declared and inferred types
  unsigned resourceCounter = 0;
  /// Nodes imported from subgraphs so far (unrolled loops count every iteration).
  int64_t subgraphNodes = 0;
  /// Op verifier errors since the current node started.
  std::string verifierMessage;

  void error(const std::string &node, const std::string &op, const std::string &reason) {
    diags.push_back({node, op, reason, scopes.back()->within});
  }
  /// The innermost entry named `name`, or null.
  ValueEntry *lookup(llvm::StringRef name);
  bool defined(llvm::StringRef name) { return lookup(name) != nullptr; }
  /// True if the innermost scope that knows `name` records it as failed.
  bool isPoisoned(llvm::StringRef name);
  /// The entry `name` in the innermost scope (created if needed).
  ValueEntry &define(llvm::StringRef name) { return scopes.back()->values[name]; }
  void poison(llvm::StringRef name) { scopes.back()->poisoned.insert(name); }
  Value materialize(llvm::StringRef name, Location loc);

  /// Imports the nodes of `graph` in order into the innermost scope.
  void importNodes(const onnx::GraphProto &graph);
  /// Reports every node of `graph` (and its subgraphs) whose op Kiln lacks.
  void preflight(const onnx::GraphProto &graph, const std::string &within);
  /// Decodes `graph`'s initializers into the innermost scope as host constants.
  void defineInitializers(const onnx::GraphProto &graph);
  /// Imports `graph` inline at the builder's insertion point in a new scope whose
  /// inputs are bound to `inputs`; returns its outputs' entries.
  FailureOr<std::vector<ValueEntry>> importSubgraph(const onnx::GraphProto &graph,
                                                    llvm::ArrayRef<ValueEntry> inputs,
                                                    const std::string &within, const std::string &locPrefix,
                                                    bool region);
};

static std::string nodeDisplayName(const onnx::NodeProto &node, int index) {
  if (!node.name().empty()) return node.name();
  return node.op_type() + "_" + std::to_string(index);
}

/// "in 'body' of node 'Loop_0' (Loop)", followed by the context of the enclosing graph.
static std::string subgraphContext(const std::string &attr, const std::string &note, const std::string &node,
                                   const std::string &op, const std::string &outer) {
  std::string s = "in '" + attr + "'" + (note.empty() ? "" : " (" + note + ")") + " of node '" + node + "' (" + op + ")";
  return outer.empty() ? s : s + " " + outer;
}

void GraphImporter::defineInitializers(const onnx::GraphProto &graph) {
  for (const auto &init : graph.initializer()) {
    HostTensor t;
    if (auto err = decodeTensor(init, t)) {
      error(init.name(), "initializer", *err);
      poison(init.name());
      continue;
    }
    define(init.name()).constant = std::move(t);
  }
}

void GraphImporter::preflight(const onnx::GraphProto &graph, const std::string &within) {
  for (int k = 0; k < graph.node_size(); ++k) {
    const auto &node = graph.node(k);
    std::string name = nodeDisplayName(node, k);
    auto report = [&](const std::string &reason) { diags.push_back({name, node.op_type(), reason, within}); };
    std::string domain = node.domain();
    if (!domain.empty() && domain != "ai.onnx") {
      report("operator domain '" + domain + "' is not supported");
      continue;
    }
    if (!lookupOp(node.op_type(), opset)) report("operator is not supported at opset " + std::to_string(opset));
    for (const auto &a : node.attribute()) {
      // ONNX's shape inference multiplies by these without overflow checks.
      if (a.name() == "blocksize" && (a.i() <= 0 || a.i() > (1 << 16)))
        report("blocksize " + std::to_string(a.i()) + " is out of range");
      if (a.has_g()) preflight(a.g(), subgraphContext(a.name(), "", name, node.op_type(), within));
    }
  }
}

/// The newest opset ONNX's version converter (ONNX 1.12) can target.
static constexpr int64_t kMaxConvertOpset = 17;

/// True if some node's op is not imported at `opset` but is at a newer one.
static bool needsUpgrade(const onnx::GraphProto &graph, int64_t opset) {
  for (const auto &node : graph.node()) {
    if (!node.domain().empty() && node.domain() != "ai.onnx") continue;
    if (lookupOp(node.op_type(), opset)) continue;
    for (const OpTableEntry &e : opTable())
      if (node.op_type() == e.opType && e.maxOpset > opset && e.minOpset <= kMaxConvertOpset) return true;
  }
  return false;
}

static std::string oneLine(std::string s) {
  for (char &c : s)
    if (c == '\n') c = ' ';
  return s;
}

/// QuantizeLinear/DequantizeLinear of opsets 19 and 21 carry attributes that the
/// ONNX 1.12 checker does not know. Rejects what Kiln does not implement (blocked
/// quantization, types other than int8/uint8) with the reason, and otherwise
/// drops those attributes: saturate only concerns float8, block_size is 0, and an
/// int8 output_dtype without a zero point becomes an explicit int8 zero point.
static std::optional<std::string> normalizeQuantNode(onnx::GraphProto &graph, onnx::NodeProto &node, int index) {
  if (node.op_type() != "QuantizeLinear" && node.op_type() != "DequantizeLinear") return std::nullopt;
  // Element types of the node's inputs that are graph inputs or initializers.
  for (const auto &in : node.input()) {
    int type = 0;
    for (const auto &t : graph.initializer()) if (t.name() == in) type = t.data_type();
    for (const auto &v : graph.input())
      if (v.name() == in && v.type().has_tensor_type()) type = v.type().tensor_type().elem_type();
    if (type >= 17 /* float8 and 4-bit types */ || type == onnx::TensorProto::INT16 || type == onnx::TensorProto::UINT16)
      return onnxTypeName(type) + " quantization is not supported (only int8 and uint8)";
  }
  int64_t outType = 0;
  std::vector<int> drop;
  for (int k = 0; k < node.attribute_size(); ++k) {
    const auto &a = node.attribute(k);
    if (a.name() == "block_size") {
      if (a.i() != 0) return "blocked quantization (block_size = " + std::to_string(a.i()) + ") is not supported";
      drop.push_back(k);
    } else if (a.name() == "output_dtype") {
      outType = a.i();
      if (outType != 0 && outType != onnx::TensorProto::UINT8 && outType != onnx::TensorProto::INT8)
        return "output_dtype " + onnxTypeName(int(outType)) + " is not supported (only int8 and uint8)";
      drop.push_back(k);
    } else if (a.name() == "saturate") {
      drop.push_back(k);
    }
  }
  if (outType == onnx::TensorProto::INT8 && (node.input_size() < 3 || node.input(2).empty())) {
    auto *zp = graph.add_initializer();
    zp->set_name("kiln_int8_zero_point_" + std::to_string(index));
    zp->set_data_type(onnx::TensorProto::INT8);
    zp->add_int32_data(0);
    while (node.input_size() < 3) node.add_input("");
    node.set_input(2, zp->name());
  }
  for (auto it = drop.rbegin(); it != drop.rend(); ++it)
    node.mutable_attribute()->DeleteSubrange(*it, 1);
  return std::nullopt;
}

OwningOpRef<ModuleOp> GraphImporter::run(onnx::ModelProto &model, const std::string &modelName) {
  onnx::GraphProto *graph = model.mutable_graph();

  opset = -1;
  for (const auto &imp : model.opset_import())
    if (imp.domain().empty() || imp.domain() == "ai.onnx") opset = imp.version();
  if (opset < 0) {
    error("", "model", "the model imports no version of the default ONNX opset");
    return nullptr;
  }

  // How the nodes are wired: every node input and graph output must come from a graph
  // input, an initializer or an earlier node. The checker rejects a graph out of
  // topological order too (a cycle is one), but it stops at the first such node and
  // cannot name an unnamed one; it accepts a graph output that nothing produces, on
  // which ONNX's version converter crashes.
  llvm::StringMap<int> producer;
  for (int k = graph->node_size() - 1; k >= 0; --k)
    for (const auto &o : graph->node(k).output()) producer[o] = k;
  llvm::StringSet<> known;
  for (const auto &init : graph->initializer()) known.insert(init.name());
  for (const auto &input : graph->input()) known.insert(input.name());
  for (int k = 0; k < graph->node_size(); ++k) {
    const auto &node = graph->node(k);
    for (const auto &in : node.input()) {
      if (in.empty() || known.contains(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end())
        error(nodeDisplayName(node, k), node.op_type(),
              "input '" + in + "' is not a graph input, an initializer or any node's output");
      else if (it->second == k)
        error(nodeDisplayName(node, k), node.op_type(),
              "input '" + in + "' is the node's own output: the graph has a cycle");
      else
        error(nodeDisplayName(node, k), node.op_type(),
              "input '" + in + "' comes from node '" + nodeDisplayName(graph->node(it->second), it->second) +
                  "' further down: the graph has a cycle or is not topologically sorted");
    }
    for (const auto &o : node.output()) known.insert(o);
  }
  for (const auto &output : graph->output())
    if (!known.contains(output.name()))
      error(output.name(), "output", "graph output is not produced by any node");
  if (!diags.empty()) return nullptr;

  // An op Kiln imports only at newer opsets (Reshape-1's shape attribute, Pad-1,
  // Cast-1's string type): upgrade the whole model with ONNX's version converter.
  std::string converterFailure;
  bool upgrade = opset < kMaxConvertOpset && needsUpgrade(*graph, opset);
  if (upgrade) {
    // The converter trusts its input: it dereferences the schema of every node, and
    // crashes on an op that does not exist at the model's opset. Only a model that
    // the checker accepts is converted.
    try {
      onnx::checker::check_model(model);
    } catch (const std::exception &e) {
      converterFailure = "the model is not valid at opset " + std::to_string(opset) +
                         ", so ONNX's version converter was not run: " + oneLine(e.what());
      upgrade = false;
    }
  }
  if (upgrade) {
    if (std::string why = convertVersion(model, kMaxConvertOpset, options.isolateLibOnnx); why.empty()) {
      // Opset 17 belongs to IR version 8 (initializers need not be graph inputs, as
      // the converter's new constant inputs are not).
      model.set_ir_version(std::max<int64_t>(model.ir_version(), 8));
      graph = model.mutable_graph();
      // ONNX 1.12's Reshape 4->5 adapter writes the shape as a Constant without
      // dims; a tensor with several values and no dims can only be that 1-D shape.
      for (auto &node : *graph->mutable_node())
        if (node.op_type() == "Constant")
          for (auto &a : *node.mutable_attribute())
            if (a.has_t() && a.t().dims_size() == 0 && a.t().int64_data_size() > 1)
              a.mutable_t()->add_dims(a.t().int64_data_size());
      opset = kMaxConvertOpset;
    } else {
      // Pre-flight reports the ops that stay unsupported, then this.
      converterFailure = "ONNX's version converter could not upgrade the model from opset " +
                         std::to_string(opset) + " to " + std::to_string(kMaxConvertOpset) + ": " + oneLine(why);
    }
  }

  // Graph inputs that are not initializers are the model's real inputs.
  llvm::StringSet<> initNames;
  for (const auto &init : graph->initializer()) initNames.insert(init.name());

  // Fix the user's shapes before the checker and shape inference see the model.
  llvm::StringSet<> realInputs;
  for (auto &input : *graph->mutable_input()) {
    if (initNames.contains(input.name())) continue;
    realInputs.insert(input.name());
    const std::vector<int64_t> *given = nullptr;
    if (auto it = options.inputShapes.find(input.name()); it != options.inputShapes.end()) given = &it->second;
    if (auto fz = options.frozenInputs.find(input.name()); fz != options.frozenInputs.end()) {
      if (given && *given != fz->second.shape) {
        error(input.name(), "input", "--shape and --freeze disagree on the shape");
        continue;
      }
      given = &fz->second.shape; // a frozen input takes the shape of its value
    }
    if (!given) continue;
    const std::vector<int64_t> &dims = *given;
    auto *tt = input.mutable_type()->mutable_tensor_type();
    if (tt->has_shape() && tt->shape().dim_size() != int(dims.size())) {
      error(input.name(), "input",
            "--shape gives " + std::to_string(dims.size()) + " dimensions but the model's input has " +
                std::to_string(tt->shape().dim_size()));
      continue;
    }
    auto *shape = tt->mutable_shape();
    for (size_t k = 0; k < dims.size(); ++k) {
      auto *d = k < size_t(shape->dim_size()) ? shape->mutable_dim(k) : shape->add_dim();
      if (d->has_dim_value() && d->dim_value() != dims[k]) {
        error(input.name(), "input",
              "--shape sets dimension " + std::to_string(k) + " to " + std::to_string(dims[k]) +
                  " but the model fixes it to " + std::to_string(d->dim_value()));
      }
      d->set_dim_value(dims[k]);
    }
  }
  for (const auto &kv : options.inputShapes)
    if (!realInputs.contains(kv.first))
      error(kv.first, "input", "--shape names an input the model does not have");
  for (const auto &kv : options.frozenInputs)
    if (!realInputs.contains(kv.first))
      error(kv.first, "input", "--freeze names an input the model does not have");
  if (!diags.empty()) return nullptr;

  // Pre-flight: report every unsupported op at once, before the checker (which stops
  // at the first op it does not know) and before emitting anything. Subgraphs (If
  // branches, Loop and Scan bodies) are checked too, naming the node that holds them.
  preflight(*graph, "");
  if (!diags.empty() && !converterFailure.empty()) error("", "model", converterFailure);
  for (int k = 0; k < graph->node_size(); ++k)
    if (lookupOp(graph->node(k).op_type(), opset))
      if (auto reason = normalizeQuantNode(*graph, *graph->mutable_node(k), k))
        diags.push_back({nodeDisplayName(graph->node(k), k), graph->node(k).op_type(), *reason, ""});

  if (!diags.empty()) return nullptr;

  if (!diags.empty()) return nullptr;

  try {
    onnx::checker::check_model(model);
  } catch (const std::exception &e) {
    error("", "model", std::string("the ONNX checker rejected the model: ") + e.what());
    return nullptr;
  }
  if (std::string why = inferShapes(model, {}, options.isolateLibOnnx); !why.empty()) {
    error("", "model", "ONNX shape inference failed: " + why);
    return nullptr;
  }
  // The ONNX element type of every value whose type inference knows: Kiln computes
  // several types in one (uint8 in i8, int16 in i32), so ops that differ between
  // them (unsigned compare, shifts, casts) ask for the ONNX type (inDType).
  for (const auto *list : {&graph->input(), &graph->value_info(), &graph->output()})
    for (const auto &v : *list)
      if (v.type().has_tensor_type())
        onnxTypes[v.name()] = dtypeFromOnnx(v.type().tensor_type().elem_type());

  Location modelLoc = NameLoc::get(builder.getStringAttr(modelName));
  OwningOpRef<ModuleOp> module = ModuleOp::create(modelLoc);
  module->getOperation()->setAttr("kiln.source", builder.getStringAttr(modelName));
  module->getOperation()->setAttr("kiln.opset", builder.getI64IntegerAttr(opset));

  // Inputs: static shapes and supported element types only.
  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  for (const auto &input : graph->input()) {
    if (initNames.contains(input.name())) continue;
    if (auto fz = options.frozenInputs.find(input.name()); fz != options.frozenInputs.end()) {
      DType want = input.type().has_tensor_type() ? dtypeFromOnnx(input.type().tensor_type().elem_type())
                                                  : DType::Unknown;
      if (want == DType::Unknown) {
        error(input.name(), "input", "cannot freeze an input of this type");
        continue;
      }
      define(input.name()).constant = fz->second.castTo(want);
      continue;
    }
    if (!input.type().has_tensor_type()) {
      error(input.name(), "input", "only tensor inputs are supported");
      continue;
    }
    const auto &tt = input.type().tensor_type();
    DType dt = dtypeFromOnnx(tt.elem_type());
    if (dt == DType::Unknown) {
      error(input.name(), "input",
            "element type " + onnxTypeName(tt.elem_type()) + " is not supported");
      continue;
    }
    if (!tt.has_shape()) {
      error(input.name(), "input", "input has no shape: pass --shape " + input.name() + "=d0,d1,...");
      continue;
    }
    std::vector<int64_t> dims;
    bool dynamic = false;
    std::string symbols;
    for (const auto &d : tt.shape().dim()) {
      if (d.has_dim_value() && d.dim_value() >= 0) dims.push_back(d.dim_value());
      else {
        dynamic = true;
        dims.push_back(-1);
        symbols += (symbols.empty() ? "" : ", ") + (d.has_dim_param() ? "'" + d.dim_param() + "'" : std::string("?"));
      }
    }
    if (!dynamic && llvm::is_contained(dims, 0)) {
      error(input.name(), "input", "shape " + dimsToString(dims) + " has a zero-size dimension, which is not supported");
      continue;
    }
    if (dynamic) {
      error(input.name(), "input",
            "dynamic dimension " + symbols + " in shape " + dimsToString(dims) +
                " has no value: pass --shape " + input.name() + "=d0,d1,...");
      continue;
    }
    if (auto why = tooLarge(dims)) {
      error(input.name(), "input", *why);
      continue;
    }
    argTypes.push_back(RankedTensorType::get(dims, computeType(builder, dt)));
    argNames.push_back(input.name());
  }
  if (!diags.empty()) return nullptr;

  builder.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(builder, modelLoc, options.entryName,
                                   builder.getFunctionType(argTypes, {}));
  Block *entry = func.addEntryBlock();
  for (size_t k = 0; k < argNames.size(); ++k) {
    func.setArgAttr(k, "kiln.name", builder.getStringAttr(argNames[k]));
    if (onnxTypes.lookup(argNames[k]) == DType::U8) func.setArgAttr(k, "kiln.uint8", builder.getUnitAttr());
    define(argNames[k]).value = entry->getArgument(k);
    entry->getArgument(k).setLoc(NameLoc::get(builder.getStringAttr(argNames[k])));
  }
  builder.setInsertionPointToStart(entry);

  defineInitializers(*graph);

  // Collect errors from op verifiers into the report, attributed to the node.
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &d) {
    if (d.getSeverity() == DiagnosticSeverity::Error) {
      if (!verifierMessage.empty()) verifierMessage += "; ";
      verifierMessage += d.str();
    }
    return success();
  });

  importNodes(*graph);

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const auto &output : graph->output()) {
    if (isPoisoned(output.name())) continue;
    if (!defined(output.name())) {
      error(output.name(), "output", "graph output is not produced by any node");
      continue;
    }
    Value v = materialize(output.name(), NameLoc::get(builder.getStringAttr(output.name())));
    auto vt = cast<RankedTensorType>(v.getType());
    if (vt.getNumElements() == 0 && vt.getRank() > 2) {
      // The LLVM lowering of such a buffer fails; report it rather than fail later.
      error(output.name(), "output", "an empty output of rank " + std::to_string(vt.getRank()) + " is not supported");
      continue;
    }
    results.push_back(v);
    resultTypes.push_back(v.getType());
  }
  if (!diags.empty()) return nullptr;
  func::ReturnOp::create(builder, modelLoc, results);
  func.setFunctionType(builder.getFunctionType(argTypes, resultTypes));
  for (int k = 0; k < graph->output_size(); ++k) {
    func.setResultAttr(k, "kiln.name", builder.getStringAttr(graph->output(k).name()));
    // uint8 is computed in i8 bits; the signature tells callers it is unsigned.
    if (onnxTypes.lookup(graph->output(k).name()) == DType::U8)
      func.setResultAttr(k, "kiln.uint8", builder.getUnitAttr());
  }

  if (failed(verify(*module))) {
    error("", "model", "the imported module failed verification: " + verifierMessage);
    return nullptr;
  }
  return module;
}

void GraphImporter::importNodes(const onnx::GraphProto &graph) {
  for (int k = 0; k < graph.node_size(); ++k) {
    const auto &node = graph.node(k);
    std::string name = nodeDisplayName(node, k);
    const OpTableEntry *entryFn = lookupOp(node.op_type(), opset);
    bool skip = !entryFn;
    for (const auto &inName : node.input()) {
      if (inName.empty()) continue;
      if (isPoisoned(inName)) skip = true;
      else if (!defined(inName)) {
        error(name, node.op_type(), "input '" + inName + "' is not produced by any earlier node");
        skip = true;
      }
    }
    if (skip) {
      for (const auto &o : node.output()) poison(o);
      continue;
    }
    NodeImporter n(*this, node, opset, name);
    std::string outerMessage = std::move(verifierMessage); // the enclosing node's, when in a subgraph
    verifierMessage.clear();
    size_t before = diags.size();
    LogicalResult ok = entryFn->fn(n);
    bool produced = true;
    for (int o = 0; o < node.output_size(); ++o)
      if (!node.output(o).empty() && !defined(node.output(o))) produced = false;
    if (succeeded(ok) && !verifierMessage.empty()) {
      error(name, node.op_type(), "emitted invalid IR: " + verifierMessage);
      ok = failure();
    } else if (succeeded(ok) && !produced) {
      error(name, node.op_type(), "import produced no value for an output");
      ok = failure();
    } else if (succeeded(ok)) {
      // Shapes come from the model's attributes and constants: refuse absurd ones here,
      // before later nodes or the compiler size buffers by them.
      for (const auto &o : node.output()) {
        if (o.empty()) continue;
        std::optional<std::string> why;
        if (const ValueEntry *e = lookup(o); e && e->constant) why = tooLarge(e->constant->shape);
        else if (auto t = e && e->value ? dyn_cast<RankedTensorType>(e->value.getType()) : nullptr;
                 t && t.hasStaticShape())
          why = tooLarge(std::vector<int64_t>(t.getShape().begin(), t.getShape().end()));
        if (why) {
          error(name, node.op_type(), "output '" + o + "': " + *why);
          ok = failure();
          break;
        }
      }
    } else if (failed(ok) && diags.size() == before) {
      error(name, node.op_type(), "import failed" + (verifierMessage.empty() ? "" : ": " + verifierMessage));
    }
    if (failed(ok))
      for (const auto &o : node.output()) poison(o);
    verifierMessage = std::move(outerMessage);
  }
}

ValueEntry *GraphImporter::lookup(llvm::StringRef name) {
  for (auto it = scopes.rbegin(); it != scopes.rend(); ++it)
    if (auto f = (*it)->values.find(name); f != (*it)->values.end()) return &f->second;
  return nullptr;
}

bool GraphImporter::isPoisoned(llvm::StringRef name) {
  for (auto it = scopes.rbegin(); it != scopes.rend(); ++it) {
    if ((*it)->poisoned.contains(name)) return true;
    if ((*it)->values.count(name)) return false;
  }
  return false;
}

Value GraphImporter::materialize(llvm::StringRef name, Location loc) {
  // The innermost scope that knows `name`, and whether a region lies between it and here.
  size_t at = scopes.size();
  bool crossesRegion = false;
  while (at-- > 0) {
    if (scopes[at]->values.count(name)) break;
    crossesRegion |= scopes[at]->region;
  }
  if (at == size_t(-1)) return {};
  ValueEntry *e = &scopes[at]->values[name];
  if (!e->value && e->constant) {
    // Constants are emitted at their first use so that shape-only values never appear.
    // Inline subgraphs share the enclosing block, so the emitted value serves every
    // later use; one emitted inside a region (a loop body) only serves that region.
    onnx::NodeProto dummy;
    dummy.set_name(name.str());
    NodeImporter n(*this, dummy, 0, name.str());
    n.loc = loc;
    Value v = n.constant(*e->constant);
    if (crossesRegion) e = &(scopes.back()->values[name] = scopes[at]->values[name]);
    e->value = v;
  }
  return e->value;
}

FailureOr<std::vector<ValueEntry>> GraphImporter::importSubgraph(const onnx::GraphProto &graph,
                                                                 llvm::ArrayRef<ValueEntry> inputs,
                                                                 const std::string &within,
                                                                 const std::string &locPrefix, bool region) {
  size_t before = diags.size();
  auto scope = std::make_unique<Scope>();
  scope->within = within;
  scope->locPrefix = scopes.back()->locPrefix + locPrefix;
  scope->region = region;
  scopes.push_back(std::move(scope));
  struct Pop {
    GraphImporter &g;
    ~Pop() { g.scopes.pop_back(); }
  } pop{*this};

  assert(size_t(graph.input_size()) == inputs.size() && "the caller checks the subgraph's inputs");
  for (size_t k = 0; k < inputs.size(); ++k) define(graph.input(k).name()) = inputs[k];
  defineInitializers(graph);
  subgraphNodes += graph.node_size();
  importNodes(graph);

  std::vector<ValueEntry> outs;
  for (const auto &output : graph.output()) {
    if (isPoisoned(output.name())) continue;
    ValueEntry *e = lookup(output.name());
    if (!e) {
      error(output.name(), "output", "subgraph output is not produced by any node");
      continue;
    }
    outs.push_back(*e);
  }
  if (diags.size() != before || outs.size() != size_t(graph.output_size())) return failure();
  return outs;
}

//===----------------------------------------------------------------------===//
// NodeImporter
//===----------------------------------------------------------------------===//

NodeImporter::NodeImporter(GraphImporter &graph, const onnx::NodeProto &node, int64_t opset,
                           const std::string &displayName)
    : displayName(displayName), node(node), opset(opset), b(graph.builder),
      loc(NameLoc::get(graph.builder.getStringAttr(graph.scopes.back()->locPrefix + displayName))), graph(graph) {}

Value NodeImporter::in(size_t i) { return graph.materialize(node.input(i), loc); }

const HostTensor *NodeImporter::inConst(size_t i) const {
  if (!hasInput(i)) return nullptr;
  const ValueEntry *e = graph.lookup(node.input(i));
  if (!e || !e->constant) return nullptr;
  return &*e->constant;
}

std::vector<int64_t> NodeImporter::shapeOf(Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  return {t.getShape().begin(), t.getShape().end()};
}

RankedTensorType NodeImporter::inType(size_t i) const {
  const ValueEntry &e = *graph.lookup(node.input(i));
  if (e.value) return cast<RankedTensorType>(e.value.getType());
  return tensorType(e.constant->shape, elementType(e.constant->dtype));
}

std::vector<int64_t> NodeImporter::inShape(size_t i) const {
  const ValueEntry &e = *graph.lookup(node.input(i));
  if (e.constant) return e.constant->shape;
  return shapeOf(e.value);
}

DType NodeImporter::inDType(size_t i) const {
  const ValueEntry &e = *graph.lookup(node.input(i));
  if (e.constant) return e.constant->dtype;
  if (auto it = graph.onnxTypes.find(node.input(i)); it != graph.onnxTypes.end() && it->second != DType::Unknown)
    return it->second;
  Type t = cast<RankedTensorType>(e.value.getType()).getElementType();
  if (t.isF32()) return DType::F32;
  if (t.isInteger(1)) return DType::Bool;
  if (t.isInteger(64)) return DType::I64;
  if (t.isInteger(32)) return DType::I32;
  if (t.isInteger(16)) return DType::I16;
  if (t.isInteger(8)) return DType::I8;
  return DType::Unknown;
}

const onnx::AttributeProto *NodeImporter::attr(llvm::StringRef name) const {
  for (const auto &a : node.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}
int64_t NodeImporter::attrInt(llvm::StringRef name, int64_t def) const {
  auto *a = attr(name);
  return a ? a->i() : def;
}
float NodeImporter::attrFloat(llvm::StringRef name, float def) const {
  auto *a = attr(name);
  return a ? a->f() : def;
}
std::string NodeImporter::attrString(llvm::StringRef name, const std::string &def) const {
  auto *a = attr(name);
  return a ? a->s() : def;
}
std::vector<int64_t> NodeImporter::attrInts(llvm::StringRef name) const {
  auto *a = attr(name);
  if (!a) return {};
  return {a->ints().begin(), a->ints().end()};
}
std::vector<float> NodeImporter::attrFloats(llvm::StringRef name) const {
  auto *a = attr(name);
  if (!a) return {};
  return {a->floats().begin(), a->floats().end()};
}

void NodeImporter::out(size_t i, Value v) {
  if (!wantsOutput(i)) return;
  graph.define(node.output(i)).value = v;
}
void NodeImporter::outConst(size_t i, HostTensor t) {
  if (!wantsOutput(i)) return;
  graph.define(node.output(i)).constant = std::move(t);
}

ValueEntry NodeImporter::inEntry(size_t i) const {
  if (!hasInput(i)) return {};
  return *graph.lookup(node.input(i));
}

void NodeImporter::outEntry(size_t i, ValueEntry e) {
  if (!wantsOutput(i)) return;
  graph.define(node.output(i)) = std::move(e);
}

Value NodeImporter::materialize(const ValueEntry &e) {
  if (e.value || !e.constant) return e.value;
  return constant(*e.constant);
}

RankedTensorType NodeImporter::entryType(const ValueEntry &e) const {
  if (e.value) return cast<RankedTensorType>(e.value.getType());
  return tensorType(e.constant->shape, elementType(e.constant->dtype));
}

/// Most nodes all subgraph imports together may bring in (loops unroll).
static constexpr int64_t kMaxSubgraphNodes = 1 << 18;

FailureOr<std::vector<ValueEntry>> NodeImporter::subgraph(llvm::StringRef attrName,
                                                          llvm::ArrayRef<ValueEntry> inputs, int64_t iteration,
                                                          bool region) {
  const onnx::AttributeProto *a = attr(attrName);
  if (!a || !a->has_g()) return fail("attribute '" + attrName + "' is missing or not a graph");
  const onnx::GraphProto &g = a->g();
  if (size_t(g.input_size()) != inputs.size())
    return fail("subgraph '" + attrName + "' has " + llvm::Twine(g.input_size()) + " inputs, expected " +
                llvm::Twine(inputs.size()));
  if (graph.subgraphNodes + g.node_size() > kMaxSubgraphNodes)
    return fail("subgraphs would import more than " + llvm::Twine(kMaxSubgraphNodes) +
                " nodes (loops are unrolled)");
  std::string note = iteration >= 0 ? "iteration " + std::to_string(iteration) : "";
  std::string within = subgraphContext(attrName.str(), note, displayName, node.op_type(), graph.scopes.back()->within);
  std::string prefix = displayName + "/" + attrName.str() + (iteration >= 0 ? "." + std::to_string(iteration) : "") + "/";
  return graph.importSubgraph(g, inputs, within, prefix, region);
}

LogicalResult NodeImporter::fail(const llvm::Twine &reason) {
  graph.error(displayName, node.op_type(), reason.str());
  return failure();
}

Type computeType(Builder &b, DType t) {
  if (isFloat(t)) return b.getF32Type();
  if (unsigned bits = computeBits(t)) return b.getIntegerType(bits);
  return b.getNoneType();
}

Type NodeImporter::elementType(DType t) const { return computeType(b, t); }

RankedTensorType NodeImporter::tensorType(llvm::ArrayRef<int64_t> shape, Type elem) const {
  return RankedTensorType::get(shape, elem);
}

Value NodeImporter::emit(llvm::StringRef opName, ValueRange operands, Type result,
                         llvm::ArrayRef<NamedAttribute> attrs) {
  OperationState st(loc, opName);
  st.addOperands(operands);
  st.addTypes(result);
  st.addAttributes(attrs);
  Operation *op = b.create(st);
  (void)mlir::verify(op); // reports through the diagnostic handler
  return op->getResult(0);
}

Value NodeImporter::constant(const HostTensor &t) {
  Type elem = elementType(t.dtype);
  auto type = tensorType(t.shape, elem);
  // TOSA has no empty constants; an empty tensor holds no values to give.
  if (t.numel() == 0) return tensor::EmptyOp::create(b, loc, t.shape, elem);
  ElementsAttr attr;
  int64_t bytes = t.numel() * int64_t(elem.isInteger(1) ? 1 : (elem.getIntOrFloatBitWidth() + 7) / 8);
  bool isSplat = t.numel() > 1 && (t.floating() ? llvm::all_equal(t.f) : llvm::all_equal(t.i));
  if (t.dtype == DType::F32 || t.floating()) {
    if (bytes >= graph.options.resourceThresholdBytes && !isSplat) {
      auto blob = HeapAsmResourceBlob::allocateAndCopyInferAlign<float>(t.f);
      std::string blobName = "kiln_w" + std::to_string(graph.resourceCounter++);
      attr = DenseResourceElementsAttr::get(type, blobName, std::move(blob));
    } else if (isSplat) {
      attr = DenseElementsAttr::get(type, t.f[0]);
    } else {
      attr = DenseElementsAttr::get(type, llvm::ArrayRef<float>(t.f));
    }
  } else if (elem.isInteger(1)) {
    SmallVector<bool> v(t.i.begin(), t.i.end());
    attr = DenseElementsAttr::get(type, llvm::ArrayRef<bool>(v));
  } else {
    unsigned w = elem.getIntOrFloatBitWidth();
    SmallVector<APInt> v;
    v.reserve(t.numel());
    for (int64_t x : t.i) v.push_back(APInt(w, uint64_t(x), /*isSigned=*/true, /*implicitTrunc=*/true));
    attr = DenseElementsAttr::get(type, v);
  }
  return emit("tosa.const", {}, type, {named("values", attr)});
}

Value NodeImporter::constF32(llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<float> data) {
  HostTensor t = HostTensor::make(DType::F32, shape);
  t.f.assign(data.begin(), data.end());
  return constant(t);
}

Value NodeImporter::splat(double v, int64_t rank, Type elem) {
  return splat(v, std::vector<int64_t>(rank, 1), elem);
}

Value NodeImporter::splat(double v, llvm::ArrayRef<int64_t> shape, Type elem) {
  auto type = tensorType(shape, elem);
  Attribute a;
  if (isa<FloatType>(elem)) a = DenseElementsAttr::get(type, b.getFloatAttr(elem, v));
  else if (elem.isInteger(1)) a = DenseElementsAttr::get(type, v != 0);
  else a = DenseElementsAttr::get(type, b.getIntegerAttr(elem, int64_t(v)));
  return emit("tosa.const", {}, type, {named("values", a)});
}

Value NodeImporter::zeroPoint(Type elem) {
  return splat(0, 1, elem);
}

Value NodeImporter::shapeValue(llvm::ArrayRef<int64_t> values) {
  auto attrType = RankedTensorType::get({int64_t(values.size())}, b.getIndexType());
  auto attr = DenseIntElementsAttr::get(attrType, values);
  return emit("tosa.const_shape", {}, tosa::shapeType::get(b.getContext(), values.size()),
              {named("values", attr)});
}

Value NodeImporter::reshape(Value x, llvm::ArrayRef<int64_t> shape) {
  if (shapeOf(x) == std::vector<int64_t>(shape.begin(), shape.end())) return x;
  auto t = cast<RankedTensorType>(x.getType());
  return emit("tosa.reshape", {x, shapeValue(shape)}, tensorType(shape, t.getElementType()));
}

Value NodeImporter::transpose(Value x, llvm::ArrayRef<int64_t> perm) {
  bool identity = true;
  for (size_t k = 0; k < perm.size(); ++k) identity &= perm[k] == int64_t(k);
  if (identity) return x;
  auto shape = shapeOf(x);
  std::vector<int64_t> outShape;
  SmallVector<int32_t> p;
  for (int64_t k : perm) {
    outShape.push_back(shape[k]);
    p.push_back(int32_t(k));
  }
  return emit("tosa.transpose", {x}, tensorType(outShape, cast<RankedTensorType>(x.getType()).getElementType()),
              {named("perms", b.getDenseI32ArrayAttr(p))});
}

Value NodeImporter::toRank(Value x, int64_t rank) {
  auto shape = shapeOf(x);
  if (int64_t(shape.size()) >= rank) return x;
  std::vector<int64_t> s(rank - shape.size(), 1);
  s.insert(s.end(), shape.begin(), shape.end());
  return reshape(x, s);
}

Value NodeImporter::binary(llvm::StringRef tosaOp, Value a, Value c, Type resultElem) {
  int64_t rank = std::max(shapeOf(a).size(), shapeOf(c).size());
  a = toRank(a, rank);
  c = toRank(c, rank);
  auto shape = broadcastShapes(shapeOf(a), shapeOf(c));
  if (!shape) {
    (void)fail("operand shapes " + dimsToString(shapeOf(a)) + " and " + dimsToString(shapeOf(c)) +
         " do not broadcast");
    shape = shapeOf(a);
  }
  if (!resultElem) resultElem = cast<RankedTensorType>(a.getType()).getElementType();
  return emit(tosaOp, {a, c}, tensorType(*shape, resultElem));
}

Value NodeImporter::mul(Value a, Value c) {
  int64_t rank = std::max(shapeOf(a).size(), shapeOf(c).size());
  a = toRank(a, rank);
  c = toRank(c, rank);
  auto shape = broadcastShapes(shapeOf(a), shapeOf(c));
  if (!shape) {
    (void)fail("operand shapes do not broadcast");
    shape = shapeOf(a);
  }
  Value shift = splat(0, 1, b.getIntegerType(8));
  return emit("tosa.mul", {a, c, shift},
              tensorType(*shape, cast<RankedTensorType>(a.getType()).getElementType()));
}

Value NodeImporter::unary(llvm::StringRef tosaOp, Value x) {
  return emit(tosaOp, {x}, x.getType());
}

Value NodeImporter::clamp(Value x, double lo, double hi) {
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  Attribute loA, hiA;
  if (isa<FloatType>(elem)) {
    loA = b.getFloatAttr(elem, std::max(lo, double(-std::numeric_limits<float>::max())));
    hiA = b.getFloatAttr(elem, std::min(hi, double(std::numeric_limits<float>::max())));
  } else {
    unsigned w = elem.getIntOrFloatBitWidth();
    double mn = -std::ldexp(1.0, w - 1), mx = std::ldexp(1.0, w - 1) - 1;
    loA = b.getIntegerAttr(elem, int64_t(std::max(lo, mn)));
    hiA = b.getIntegerAttr(elem, int64_t(std::min(hi, mx)));
  }
  return emit("tosa.clamp", {x}, x.getType(), {named("min_val", loA), named("max_val", hiA)});
}

Value NodeImporter::generic(ValueRange operands, Type resultElem,
                            const std::function<Value(OpBuilder &, Location, ValueRange)> &body) {
  int64_t rank = 0;
  for (Value v : operands) rank = std::max<int64_t>(rank, shapeOf(v).size());
  SmallVector<Value> ins;
  std::vector<int64_t> outShape(rank, 1);
  for (Value v : operands) {
    Value r = toRank(v, rank);
    ins.push_back(r);
    auto s = broadcastShapes(outShape, shapeOf(r));
    if (!s) {
      (void)fail("operand shapes do not broadcast");
      return v;
    }
    outShape = *s;
  }
  SmallVector<AffineMap> maps;
  for (Value v : ins) {
    auto s = shapeOf(v);
    SmallVector<AffineExpr> exprs;
    for (int64_t d = 0; d < rank; ++d)
      exprs.push_back(s[d] == 1 && outShape[d] != 1 ? b.getAffineConstantExpr(0) : b.getAffineDimExpr(d));
    maps.push_back(AffineMap::get(rank, 0, exprs, b.getContext()));
  }
  maps.push_back(b.getMultiDimIdentityMap(rank));
  Value init = tensor::EmptyOp::create(b, loc, outShape, resultElem);
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  auto op = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
      [&](OpBuilder &nb, Location l, ValueRange args) {
        Value r = body(nb, l, args.drop_back());
        linalg::YieldOp::create(nb, l, r);
      });
  return op.getResult(0);
}

Value NodeImporter::indexed(ValueRange ins, ArrayRef<AffineMap> inMaps, ArrayRef<int64_t> outShape, Type elem,
                            const std::function<Value(OpBuilder &, Location, ValueRange)> &body) {
  int64_t rank = int64_t(outShape.size());
  SmallVector<AffineMap> maps(inMaps.begin(), inMaps.end());
  maps.push_back(b.getMultiDimIdentityMap(rank));
  Value init = tensor::EmptyOp::create(b, loc, outShape, elem);
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  auto op = linalg::GenericOp::create(b, loc, TypeRange{init.getType()}, ins, ValueRange{init}, maps, iters,
                                      [&](OpBuilder &nb, Location l, ValueRange args) {
                                        linalg::YieldOp::create(nb, l, body(nb, l, args.drop_back()));
                                      });
  return op.getResult(0);
}

LogicalResult NodeImporter::requireF32(size_t i) {
  if (!isFloat(inDType(i)))
    return fail(std::string("input ") + std::to_string(i) + " has element type " + dtypeName(inDType(i)) +
                "; only floating-point types are supported for this op");
  return success();
}

std::string shapeText(const std::vector<int64_t> &dims) {
  std::string s = "[";
  for (size_t k = 0; k < dims.size(); ++k) s += (k ? "," : "") + std::to_string(dims[k]);
  return s + "]";
}

Value NodeImporter::reduce(llvm::StringRef tosaOp, Value x, int64_t axis) {
  auto shape = shapeOf(x);
  shape[axis] = 1;
  return emit(tosaOp, {x}, tensorType(shape, cast<RankedTensorType>(x.getType()).getElementType()),
              {named("axis", b.getI32IntegerAttr(int32_t(axis)))});
}

Value NodeImporter::slice(Value x, llvm::ArrayRef<int64_t> start, llvm::ArrayRef<int64_t> size) {
  if (shapeOf(x) == std::vector<int64_t>(size.begin(), size.end())) return x;
  return emit("tosa.slice", {x, shapeValue(start), shapeValue(size)},
              tensorType(size, cast<RankedTensorType>(x.getType()).getElementType()));
}

Value NodeImporter::concat(ValueRange parts, int64_t axis) {
  if (parts.size() == 1) return parts[0];
  auto shape = shapeOf(parts[0]);
  shape[axis] = 0;
  for (Value p : parts) shape[axis] += shapeOf(p)[axis];
  return emit("tosa.concat", parts, tensorType(shape, cast<RankedTensorType>(parts[0].getType()).getElementType()),
              {named("axis", b.getI32IntegerAttr(int32_t(axis)))});
}

//===----------------------------------------------------------------------===//
// Entry points
//===----------------------------------------------------------------------===//

static OwningOpRef<ModuleOp> importModel(MLIRContext &ctx, onnx::ModelProto &model,
                                         const std::string &modelName, const ImportOptions &options,
                                         std::vector<ImportDiagnostic> &diags) {
  if (!model.has_graph()) {
    diags.push_back({"", "model", "the model has no graph"});
    return nullptr;
  }
  ctx.loadDialect<func::FuncDialect, tosa::TosaDialect, arith::ArithDialect, tensor::TensorDialect,
                  linalg::LinalgDialect, math::MathDialect, scf::SCFDialect,
                  bufferization::BufferizationDialect>();
  GraphImporter importer(ctx, options, diags);
  auto module = importer.run(model, modelName);
  if (!diags.empty()) return nullptr;
  // A pre-quantised (QDQ) model runs correctly, but its Q/DQ pairs are float arithmetic:
  // say so, since that is the usual reason such a model is not faster.
  int qdq = 0;
  for (const auto &node : model.graph().node())
    qdq += node.op_type() == "QuantizeLinear" || node.op_type() == "DequantizeLinear";
  if (qdq && module)
    emitRemark(module->getLoc()) << qdq << " QuantizeLinear/DequantizeLinear nodes run as float arithmetic (Kiln "
                                 << "does not map QDQ models to its int8 kernels yet; --quantize int8 on the float "
                                 << "model does)";
  return module;
}

OwningOpRef<ModuleOp> importOnnxBytes(MLIRContext &ctx, const std::string &bytes,
                                      const std::string &modelName, const ImportOptions &options,
                                      std::vector<ImportDiagnostic> &diags) {
  onnx::ModelProto model;
  if (bytes.empty()) {
    diags.push_back({"", "model", "the file is empty"});
    return nullptr;
  }
  if (!model.ParseFromString(bytes)) {
    diags.push_back({"", "model", "the file is not a valid ONNX model (protobuf parse failed; truncated or not ONNX)"});
    return nullptr;
  }
  return importModel(ctx, model, modelName, options, diags);
}

bool loadModelProto(const std::string &path, onnx::ModelProto &model, std::string &err) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    err = "cannot open '" + path + "': " + std::strerror(errno);
    return false;
  }
  std::stringstream ss;
  ss << in.rdbuf();
  std::string bytes = ss.str();
  if (llvm::StringRef(path).ends_with(".onnxtxt")) {
    // ONNX's textual syntax, used by Kiln's lit tests.
    auto status = onnx::OnnxParser::Parse(model, bytes.c_str());
    if (!status.IsOK()) {
      err = "cannot parse ONNX text: " + status.ErrorMessage();
      return false;
    }
    return true;
  }
  if (bytes.empty()) {
    err = "the file is empty";
    return false;
  }
  if (!model.ParseFromString(bytes)) {
    err = "the file is not a valid ONNX model (protobuf parse failed; truncated or not ONNX)";
    return false;
  }
  return true;
}

OwningOpRef<ModuleOp> importOnnxFile(MLIRContext &ctx, const std::string &path,
                                     const ImportOptions &options,
                                     std::vector<ImportDiagnostic> &diags) {
  onnx::ModelProto model;
  std::string err;
  if (!loadModelProto(path, model, err)) {
    diags.push_back({"", "model", err});
    return nullptr;
  }
  return importModel(ctx, model, path.substr(path.find_last_of('/') + 1), options, diags);
}

} // namespace kiln::onnx_frontend
