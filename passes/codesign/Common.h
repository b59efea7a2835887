//===- Common.h - What the weight co-design passes share ---------*- C++ -*-===//
//
// kiln-sparsify-nm, kiln-decompose and kiln-butterfly read the calibration Gram file a
// calibration build writes (runtime/src/kernels/observe.c, kiln_observe_write_grams:
// per layer index, the input Gram matrix H = X^T X over the layer's im2col rows in
// (kh, kw, c) order), add constant globals for the compressed weights, and write a
// per-layer JSON report.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_PASSES_CODESIGN_COMMON_H
#define KILN_PASSES_CODESIGN_COMMON_H

#include "passes/cpu/KernelMatch.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/JSON.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace kiln::codesign {

/// One layer's Gram matrix, summed over the calibration runs.
struct Gram {
  int64_t k = 0, rows = 0;
  std::vector<double> sum; ///< k x k, row-major, symmetric
};

/// An N:M pattern: keep n of every m consecutive weights (n = 0: dense).
struct NMPattern {
  int64_t n = 0, m = 0;
};
/// "N:M" (1 <= N < M <= 16) or "dense" (kiln-sparsify-nm's options, kiln --sparsify).
std::optional<NMPattern> parseNMPattern(llvm::StringRef s);

/// Reads `path` into `out` (by layer index); errors are reported on `module`.
mlir::LogicalResult readGrams(mlir::ModuleOp module, const std::string &path, std::map<int64_t, Gram> &out);

/// Layer `id`'s Gram when calibration recorded it with `k` inputs (not all zero), else null.
inline const Gram *findGram(const std::map<int64_t, Gram> &grams, int64_t id, int64_t k) {
  auto it = grams.find(id);
  if (it == grams.end() || it->second.k != k || it->second.rows <= 0) return nullptr;
  // Inputs that were zero on every calibration row say nothing about the layer: fit it
  // to its weights rather than to outputs that any weights reproduce.
  double trace = 0;
  for (int64_t i = 0; i < k; ++i) trace += it->second.sum[size_t(i * k + i)];
  return trace > 0 ? &it->second : nullptr;
}

/// Calls fn(op, layer, name, index) for each layer the packed kernels run (KernelMatch.h),
/// in walk order: `name` as kiln-quantize gives it, `index` the one the Gram file uses.
/// Compressed layers count too, so that every pass and the calibration build agree.
void forEachPackedLayer(
    mlir::func::FuncOp func, mlir::SymbolTable &symbols,
    llvm::function_ref<void(mlir::Operation *, kernels::PackedLayer &, const std::string &, int64_t)> fn);

/// A new private constant global `name` of `shape` x `elem` holding `bytes` (64-byte
/// aligned), and its memref.get_global where `b` stands.
mlir::Value newConstant(mlir::OpBuilder &b, mlir::ModuleOp module, mlir::Location loc, const std::string &name,
                        mlir::Type elem, llvm::ArrayRef<int64_t> shape, llvm::ArrayRef<char> bytes);

/// `v`'s elements as the bytes newConstant takes.
template <typename T> llvm::ArrayRef<char> bytesOf(const std::vector<T> &v) {
  return llvm::ArrayRef<char>(reinterpret_cast<const char *>(v.data()), v.size() * sizeof(T));
}

/// Sets `b` where a pass builds the compressed form of `op`'s weights and returns the
/// dense weight operand it replaces: right after the dense weights are read, not before
/// the layer, so that the bias fill in front of the layer stays its neighbour for
/// kiln-lower-to-kernels to fuse.
mlir::Value atWeights(mlir::OpBuilder &b, mlir::Operation *op);

/// Per-layer settings from a pass's `layers` option, "NAME=SETTING,...": by name, the
/// setting and whether the model has a layer of that name (set by the pass).
template <typename T> using LayerSettings = std::map<std::string, std::pair<T, bool>>;

/// Parses `list` with `parse` (SETTING -> std::optional<T>); a bad entry is reported
/// on `module` as "PASS: layer entry 'E' is not EXPECTED".
template <typename T, typename Parse>
mlir::FailureOr<LayerSettings<T>> parseLayerSettings(mlir::ModuleOp module, llvm::StringRef pass, llvm::StringRef list,
                                                     llvm::StringRef expected, Parse parse) {
  LayerSettings<T> out;
  llvm::SmallVector<llvm::StringRef> entries;
  list.split(entries, ',', -1, false);
  for (llvm::StringRef e : entries) {
    auto [name, setting] = e.rsplit('=');
    std::optional<T> parsed = parse(setting.trim());
    if (name.trim().empty() || !parsed)
      return module.emitError() << pass << ": layer entry '" << e << "' is not " << expected;
    out[name.trim().str()] = {*parsed, false};
  }
  return out;
}

/// A co-design pass's `layers` and `gram` options, read: per-layer settings (see
/// parseLayerSettings) and the Gram matrices by layer index (none without `gramPath`).
template <typename T> struct LayerInputs {
  LayerSettings<T> layers;
  std::map<int64_t, Gram> grams;
};
template <typename T, typename Parse>
mlir::FailureOr<LayerInputs<T>> readLayerInputs(mlir::ModuleOp module, llvm::StringRef pass, llvm::StringRef list,
                                                llvm::StringRef expected, Parse parse, const std::string &gramPath) {
  LayerInputs<T> in;
  auto layers = parseLayerSettings<T>(module, pass, list, expected, parse);
  if (failed(layers)) return mlir::failure();
  in.layers = std::move(*layers);
  if (!gramPath.empty() && failed(readGrams(module, gramPath, in.grams))) return mlir::failure();
  return in;
}

/// Reports every name in `settings` the model has no layer for.
template <typename T>
mlir::LogicalResult checkLayersFound(mlir::ModuleOp module, llvm::StringRef pass, const LayerSettings<T> &settings) {
  bool ok = true;
  for (auto &[name, entry] : settings)
    if (!entry.second) {
      module.emitError() << pass << ": the model has no layer named '" << name << "'";
      ok = false;
    }
  return mlir::success(ok);
}

/// Writes {"layers": layers} to `path`; errors are reported on `module`.
mlir::LogicalResult writeReport(mlir::ModuleOp module, const std::string &path, llvm::json::Array layers);

} // namespace kiln::codesign

#endif // KILN_PASSES_CODESIGN_COMMON_H
