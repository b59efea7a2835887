//===- FuseElementwise.cpp - Elementwise fusion that spares contractions ----===//
#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace kiln {
#define GEN_PASS_DEF_KILNFUSEELEMENTWISE
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

static bool isElementwise(Operation *op) {
  auto linalgOp = dyn_cast_or_null<linalg::LinalgOp>(op);
  return linalgOp && isa<linalg::GenericOp>(op) &&
         linalgOp.getNumLoops() == linalgOp.getNumParallelLoops();
}

/// Cheap enough to compute again in every consumer: a broadcast, a cast or one or
/// two arithmetic ops, with no transcendental functions and no gathers, none of
/// whose operands is itself elementwise (so duplication cannot pull in a chain: a
/// recurrent cell's state, one select per time step, would otherwise be recomputed
/// from the first step at every step).
static bool isCheapToRecompute(Operation *op) {
  if (llvm::any_of(op->getOperands(), [](Value v) { return isElementwise(v.getDefiningOp()); })) return false;
  auto g = cast<linalg::GenericOp>(op);
  unsigned arith = 0;
  for (Operation &inner : g.getRegion().front().without_terminator()) {
    if (inner.getDialect() && inner.getDialect()->getNamespace() == "math") return false;
    if (isa<tensor::ExtractOp>(inner) || inner.getNumRegions()) return false;
    if (!isa<linalg::IndexOp>(inner)) ++arith;
  }
  return arith <= 2;
}

/// Whether every use of `v` is in `user`.
static bool onlyUsedBy(Value v, Operation *user) {
  return llvm::all_of(v.getUses(), [&](OpOperand &use) { return use.getOwner() == user; });
}

struct FuseElementwisePass : impl::KilnFuseElementwiseBase<FuseElementwisePass> {
  void runOnOperation() override {
    // A producer with other users stays in place after fusion, so fusing it
    // computes it twice (or once per later consumer: a residual stream read by
    // every layer would be recomputed from the embeddings in each of them). So:
    // first fuse only producers whose sole user is the consumer, until nothing is
    // left to fuse; then duplicate the producers that are cheap as they now stand
    // (judging cheapness before the first phase would let a chain of one-op
    // generics, each cheap alone, be pulled into every consumer piece by piece).
    for (bool duplicateCheap : {false, true}) {
      RewritePatternSet patterns(&getContext());
      linalg::ControlFusionFn control = [duplicateCheap](OpOperand *fused) {
        Operation *producer = fused->get().getDefiningOp();
        if (!isElementwise(fused->getOwner()) || !isElementwise(producer)) return false;
        return onlyUsedBy(fused->get(), fused->getOwner()) || (duplicateCheap && isCheapToRecompute(producer));
      };
      linalg::populateElementwiseOpsFusionPatterns(patterns, control);
      if (failed(applyPatternsGreedily(getOperation(), std::move(patterns)))) return signalPassFailure();
    }
  }
};

} // namespace
} // namespace kiln
