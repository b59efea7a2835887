//===- OpTable.cpp - The table of supported ONNX ops ------------------------===//
#include "frontend/onnx/ImportContext.h"

namespace kiln::onnx_frontend {

static const OpTableEntry kOpTable[] = {
#define KILN_OP(opType, lo, hi, name) {opType, lo, hi, &import##name},
#include "frontend/onnx/OpList.def"
#undef KILN_OP
};

llvm::ArrayRef<OpTableEntry> opTable() { return kOpTable; }

const OpTableEntry *lookupOp(llvm::StringRef opType, int64_t opset) {
  for (const OpTableEntry &e : kOpTable)
    if (opType == e.opType && opset >= e.minOpset && opset <= e.maxOpset)
      return &e;
  return nullptr;
}

std::optional<int64_t> normalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1)) return std::nullopt;
  return axis < 0 ? axis + rank : axis;
}

} // namespace kiln::onnx_frontend
