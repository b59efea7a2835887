//===- Quantize.cpp - Per-layer int8 execution from a calibrated plan -------===//
//
// The plan format (JSON; written by `kiln compile --quantize`, editable, read back
// with --plan):
//
//   {"kiln_plan": 1,
//    "layers": [{"name": "/0/Conv", "bits": 8, "input_range": [-0.42, 2.9]}, ...]}
//
// `bits` is 8 (u8 activations, s8 per-channel weights), 4 (u8 activations, int4
// per-channel weights, two per byte), 16 (bf16 activations and weights, f32
// accumulation; needs no range) or 32 (stays in float);
// `input_range` is the calibrated range of the layer's input. Every other key is
// informational and ignored. A plan naming a layer the model does not have, or with a
// malformed entry, is an error that names the layer.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"
#include "passes/cpu/KernelMatch.h"
#include "runtime/include/kiln/kernels.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

namespace kiln {
#define GEN_PASS_DEF_KILNQUANTIZE
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

struct PlanEntry {
  int64_t bits = 32;
  double lo = 0, hi = 0;
  bool hasRange = false, used = false;
  std::optional<llvm::json::Value> outRange; ///< informational, carried into the report
};

/// Asymmetric u8 parameters for values in [lo, hi] (the range is widened to hold 0,
/// so that zero, e.g. padding, is exact).
std::pair<float, int32_t> activationParams(double lo, double hi) {
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  double scale = (hi - lo) / 255.0;
  if (!(scale > 0) || !std::isfinite(scale)) return {1.f, 0};
  int32_t zp = int32_t(std::clamp(std::nearbyint(-lo / scale), 0.0, 255.0));
  return {float(scale), zp};
}

struct QuantizePass : impl::KilnQuantizeBase<QuantizePass> {
  using Base::Base;

  LogicalResult readPlan(ModuleOp module, std::map<std::string, PlanEntry> &plan) {
    auto buf = llvm::MemoryBuffer::getFile(planPath);
    if (!buf) return module.emitError() << "cannot read the quantisation plan '" << planPath << "'";
    auto json = llvm::json::parse((*buf)->getBuffer());
    if (!json) {
      std::string msg = llvm::toString(json.takeError());
      return module.emitError() << "quantisation plan '" << planPath << "' is not valid JSON: " << msg;
    }
    auto *root = json->getAsObject();
    auto *layers = root ? root->getArray("layers") : nullptr;
    if (!layers) return module.emitError() << "quantisation plan '" << planPath << "' has no \"layers\" array";
    for (size_t k = 0; k < layers->size(); ++k) {
      auto *l = (*layers)[k].getAsObject();
      auto name = l ? l->getString("name") : std::nullopt;
      if (!name) return module.emitError() << "quantisation plan: layer " << k << " has no \"name\"";
      PlanEntry e;
      auto bits = l->getInteger("bits");
      if (!bits || (*bits != 4 && *bits != 8 && *bits != 16 && *bits != 32))
        return module.emitError() << "quantisation plan: layer '" << *name
                                  << "': \"bits\" must be 4, 8, 16 (bf16) or 32";
      e.bits = *bits;
      if (auto *range = l->getArray("input_range")) {
        auto lo = range->size() == 2 ? (*range)[0].getAsNumber() : std::nullopt;
        auto hi = range->size() == 2 ? (*range)[1].getAsNumber() : std::nullopt;
        if (!lo || !hi || !std::isfinite(*lo) || !std::isfinite(*hi) || *lo > *hi)
          return module.emitError() << "quantisation plan: layer '" << *name
                                    << "': \"input_range\" must be [lo, hi] with lo <= hi";
        e.lo = *lo;
        e.hi = *hi;
        e.hasRange = true;
      }
      if (auto *out = l->get("output_range")) e.outRange = *out;
      if ((e.bits == 4 || e.bits == 8) && !e.hasRange)
        return module.emitError() << "quantisation plan: layer '" << *name << "' is planned at " << e.bits
                                  << " bits but has no \"input_range\"";
      if (!plan.emplace(name->str(), e).second)
        return module.emitError() << "quantisation plan: layer '" << *name << "' appears twice";
    }
    return success();
  }

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    std::map<std::string, PlanEntry> plan;
    if (!planPath.empty() && failed(readPlan(module, plan))) return signalPassFailure();

    SymbolTable symbols(module);
    Builder b(module.getContext());
    llvm::json::Array report;
    kernels::LayerNamer namer;
    int64_t index = 0;
    bool ok = true;
    llvm::json::Array floatOps; // compute that stays in float whatever the plan says
    func.walk([&](Operation *op) {
      auto layer = kernels::matchPackedLayer(op, symbols);
      if (!layer) {
        const char *why = nullptr;
        if (isa<linalg::DepthwiseConv2DNhwcHwcmOp>(op))
          why = "depthwise convolution: no int8 kernel yet";
        else if (isa<linalg::BatchMatmulOp, linalg::MatmulOp>(op))
          why = "matmul whose operands are both activations (e.g. attention)";
        else if (isa<linalg::Conv2DNhwcFhwcOp>(op))
          why = "convolution whose filter is not a constant";
        else if (isa<linalg::ConvolutionOpInterface>(op) && !op->getName().getStringRef().contains("pooling"))
          why = "convolution of a form without an int8 kernel (grouped, 1-D, 3-D ...)";
        if (why) {
          std::string name = kernels::locationName(op->getLoc());
          floatOps.push_back(llvm::json::Object{{"name", name.empty() ? "?" : name},
                                                {"op", op->getName().getStringRef()},
                                                {"reason", why}});
        }
        return;
      }
      std::string name = namer(op);
      int64_t k = layer->taps * layer->c;
      llvm::json::Object row{{"index", index},
                             {"name", name},
                             {"op", layer->kind},
                             {"out_channels", layer->m},
                             {"reduction", k},
                             {"params", layer->m * k}};
      if (layer->nm) row["sparsity"] = std::to_string(layer->nm->n) + ":" + std::to_string(layer->nm->m);
      if (layer->butterfly) row["butterfly_n"] = layer->butterfly->n;
      if (observe) op->setAttr(kObserveAttr, b.getI32IntegerAttr(int32_t(index)));
      int64_t bits = 32;
      auto it = plan.find(name);
      if (it == plan.end() && defaultBits == 16) { // --quantize bf16: every layer, no calibration
        it = plan.emplace(name, PlanEntry{16, 0, 0, false, false, std::nullopt}).first;
      }
      if (it != plan.end()) {
        PlanEntry &e = it->second;
        e.used = true;
        bits = e.bits;
        if (e.hasRange) row["input_range"] = llvm::json::Array{e.lo, e.hi};
        if (e.outRange) row["output_range"] = *e.outRange;
        if (bits == 16) {
          // bf16 activations and weights, f32 accumulation: no calibration needed.
          op->setAttr(kQuantAttr, b.getDictionaryAttr({b.getNamedAttr("bits", b.getI32IntegerAttr(16))}));
          double signal = 0, noise = 0;
          for (float w : layer->rows) {
            uint16_t h = kiln_f32_to_bf16(w);
            uint32_t u = uint32_t(h) << 16;
            float r;
            std::memcpy(&r, &u, 4);
            signal += double(w) * w;
            noise += (double(w) - r) * (double(w) - r);
          }
          row["weight_sqnr_db"] = noise > 0 ? 10 * std::log10(signal / noise) : 999.0;
          if (compare) op->setAttr(kCompareAttr, b.getI32IntegerAttr(int32_t(index)));
        } else if (bits != 32) {
          // Activations at 8 bits; weights at `bits` (8, or 4: W4A8).
          auto [scale, zp] = activationParams(e.lo, e.hi);
          op->setAttr(kQuantAttr, b.getDictionaryAttr({b.getNamedAttr("bits", b.getI32IntegerAttr(int32_t(bits))),
                                                        b.getNamedAttr("scale", b.getF32FloatAttr(scale)),
                                                        b.getNamedAttr("zero_point", b.getI32IntegerAttr(zp))}));
          if (compare) op->setAttr(kCompareAttr, b.getI32IntegerAttr(int32_t(index)));
          row["scale"] = double(scale);
          row["zero_point"] = zp;
          // The weights' quantisation error, as kiln-lower-to-kernels will quantise them.
          row["weight_sqnr_db"] = kernels::quantizationSqnrDb(layer->rows, layer->m, k, int(bits));
        } else {
          row["float_reason"] = "planned at 32 bits";
        }
      } else if (!planPath.empty()) {
        row["float_reason"] = "not in the plan";
      }
      row["bits"] = bits;
      report.push_back(std::move(row));
      ++index;
    });
    for (auto &[name, e] : plan)
      if (!e.used) {
        module.emitError() << "quantisation plan: the model has no quantisable layer named '" << name << "'";
        ok = false;
      }
    if (!ok) return signalPassFailure();
    if (!reportPath.empty()) {
      std::error_code ec;
      llvm::raw_fd_ostream os(reportPath, ec);
      if (ec) {
        module.emitError() << "cannot write '" << reportPath << "': " << ec.message();
        return signalPassFailure();
      }
      os << llvm::formatv("{0:2}", llvm::json::Value(llvm::json::Object{{"layers", std::move(report)},
                                                                        {"float_ops", std::move(floatOps)}}))
         << "\n";
    }
  }
};

} // namespace
} // namespace kiln
