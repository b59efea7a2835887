//===- Butterfly.cpp - Butterfly factorisation of chosen linear layers -----===//
//
// Each linear layer (a batch_matmul by a constant 1 x K x N weight) that `layers` names
// gets its weight fitted by a butterfly (passes/codesign/ButterflyFit.h): with a
// calibration Gram matrix H = X^T X of the layer's inputs the fit minimises the change
// of the layer's output on that data, otherwise the change of the weight. The weight
// becomes a `kiln.butterfly_weights` of one new constant (the factors);
// kiln-lower-to-kernels runs it with the butterfly kernel (or, when the layer is also
// quantised, the int8 kernel on the decoded product).
//
//===----------------------------------------------------------------------===//
#include "dialects/kiln/IR/KilnDialect.h"
#include "passes/Passes.h"
#include "passes/codesign/ButterflyFit.h"
#include "passes/codesign/Common.h"
#include "passes/cpu/KernelMatch.h"

#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MathExtras.h"

#include <algorithm>
#include <cassert>
#include <chrono>
#include <map>

namespace kiln {
#define GEN_PASS_DEF_KILNBUTTERFLY
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

struct ButterflyPass : impl::KilnButterflyBase<ButterflyPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    if (maxIterations < 1) {
      module.emitError() << "kiln-butterfly: max-iterations must be at least 1, got " << maxIterations;
      return signalPassFailure();
    }
    // "all", or names (each must be found).
    bool all = llvm::StringRef(layers).trim() == "all";
    codesign::LayerSettings<bool> named;
    if (!all) {
      llvm::SmallVector<llvm::StringRef> entries;
      llvm::StringRef(layers).split(entries, ',', -1, false);
      for (llvm::StringRef e : entries)
        if (!e.trim().empty()) named[e.trim().str()] = {true, false};
    }
    std::map<int64_t, codesign::Gram> grams;
    if (!gramPath.empty() && failed(codesign::readGrams(module, gramPath, grams))) return signalPassFailure();

    SymbolTable symbols(module);
    OpBuilder b(module.getContext());
    llvm::json::Array report;
    int64_t made = 0;
    bool ok = true;
    codesign::forEachPackedLayer(func, symbols, [&](Operation *op, kernels::PackedLayer &layer,
                                                    const std::string &name, int64_t id) {
      auto it = named.find(name);
      if (it != named.end()) it->second.second = true;
      if (!all && it == named.end()) return;
      if (!isa<linalg::BatchMatmulOp>(op) || layer.nm || layer.butterfly) {
        if (it != named.end()) { // "all" passes over them
          op->emitError() << "kiln-butterfly: layer '" << name << "' is "
                          << (layer.nm || layer.butterfly ? "already compressed"
                                                            : "a convolution; only linear layers (MatMul, Gemm) "
                                                              "can be butterfly-factorised");
          ok = false;
        }
        return;
      }
      int64_t k = layer.c, n = layer.m; // rows are W^T: [N][K]
      // "all" takes the layers the format makes smaller; a named layer is done anyway.
      int64_t size = int64_t(llvm::PowerOf2Ceil(uint64_t(std::max<int64_t>({k, n, 2}))));
      int64_t stages = llvm::Log2_64(uint64_t(size)), params = 2 * size * stages;
      if (it == named.end() && params >= k * n) {
        if (!observe)
          report.push_back(llvm::json::Object{
              {"index", id}, {"name", name}, {"reduction", k}, {"out_channels", n}, {"method", "dense"},
              {"reason", llvm::formatv("butterfly would not reduce parameters ({0} >= {1})", params, k * n).str()}});
        return;
      }
      if (observe) {
        op->setAttr(kObserveGramAttr, b.getI32IntegerAttr(int32_t(id)));
        return;
      }
      std::vector<float> w(size_t(k * n));
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < k; ++i) w[size_t(i * n + j)] = layer.rows[size_t(j * k + i)];
      const codesign::Gram *gram = codesign::findGram(grams, id, k);
      ButterflyFitOptions options;
      options.maxIterations = int(maxIterations);
      auto t0 = std::chrono::steady_clock::now();
      ButterflyFitResult fit = fitButterfly(w, k, n, gram ? &gram->sum : nullptr, options);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      assert(fit.n == size && int64_t(fit.factors.size()) == params && "the fit's size is the format's");
      llvm::json::Object row{{"index", id},
                             {"name", name},
                             {"reduction", k},
                             {"out_channels", n},
                             {"n", size},
                             {"method", fit.usedGram ? "gram" : "weights"},
                             {"weight_rel_error", fit.weightError},
                             {"dense_params", k * n},
                             {"butterfly_params", params},
                             {"iterations", fit.iterations},
                             {"fit_ms", ms}};
      if (fit.usedGram) {
        row["output_rel_error"] = fit.outputError;
        row["calibration_rows"] = gram->rows;
      }
      report.push_back(std::move(row));

      Location loc = op->getLoc();
      Value weight = codesign::atWeights(b, op);
      Value factors = codesign::newConstant(b, module, loc, "kiln_butterfly_" + std::to_string(made++),
                                            b.getF32Type(), {stages, 2, size}, codesign::bytesOf(fit.factors));
      auto bf = ButterflyWeightsOp::create(b, loc, cast<MemRefType>(weight.getType()), factors, b.getUnitAttr());
      op->setOperand(1, bf.getResult());
    });
    if (failed(codesign::checkLayersFound(module, "kiln-butterfly", named)) || !ok) return signalPassFailure();
    if (!reportPath.empty() && !observe && failed(codesign::writeReport(module, reportPath, std::move(report))))
      return signalPassFailure();
  }
};

} // namespace
} // namespace kiln
