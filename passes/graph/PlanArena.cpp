//===- PlanArena.cpp - Static memory plan for intermediate buffers ----------===//
#include "passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"

namespace kiln {
#define GEN_PASS_DEF_KILNPLANARENA
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {

struct Buffer {
  memref::AllocOp alloc;
  int64_t bytes, begin, end, offset = -1;
};

struct PlanArenaPass : impl::KilnPlanArenaBase<PlanArenaPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    if (alignment <= 0 || (alignment & (alignment - 1))) {
      module.emitError() << "alignment must be a power of two, got " << static_cast<int64_t>(alignment);
      return signalPassFailure();
    }
    Block &body = func.getBody().front();
    llvm::DenseMap<Operation *, int64_t> position;
    int64_t pos = 0;
    for (Operation &op : body) position[&op] = pos++;

    std::vector<Buffer> buffers;
    for (Operation &op : body) {
      auto alloc = dyn_cast<memref::AllocOp>(op);
      if (!alloc) continue;
      MemRefType type = alloc.getType();
      if (!type.hasStaticShape() || !type.getLayout().isIdentity() || !type.getElementType().isIntOrFloat() ||
          (type.getElementType().getIntOrFloatBitWidth() % 8 && !byteBools))
        continue;
      int64_t bytes = type.getNumElements() * ((type.getElementType().getIntOrFloatBitWidth() + 7) / 8);
      // Live until the last use of the buffer or of anything aliasing it.
      int64_t end = position[alloc];
      SmallVector<Value> work{alloc.getResult()};
      while (!work.empty()) {
        Value v = work.pop_back_val();
        for (Operation *user : v.getUsers()) {
          Operation *top = body.findAncestorOpInBlock(*user);
          if (top) end = std::max(end, position[top]);
          // Views alias the buffer; so do raw pointers taken from it for a kernel call.
          bool pointerChain = isa<memref::ExtractAlignedPointerAsIndexOp, arith::IndexCastOp, LLVM::IntToPtrOp>(user);
          for (Value r : user->getResults())
            if (isa<MemRefType>(r.getType()) || pointerChain) work.push_back(r);
        }
      }
      buffers.push_back({alloc, std::max<int64_t>(bytes, 1), position[alloc], end});
    }

    // First fit in program order against every placed buffer whose range overlaps.
    int64_t arenaSize = 0;
    for (size_t k = 0; k < buffers.size(); ++k) {
      Buffer &cur = buffers[k];
      int64_t off = 0;
      if (!reuse) {
        off = arenaSize;
      } else {
        std::vector<std::pair<int64_t, int64_t>> busy;
        for (size_t j = 0; j < k; ++j)
          if (buffers[j].begin <= cur.end && cur.begin <= buffers[j].end)
            busy.push_back({buffers[j].offset, buffers[j].offset + buffers[j].bytes});
        std::sort(busy.begin(), busy.end());
        for (auto [lo, hi] : busy) {
          if (off + cur.bytes <= lo) break;
          off = std::max(off, (hi + alignment - 1) / alignment * alignment);
        }
      }
      cur.offset = off;
      arenaSize = std::max(arenaSize, (off + cur.bytes + alignment - 1) / alignment * alignment);
    }

    OpBuilder b(module.getContext());
    module->setAttr(kArenaSizeAttr, b.getI64IntegerAttr(arenaSize));
    module->setAttr(kArenaAlignAttr, b.getI64IntegerAttr(alignment));
    if (arenaSize == 0) return;

    // The arena goes after the weights argument when there is one.
    unsigned index = 0;
    if (func.getNumArguments() > 0) {
      auto role = func.getArgAttrOfType<StringAttr>(0, kRoleAttr);
      if (role && role.getValue() == "weights") index = 1;
    }
    auto arenaType = MemRefType::get({arenaSize}, b.getIntegerType(8));
    auto role = b.getDictionaryAttr(b.getNamedAttr(kRoleAttr, b.getStringAttr("arena")));
    if (failed(func.insertArgument(index, arenaType, role, func.getLoc()))) {
      func.emitError() << "cannot add the arena argument";
      return signalPassFailure();
    }
    Value arena = func.getArgument(index);
    for (Buffer &buf : buffers) {
      b.setInsertionPoint(buf.alloc);
      Value off = arith::ConstantIndexOp::create(b, buf.alloc.getLoc(), buf.offset);
      Value view = memref::ViewOp::create(b, buf.alloc.getLoc(), buf.alloc.getType(), arena, off, ValueRange{});
      // Deallocations of planned buffers disappear with them.
      for (Operation *user : llvm::make_early_inc_range(buf.alloc->getUsers()))
        if (isa<memref::DeallocOp>(user)) user->erase();
      buf.alloc.replaceAllUsesWith(view);
      buf.alloc.erase();
    }
  }
};

} // namespace
} // namespace kiln
