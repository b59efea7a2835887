//===- UniqueResults.cpp - One buffer per returned value --------------------===//
#include "passes/Passes.h"

#include "llvm/ADT/SmallPtrSet.h"

namespace kiln {
#define GEN_PASS_DEF_KILNUNIQUERESULTS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

struct UniqueResultsPass : impl::KilnUniqueResultsBase<UniqueResultsPass> {
  using Base::Base;

  void runOnOperation() override {
    auto func = lookupEntry(getOperation(), entryName);
    if (!func) return signalPassFailure();
    func.walk([&](func::ReturnOp ret) {
      llvm::SmallPtrSet<Value, 8> seen;
      OpBuilder b(ret);
      for (OpOperand &operand : ret->getOpOperands()) {
        Value v = operand.get();
        auto type = dyn_cast<MemRefType>(v.getType());
        if (!type) continue;
        bool duplicate = !seen.insert(v).second;
        if (!duplicate && !isa<BlockArgument>(v)) continue;
        if (!type.hasStaticShape()) continue;
        auto fresh = MemRefType::get(type.getShape(), type.getElementType());
        Value alloc = memref::AllocOp::create(b, ret.getLoc(), fresh);
        memref::CopyOp::create(b, ret.getLoc(), v, alloc);
        operand.set(alloc);
      }
    });
  }
};

} // namespace
} // namespace kiln
