//===- LoopCodegen.cpp - Loop forms that LLVM vectorises --------------------===//
//
// Two rewrites that run on bufferized IR just before (kiln-linalg-to-loops) and
// just after (kiln-approximate-math) linalg becomes loops, so that the loops LLVM sees
// are ones its loop vectoriser handles:
//
// - convert-linalg-to-loops reads every operand in the innermost loop and, for a
//   reduction, loads and stores the accumulator there on every iteration. All
//   activations are views of one arena, so LLVM cannot prove that the store does
//   not change a row's mean or maximum read in the same loop: it neither hoists
//   those reads nor keeps the accumulator in a register, and the loop stays scalar
//   ("unknown data dependence"). kiln-linalg-to-loops lowers linalg.generic and
//   linalg.reduce itself: each input is read in the outermost loop whose index
//   it uses, and reduction loops carry the accumulator as a loop value (read once
//   before, written once after).
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
#include "mlir/Transforms/RegionUtils.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace kiln {
#define GEN_PASS_DEF_KILNLINALGTOLOOPS
#define GEN_PASS_DEF_KILNAPPROXIMATEMATH
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// A buffer linalg.generic or linalg.reduce with one output whose loops are some
/// parallel loops followed by any number of reduction loops, static bounds, and
/// a body without regions.
static bool isLowerable(linalg::LinalgOp op) {
  if (!isa<linalg::GenericOp, linalg::ReduceOp>(op)) return false;
  if (!op.hasPureBufferSemantics() || op.getNumDpsInits() != 1 || op->getNumResults() != 0) return false;
  bool seenReduction = false;
  for (utils::IteratorType t : op.getIteratorTypesArray()) {
    if (t == utils::IteratorType::reduction) seenReduction = true;
    else if (seenReduction) return false;
  }
  for (int64_t r : op.getStaticLoopRanges())
    if (ShapedType::isDynamic(r)) return false;
  for (OpOperand &o : op->getOpOperands())
    if (!isa<MemRefType>(o.get().getType())) return false;
  for (Operation &inner : op->getRegion(0).front())
    if (inner.getNumRegions()) return false;
  return true;
}

static Value bufferOf(Value v);

/// Reductions keep the accumulator in a register: not when an input is the output.
static bool readsOutput(linalg::LinalgOp op) {
  for (Value in : op.getDpsInputs())
    if (bufferOf(in) == bufferOf(op.getDpsInits()[0])) return true;
  return false;
}

/// The buffer a memref view reads: reshapes, subviews and casts are looked
/// through; a memref.view of the arena is a buffer of its own (the arena plan
/// keeps buffers that are live together apart).
static Value bufferOf(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (isa<memref::ViewOp>(def)) break;
    auto view = dyn_cast<ViewLikeOpInterface>(def);
    if (!view) break;
    v = view.getViewSource();
  }
  return v;
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

/// Emits the loop nest of one op (see the pass description).
struct LoopEmitter {
  linalg::LinalgOp op;
  Location loc;
  unsigned nLoops, nPar;
  SmallVector<int64_t> ranges;
  SmallVector<AffineMap> maps;
  Block *body;
  unsigned nIn;
  Value init;
  /// Per input: the loop depth from which it can be read (one past the deepest
  /// loop its indices use); inputs that are the output's buffer are read in the
  /// innermost loop, as the body would.
  SmallVector<unsigned> depth;
  /// The outermost parallel loop emitted (loops of one iteration are not).
  scf::ForOp outer;

  explicit LoopEmitter(linalg::LinalgOp op) : op(op), loc(op.getLoc()) {
    ranges = op.getStaticLoopRanges();
    nLoops = ranges.size();
    nPar = llvm::count(op.getIteratorTypesArray(), utils::IteratorType::parallel);
    maps = op.getIndexingMapsArray();
    body = &op->getRegion(0).front();
    nIn = op.getNumDpsInputs();
    init = op.getDpsInits()[0];
    for (unsigned i = 0; i < nIn; ++i) {
      unsigned d = 0;
      for (AffineExpr e : maps[i].getResults())
        for (unsigned k = 0; k < nLoops; ++k)
          if (e.isFunctionOfDim(k)) d = std::max(d, k + 1);
      if (bufferOf(op.getDpsInputs()[i]) == bufferOf(init)) d = nLoops;
      depth.push_back(d);
    }
  }

  Value cst(OpBuilder &b, int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }

  /// `ivs` padded with zeros for the loops not entered yet (unused by the maps
  /// that are evaluated at this depth).
  SmallVector<Value> padded(OpBuilder &b, ArrayRef<Value> ivs) {
    SmallVector<Value> all(ivs.begin(), ivs.end());
    while (all.size() < nLoops) all.push_back(cst(b, 0));
    return all;
  }

  void readInputs(OpBuilder &b, unsigned level, ArrayRef<Value> ivs, IRMapping &m) {
    for (unsigned i = 0; i < nIn; ++i)
      if (depth[i] == level || (level == nLoops && depth[i] > nLoops)) {
        Value in = op.getDpsInputs()[i];
        m.map(body->getArgument(i), memref::LoadOp::create(b, loc, in, indices(b, loc, maps[i], padded(b, ivs))));
      }
  }

  Value cloneBody(OpBuilder &b, ArrayRef<Value> ivs, IRMapping &m) {
    for (Operation &inner : body->without_terminator()) {
      if (auto idx = dyn_cast<linalg::IndexOp>(inner)) {
        m.map(idx.getResult(), ivs[idx.getDim()]);
        continue;
      }
      b.clone(inner, m);
    }
    return m.lookupOrDefault(body->getTerminator()->getOperand(0));
  }

  scf::ForOp loop(OpBuilder &b, unsigned level, ValueRange iterArgs) {
    return scf::ForOp::create(b, loc, cst(b, 0), cst(b, ranges[level]), cst(b, 1), iterArgs);
  }

  /// Parallel loops: inputs are read at the depth they depend on; the output
  /// element is written once per point of the parallel iteration space.
  void emitParallel(OpBuilder &b, unsigned level, SmallVector<Value> &ivs, IRMapping m) {
    readInputs(b, level, ivs, m);
    if (level == nPar) {
      SmallVector<Value> outIdx = indices(b, loc, maps.back(), padded(b, ivs));
      Value outArg = body->getArgument(nIn);
      if (nPar == nLoops) {
        if (!outArg.use_empty()) m.map(outArg, memref::LoadOp::create(b, loc, init, outIdx));
        memref::StoreOp::create(b, loc, cloneBody(b, ivs, m), init, outIdx);
        return;
      }
      Value acc = memref::LoadOp::create(b, loc, init, outIdx);
      memref::StoreOp::create(b, loc, emitReduction(b, level, ivs, m, acc), init, outIdx);
      return;
    }
    if (ranges[level] == 1) { // no loop: the index is 0
      ivs.push_back(cst(b, 0));
      emitParallel(b, level + 1, ivs, m);
      ivs.pop_back();
      return;
    }
    scf::ForOp f = loop(b, level, {});
    if (!outer) outer = f;
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(f.getBody()->getTerminator());
    ivs.push_back(f.getInductionVar());
    emitParallel(b, level + 1, ivs, m);
    ivs.pop_back();
  }

  /// Reduction loops: the accumulator is a loop-carried value.
  Value emitReduction(OpBuilder &b, unsigned level, SmallVector<Value> &ivs, IRMapping m, Value acc) {
    if (level > nPar) readInputs(b, level, ivs, m);
    if (level == nLoops) {
      m.map(body->getArgument(nIn), acc);
      return cloneBody(b, ivs, m);
    }
    scf::ForOp f = loop(b, level, ValueRange{acc});
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(f.getBody());
      ivs.push_back(f.getInductionVar());
      Value next = emitReduction(b, level + 1, ivs, m, f.getRegionIterArgs()[0]);
      ivs.pop_back();
      scf::YieldOp::create(b, loc, next);
    }
    return f.getResult(0);
  }

  /// Emits the loops; returns the outermost parallel loop when the op is big
  /// enough to be worth splitting over threads.
  scf::ForOp run(int64_t minParallelWork) {
    OpBuilder b(op);
    SmallVector<Value> ivs;
    emitParallel(b, 0, ivs, IRMapping());
    op->erase();
    int64_t work = 1;
    for (int64_t r : ranges) work *= r;
    return work >= minParallelWork ? outer : scf::ForOp();
  }
};

/// Static shape, strides and offset: a pointer is all it takes to rebuild it.
static bool isStaticMemRef(Type t) {
  auto m = dyn_cast<MemRefType>(t);
  if (!m || !m.hasStaticShape()) return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(m.getStridesAndOffset(strides, offset)) && !ShapedType::isDynamic(offset) &&
         llvm::none_of(strides, ShapedType::isDynamic);
}

/// Moves the body of `loop` (from 0 to N, step 1) into a new function
/// `void @name(!llvm.ptr ctx, i64 begin, i64 end)` that runs iterations
/// [begin, end), and replaces the loop by kiln_parallel_for(N, @name, ctx), ctx
/// holding the base pointers of the buffers the body uses (constants are copied
/// into the function). Returns false, changing nothing, if the body uses other
/// values from outside.
static bool outlineParallel(scf::ForOp loop, ModuleOp module, StringRef name) {
  llvm::SetVector<Value> captured;
  getUsedValuesDefinedAbove(loop.getRegion(), captured);
  SmallVector<Value> buffers;
  SmallVector<Operation *> constants;
  for (Value v : captured) {
    if (auto c = v.getDefiningOp<arith::ConstantOp>()) constants.push_back(c);
    else if (isStaticMemRef(v.getType())) buffers.push_back(v);
    else return false;
  }
  std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound()), ub = getConstantIntValue(loop.getUpperBound()),
                         step = getConstantIntValue(loop.getStep());
  std::optional<int64_t> trips;
  if (lb && ub && step && *lb == 0 && *step == 1) trips = *ub;
  if (!trips || *trips < 2) return false;

  MLIRContext *ctx = module.getContext();
  Location loc = loop.getLoc();
  auto ptrTy = LLVM::LLVMPointerType::get(ctx);
  auto i64 = IntegerType::get(ctx, 64);
  auto fnTy = FunctionType::get(ctx, {ptrTy, i64, i64}, {});

  // The function.
  OpBuilder mb(ctx);
  mb.setInsertionPointToEnd(module.getBody());
  auto fn = func::FuncOp::create(mb, loc, name, fnTy);
  fn.setPrivate();
  Block *entry = fn.addEntryBlock();
  OpBuilder fb = OpBuilder::atBlockBegin(entry);
  IRMapping m;
  for (Operation *c : constants) fb.clone(*c, m);
  for (auto [k, buf] : llvm::enumerate(buffers)) {
    auto type = cast<MemRefType>(buf.getType());
    SmallVector<int64_t> strides;
    int64_t offset;
    (void)type.getStridesAndOffset(strides, offset);
    Value slot = LLVM::GEPOp::create(fb, loc, ptrTy, ptrTy, entry->getArgument(0), ArrayRef<LLVM::GEPArg>{int32_t(k)});
    Value base = LLVM::LoadOp::create(fb, loc, ptrTy, slot);
    // An LLVM memref descriptor around the pointer, cast to the memref type;
    // the memref-to-LLVM conversion resolves the cast.
    SmallVector<Type> fields{ptrTy, ptrTy, i64};
    if (type.getRank()) {
      fields.push_back(LLVM::LLVMArrayType::get(i64, type.getRank()));
      fields.push_back(LLVM::LLVMArrayType::get(i64, type.getRank()));
    }
    auto descTy = LLVM::LLVMStructType::getLiteral(ctx, fields);
    Value desc = LLVM::UndefOp::create(fb, loc, descTy);
    auto i64c = [&](int64_t v) { return LLVM::ConstantOp::create(fb, loc, i64, fb.getI64IntegerAttr(v)).getResult(); };
    desc = LLVM::InsertValueOp::create(fb, loc, desc, base, ArrayRef<int64_t>{0});
    desc = LLVM::InsertValueOp::create(fb, loc, desc, base, ArrayRef<int64_t>{1});
    desc = LLVM::InsertValueOp::create(fb, loc, desc, i64c(offset), ArrayRef<int64_t>{2});
    for (int64_t d = 0; d < type.getRank(); ++d) {
      desc = LLVM::InsertValueOp::create(fb, loc, desc, i64c(type.getDimSize(d)), ArrayRef<int64_t>{3, d});
      desc = LLVM::InsertValueOp::create(fb, loc, desc, i64c(strides[d]), ArrayRef<int64_t>{4, d});
    }
    m.map(buf, UnrealizedConversionCastOp::create(fb, loc, type, desc).getResult(0));
  }
  Value lo = arith::IndexCastOp::create(fb, loc, fb.getIndexType(), entry->getArgument(1));
  Value hi = arith::IndexCastOp::create(fb, loc, fb.getIndexType(), entry->getArgument(2));
  Value one = arith::ConstantIndexOp::create(fb, loc, 1);
  auto inner = scf::ForOp::create(fb, loc, lo, hi, one);
  m.map(loop.getInductionVar(), inner.getInductionVar());
  {
    OpBuilder ib = OpBuilder::atBlockBegin(inner.getBody());
    for (Operation &op : loop.getBody()->without_terminator()) ib.clone(op, m);
  }
  func::ReturnOp::create(fb, loc);

  // The call.
  OpBuilder b(loop);
  Value count = LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(*trips));
  Value ctxPtr;
  if (buffers.empty()) {
    ctxPtr = LLVM::ZeroOp::create(b, loc, ptrTy);
  } else {
    Value n = LLVM::ConstantOp::create(b, loc, i64, b.getI64IntegerAttr(1));
    ctxPtr = LLVM::AllocaOp::create(b, loc, ptrTy, LLVM::LLVMArrayType::get(ptrTy, buffers.size()), n, 8);
    for (auto [k, buf] : llvm::enumerate(buffers)) {
      Value idx = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, b.getIndexType(), buf);
      Value asInt = arith::IndexCastOp::create(b, loc, i64, idx);
      Value ptr = LLVM::IntToPtrOp::create(b, loc, ptrTy, asInt);
      Value slot = LLVM::GEPOp::create(b, loc, ptrTy, ptrTy, ctxPtr, ArrayRef<LLVM::GEPArg>{int32_t(k)});
      LLVM::StoreOp::create(b, loc, ptr, slot);
    }
  }
  auto callee = FunctionType::get(ctx, {i64, fnTy, ptrTy}, {});
  if (!module.lookupSymbol<func::FuncOp>("kiln_parallel_for")) {
    OpBuilder::InsertionGuard guard(mb);
    mb.setInsertionPointToStart(module.getBody());
    func::FuncOp::create(mb, loc, "kiln_parallel_for", callee).setPrivate();
  }
  Value fnRef = func::ConstantOp::create(b, loc, fnTy, SymbolRefAttr::get(fn));
  func::CallOp::create(b, loc, "kiln_parallel_for", TypeRange{}, ValueRange{count, fnRef, ctxPtr});
  loop.erase();
  return true;
}

struct LinalgToLoopsPass : impl::KilnLinalgToLoopsBase<LinalgToLoopsPass> {
  using Base::Base;
  void runOnOperation() override {
    ModuleOp module = getOperation();
    unsigned outlined = 0;
    for (func::FuncOp fn : llvm::to_vector(module.getOps<func::FuncOp>())) {
      SmallVector<linalg::LinalgOp> ops;
      fn.walk([&](linalg::LinalgOp op) {
        if (isLowerable(op) && !(op.getNumReductionLoops() && readsOutput(op))) ops.push_back(op);
      });
      // Only ops at the top level of the function are split over threads: one
      // inside a loop (a Loop or Scan body) would start a parallel loop per trip.
      for (linalg::LinalgOp op : ops) {
        bool topLevel = op->getParentOp() == fn.getOperation();
        scf::ForOp outer = LoopEmitter(op).run(parallelWork > 0 && topLevel ? parallelWork : INT64_MAX);
        if (outer) outlined += outlineParallel(outer, module, ("kiln_parallel_" + std::to_string(outlined)));
      }
    }
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
