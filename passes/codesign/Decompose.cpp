//===- Decompose.cpp - SmartDeal weight decomposition per layer -------------===//
//
// Every convolution / matmul-by-constant that a packed kernel runs (KernelMatch.h)
// whose reduction is long enough is decomposed as W ~ C x B (docs/SMARTDEAL.md):
// 3-weight chunks, a fraction `density` of them kept, each three signed powers of two
// times the 3x3 basis of its group. codesign::decomposeSmartDeal does the numerics;
// with a calibration Gram matrix of the layer's inputs it minimises the change of the
// layer's output rather than of its weights.
//
// The weights become a `kiln.smartdeal_weights` of four new constants in place of the
// dense constant; kiln-lower-to-kernels runs them with the rebuilding kernel (or, when
// the layer is also quantised, the int8 kernel on the rebuilt weights), and the weights
// file carries the compressed arrays.
//
//===----------------------------------------------------------------------===//
#include "dialects/kiln/IR/KilnDialect.h"
#include "passes/Passes.h"
#include "passes/codesign/Common.h"
#include "passes/codesign/SmartDeal.h"
#include "passes/cpu/KernelMatch.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <cstdio>
#include <map>

namespace kiln {
#define GEN_PASS_DEF_KILNDECOMPOSE
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

struct Setting {
  bool dense = true;
  int64_t bits = 3;
  double density = 0.75;
  int64_t group = 0; ///< 0: decomposeSmartDeal picks
};

std::string describe(const Setting &s) {
  if (s.dense) return "dense";
  char density[32];
  std::snprintf(density, sizeof density, "%g", s.density);
  std::string out = "b" + std::to_string(s.bits) + ":d" + density;
  return s.group ? out + ":g" + std::to_string(s.group) : out;
}

/// "dense", or ':'-separated bB (1..7), dD (0 < D <= 1), gG (G >= 0); parts not given
/// keep `defaults`.
std::optional<Setting> parseSetting(llvm::StringRef s, const Setting &defaults) {
  s = s.trim();
  if (s == "dense") return Setting{};
  Setting out = defaults;
  out.dense = false;
  llvm::SmallVector<llvm::StringRef> parts;
  s.split(parts, ':');
  for (llvm::StringRef p : parts) {
    p = p.trim();
    if (p.consume_front("b")) {
      if (p.getAsInteger(10, out.bits) || out.bits < 1 || out.bits > 7) return std::nullopt;
    } else if (p.consume_front("d")) {
      if (p.getAsDouble(out.density) || !(out.density > 0 && out.density <= 1)) return std::nullopt;
    } else if (p.consume_front("g")) {
      if (p.getAsInteger(10, out.group) || out.group < 0) return std::nullopt;
    } else {
      return std::nullopt;
    }
  }
  return out;
}

using codesign::bytesOf;

struct DecomposePass : impl::KilnDecomposeBase<DecomposePass> {
  using Base::Base;

  /// The four constants of `f` and the kiln.smartdeal_weights that reads them, where
  /// codesign::atWeights puts them.
  SmartDealWeightsOp materialize(OpBuilder &b, ModuleOp module, Operation *op, const codesign::SmartDealFormat &f,
                                 const std::string &base) {
    Location loc = op->getLoc();
    Value weight = codesign::atWeights(b, op);
    const kiln_smartdeal_t &h = f.header;
    Value mask = codesign::newConstant(b, module, loc, base + "_mask", b.getI64Type(), {int64_t(f.mask.size())},
                                       bytesOf(f.mask));
    Value rowStart = codesign::newConstant(b, module, loc, base + "_row_start", b.getI32Type(),
                                           {int64_t(f.rowStart.size())}, bytesOf(f.rowStart));
    Value codes = codesign::newConstant(b, module, loc, base + "_codes", b.getIntegerType(8),
                                        {int64_t(f.codes.size())}, bytesOf(f.codes));
    Value bases = codesign::newConstant(b, module, loc, base + "_bases", b.getBF16Type(),
                                        {int64_t(f.bases.size() / 9), 9}, bytesOf(f.bases));
    return SmartDealWeightsOp::create(
        b, loc, cast<MemRefType>(weight.getType()), mask, rowStart, codes, bases,
        b.getI64IntegerAttr(h.exponent_bits), b.getI64IntegerAttr(h.exponent_offset), b.getI64IntegerAttr(h.group),
        b.getStringAttr(h.layout == KILN_SMARTDEAL_FLAT ? "flat" : "taps3"),
        isa<linalg::BatchMatmulOp>(op) ? b.getUnitAttr() : UnitAttr());
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    if (method != "smartdeal") {
      module.emitError() << "kiln-decompose: method '" << method << "' is not known (smartdeal)";
      return signalPassFailure();
    }
    Setting fallback{false, exponentBits, density, 0};
    if (fallback.bits < 1 || fallback.bits > 7 || !(fallback.density > 0 && fallback.density <= 1) ||
        iterations < 0) {
      module.emitError() << "kiln-decompose: exponent-bits must be in 1..7, density in (0, 1] and iterations >= 0; got "
                         << describe(fallback) << " and " << int64_t(iterations) << " iterations";
      return signalPassFailure();
    }
    auto inputs = codesign::readLayerInputs<Setting>(
        module, "kiln-decompose", layers, "NAME=dense or NAME=bB:dD[:gG] (B in 1..7, 0 < D <= 1, G >= 0)",
        [&](llvm::StringRef s) { return parseSetting(s, fallback); }, gramPath);
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
      if (layer.smartdeal) return; // decomposed already
      llvm::json::Object row{{"index", id},         {"name", name},          {"op", layer.kind},
                             {"out_channels", layer.m}, {"reduction", k},
                             {"int8_bytes", layer.m * k + 4 * layer.m}, {"fp32_bytes", layer.m * k * 4}};
      Setting s = fallback;
      const char *why = nullptr;
      if (auto it = perLayer.find(name); it != perLayer.end()) {
        s = it->second.first;
        it->second.second = true;
        why = "named dense in layers";
        if (layer.nm && !s.dense) {
          op->emitError() << "kiln-decompose: layer '" << name
                          << "' is N:M sparse already (kiln-sparsify-nm); a layer is sparsified or decomposed, "
                             "not both: name it dense in one of the two layer lists";
          ok = false;
          return;
        }
        if (layer.butterfly && !s.dense) {
          op->emitError() << "kiln-decompose: layer '" << name
                          << "' is butterfly-factorised (kiln-butterfly); it cannot also be decomposed";
          ok = false;
          return;
        }
      } else if (onlyNamed) {
        s = Setting{};
        why = "not named in layers (only-named)";
      } else if (layer.nm || layer.butterfly) {
        s = Setting{};
        why = layer.nm ? "N:M sparse (kiln-sparsify-nm)" : "butterfly-factorised (kiln-butterfly)";
      } else if (k < minReduction) {
        s = Setting{};
        why = "reduction shorter than min-reduction";
      }
      if (observe) {
        if (!s.dense) op->setAttr(kObserveGramAttr, b.getI32IntegerAttr(int32_t(id)));
        return;
      }
      if (s.dense) {
        row["setting"] = "dense";
        if (why) row["reason"] = why;
        report.push_back(std::move(row));
        return;
      }
      const codesign::Gram *gram = codesign::findGram(grams, id, k);
      Value weight = kernels::weightOperand(op);
      auto shape = cast<MemRefType>(weight.getType()).getShape();
      bool conv = isa<linalg::Conv2DNhwcFhwcOp>(op);
      codesign::SmartDealOptions opts;
      opts.exponentBits = int(s.bits);
      opts.rowDensity = s.density;
      opts.iterations = int(iterations);
      opts.group = s.group;
      codesign::SmartDealResult r =
          codesign::decomposeSmartDeal(layer.rows, layer.m, conv ? shape[1] : 1, conv ? shape[2] : 1, layer.c,
                                       gram ? &gram->sum : nullptr, opts);
      const kiln_smartdeal_t &h = r.format.header;
      row["setting"] = describe(s);
      row["layout"] = h.layout == KILN_SMARTDEAL_FLAT ? "flat" : "taps3";
      row["group"] = h.group;
      row["method"] = gram ? "calibration" : "weights";
      row["weight_rel_error"] = r.weightError;
      if (gram) {
        row["output_rel_error"] = r.outputError;
        row["calibration_rows"] = gram->rows;
      }
      row["kept_chunks"] = int64_t(r.format.rowStart.back());
      row["chunks"] = layer.m * kiln_smartdeal_positions(&h);
      row["bytes"] = r.bytes;
      report.push_back(std::move(row));
      auto sd = materialize(b, module, op, r.format, "kiln_smartdeal_" + std::to_string(made++));
      op->setOperand(1, sd.getResult());
    });
    if (!ok || failed(codesign::checkLayersFound(module, "kiln-decompose", perLayer))) return signalPassFailure();
    if (!reportPath.empty() && !observe && failed(codesign::writeReport(module, reportPath, std::move(report))))
      return signalPassFailure();
  }
};

} // namespace
} // namespace kiln
