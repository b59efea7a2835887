//===- SplitFills.cpp - One linalg.fill per use -----------------------------===//
//
// CSE merges identical fills (the zero initialisations of every matmul and
// convolution output of one shape) into one tensor with many uses. Each use then
// bufferizes to a copy of the one filled buffer (a memset followed by a memcpy per
// output); with a fill of its own, each output is filled in place.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

namespace kiln {
#define GEN_PASS_DEF_KILNSPLITFILLS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

struct SplitFillsPass : impl::KilnSplitFillsBase<SplitFillsPass> {
  void runOnOperation() override {
    SmallVector<linalg::FillOp> fills;
    getOperation().walk([&](linalg::FillOp fill) {
      if (fill.hasPureTensorSemantics() && fill->getNumResults() == 1) fills.push_back(fill);
    });
    for (linalg::FillOp fill : fills) {
      Value result = fill->getResult(0);
      // Every use but the first gets its own fill, placed just before its user
      // (the fill's operands, a constant and an empty tensor, dominate the user).
      SmallVector<OpOperand *> uses;
      for (OpOperand &use : result.getUses()) uses.push_back(&use);
      if (uses.size() < 2) continue;
      for (OpOperand *use : llvm::drop_begin(uses)) {
        OpBuilder b(use->getOwner());
        Operation *copy = b.clone(*fill);
        use->set(copy->getResult(0));
      }
    }
  }
};

} // namespace
} // namespace kiln
