//===- SparsifyNM.cpp - N:M sparsity with calibration-based reconstruction --===//
//
// Every convolution / matmul-by-constant that a packed kernel runs (KernelMatch.h)
// whose reduction is long enough keeps `n` of every `m` consecutive weights of each
// output channel. With a calibration Gram matrix H = X^T X of the layer's inputs, the
// pruning is one-shot optimal-brain-surgeon style (as SparseGPT): columns are pruned
// left to right, each group's mask chosen by w^2 / [H^-1]_cc, and the error of every
// pruned weight is compensated on the columns to its right through the Cholesky factor
// of H^-1, so the layer's output on the calibration data changes as little as possible.
// Without a Gram matrix, the n largest magnitudes of each group are kept.
//
// The weights become a `kiln.nm_weights` of two new constants (values and in-group
// positions) in place of the dense constant; kiln-lower-to-kernels runs them with the
// N:M kernel (or, when the layer is also quantised, the int8 kernel on the pruned
// weights).
//
//===----------------------------------------------------------------------===//
#include "dialects/kiln/IR/KilnDialect.h"
#include "passes/Passes.h"
#include "passes/codesign/Common.h"
#include "passes/codesign/Numerics.h"
#include "passes/cpu/KernelMatch.h"

#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace kiln {
#define GEN_PASS_DEF_KILNSPARSIFYNM
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

using codesign::cholesky;
using Pattern = codesign::NMPattern;

/// U with H^-1 = U^T U (upper triangular), for H symmetric positive definite.
bool inverseCholeskyUpper(const std::vector<double> &h, int64_t k, std::vector<double> &u) {
  std::vector<double> l = h;
  if (!cholesky(l, k)) return false;
  // Linv = L^-1 (lower), then Hinv = Linv^T Linv.
  std::vector<double> linv(size_t(k * k), 0.0);
  for (int64_t j = 0; j < k; ++j) {
    linv[j * k + j] = 1.0 / l[j * k + j];
    for (int64_t i = j + 1; i < k; ++i) {
      double s = 0;
      for (int64_t p = j; p < i; ++p) s += l[i * k + p] * linv[p * k + j];
      linv[i * k + j] = -s / l[i * k + i];
    }
  }
  std::vector<double> hinv(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) {
      double s = 0;
      for (int64_t p = j; p < k; ++p) s += linv[p * k + i] * linv[p * k + j];
      hinv[i * k + j] = hinv[j * k + i] = s;
    }
  // Upper factor: the transpose of the lower Cholesky factor of Hinv.
  if (!cholesky(hinv, k)) return false;
  u.assign(size_t(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = i; j < k; ++j) u[i * k + j] = hinv[j * k + i];
  return true;
}

struct Pruned {
  std::vector<float> values;
  std::vector<uint8_t> indices;
  std::vector<float> dense; ///< the pruned weights [rows][k]
  bool reconstructed = false;
};

/// N:M pruning of w[rows][k]; with `u` (upper Cholesky of H^-1), OBS reconstruction.
Pruned prune(std::vector<double> w, int64_t rows, int64_t k, Pattern p, const std::vector<double> *u) {
  const int64_t groups = (k + p.m - 1) / p.m, per = groups * p.n;
  Pruned out{std::vector<float>(size_t(rows * per), 0.f), std::vector<uint8_t>(size_t(rows * per), 0),
             std::vector<float>(size_t(rows * k), 0.f), u != nullptr};
  std::vector<char> keep(size_t(rows * k), 0);
  for (int64_t g = 0; g < groups; ++g) {
    int64_t c0 = g * p.m, width = std::min(p.m, k - c0);
    // The group's mask, per row, from the weights as updated so far.
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<std::pair<double, int64_t>> score;
      for (int64_t c = c0; c < c0 + width; ++c) {
        double x = w[r * k + c], d = u ? (*u)[c * k + c] : 1.0;
        score.push_back({x * x / (d * d), c});
      }
      std::stable_sort(score.begin(), score.end(), [](auto &a, auto &b) { return a.first > b.first; });
      for (int64_t j = 0; j < std::min<int64_t>(p.n, width); ++j) keep[r * k + score[j].second] = 1;
    }
    // Prune column by column, pushing each error onto the columns to the right.
    for (int64_t c = c0; c < c0 + width; ++c) {
      if (!u) continue;
      double d = (*u)[c * k + c];
      const double *urow = u->data() + c * k;
      for (int64_t r = 0; r < rows; ++r) {
        if (keep[r * k + c]) continue;
        double err = w[r * k + c] / d;
        double *wr = w.data() + r * k;
        for (int64_t j = c + 1; j < k; ++j) wr[j] -= err * urow[j];
        wr[c] = 0;
      }
    }
    // Store the group: kept positions in order, then (a short last group) positions
    // past K, which stand for zeros.
    for (int64_t r = 0; r < rows; ++r) {
      int64_t slot = 0;
      for (int64_t c = c0; c < c0 + width && slot < p.n; ++c)
        if (keep[r * k + c]) {
          out.values[size_t(r * per + g * p.n + slot)] = float(w[r * k + c]);
          out.indices[size_t(r * per + g * p.n + slot)] = uint8_t(c - c0);
          out.dense[size_t(r * k + c)] = float(w[r * k + c]);
          ++slot;
        }
      for (int64_t pos = width; slot < p.n; ++pos, ++slot) out.indices[size_t(r * per + g * p.n + slot)] = uint8_t(pos);
    }
  }
  return out;
}

struct SparsifyNMPass : impl::KilnSparsifyNMBase<SparsifyNMPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    auto fallback = codesign::parseNMPattern(pattern);
    if (!fallback) {
      module.emitError() << "kiln-sparsify-nm: pattern '" << pattern << "' is not N:M with 1 <= N < M <= 16 or 'dense'";
      return signalPassFailure();
    }
    // Per-layer overrides: "NAME=N:M" or "NAME=dense", comma separated.
    auto inputs = codesign::readLayerInputs<Pattern>(module, "kiln-sparsify-nm", layers, "NAME=N:M or NAME=dense",
                                                     codesign::parseNMPattern, gramPath);
    if (failed(inputs)) return signalPassFailure();
    auto &perLayer = inputs->layers;
    auto &grams = inputs->grams;

    SymbolTable symbols(module);
    OpBuilder b(module.getContext());
    llvm::json::Array report;
    int64_t made = 0;
    bool ok = true;
    codesign::forEachPackedLayer(func, symbols, [&](Operation *op, kernels::PackedLayer &layer,
                                                    const std::string &name, int64_t id) {
      int64_t k = layer.taps * layer.c;
      if (layer.nm || layer.butterfly) { // compressed already: keeps its index, stays as it is
        if (auto it = perLayer.find(name); it != perLayer.end()) {
          it->second.second = true;
          if (layer.butterfly && it->second.first.n) {
            op->emitError() << "kiln-sparsify-nm: layer '" << name
                            << "' is butterfly-factorised; it cannot also be N:M sparse";
            ok = false;
          }
        }
        return;
      }
      llvm::json::Object row{{"index", id}, {"name", name}, {"op", layer.kind}, {"out_channels", layer.m},
                             {"reduction", k}};
      Pattern p = *fallback;
      const char *why = nullptr;
      if (auto it = perLayer.find(name); it != perLayer.end()) {
        p = it->second.first;
        it->second.second = true;
      } else if (k < minReduction) {
        p = Pattern{};
        why = "reduction shorter than min-reduction";
      }
      if (observe) {
        if (p.n) op->setAttr(kObserveGramAttr, b.getI32IntegerAttr(int32_t(id)));
        return;
      }
      if (!p.n) {
        row["pattern"] = "dense";
        if (why) row["reason"] = why;
        report.push_back(std::move(row));
        return;
      }
      // Reconstruction from the Gram matrix when calibration recorded this layer.
      const codesign::Gram *gram = codesign::findGram(grams, id, k);
      std::vector<double> w(layer.rows.begin(), layer.rows.end());
      std::vector<double> u, h;
      if (gram) {
        h = gram->sum;
        double mean = 0;
        for (int64_t i = 0; i < k; ++i) mean += h[i * k + i];
        mean = mean / double(k);
        for (int64_t i = 0; i < k; ++i) {
          if (h[i * k + i] == 0) { // an input that is always zero: its weights do nothing
            h[i * k + i] = 1;
            for (int64_t r = 0; r < layer.m; ++r) w[r * k + i] = 0;
          }
          h[i * k + i] += dampening * (mean > 0 ? mean : 1.0);
        }
        if (!inverseCholeskyUpper(h, k, u)) {
          op->emitWarning() << "kiln-sparsify-nm: layer '" << name
                            << "': the calibration Gram matrix is singular; pruning by magnitude";
          u.clear();
        }
      }
      Pruned pr = prune(w, layer.m, k, p, u.empty() ? nullptr : &u);
      // Errors: weights, and the layer's output on the calibration data.
      double wsig = codesign::gramEnergy(layer.rows, nullptr, layer.m, k, nullptr);
      double wnoise = codesign::gramEnergy(layer.rows, &pr.dense, layer.m, k, nullptr);
      row["pattern"] = std::to_string(p.n) + ":" + std::to_string(p.m);
      row["method"] = pr.reconstructed ? "reconstruction" : "magnitude";
      row["weight_rel_error"] = wsig > 0 ? std::sqrt(wnoise / wsig) : 0.0;
      if (gram) {
        double osig = codesign::gramEnergy(layer.rows, nullptr, layer.m, k, &gram->sum);
        double onoise = codesign::gramEnergy(layer.rows, &pr.dense, layer.m, k, &gram->sum);
        row["output_rel_error"] = osig > 0 ? std::sqrt(std::max(0.0, onoise) / osig) : 0.0;
        row["calibration_rows"] = gram->rows;
      }
      int64_t per = (k + p.m - 1) / p.m * p.n;
      row["dense_bytes"] = layer.m * k * 4;
      row["sparse_bytes"] = layer.m * per * 5;
      report.push_back(std::move(row));

      Location loc = op->getLoc();
      Value weight = codesign::atWeights(b, op);
      std::string base = "kiln_nm_" + std::to_string(made++);
      Value values = codesign::newConstant(b, module, loc, base + "_values", b.getF32Type(), {layer.m, per},
                                           codesign::bytesOf(pr.values));
      Value indices = codesign::newConstant(b, module, loc, base + "_indices", b.getIntegerType(8), {layer.m, per},
                                            codesign::bytesOf(pr.indices));
      auto nm = NMWeightsOp::create(b, loc, cast<MemRefType>(weight.getType()), values, indices,
                                    b.getI64IntegerAttr(p.n), b.getI64IntegerAttr(p.m),
                                    isa<linalg::BatchMatmulOp>(op) ? b.getUnitAttr() : UnitAttr());
      op->setOperand(1, nm.getResult());
    });
    if (failed(codesign::checkLayersFound(module, "kiln-sparsify-nm", perLayer)) || !ok) return signalPassFailure();
    if (!reportPath.empty() && !observe && failed(codesign::writeReport(module, reportPath, std::move(report))))
      return signalPassFailure();
  }
};

} // namespace
} // namespace kiln
