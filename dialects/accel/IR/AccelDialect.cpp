//===- AccelDialect.cpp - The accel dialect: instruction ops and their checks ===//
#include "dialects/accel/IR/AccelDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/OpImplementation.h"

#include <cmath>

using namespace mlir;

#include "dialects/accel/IR/AccelOpsDialect.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/accel/IR/AccelOps.cpp.inc"

namespace kiln::accel {

void AccelDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/accel/IR/AccelOps.cpp.inc"
      >();
}

/// Every integer attribute of an instruction is an unsigned 32-bit register value,
/// except the signed ones named in `signedNames`.
static LogicalResult checkRegisters(Operation *op, std::initializer_list<llvm::StringRef> signedNames = {}) {
  for (NamedAttribute a : op->getAttrs()) {
    auto i = dyn_cast<IntegerAttr>(a.getValue());
    if (!i || isa<BoolAttr>(a.getValue())) continue;
    int64_t v = i.getInt();
    bool isSigned = llvm::is_contained(signedNames, a.getName().strref());
    if (isSigned ? (v < INT32_MIN || v > INT32_MAX) : (v < 0 || v > int64_t(UINT32_MAX)))
      return op->emitOpError() << "'" << a.getName().strref() << "' = " << v << " does not fit a "
                               << (isSigned ? "signed" : "unsigned") << " 32-bit register";
  }
  return success();
}

LogicalResult LoadOp::verify() {
  llvm::StringRef b = getBuf();
  if (b != "w" && b != "i" && b != "p" && b != "a") return emitOpError("buf must be w, i, p or a");
  return checkRegisters(*this);
}
LogicalResult LoadWinOp::verify() {
  if (getKh() < 1 || getKw() < 1 || getC() < 1 || getOw() < 1 || getStride() < 1)
    return emitOpError("kh, kw, c, ow and stride must be positive");
  if (getOx0() >= getOw()) return emitOpError("ox0 must be below ow");
  return checkRegisters(*this, {"pad_t", "pad_l"});
}
LogicalResult GemmOp::verify() { return checkRegisters(*this); }
LogicalResult RequantOp::verify() {
  if (getLo() > getHi()) return emitOpError("lo must not exceed hi");
  return checkRegisters(*this, {"zp", "lo", "hi"});
}
LogicalResult PoolOp::verify() {
  if (getWin() < 1) return emitOpError("win must be positive");
  return checkRegisters(*this);
}
LogicalResult StoreOp::verify() { return checkRegisters(*this); }
LogicalResult RebuildOp::verify() {
  if (getBits() < 1 || getBits() > 4) return emitOpError("bits must be 1..4");
  if (getGroup() < 1 || getGroup() > 0xFFFF) return emitOpError("group must be 1..65535");
  if (getK() < 3 || getK() % 3) return emitOpError("k must be a positive multiple of 3");
  return checkRegisters(*this);
}

LogicalResult DataOp::verify() {
  auto t = dyn_cast<ShapedType>(getBytes().getType());
  if (!t || t.getRank() != 1 || !t.getElementType().isInteger(8)) return emitOpError("bytes must be a 1-D i8 array");
  if (getAddr() < 0 || getAddr() + t.getNumElements() > (int64_t(1) << 32))
    return emitOpError("data does not fit 32-bit device memory");
  return success();
}
/// `perm` is a permutation of 0..rank-1.
static LogicalResult checkPerm(Operation *op, llvm::ArrayRef<int64_t> perm, size_t rank) {
  std::vector<bool> seen(rank, false);
  if (perm.size() != rank) return op->emitOpError("perm must have one entry per dimension");
  for (int64_t p : perm) {
    if (p < 0 || p >= int64_t(rank) || seen[size_t(p)]) return op->emitOpError("perm must be a permutation");
    seen[size_t(p)] = true;
  }
  return success();
}

LogicalResult InputOp::verify() {
  if (failed(checkPerm(*this, getPerm(), getDims().size()))) return failure();
  if (!(getScale().convertToFloat() > 0) || !std::isfinite(getScale().convertToFloat()) || getZeroPoint() < 0 ||
      getZeroPoint() > 255)
    return emitOpError("needs a finite scale > 0 and a zero point in [0, 255]");
  return success();
}
LogicalResult OutputOp::verify() {
  auto dims = getDims();
  if (dims.empty() || failed(checkPerm(*this, getPerm(), dims.size()))) return failure();
  // Scales run along the stored tensor's last dimension: dims[k] with perm[k] = rank - 1.
  int64_t last = dims.back();
  for (size_t k = 0; k < dims.size(); ++k)
    if (getPerm()[k] == int64_t(dims.size()) - 1) last = dims[k];
  if (int64_t(getScales().size()) != last)
    return emitOpError("needs one scale per element of the stored tensor's last dimension");
  return success();
}

} // namespace kiln::accel
