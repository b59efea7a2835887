//===- LoopCodegen.cpp - Loop forms that LLVM vectorises --------------------===//
//
// Two rewrites that run on bufferized IR just before (kiln-reductions-to-loops) and
// just after (kiln-approximate-math) linalg becomes loops, so that the loops LLVM sees
// are ones its loop vectoriser handles:
//
// - A reduction over the innermost loops (the rows of a softmax or a layer norm)
//   lowered by convert-linalg-to-loops loads and stores the accumulator in memory on
//   every iteration; LLVM cannot keep it in a register because the accumulator and
//   the input are views of the same arena and it cannot prove they do not overlap.
//   kiln-reductions-to-loops lowers such ops itself, with the accumulator carried
//   through the reduction loops as a loop value (read once before, written once
//   after), which LLVM vectorises (the generated code allows reassociation).
// - math.erf and math.exp become polynomial approximations in plain arithmetic
//   (MLIR's, accurate to a few ulp) instead of calls to the scalar libm functions,
//   so the loops around them vectorise too (GELU, softmax).
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Affine/Utils.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace kiln {
#define GEN_PASS_DEF_KILNREDUCTIONSTOLOOPS
#define GEN_PASS_DEF_KILNAPPROXIMATEMATH
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// A buffer linalg op with one output whose loops are some parallel loops followed
/// by at least one reduction loop, static bounds, and a body without regions.
static bool isTrailingReduction(linalg::LinalgOp op) {
  if (!op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 || op->getNumResults() != 0) return false;
  auto iters = op.getIteratorTypesArray();
  bool seenReduction = false;
  for (utils::IteratorType t : iters) {
    if (t == utils::IteratorType::reduction) seenReduction = true;
    else if (seenReduction) return false;
  }
  if (!seenReduction) return false;
  for (int64_t r : op.getStaticLoopRanges())
    if (ShapedType::isDynamic(r)) return false;
  Value init = op.getDpsInits()[0];
  for (Value in : op.getDpsInputs())
    if (in == init || !isa<MemRefType>(in.getType())) return false;
  if (!isa<MemRefType>(init.getType())) return false;
  for (Operation &inner : op->getRegion(0).front())
    if (inner.getNumRegions()) return false;
  return true;
}

/// The indices `map` selects from the loop induction variables.
static SmallVector<Value> indices(OpBuilder &b, Location loc, AffineMap map, ValueRange ivs) {
  SmallVector<Value> out;
  for (AffineExpr e : map.getResults()) {
    if (auto d = dyn_cast<AffineDimExpr>(e)) {
      out.push_back(ivs[d.getPosition()]);
      continue;
    }
    auto v = affine::expandAffineMap(b, loc, AffineMap::get(map.getNumDims(), 0, e), ivs);
    out.push_back((*v)[0]);
  }
  return out;
}

static void lowerReduction(linalg::LinalgOp op) {
  OpBuilder b(op);
  Location loc = op.getLoc();
  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  auto iters = op.getIteratorTypesArray();
  unsigned nPar = llvm::count(iters, utils::IteratorType::parallel);
  auto cst = [&](OpBuilder &bb, int64_t v) { return arith::ConstantIndexOp::create(bb, loc, v).getResult(); };
  SmallVector<Value> parLo, parHi, parStep, redLo, redHi, redStep;
  for (unsigned d = 0; d < ranges.size(); ++d) {
    (d < nPar ? parLo : redLo).push_back(cst(b, 0));
    (d < nPar ? parHi : redHi).push_back(cst(b, ranges[d]));
    (d < nPar ? parStep : redStep).push_back(cst(b, 1));
  }
  SmallVector<AffineMap> maps = op.getIndexingMapsArray();
  Value init = op.getDpsInits()[0];
  AffineMap initMap = maps.back();
  Block &body = op->getRegion(0).front();
  unsigned nIn = op.getNumDpsInputs();

  scf::buildLoopNest(b, loc, parLo, parHi, parStep, [&](OpBuilder &pb, Location loc, ValueRange parIvs) {
    // The output does not depend on the reduction loops: index it with zeros there.
    SmallVector<Value> outIvs(parIvs.begin(), parIvs.end());
    for (size_t k = 0; k < redLo.size(); ++k) outIvs.push_back(cst(pb, 0));
    SmallVector<Value> outIdx = indices(pb, loc, initMap, outIvs);
    Value acc0 = memref::LoadOp::create(pb, loc, init, outIdx);
    scf::LoopNest red = scf::buildLoopNest(
        pb, loc, redLo, redHi, redStep, ValueRange{acc0},
        [&](OpBuilder &rb, Location loc, ValueRange redIvs, ValueRange accs) -> scf::ValueVector {
          SmallVector<Value> ivs(parIvs.begin(), parIvs.end());
          ivs.append(redIvs.begin(), redIvs.end());
          IRMapping mapping;
          for (unsigned i = 0; i < nIn; ++i) {
            Value in = op.getDpsInputs()[i];
            mapping.map(body.getArgument(i), memref::LoadOp::create(rb, loc, in, indices(rb, loc, maps[i], ivs)));
          }
          mapping.map(body.getArgument(nIn), accs[0]);
          for (Operation &inner : body.without_terminator()) {
            if (auto idx = dyn_cast<linalg::IndexOp>(inner)) {
              mapping.map(idx.getResult(), ivs[idx.getDim()]);
              continue;
            }
            rb.clone(inner, mapping);
          }
          return {mapping.lookupOrDefault(body.getTerminator()->getOperand(0))};
        });
    memref::StoreOp::create(pb, loc, red.results[0], init, outIdx);
  });
  op->erase();
}

struct ReductionsToLoopsPass : impl::KilnReductionsToLoopsBase<ReductionsToLoopsPass> {
  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> ops;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (isTrailingReduction(op)) ops.push_back(op);
    });
    for (linalg::LinalgOp op : ops) lowerReduction(op);
  }
};

struct ApproximateMathPass : impl::KilnApproximateMathBase<ApproximateMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    populatePolynomialApproximateErfPattern(patterns);
    populateMathPolynomialApproximationPatterns(patterns, [](StringRef name) {
      return name == math::ExpOp::getOperationName() || name == "exp";
    });
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns)))) signalPassFailure();
  }
};

} // namespace
} // namespace kiln
