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

std::pair<int64_t, int64_t> samePads(int64_t in, int64_t stride, int64_t eff, bool upper) {
  int64_t out = (in + stride - 1) / stride;
  int64_t total = std::max<int64_t>((out - 1) * stride + eff - in, 0);
  int64_t begin = upper ? total / 2 : total - total / 2;
  return {begin, total - begin};
}

} // namespace kiln::onnx_frontend
