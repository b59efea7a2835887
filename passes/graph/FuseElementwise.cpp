//===- FuseElementwise.cpp - Elementwise fusion that spares contractions ----===//
#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
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

/// The largest body (ops, incl. the yield) of a multi-use producer that is duplicated.
constexpr size_t kMaxDuplicatedOps = 16;

struct FuseElementwisePass : impl::KilnFuseElementwiseBase<FuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    linalg::ControlFusionFn control = [](OpOperand *fused) {
      Operation *producer = fused->get().getDefiningOp();
      if (!isElementwise(fused->getOwner()) || !isElementwise(producer)) return false;
      if (producer->hasOneUse()) return true;
      // A producer with other users is recomputed in this consumer. Only a small
      // one none of whose operands is itself elementwise (so its body is final and
      // cannot grow by later fusion) is duplicated: otherwise a chain of multi-use
      // producers (a recurrent cell's state, one generic per time step) would be
      // recomputed from the first step at every step.
      if (cast<linalg::GenericOp>(producer).getBody()->getOperations().size() > kMaxDuplicatedOps) return false;
      return llvm::none_of(producer->getOperands(), [](Value v) { return isElementwise(v.getDefiningOp()); });
    };
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns)))) signalPassFailure();
  }
};

} // namespace
} // namespace kiln
