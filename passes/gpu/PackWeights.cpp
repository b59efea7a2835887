//===- PackWeights.cpp - GPU weight layouts chosen at compile time -----------===//
//
// Neighbouring invocations of a GPU kernel compute neighbouring output channels, so a
// convolution's filter should have the output channel innermost: then their filter
// loads are contiguous (coalesced on a GPU, one vector load on lavapipe) instead of a
// gather C elements apart. This pass rewrites each float linalg.conv_2d_nhwc_fhwc
// whose filter is a constant global into linalg.conv_2d_nhwc_hwcf over a new global
// holding the transposed filter; the transposition happens here, once, at compile time.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/SymbolTable.h"

#include <cstring>

namespace kiln {
#define GEN_PASS_DEF_KILNGPUPACKWEIGHTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

struct PackWeightsPass : impl::KilnGpuPackWeightsBase<PackWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    SymbolTable symbols(module);
    SmallVector<linalg::Conv2DNhwcFhwcOp> convs;
    module.walk([&](linalg::Conv2DNhwcFhwcOp conv) { convs.push_back(conv); });
    for (linalg::Conv2DNhwcFhwcOp conv : convs) {
      auto get = conv.getDpsInputOperand(1)->get().getDefiningOp<memref::GetGlobalOp>();
      if (!get || !conv.hasPureBufferSemantics()) continue;
      auto global = symbols.lookup<memref::GlobalOp>(get.getName());
      if (!global || !global.getConstant() || !global.getInitialValue()) continue;
      auto init = dyn_cast<ElementsAttr>(*global.getInitialValue());
      MemRefType t = global.getType();
      if (!init || !t.hasStaticShape() || t.getRank() != 4) continue;
      FailureOr<std::vector<char>> bytes = constantBytes(init);
      if (!t.getElementType().isF32() || failed(bytes)) continue;
      std::vector<float> w(bytes->size() / sizeof(float));
      std::memcpy(w.data(), bytes->data(), bytes->size());
      // [F, KH, KW, C] -> [KH, KW, C, F]
      int64_t F = t.getDimSize(0), KH = t.getDimSize(1), KW = t.getDimSize(2), C = t.getDimSize(3);
      std::vector<float> p(w.size());
      for (int64_t f = 0; f < F; ++f)
        for (int64_t h = 0; h < KH; ++h)
          for (int64_t x = 0; x < KW; ++x)
            for (int64_t c = 0; c < C; ++c) p[((h * KW + x) * C + c) * F + f] = w[((f * KH + h) * KW + x) * C + c];
      OpBuilder b(global);
      auto type = MemRefType::get({KH, KW, C, F}, t.getElementType());
      auto tensorType = RankedTensorType::get(type.getShape(), t.getElementType());
      auto packedGlobal = memref::GlobalOp::create(
          b, global.getLoc(), (global.getSymName() + "_hwcf").str(), b.getStringAttr("private"), type,
          DenseElementsAttr::get(tensorType, ArrayRef<float>(p)), /*constant=*/true, global.getAlignmentAttr());
      symbols.insert(packedGlobal);
      OpBuilder ob(conv);
      Value filter = memref::GetGlobalOp::create(ob, get.getLoc(), type, packedGlobal.getSymName());
      SmallVector<NamedAttribute> attrs{ob.getNamedAttr("strides", conv.getStrides()),
                                        ob.getNamedAttr("dilations", conv.getDilations())};
      auto hwcf = linalg::Conv2DNhwcHwcfOp::create(ob, conv.getLoc(), ValueRange{conv.getDpsInputOperand(0)->get(), filter},
                                                   ValueRange{conv.getDpsInitOperand(0)->get()}, attrs);
      for (NamedAttribute a : conv->getDiscardableAttrs()) // Kiln's own (kiln.*), not linalg's memoized maps
        if (!a.getName().strref().starts_with("linalg.")) hwcf->setAttr(a.getName(), a.getValue());
      conv.erase();
      if (get->use_empty()) get.erase();
      if (SymbolTable::symbolKnownUseEmpty(global, module)) global.erase();
    }
  }
};

} // namespace
} // namespace kiln
