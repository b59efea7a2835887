//===- OutlineWeights.cpp - Constant weights into the weights blob ----------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/MapVector.h"

namespace kiln {
#define GEN_PASS_DEF_KILNOUTLINEWEIGHTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {

FailureOr<std::vector<char>> constantBytes(ElementsAttr attr) {
  auto type = cast<ShapedType>(attr.getType());
  Type elem = type.getElementType();
  if (!elem.isIntOrFloat() || elem.getIntOrFloatBitWidth() % 8) return failure();
  size_t esz = elem.getIntOrFloatBitWidth() / 8, n = size_t(type.getNumElements());
  if (auto r = dyn_cast<DenseResourceElementsAttr>(attr)) {
    AsmResourceBlob *blob = r.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != n * esz) return failure();
    return std::vector<char>(blob->getData().begin(), blob->getData().end());
  }
  if (auto d = dyn_cast<DenseElementsAttr>(attr)) {
    ArrayRef<char> raw = d.getRawData();
    if (!d.isSplat()) return std::vector<char>(raw.begin(), raw.end());
    std::vector<char> out(n * esz);
    for (size_t k = 0; k < n; ++k) std::copy(raw.begin(), raw.begin() + esz, out.begin() + k * esz);
    return out;
  }
  return failure();
}

namespace {

struct OutlineWeightsPass : impl::KilnOutlineWeightsBase<OutlineWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    SymbolTable symbols(module);
    std::vector<char> blob;
    llvm::MapVector<Operation *, int64_t> offsets; // global -> byte offset
    SmallVector<memref::GetGlobalOp> uses;
    if (alignment < 1 || (alignment & (alignment - 1))) {
      module.emitError() << "kiln-outline-weights: alignment " << alignment << " is not a power of two";
      return signalPassFailure();
    }
    size_t align = size_t(alignment);
    func.walk([&](memref::GetGlobalOp get) {
      auto global = symbols.lookup<memref::GlobalOp>(get.getName());
      if (!global || !global.getConstant() || !global.getInitialValue() || global->hasAttr(kKeepInCodeAttr)) return;
      auto init = dyn_cast<ElementsAttr>(*global.getInitialValue());
      if (!init) return;
      auto type = global.getType();
      if (!type.hasStaticShape() || !type.getLayout().isIdentity()) return;
      if (!offsets.count(global)) {
        FailureOr<std::vector<char>> bytes = constantBytes(init);
        if (failed(bytes) || int64_t(bytes->size()) < minBytes) return;
        int64_t off = int64_t((blob.size() + align - 1) / align * align);
        blob.resize(off);
        blob.insert(blob.end(), bytes->begin(), bytes->end());
        offsets[global] = off;
      }
      uses.push_back(get);
    });
    int64_t size = int64_t((blob.size() + align - 1) / align * align);
    blob.resize(size);

    OpBuilder b(module.getContext());
    module->setAttr(kWeightsSizeAttr, b.getI64IntegerAttr(size));
    if (size == 0) return;

    auto blobType = MemRefType::get({size}, b.getIntegerType(8));
    auto role = b.getDictionaryAttr(b.getNamedAttr(kRoleAttr, b.getStringAttr("weights")));
    if (failed(func.insertArgument(0, blobType, role, func.getLoc()))) {
      func.emitError() << "cannot add the weights argument";
      return signalPassFailure();
    }
    Value weights = func.getArgument(0);
    for (memref::GetGlobalOp get : uses) {
      b.setInsertionPoint(get);
      auto global = symbols.lookup<memref::GlobalOp>(get.getName());
      Value off = arith::ConstantIndexOp::create(b, get.getLoc(), offsets[global]);
      Value view = memref::ViewOp::create(b, get.getLoc(), get.getType(), weights, off, ValueRange{});
      get.replaceAllUsesWith(view);
      get.erase();
    }
    for (auto &[global, off] : offsets)
      if (SymbolTable::symbolKnownUseEmpty(global, module)) global->erase();

    auto attrType = RankedTensorType::get({size}, b.getIntegerType(8));
    auto data = HeapAsmResourceBlob::allocateAndCopyInferAlign<char>(blob);
    module->setAttr(kWeightsAttr, DenseResourceElementsAttr::get(attrType, "kiln_weights", std::move(data)));
  }
};

} // namespace
} // namespace kiln
