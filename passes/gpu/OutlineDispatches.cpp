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
  Outliner(ModuleOp module, gpu::GPUModuleOp kernels, int64_t workgroupSize)
      : module(module), kernels(kernels), wg(workgroupSize) {}

  LogicalResult outline(linalg::LinalgOp op, unsigned index);

private:
  /// The root buffer under `v` and the view ops between them (root first).
  LogicalResult trace(Operation *user, Value v, Value &root, SmallVectorImpl<Operation *> &chain);
  /// `v` inside the kernel: mapped already, or a constant cloned at the kernel's entry.
  FailureOr<Value> inKernel(Value v, OpBuilder &entry, IRMapping &map, Operation *user);

  ModuleOp module;
  gpu::GPUModuleOp kernels;
  int64_t wg;
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

LogicalResult Outliner::outline(linalg::LinalgOp op, unsigned index) {
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
  int64_t total = 1;
  for (unsigned d : par) total *= ranges[d];
  for (unsigned d : red)
    if (ranges[d] == 0) return op->emitError() << "has an empty reduction";
  if (total <= 0) return op->emitError() << "has an empty iteration space";
  if (total > (int64_t(1) << 31) - 1) return op->emitError() << "has more than 2^31 parallel points";

  // Operands the kernel reads or writes, their roots, and the view ops to clone.
  SmallVector<Value> roots;
  SetVector<Operation *> chainOps;
  auto addOperand = [&](Value v) -> LogicalResult {
    Value root;
    SmallVector<Operation *> chain;
    if (failed(trace(op, v, root, chain))) return failure();
    if (!llvm::is_contained(roots, root)) roots.push_back(root);
    for (Operation *c : chain) chainOps.insert(c);
    return success();
  };
  for (OpOperand *in : op.getDpsInputOperands()) {
    if (!isa<MemRefType>(in->get().getType())) continue;
    if (op.getMatchingBlockArgument(in).use_empty()) continue;
    if (failed(addOperand(in->get()))) return failure();
  }
  // Buffers the body reads directly (a gather's table).
  SetVector<Value> captured;
  getUsedValuesDefinedAbove(op->getRegion(0), captured);
  for (Value v : captured)
    if (isa<MemRefType>(v.getType()) && failed(addOperand(v))) return failure();
  for (OpOperand &out : op.getDpsInitsMutable()) {
    if (!isa<MemRefType>(out.get().getType()))
      return op->emitError() << "has a tensor output; the vulkan target needs bufferized ops";
    for (unsigned d : red)
      if (op.getMatchingIndexingMap(&out).isFunctionOfDim(d))
        return op->emitError() << "indexes its output with a reduction dimension";
    if (failed(addOperand(out.get()))) return failure();
  }

  // Booleans live in memory as bytes (kiln-plan-arena byte-bools): the kernel sees i8
  // buffers and converts at each load and store.
  Type i8 = IntegerType::get(ctx, 8);
  auto widen = [&](Type t) -> Type {
    auto m = dyn_cast<MemRefType>(t);
    return m && m.getElementType().isInteger(1) ? Type(MemRefType::Builder(m).setElementType(i8)) : t;
  };
  OpBuilder hb(op);
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
  fn->setAttr(spirv::getEntryPointABIAttrName(), spirv::getEntryPointABIAttr(ctx, {int32_t(wg), 1, 1}));
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

  // Launch shape: 1-D, or 2-D past the 65535-workgroup limit of a dimension.
  int64_t groups = (total + wg - 1) / wg;
  int64_t gx = std::min<int64_t>(groups, 65535), gy = (groups + gx - 1) / gx;
  auto cst = [&](int64_t v) { return arith::ConstantIndexOp::create(b, loc, v).getResult(); };
  Value id = gpu::GlobalIdOp::create(b, loc, gpu::Dimension::x);
  if (gy > 1) {
    Value y = gpu::GlobalIdOp::create(b, loc, gpu::Dimension::y);
    id = arith::AddIOp::create(b, loc, id, arith::MulIOp::create(b, loc, y, cst(gx * wg)));
  }
  Value inRange = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, id, cst(total));
  auto guard = scf::IfOp::create(b, loc, inRange, /*withElseRegion=*/false);
  gpu::ReturnOp::create(b, loc);
  b.setInsertionPointToStart(guard.thenBlock());

  // Parallel indices, the last dimension fastest.
  SmallVector<Value> ivs(iters.size());
  Value rest = id;
  for (unsigned d : llvm::reverse(par)) {
    if (ranges[d] == 1) {
      ivs[d] = cst(0);
      continue;
    }
    ivs[d] = arith::RemUIOp::create(b, loc, rest, cst(ranges[d]));
    rest = arith::DivUIOp::create(b, loc, rest, cst(ranges[d]));
  }

  auto indicesOf = [&](OpBuilder &ob, AffineMap m) {
    SmallVector<Value> idx;
    for (AffineExpr e : m.getResults()) {
      if (auto dim = dyn_cast<AffineDimExpr>(e)) {
        idx.push_back(ivs[dim.getPosition()]);
        continue;
      }
      idx.push_back(affine::AffineApplyOp::create(ob, loc, AffineMap::get(m.getNumDims(), 0, e), ivs));
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

  // Accumulators: the outputs' current values, loaded once when the body reads them.
  SmallVector<OpOperand *> outs;
  for (OpOperand &o : op.getDpsInitsMutable()) outs.push_back(&o);
  for (unsigned d : red) ivs[d] = cst(0); // the outputs do not depend on them
  SmallVector<Value> acc;
  for (OpOperand *o : outs) {
    bool read = !op.getMatchingBlockArgument(o).use_empty() || !red.empty();
    acc.push_back(read ? load(b, map.lookup(o->get()), indicesOf(b, op.getMatchingIndexingMap(o)),
                              op.getMatchingBlockArgument(o).getType())
                       : Value());
  }

  // The body at the current indices; returns the yielded values.
  auto emitBody = [&](OpBuilder &ob, ValueRange current) -> FailureOr<SmallVector<Value>> {
    IRMapping bmap = map;
    for (OpOperand &in : op->getOpOperands()) {
      if (op.isDpsInit(&in)) continue;
      BlockArgument arg = op.getMatchingBlockArgument(&in);
      if (arg.use_empty()) continue;
      if (!isa<MemRefType>(in.get().getType())) {
        FailureOr<Value> s = inKernel(in.get(), entry, bmap, op);
        if (failed(s)) return failure();
        bmap.map(arg, *s);
        continue;
      }
      bmap.map(arg, load(ob, map.lookup(in.get()), indicesOf(ob, op.getMatchingIndexingMap(&in)), arg.getType()));
    }
    for (auto [k, o] : llvm::enumerate(outs))
      if (current[k]) bmap.map(op.getMatchingBlockArgument(o), current[k]);
    for (Operation &inner : body->without_terminator()) {
      if (auto ix = dyn_cast<linalg::IndexOp>(inner)) {
        bmap.map(ix.getResult(), ivs[ix.getDim()]);
        continue;
      }
      ob.clone(inner, bmap);
    }
    SmallVector<Value> yielded;
    for (Value y : body->getTerminator()->getOperands()) yielded.push_back(bmap.lookupOrDefault(y));
    return yielded;
  };

  // Reduction loops, outermost first, carrying the accumulators.
  std::function<FailureOr<SmallVector<Value>>(OpBuilder &, unsigned, ValueRange)> loops =
      [&](OpBuilder &ob, unsigned level, ValueRange current) -> FailureOr<SmallVector<Value>> {
    if (level == red.size()) return emitBody(ob, current);
    unsigned d = red[level];
    auto lb = arith::ConstantIndexOp::create(ob, loc, 0), ub = arith::ConstantIndexOp::create(ob, loc, ranges[d]),
         one = arith::ConstantIndexOp::create(ob, loc, 1);
    auto loop = scf::ForOp::create(ob, loc, lb, ub, one, current);
    OpBuilder lbld = OpBuilder::atBlockBegin(loop.getBody());
    ivs[d] = loop.getInductionVar();
    FailureOr<SmallVector<Value>> inner = loops(lbld, level + 1, loop.getRegionIterArgs());
    if (failed(inner)) return failure();
    scf::YieldOp::create(lbld, loc, *inner);
    return SmallVector<Value>(loop.getResults());
  };
  FailureOr<SmallVector<Value>> results = loops(b, 0, acc);
  if (failed(results)) return failure();
  for (unsigned d : red) ivs[d] = cst(0);
  for (auto [k, o] : llvm::enumerate(outs))
    store(b, (*results)[k], map.lookup(o->get()), indicesOf(b, op.getMatchingIndexingMap(o)));

  // The launch in place of the op.
  auto hc = [&](int64_t v) { return arith::ConstantIndexOp::create(hb, loc, v).getResult(); };
  gpu::LaunchFuncOp::create(hb, loc, fn, gpu::KernelDim3{hc(gx), hc(gy), hc(1)}, gpu::KernelDim3{hc(wg), hc(1), hc(1)},
                            Value(), launchArgs);
  op->erase();
  return success();
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
    Outliner outliner(module, kernels, workgroupSize);
    unsigned index = 0;
    bool ok = true;
    for (Operation &op : llvm::make_early_inc_range(func.getBody().front())) {
      if (auto l = dyn_cast<linalg::LinalgOp>(op)) {
        if (failed(outliner.outline(l, index++))) ok = false;
        continue;
      }
      if (isViewLike(&op) || isa<memref::ViewOp, memref::GetGlobalOp, func::ReturnOp>(op) ||
          op.hasTrait<OpTrait::ConstantLike>())
        continue;
      op.emitError() << "'" << op.getName() << "' is not supported by the vulkan target";
      ok = false;
    }
    if (!ok) signalPassFailure();
  }
};

} // namespace
} // namespace kiln
