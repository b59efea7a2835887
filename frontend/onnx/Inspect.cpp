//===- Inspect.cpp - Pre-flight report on an ONNX model (kiln inspect) ------===//
//
// Reads the model with libonnx and reports, before any lowering: the ops and how
// many of each, which Kiln supports at the model's opset, every unsupported node,
// the inputs and their dynamic dimensions, the parameters, and the FLOPs of each
// compute-heavy layer (from ONNX shape inference, with --shape values applied).
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"
#include "frontend/onnx/Importer.h"
#include "frontend/onnx/LibOnnx.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace kiln::onnx_frontend {

static std::vector<int64_t> dimsOf(const onnx::TypeProto &t) {
  std::vector<int64_t> d;
  if (!t.has_tensor_type() || !t.tensor_type().has_shape()) return d;
  for (const auto &x : t.tensor_type().shape().dim()) d.push_back(x.has_dim_value() ? x.dim_value() : -1);
  return d;
}

static int64_t product(const std::vector<int64_t> &d) {
  int64_t p = 1;
  for (int64_t x : d) {
    if (x < 0) return -1;
    p *= x;
  }
  return p;
}

bool inspectOnnxFile(const std::string &path, const ImportOptions &options, std::string &report) {
  llvm::raw_string_ostream os(report);
  onnx::ModelProto model;
  std::string err;
  if (!loadModelProto(path, model, err) || !model.has_graph()) {
    os << "error: " << (err.empty() ? "the model has no graph" : err) << "\n";
    return false;
  }
  onnx::GraphProto *graph = model.mutable_graph();
  int64_t opset = -1;
  for (const auto &imp : model.opset_import())
    if (imp.domain().empty() || imp.domain() == "ai.onnx") opset = imp.version();

  std::set<std::string> inits;
  for (const auto &t : graph->initializer()) inits.insert(t.name());
  // Parameters: initializers and Constant tensors, in subgraphs (If branches, Loop
  // bodies) too, where exporters often keep the weights.
  int64_t params = 0, paramBytes = 0, nodes = 0;
  auto addTensor = [&](const onnx::TensorProto &t) {
    int64_t n = 1;
    for (int64_t d : t.dims()) n *= d;
    params += n;
    paramBytes += t.has_raw_data() ? int64_t(t.raw_data().size()) : n * 4;
  };
  std::map<std::string, int> counts;
  std::vector<std::string> unsupported;
  std::function<void(const onnx::GraphProto &, const std::string &)> walk = [&](const onnx::GraphProto &g,
                                                                               const std::string &within) {
    for (const auto &t : g.initializer()) addTensor(t);
    for (int k = 0; k < g.node_size(); ++k) {
      const auto &node = g.node(k);
      ++nodes;
      bool standard = node.domain().empty() || node.domain() == "ai.onnx";
      std::string key = standard ? node.op_type() : node.domain() + "." + node.op_type();
      std::string name = node.name().empty() ? node.op_type() + "_" + std::to_string(k) : node.name();
      counts[key]++;
      if (!(standard && lookupOp(node.op_type(), opset))) unsupported.push_back(name + " (" + key + ")" + within);
      for (const auto &a : node.attribute()) {
        if (node.op_type() == "Constant" && a.has_t()) addTensor(a.t());
        if (a.has_g()) walk(a.g(), " in '" + a.name() + "' of " + name + within);
      }
    }
  };
  walk(*graph, "");
  // Fix the user's shapes so that inference can size the layers.
  for (auto &input : *graph->mutable_input()) {
    auto it = options.inputShapes.find(input.name());
    if (it == options.inputShapes.end() || !input.type().has_tensor_type()) continue;
    auto *shape = input.mutable_type()->mutable_tensor_type()->mutable_shape();
    shape->clear_dim();
    for (int64_t d : it->second) shape->add_dim()->set_dim_value(d);
  }
  // Data propagation sizes Reshapes whose target shape is computed (Shape -> ... -> Concat).
  onnx::ShapeInferenceOptions opts(/*check_type=*/false, /*strict_mode=*/0, /*data_prop=*/true);
  bool inferred = inferShapes(model, opts, options.isolateLibOnnx).empty();
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto *list : {&graph->input(), &graph->value_info(), &graph->output()})
    for (const auto &v : *list) shapes[v.name()] = dimsOf(v.type());
  for (const auto &t : graph->initializer()) shapes[t.name()] = {t.dims().begin(), t.dims().end()};

  os << "model " << path << ": opset " << opset << ", " << nodes << " nodes, " << params
     << " parameters (" << llvm::format("%.2f", double(paramBytes) / (1 << 20)) << " MiB)\n";
  os << "inputs:\n";
  bool dynamic = false;
  for (const auto &i : graph->input()) {
    if (inits.count(i.name())) continue;
    os << "  " << i.name() << " [";
    const auto &t = i.type().tensor_type();
    for (int k = 0; k < t.shape().dim_size(); ++k) {
      const auto &d = t.shape().dim(k);
      os << (k ? ", " : "");
      if (d.has_dim_value()) os << d.dim_value();
      else {
        os << (d.has_dim_param() ? d.dim_param() : std::string("?"));
        dynamic = true;
      }
    }
    os << "] " << dtypeName(dtypeFromOnnx(t.elem_type())) << "\n";
  }
  if (dynamic) os << "  (symbolic dimensions need values: --shape NAME=d0,d1,...)\n";

  os << "ops:\n";
  for (auto &[op, n] : counts) {
    bool ok = op.find('.') == std::string::npos && lookupOp(op, opset);
    os << llvm::format("  %-28s %5d  %s\n", op.c_str(), n, ok ? "supported" : "NOT SUPPORTED");
  }
  if (unsupported.empty()) os << "every node is supported\n";
  else {
    os << unsupported.size() << " unsupported node" << (unsupported.size() == 1 ? "" : "s") << ":\n";
    for (const auto &u : unsupported) os << "  " << u << "\n";
  }

  // FLOPs of the layers that dominate: convolutions and matrix products.
  os << "compute (multiply-adds x 2)" << (inferred ? "" : "; shape inference failed, sizes unknown") << ":\n";
  double total = 0;
  int unknown = 0;
  for (int k = 0; k < graph->node_size(); ++k) {
    const auto &node = graph->node(k);
    const std::string &op = node.op_type();
    if (op != "Conv" && op != "ConvTranspose" && op != "Gemm" && op != "MatMul") continue;
    if (node.output_size() == 0 || node.input_size() < 2) continue;
    auto out = shapes[node.output(0)], w = shapes[node.input(1)], a = shapes[node.input(0)];
    double flops = -1;
    if ((op == "Conv") && product(out) > 0 && product(w) > 0 && !w.empty())
      flops = 2.0 * double(product(out)) * double(product(w) / w[0]);
    else if (op == "ConvTranspose" && product(a) > 0 && product(w) > 0)
      flops = 2.0 * double(product(a)) * double(product(w) / w[0]);
    else if ((op == "Gemm" || op == "MatMul") && product(out) > 0 && !a.empty() && a.back() > 0)
      flops = 2.0 * double(product(out)) * double(a.back());
    std::string name = node.name().empty() ? op + "_" + std::to_string(k) : node.name();
    if (flops < 0) {
      ++unknown;
      os << llvm::format("  %-40s %-8s %12s\n", name.c_str(), op.c_str(), "?");
      continue;
    }
    total += flops;
    os << llvm::format("  %-40s %-8s %9.2f MFLOP\n", name.c_str(), op.c_str(), flops / 1e6);
  }
  os << llvm::format("total %.3f GFLOP", total / 1e9);
  if (unknown)
    os << " (" << unknown << " layer" << (unknown == 1 ? "" : "s")
       << " not sized by ONNX shape inference; symbolic dimensions need --shape)";
  os << "\n";
  return unsupported.empty();
}

} // namespace kiln::onnx_frontend
