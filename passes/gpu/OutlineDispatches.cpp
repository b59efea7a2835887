//===- OutlineDispatches.cpp - One GPU kernel per compute op -----------------===//
//
// Runs on the entry function after kiln-outline-weights and kiln-plan-arena, when
// every buffer is a function argument (weights, arena, inputs, outputs) or a view
// of one. Each compute op (a linalg op or memref.copy) becomes a gpu.func in the
// gpu.module @kiln_kernels and a gpu.launch_func in its place. The kernel runs one
// invocation per point of the op's parallel iteration space (the last parallel
// dimension fastest, so neighbouring invocations touch neighbouring memory) and
// loops over its reduction dimensions with the accumulators in registers. Kernel
// arguments are the root buffers (a memref.view of the weights or the arena, or an
// input/output argument), all identity-layout; the subviews and reshapes between a
// root and the op are cloned into the kernel, where fold-memref-alias-ops turns
// them into index arithmetic. The launch is 1-D (2-D past 65535 workgroups), with
// the workgroup size in the kernel's spirv.entry_point_abi.
//
//===----------------------------------------------------------------------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVAttributes.h"
#include "mlir/Dialect/SPIRV/IR/SPIRVDialect.h"
#include "mlir/Dialect/SPIRV/IR/TargetAndABI.h"
#include "mlir/AsmParser/AsmParser.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/Transforms/RegionUtils.h"

namespace kiln {
#define GEN_PASS_DEF_KILNGPUOUTLINEDISPATCHES
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

/// What Kiln's SPIR-V may use; spirv-update-vce later narrows it to what each module
/// needs, and the runtime checks the device for those.
constexpr const char *kTargetEnv =
    "#spirv.target_env<#spirv.vce<v1.3, [Shader, Int64, Int16, Int8, StorageBuffer8BitAccess, "
    "StorageBuffer16BitAccess], [SPV_KHR_storage_buffer_storage_class, SPV_KHR_8bit_storage, "
    "SPV_KHR_16bit_storage]>, #spirv.resource_limits<>>";

/// The tiled contraction kernel: kTile x kTile outputs per workgroup, operands staged
/// through workgroup memory kTile deep.
constexpr int64_t kTile = 16;
/// Output points per invocation of a reduction kernel (register blocking; 2 where 4
/// divides no dimension).
constexpr int64_t kBlock = 4;

bool isViewLike(Operation *op) {
  return isa<memref::SubViewOp, memref::CollapseShapeOp, memref::ExpandShapeOp, memref::CastOp,
             memref::ReinterpretCastOp, memref::TransposeOp>(op);
}

bool isStaticIdentity(Type t) {
  auto m = dyn_cast<MemRefType>(t);
  return m && m.hasStaticShape() && m.getLayout().isIdentity();
}

std::string kernelName(unsigned index, Operation *op) {
  std::string n = op->getName().stripDialect().str();
  for (char &c : n)
    if (!isalnum(static_cast<unsigned char>(c))) c = '_';
  return ("d" + std::to_string(index) + "_" + n).substr(0, 60);
}

class Outliner {
public:
  Outliner(ModuleOp module, gpu::GPUModuleOp kernels, int64_t workgroupSize, bool tile)
      : module(module), kernels(kernels), wg(workgroupSize), tile(tile) {}

  /// Outlines `op`, with `init` (may be null) computing its accumulator's initial value
  /// and `epilogues` applied to its result, into one kernel and its launch.
  LogicalResult outline(linalg::LinalgOp op, linalg::LinalgOp init, ArrayRef<linalg::LinalgOp> epilogues,
                        unsigned index);
  bool foldsAsInit(linalg::LinalgOp init, linalg::LinalgOp op);
  /// The single m, n and k dimensions of a contraction the tiled kernel can run, if `op` is one.
  static std::optional<linalg::ContractionDimensions> tileable(linalg::LinalgOp op);
  bool foldsAsEpilogue(linalg::LinalgOp producer, linalg::LinalgOp next);
  /// The buffer under the view ops that lead to `v`.
  static Value rootOf(Value v);

private:
  /// The root buffer under `v` and the view ops between them (root first).
  LogicalResult trace(Operation *user, Value v, Value &root, SmallVectorImpl<Operation *> &chain);
  /// `v` inside the kernel: mapped already, or a constant cloned at the kernel's entry.
  FailureOr<Value> inKernel(Value v, OpBuilder &entry, IRMapping &map, Operation *user);

  ModuleOp module;
  gpu::GPUModuleOp kernels;
  int64_t wg;
  bool tile;
};

LogicalResult Outliner::trace(Operation *user, Value v, Value &root, SmallVectorImpl<Operation *> &chain) {
  Value cur = v;
  while (Operation *def = cur.getDefiningOp()) {
    if (isa<memref::ViewOp>(def)) break;
    if (isa<memref::GetGlobalOp>(def))
      return user->emitError() << "reads a constant kept in code ('" << cast<memref::GetGlobalOp>(def).getName()
                               << "'), which the vulkan target cannot bind";
    if (!isViewLike(def))
      return user->emitError() << "operand produced by '" << def->getName()
                               << "' cannot be passed to a vulkan kernel";
    chain.push_back(def);
    cur = def->getOperand(0);
  }
  if (!isStaticIdentity(cur.getType()))
    return user->emitError() << "operand buffer of type " << cur.getType()
                             << " is not a statically shaped, contiguous buffer";
  std::reverse(chain.begin(), chain.end());
  root = cur;
  return success();
}

FailureOr<Value> Outliner::inKernel(Value v, OpBuilder &entry, IRMapping &map, Operation *user) {
  if (Value m = map.lookupOrNull(v)) return m;
  Operation *def = v.getDefiningOp();
  if (def && def->hasTrait<OpTrait::ConstantLike>()) {
    OpBuilder atStart = OpBuilder::atBlockBegin(entry.getInsertionBlock());
    Value c = atStart.clone(*def)->getResult(0);
    map.map(v, c);
    return c;
  }
  return user->emitError() << "uses a value computed on the host (" << v
                           << "); the vulkan target passes only buffers and constants to kernels";
}

/// An op whose body runs once per point of its (all-parallel) iteration space, which is
/// also the point of its only output (identity indexing).
static bool isPointwise(linalg::LinalgOp l) {
  return l.getNumDpsInits() == 1 && l.getNumReductionLoops() == 0 && l.getBlock() &&
         l.getMatchingIndexingMap(l.getDpsInitOperand(0)).isIdentity();
}

static Value outputOf(linalg::LinalgOp l) { return l.getDpsInitOperand(0)->get(); }

/// `init` writes every element of `op`'s accumulator before `op` reads it: the kernel
/// computes that value in a register instead.
bool Outliner::foldsAsInit(linalg::LinalgOp init, linalg::LinalgOp op) {
  if (!isPointwise(init) || op.getNumDpsInits() != 1 || outputOf(init) != outputOf(op)) return false;
  if (!init.getMatchingBlockArgument(init.getDpsInitOperand(0)).use_empty()) return false;
  Value root = rootOf(outputOf(op));
  for (OpOperand *in : init.getDpsInputOperands())
    if (rootOf(in->get()) == root) return false;
  for (OpOperand *in : op.getDpsInputOperands()) // op would read what init has not written
    if (rootOf(in->get()) == root) return false;
  return true;
}

/// `next` reads `producer`'s output at its own point and writes a buffer of the same
/// shape there (elementwise): it runs on the value in the register.
bool Outliner::foldsAsEpilogue(linalg::LinalgOp producer, linalg::LinalgOp next) {
  if (producer.getNumDpsInits() != 1 || !isPointwise(next)) return false;
  Value o = outputOf(producer), out = outputOf(next);
  if (o.getType() != out.getType() || !cast<MemRefType>(o.getType()).getLayout().isIdentity()) return false;
  unsigned uses = 0;
  for (OpOperand *in : next.getDpsInputOperands()) {
    if (in->get() == o) {
      if (!next.getMatchingIndexingMap(in).isIdentity()) return false;
      ++uses;
      continue;
    }
    Value r = rootOf(in->get());
    if (r == rootOf(o) || r == rootOf(out)) return false; // another point of a buffer being written
  }
  return uses == 1;
}

std::optional<linalg::ContractionDimensions> Outliner::tileable(linalg::LinalgOp op) {
  // A contraction or a convolution, out += in0 * in1: each loop dimension is classified
  // by the operands that use it. in0 gives the tile's rows, in1 its columns.
  if (!(linalg::isaContractionOpInterface(op) || linalg::isaConvolutionOpInterface(op)) ||
      op.getNumDpsInputs() != 2 || op.getNumDpsInits() != 1)
    return {};
  for (OpOperand *in : op.getDpsInputOperands())
    if (!isa<MemRefType>(in->get().getType()) ||
        !cast<MemRefType>(in->get().getType()).getElementType().isIntOrFloat())
      return {};
  AffineMap a = op.getMatchingIndexingMap(op.getDpsInputOperand(0)),
            b = op.getMatchingIndexingMap(op.getDpsInputOperand(1)),
            c = op.getMatchingIndexingMap(op.getDpsInitOperand(0));
  linalg::ContractionDimensions cd;
  SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
  for (unsigned d = 0; d < op.getNumLoops(); ++d) {
    bool inA = a.isFunctionOfDim(d), inB = b.isFunctionOfDim(d), inC = c.isFunctionOfDim(d);
    bool reduction = iters[d] == utils::IteratorType::reduction;
    if (inA && inB && inC && !reduction) cd.batch.push_back(d);
    else if (inA && !inB && inC && !reduction) cd.m.push_back(d);
    else if (!inA && inB && inC && !reduction) cd.n.push_back(d);
    else if (inA && inB && !inC && reduction) cd.k.push_back(d);
    else return {};
  }
  if (cd.m.empty() || cd.n.size() != 1 || cd.k.empty()) return {};
  SmallVector<int64_t> r = op.getStaticLoopRanges();
  int64_t K = 1;
  for (unsigned d : cd.k) K *= r[d];
  if (K < kTile || r[cd.n[0]] < kTile / 2) return {}; // too little to share through a tile
  return cd;
}

Value Outliner::rootOf(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!isViewLike(def)) break;
    v = def->getOperand(0);
  }
  return v;
}

LogicalResult Outliner::outline(linalg::LinalgOp op, linalg::LinalgOp init, ArrayRef<linalg::LinalgOp> epilogues,
                                unsigned index) {
  MLIRContext *ctx = op->getContext();
  Location loc = op->getLoc();
  Block *body = op.getBlock();
  if (!body) return op->emitError() << "has no body the vulkan target can lower";

  SmallVector<int64_t> ranges = op.getStaticLoopRanges();
  SmallVector<utils::IteratorType> iters = op.getIteratorTypesArray();
  for (int64_t r : ranges)
    if (ShapedType::isDynamic(r)) return op->emitError() << "has a dynamic loop range";
  SmallVector<unsigned> par, red;
  for (unsigned d = 0; d < iters.size(); ++d) (iters[d] == utils::IteratorType::parallel ? par : red).push_back(d);
  std::optional<linalg::ContractionDimensions> tiled = tile ? tileable(op) : std::nullopt;
  int64_t total = 1;
  for (unsigned d : par) total *= ranges[d];
  // Register blocking (reductions only): each invocation computes kBlock points along
  // the longest parallel dimension (other than the fastest) that they divide, so the
  // operands that do not depend on it are loaded once for all of them.
  int blockDim = -1;
  int64_t copies = 1;
  for (int64_t c = kBlock; c > 1 && blockDim < 0 && !tiled && !red.empty(); c /= 2) {
    for (unsigned d : ArrayRef<unsigned>(par).drop_back())
      if (ranges[d] % c == 0 && (blockDim < 0 || ranges[d] > ranges[blockDim])) blockDim = int(d);
    if (blockDim >= 0) copies = c;
  }
  for (unsigned d : red)
    if (ranges[d] == 0) return op->emitError() << "has an empty reduction";
  if (total <= 0) return op->emitError() << "has an empty iteration space";
  if (total > (int64_t(1) << 31) - 1) return op->emitError() << "has more than 2^31 parallel points";
  total /= copies;

  // Operands the kernel reads or writes, their roots, and the view ops to clone.
  SmallVector<Value> roots;
  SetVector<Operation *> chainOps;
  auto addOperand = [&](Operation *user, Value v) -> LogicalResult {
    Value root;
    SmallVector<Operation *> chain;
    if (failed(trace(user, v, root, chain))) return failure();
    if (!llvm::is_contained(roots, root)) roots.push_back(root);
    for (Operation *c : chain) chainOps.insert(c);
    return success();
  };
  // Inputs the bodies read (skipping the value an epilogue gets in a register), the
  // buffers the bodies read directly (a gather's table), the outputs.
  SetVector<Value> captured;
  auto addInputs = [&](linalg::LinalgOp l, Value inRegister) -> LogicalResult {
    for (OpOperand *in : l.getDpsInputOperands()) {
      if (!isa<MemRefType>(in->get().getType()) || in->get() == inRegister) continue;
      if (l.getMatchingBlockArgument(in).use_empty()) continue;
      if (failed(addOperand(l, in->get()))) return failure();
    }
    SetVector<Value> c;
    getUsedValuesDefinedAbove(l->getRegion(0), c);
    for (Value v : c) {
      captured.insert(v);
      if (isa<MemRefType>(v.getType()) && failed(addOperand(l, v))) return failure();
    }
    return success();
  };
  if (failed(addInputs(op, Value()))) return failure();
  if (init && failed(addInputs(init, Value()))) return failure();
  Value carried = op.getNumDpsInits() == 1 ? outputOf(op) : Value();
  for (linalg::LinalgOp e : epilogues) {
    if (failed(addInputs(e, carried))) return failure();
    carried = outputOf(e);
  }
  for (OpOperand &out : op.getDpsInitsMutable()) {
    if (!isa<MemRefType>(out.get().getType()))
      return op->emitError() << "has a tensor output; the vulkan target needs bufferized ops";
    for (unsigned d : red)
      if (op.getMatchingIndexingMap(&out).isFunctionOfDim(d))
        return op->emitError() << "indexes its output with a reduction dimension";
    if (failed(addOperand(op, out.get()))) return failure();
  }
  for (linalg::LinalgOp e : epilogues)
    if (failed(addOperand(e, outputOf(e)))) return failure();

  // Booleans live in memory as bytes (kiln-plan-arena byte-bools): the kernel sees i8
  // buffers and converts at each load and store.
  Type i8 = IntegerType::get(ctx, 8);
  auto widen = [&](Type t) -> Type {
    auto m = dyn_cast<MemRefType>(t);
    return m && m.getElementType().isInteger(1) ? Type(MemRefType::Builder(m).setElementType(i8)) : t;
  };
  Operation *last = epilogues.empty() ? op.getOperation() : linalg::LinalgOp(epilogues.back()).getOperation();
  OpBuilder hb(last);
  SmallVector<Value> launchArgs;
  for (Value r : roots) {
    if (widen(r.getType()) == r.getType()) {
      launchArgs.push_back(r);
      continue;
    }
    auto view = r.getDefiningOp<memref::ViewOp>();
    if (!view) return op->emitError() << "reads or writes a boolean model input or output, which the vulkan target does not support";
    launchArgs.push_back(memref::ViewOp::create(hb, loc, cast<MemRefType>(widen(r.getType())), view.getSource(),
                                                view.getByteShift(), view.getSizes()));
  }

  // The kernel.
  OpBuilder kb(ctx);
  kb.setInsertionPointToEnd(kernels.getBody());
  SmallVector<Type> argTypes;
  for (Value r : roots) argTypes.push_back(widen(r.getType()));
  auto fn = gpu::GPUFuncOp::create(kb, loc, kernelName(index, op), FunctionType::get(ctx, argTypes, {}));
  fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), kb.getUnitAttr());
  SmallVector<int32_t> wgSize{int32_t(wg), 1, 1};
  if (tiled) wgSize = {int32_t(kTile), int32_t(kTile), 1};
  fn->setAttr(spirv::getEntryPointABIAttrName(), spirv::getEntryPointABIAttr(ctx, wgSize));
  Block &entryBlock = fn.getBody().front();
  OpBuilder b = OpBuilder::atBlockBegin(&entryBlock);
  OpBuilder entry = b; // constants go here
  IRMapping map;
  for (auto [k, r] : llvm::enumerate(roots)) map.map(r, entryBlock.getArgument(k));
  for (Operation *c : chainOps) {
    for (Value operand : c->getOperands())
      if (failed(inKernel(operand, entry, map, op))) return failure();
    for (Value r : b.clone(*c, map)->getResults()) r.setType(widen(r.getType()));
  }

  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
  SmallVector<Value> ivs(iters.size());
  int64_t gx, gy, gz = 1;
  Value inRange; // of the output point (the tiled kernel computes past the edges, clamped)
  Value tx, ty;   // the tiled kernel's invocation within its workgroup
  // Splits `linear` into indices[d] for `dims` (the last fastest) of extents range(d).
  auto split = [&](OpBuilder &ob, Value linear, ArrayRef<unsigned> dims, function_ref<int64_t(unsigned)> range,
                   SmallVectorImpl<Value> &indices) {
    for (unsigned d : llvm::reverse(dims)) {
      if (range(d) == 1) {
        indices[d] = arith::ConstantIndexOp::create(ob, loc, 0);
        continue;
      }
      Value extent = arith::ConstantIndexOp::create(ob, loc, range(d));
      indices[d] = arith::RemUIOp::create(ob, loc, linear, extent);
      linear = arith::DivUIOp::create(ob, loc, linear, extent);
    }
  };
  auto extent = [&](unsigned d) { return ranges[d]; };
  if (!tiled) {
    // Launch shape: 1-D, or 2-D past the 65535-workgroup limit of a dimension.
    int64_t groups = (total + wg - 1) / wg;
    gx = std::min<int64_t>(groups, 65535), gy = (groups + gx - 1) / gx;
    Value id = gpu::GlobalIdOp::create(b, loc, gpu::Dimension::x);
    if (gy > 1) {
      Value y = gpu::GlobalIdOp::create(b, loc, gpu::Dimension::y);
      id = arith::AddIOp::create(b, loc, id, arith::MulIOp::create(b, loc, y, cst(gx * wg)));
    }
    inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, id, cst(total));
    auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
    gpu::ReturnOp::create(b, loc);
    b.setInsertionPointToStart(guard.thenBlock());
    // Parallel indices, the last dimension fastest.
    split(b, id, par, [&](unsigned d) { return int(d) == blockDim ? ranges[d] / copies : ranges[d]; }, ivs);
  } else {
    // Workgroup (x, y) computes the kTile x kTile block of columns x and rows y of batch
    // z; invocation (tx, ty) its element. Indices past the edges are clamped (the loads
    // stay in bounds, the store is skipped).
    // Rows are the m dimensions flattened (a 1x1 convolution's n, h, w), the last fastest.
    int64_t n = tiled->n[0], rows = 1;
    for (unsigned d : tiled->m) rows *= ranges[d];
    gx = (ranges[n] + kTile - 1) / kTile, gy = (rows + kTile - 1) / kTile;
    for (unsigned d : tiled->batch) gz *= ranges[d];
    if (gx > 65535 || gy > 65535 || gz > 65535) return op->emitError() << "is too large for one tiled launch";
    tx = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::x), ty = gpu::ThreadIdOp::create(b, loc, gpu::Dimension::y);
    Value row = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, gpu::BlockIdOp::create(b, loc, gpu::Dimension::y), cst(kTile)), ty);
    Value col = arith::AddIOp::create(b, loc, arith::MulIOp::create(b, loc, gpu::BlockIdOp::create(b, loc, gpu::Dimension::x), cst(kTile)), tx);
    inRange = arith::AndIOp::create(b, loc, arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, row, cst(rows)),
                                    arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, col, cst(ranges[n])));
    split(b, arith::MinUIOp::create(b, loc, row, cst(rows - 1)), tiled->m, extent, ivs);
    ivs[n] = arith::MinUIOp::create(b, loc, col, cst(ranges[n] - 1));
    split(b, gpu::BlockIdOp::create(b, loc, gpu::Dimension::z), tiled->batch, extent, ivs);
    gpu::ReturnOp::create(b, loc);
    b.setInsertionPoint(b.getBlock()->getTerminator());
  }

  auto indicesOf = [&](OpBuilder &ob, AffineMap m, ArrayRef<Value> at) {
    SmallVector<Value> idx;
    for (AffineExpr e : m.getResults()) {
      if (auto dim = dyn_cast<AffineDimExpr>(e)) {
        idx.push_back(at[dim.getPosition()]);
        continue;
      }
      idx.push_back(affine::AffineApplyOp::create(ob, loc, AffineMap::get(m.getNumDims(), 0, e), at));
    }
    return idx;
  };

  // Captured values: the buffers above, and constants that live on the host.
  for (Value v : captured)
    if (failed(inKernel(v, entry, map, op))) return failure();
  auto load = [&](OpBuilder &ob, Value buffer, ArrayRef<Value> idx, Type want) -> Value {
    Value v = memref::LoadOp::create(ob, loc, buffer, idx);
    return v.getType() == want ? v : arith::TruncIOp::create(ob, loc, want, v).getResult();
  };
  auto store = [&](OpBuilder &ob, Value v, Value buffer, ArrayRef<Value> idx) {
    Type elem = cast<MemRefType>(buffer.getType()).getElementType();
    if (v.getType() != elem) v = arith::ExtUIOp::create(ob, loc, elem, v);
    memref::StoreOp::create(ob, loc, v, buffer, idx);
  };

  // The body of `l` at iteration point `at`: inputs loaded (or taken from `given`),
  // outputs bound to `outs` (null: unused); returns the yielded values.
  auto evalBody = [&](OpBuilder &ob, linalg::LinalgOp l, ArrayRef<Value> at, const DenseMap<Value, Value> &given,
                      ArrayRef<Value> outs) -> FailureOr<SmallVector<Value>> {
    IRMapping bmap = map;
    for (OpOperand &in : l->getOpOperands()) {
      if (l.isDpsInit(&in)) continue;
      BlockArgument arg = l.getMatchingBlockArgument(&in);
      if (arg.use_empty()) continue;
      if (auto g = given.find(in.get()); g != given.end()) {
        bmap.map(arg, g->second);
        continue;
      }
      if (!isa<MemRefType>(in.get().getType())) {
        FailureOr<Value> sc = inKernel(in.get(), entry, bmap, op);
        if (failed(sc)) return failure();
        bmap.map(arg, *sc);
        continue;
      }
      bmap.map(arg, load(ob, map.lookup(in.get()), indicesOf(ob, l.getMatchingIndexingMap(&in), at), arg.getType()));
    }
    for (auto [k, o] : llvm::enumerate(l.getDpsInitsMutable()))
      if (k < outs.size() && outs[k]) bmap.map(l.getMatchingBlockArgument(&o), outs[k]);
    for (Operation &inner : l.getBlock()->without_terminator()) {
      if (auto ix = dyn_cast<linalg::IndexOp>(inner)) {
        bmap.map(ix.getResult(), at[ix.getDim()]);
        continue;
      }
      ob.clone(inner, bmap);
    }
    SmallVector<Value> yielded;
    for (Value y : l.getBlock()->getTerminator()->getOperands()) yielded.push_back(bmap.lookupOrDefault(y));
    return yielded;
  };

  // The points this invocation computes: `ivs`, or kBlock neighbours along blockDim.
  for (unsigned d : red) ivs[d] = cst(0); // the outputs do not depend on them
  SmallVector<SmallVector<Value>> points(copies, ivs);
  if (blockDim >= 0) {
    Value base = arith::MulIOp::create(b, loc, ivs[blockDim], cst(copies));
    for (int64_t i = 0; i < copies; ++i)
      points[i][blockDim] = i ? arith::AddIOp::create(b, loc, base, cst(i)).getResult() : base;
  }

  // Accumulators: the outputs' current values (computed by a folded init op, or loaded
  // once when the body reads them), per point.
  SmallVector<OpOperand *> outs;
  for (OpOperand &o : op.getDpsInitsMutable()) outs.push_back(&o);
  SmallVector<Value> acc;
  for (SmallVector<Value> &pt : points) {
    if (init) {
      SmallVector<Value> at = indicesOf(b, op.getMatchingIndexingMap(outs[0]), pt);
      FailureOr<SmallVector<Value>> v = evalBody(b, init, at, DenseMap<Value, Value>(), {});
      if (failed(v)) return failure();
      acc.push_back((*v)[0]);
      continue;
    }
    for (OpOperand *o : outs) {
      bool read = !op.getMatchingBlockArgument(o).use_empty() || !red.empty();
      acc.push_back(read ? load(b, map.lookup(o->get()), indicesOf(b, op.getMatchingIndexingMap(o), pt),
                                op.getMatchingBlockArgument(o).getType())
                         : Value());
    }
  }

  // Reduction loops, outermost first, carrying the accumulators of every point.
  size_t nOuts = outs.size();
  std::function<FailureOr<SmallVector<Value>>(OpBuilder &, unsigned, ValueRange)> loops =
      [&](OpBuilder &ob, unsigned level, ValueRange current) -> FailureOr<SmallVector<Value>> {
    if (level == red.size()) {
      SmallVector<Value> next;
      for (auto [i, pt] : llvm::enumerate(points)) {
        FailureOr<SmallVector<Value>> y = evalBody(ob, op, pt, DenseMap<Value, Value>(),
                                                   SmallVector<Value>(current.slice(i * nOuts, nOuts)));
        if (failed(y)) return failure();
        next.append(*y);
      }
      return next;
    }
    unsigned d = red[level];
    auto lb = arith::ConstantIndexOp::create(ob, loc, 0), ub = arith::ConstantIndexOp::create(ob, loc, ranges[d]),
         one = arith::ConstantIndexOp::create(ob, loc, 1);
    auto loop = scf::ForOp::create(ob, loc, lb, ub, one, current);
    OpBuilder lbld = OpBuilder::atBlockBegin(loop.getBody());
    for (SmallVector<Value> &pt : points) pt[d] = loop.getInductionVar();
    FailureOr<SmallVector<Value>> inner = loops(lbld, level + 1, loop.getRegionIterArgs());
    if (failed(inner)) return failure();
    scf::YieldOp::create(lbld, loc, *inner);
    return SmallVector<Value>(loop.getResults());
  };
  FailureOr<SmallVector<Value>> results = failure();
  if (!tiled) {
    results = loops(b, 0, acc);
  } else {
    // k in steps of kTile: each invocation stages one element of A's and of B's tile
    // (zero past the end of k), then all multiply out of workgroup memory.
    // k is the k dimensions flattened (a convolution's kh, kw, c), the last fastest.
    int64_t K = 1;
    for (unsigned d : tiled->k) K *= ranges[d];
    // Workgroup memory: allocations in the Workgroup storage class become SPIR-V
    // workgroup variables.
    auto wgSpace = spirv::StorageClassAttr::get(ctx, spirv::StorageClass::Workgroup);
    SmallVector<Value> tiles;
    OpBuilder atStart = OpBuilder::atBlockBegin(&entryBlock);
    for (OpOperand *in : op.getDpsInputOperands())
      tiles.push_back(memref::AllocOp::create(
          atStart, loc, MemRefType::get({kTile, kTile}, widen(cast<MemRefType>(in->get().getType()).getElementType()),
                                      MemRefLayoutAttrInterface(), wgSpace)));
    auto steps = scf::ForOp::create(b, loc, cst(0), cst((K + kTile - 1) / kTile), cst(1), ValueRange(acc));
    {
      OpBuilder sb = OpBuilder::atBlockBegin(steps.getBody());
      auto sc = [&](int64_t v) { return arith::ConstantIndexOp::create(sb, loc, v).getResult(); };
      Value k0 = arith::MulIOp::create(sb, loc, steps.getInductionVar(), sc(kTile));
      for (auto [t, in] : llvm::enumerate(op.getDpsInputOperands())) {
        // A (input 0: rows) is staged [row][k], B (input 1: columns) [k][col].
        bool isA = t == 0;
        Value kk = arith::AddIOp::create(sb, loc, k0, isA ? tx : ty);
        SmallVector<Value> at = ivs;
        split(sb, arith::MinUIOp::create(sb, loc, kk, sc(K - 1)), tiled->k, extent, at);
        Type elem = cast<MemRefType>(tiles[t].getType()).getElementType();
        Value v = memref::LoadOp::create(sb, loc, map.lookup(in->get()), indicesOf(sb, op.getMatchingIndexingMap(in), at));
        Value zero = arith::ConstantOp::create(sb, loc, elem, sb.getZeroAttr(elem));
        Value ok = arith::CmpIOp::create(sb, loc, arith::CmpIPredicate::ult, kk, sc(K));
        memref::StoreOp::create(sb, loc, arith::SelectOp::create(sb, loc, ok, v, zero), tiles[t], ValueRange{ty, tx});
      }
      gpu::BarrierOp::create(sb, loc);
      auto inner = scf::ForOp::create(sb, loc, sc(0), sc(kTile), sc(1), steps.getRegionIterArgs());
      OpBuilder ib = OpBuilder::atBlockBegin(inner.getBody());
      Value j = inner.getInductionVar();
      DenseMap<Value, Value> given;
      for (auto [t, in] : llvm::enumerate(op.getDpsInputOperands())) {
        Value v = memref::LoadOp::create(ib, loc, tiles[t], t == 0 ? ValueRange{ty, j} : ValueRange{j, tx});
        Type want = op.getMatchingBlockArgument(in).getType();
        given[in->get()] = v.getType() == want ? v : arith::TruncIOp::create(ib, loc, want, v).getResult();
      }
      FailureOr<SmallVector<Value>> step = evalBody(ib, op, ivs, given, SmallVector<Value>(inner.getRegionIterArgs()));
      if (failed(step)) return failure();
      scf::YieldOp::create(ib, loc, *step);
      sb.setInsertionPointAfter(inner);
      gpu::BarrierOp::create(sb, loc);
      scf::YieldOp::create(sb, loc, inner.getResults());
    }
    results = SmallVector<Value>(steps.getResults());
    // Only invocations inside the output store.
    auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
    b.setInsertionPointToStart(guard.thenBlock());
  }
  if (failed(results)) return failure();
  for (SmallVector<Value> &pt : points)
    for (unsigned d : red) pt[d] = cst(0);
  for (auto [i, pt] : llvm::enumerate(points)) {
    ArrayRef<Value> mine = ArrayRef<Value>(*results).slice(i * nOuts, nOuts);
    if (epilogues.empty()) {
      for (auto [k, o] : llvm::enumerate(outs))
        store(b, mine[k], map.lookup(o->get()), indicesOf(b, op.getMatchingIndexingMap(o), pt));
      continue;
    }
    // The epilogues run on the value in the register, at the output's point; each
    // buffer in the chain is written once, with its final value.
    SmallVector<Value> at = indicesOf(b, op.getMatchingIndexingMap(outs[0]), pt);
    Value v = mine[0], buffer = outs[0]->get();
    for (linalg::LinalgOp e : epilogues) {
      if (outputOf(e) != buffer) store(b, v, map.lookup(buffer), at);
      Value outArg = outputOf(e) == buffer ? v : Value();
      if (!outArg && !e.getMatchingBlockArgument(e.getDpsInitOperand(0)).use_empty())
        outArg = load(b, map.lookup(outputOf(e)), at, e.getMatchingBlockArgument(e.getDpsInitOperand(0)).getType());
      DenseMap<Value, Value> given{{buffer, v}};
      FailureOr<SmallVector<Value>> y = evalBody(b, e, at, given, {outArg});
      if (failed(y)) return failure();
      v = (*y)[0];
      buffer = outputOf(e);
    }
    store(b, v, map.lookup(buffer), at);
  }

  // The launch in place of the ops.
  auto hc = [&](int64_t v) { return arith::ConstantIndexOp::create(hb, loc, v).getResult(); };
  gpu::LaunchFuncOp::create(hb, loc, fn, gpu::KernelDim3{hc(gx), hc(gy), hc(gz)},
                            gpu::KernelDim3{hc(wgSize[0]), hc(wgSize[1]), hc(1)}, Value(), launchArgs);
  for (linalg::LinalgOp e : epilogues) e->erase();
  if (init) init->erase();
  op->erase();
  return success();
}

/// A 1x1, stride-1 float convolution (NHWC input; FHWC or HWCF filter) is a matmul:
/// rewrite it as the contraction generic out[n,h,w,f] += in[n,h,w,c] * filter[c,f] (or
/// filter[f,c]), which the tiled kernel runs (the m dimensions n, h, w flattened into rows).
void rewritePointwiseConvs(func::FuncOp func) {
  SmallVector<linalg::LinalgOp> convs;
  func.walk([&](Operation *op) {
    if (isa<linalg::Conv2DNhwcFhwcOp, linalg::Conv2DNhwcHwcfOp>(op)) convs.push_back(cast<linalg::LinalgOp>(op));
  });
  for (linalg::LinalgOp conv : convs) {
    bool fhwc = isa<linalg::Conv2DNhwcFhwcOp>(conv);
    Value in = conv.getDpsInputOperand(0)->get(), w = conv.getDpsInputOperand(1)->get(),
          out = conv.getDpsInitOperand(0)->get();
    auto inT = dyn_cast<MemRefType>(in.getType()), wT = dyn_cast<MemRefType>(w.getType()),
         outT = dyn_cast<MemRefType>(out.getType());
    if (!inT || !wT || !outT || !wT.hasStaticShape() || !wT.getLayout().isIdentity() ||
        wT.getDimSize(fhwc ? 1 : 0) != 1 || wT.getDimSize(fhwc ? 2 : 1) != 1 || !inT.getElementType().isF32() ||
        !wT.getElementType().isF32() || !outT.getElementType().isF32())
      continue;
    auto strides = conv->getAttrOfType<DenseIntElementsAttr>("strides"),
         dilations = conv->getAttrOfType<DenseIntElementsAttr>("dilations");
    auto ones = [](DenseIntElementsAttr a) {
      return !a || llvm::all_of(a.getValues<int64_t>(), [](int64_t v) { return v == 1; });
    };
    if (!ones(strides) || !ones(dilations)) continue;
    OpBuilder b(conv);
    Location loc = conv.getLoc();
    // [F,1,1,C] -> [F,C]; [1,1,C,F] -> [C,F]
    SmallVector<ReassociationIndices> reassoc{{0, 1, 2}, {3}};
    Value w2 = memref::CollapseShapeOp::create(b, loc, w, reassoc);
    MLIRContext *ctx = b.getContext();
    auto d = [&](unsigned i) { return getAffineDimExpr(i, ctx); };
    AffineMap filterMap = fhwc ? AffineMap::get(5, 0, {d(3), d(4)}, ctx) : AffineMap::get(5, 0, {d(4), d(3)}, ctx);
    SmallVector<AffineMap> maps{AffineMap::get(5, 0, {d(0), d(1), d(2), d(4)}, ctx), filterMap,
                                AffineMap::get(5, 0, {d(0), d(1), d(2), d(3)}, ctx)};
    SmallVector<utils::IteratorType> iters(4, utils::IteratorType::parallel);
    iters.push_back(utils::IteratorType::reduction);
    linalg::GenericOp::create(b, loc, ValueRange{in, w2}, ValueRange{out}, maps, iters,
                              [&](OpBuilder &nb, Location l, ValueRange args) {
                                Value p = arith::MulFOp::create(nb, l, args[0], args[1]);
                                linalg::YieldOp::create(nb, l, ValueRange{arith::AddFOp::create(nb, l, args[2], p)});
                              });
    conv->erase();
  }
}

struct OutlineDispatchesPass : impl::KilnGpuOutlineDispatchesBase<OutlineDispatchesPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    func::FuncOp func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    MLIRContext *ctx = module.getContext();
    if (!module->hasAttr(spirv::getTargetEnvAttrName()))
      module->setAttr(spirv::getTargetEnvAttrName(), parseAttribute(kTargetEnv, ctx));
    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(), UnitAttr::get(ctx));
    OpBuilder mb = OpBuilder::atBlockEnd(module.getBody());
    auto kernels = gpu::GPUModuleOp::create(mb, module.getLoc(), "kiln_kernels");

    if (!func.getBody().hasOneBlock()) {
      func.emitError() << "has control flow; the vulkan target compiles straight-line models only";
      return signalPassFailure();
    }
    // memref.copy is a linalg.copy for this purpose.
    for (auto copy : llvm::to_vector(func.getOps<memref::CopyOp>())) {
      OpBuilder b(copy);
      linalg::CopyOp::create(b, copy.getLoc(), copy.getSource(), copy.getTarget());
      copy.erase();
    }
    Outliner outliner(module, kernels, workgroupSize, tile);
    bool ok = true;
    if (tile) rewritePointwiseConvs(func);
    SmallVector<linalg::LinalgOp> compute;
    for (Operation &op : func.getBody().front()) {
      if (auto l = dyn_cast<linalg::LinalgOp>(op)) {
        compute.push_back(l);
        continue;
      }
      if (isViewLike(&op) || isa<memref::ViewOp, memref::GetGlobalOp, func::ReturnOp>(op) ||
          op.hasTrait<OpTrait::ConstantLike>())
        continue;
      op.emitError() << "'" << op.getName() << "' is not supported by the vulkan target";
      ok = false;
    }
    // Groups of consecutive compute ops that run as one kernel: an op that initialises
    // the next one's accumulator, the op, and elementwise ops on its result.
    unsigned index = 0;
    for (size_t k = 0; k < compute.size();) {
      linalg::LinalgOp init;
      if (fuse && k + 1 < compute.size() && outliner.foldsAsInit(compute[k], compute[k + 1])) init = compute[k++];
      linalg::LinalgOp op = compute[k++];
      SmallVector<linalg::LinalgOp> epilogues;
      linalg::LinalgOp producer = op;
      while (fuse && k < compute.size() && outliner.foldsAsEpilogue(producer, compute[k]))
        producer = epilogues.emplace_back(compute[k++]);
      if (failed(outliner.outline(op, init, epilogues, index++))) ok = false;
    }
    if (!ok) signalPassFailure();
  }
};

} // namespace
} // namespace kiln
