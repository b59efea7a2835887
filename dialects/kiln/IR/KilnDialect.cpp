//===- KilnDialect.cpp - The kiln dialect: compressed weights, verifiers ----===//
#include "dialects/kiln/IR/KilnDialect.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/MathExtras.h"

#include <cmath>
#include <string>

using namespace mlir;

#include "dialects/kiln/IR/KilnOpsDialect.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/kiln/IR/KilnOps.cpp.inc"

namespace kiln {

void KilnDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/kiln/IR/KilnOps.cpp.inc"
      >();
}

/// `kiln.quant` ({bits, scale, zero_point}, kiln-quantize) is checked where it stands;
/// Kiln's other discardable attributes (roles, indices for observers) are free-form.
LogicalResult KilnDialect::verifyOperationAttribute(Operation *op, NamedAttribute attr) {
  if (attr.getName().strref() != "kiln.quant") return success();
  auto dict = dyn_cast<DictionaryAttr>(attr.getValue());
  if (!dict) return op->emitOpError("'kiln.quant' must be a dictionary");
  auto bits = dict.getAs<IntegerAttr>("bits");
  if (!bits || (bits.getInt() != 4 && bits.getInt() != 8 && bits.getInt() != 16))
    return op->emitOpError("'kiln.quant' needs bits = 4, 8 or 16");
  if (bits.getInt() == 16) return success();
  auto scale = dict.getAs<FloatAttr>("scale");
  auto zp = dict.getAs<IntegerAttr>("zero_point");
  if (!scale || !(scale.getValueAsDouble() > 0) || !std::isfinite(scale.getValueAsDouble()))
    return op->emitOpError("'kiln.quant' needs a finite scale > 0");
  if (!zp || zp.getInt() < 0 || zp.getInt() > 255)
    return op->emitOpError("'kiln.quant' needs a zero_point in [0, 255]");
  return success();
}

std::string checkNMIndices(const int8_t *indices, int64_t rows, int64_t k, int64_t n, int64_t m) {
  int64_t groups = (k + m - 1) / m;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t j = 0, prev = -1; j < n; ++j) {
        int64_t i = indices[(r * groups + g) * n + j];
        if (i <= prev || i >= m)
          return "row " + std::to_string(r) + ", group " + std::to_string(g) + ": index " + std::to_string(i) +
                 (i >= m ? " is outside the group (m = " + std::to_string(m) + ")" : " does not increase");
        prev = i;
      }
  return "";
}

/// Rows and reduction length of a compressed op's dense result: rows first (a filter) or
/// last (a matmul's right operand).
static std::pair<int64_t, int64_t> rowsAndReduction(MemRefType result, bool rowsLast) {
  int64_t rows = rowsLast ? result.getShape().back() : result.getShape().front();
  return {rows, rows ? result.getNumElements() / rows : 0};
}

int64_t NMWeightsOp::getRows() { return rowsAndReduction(getType(), getRowsLast()).first; }
int64_t NMWeightsOp::getReduction() { return rowsAndReduction(getType(), getRowsLast()).second; }

std::optional<ArrayRef<char>> constantBytes(Operation *from, Value v) {
  auto get = v.getDefiningOp<memref::GetGlobalOp>();
  if (!get) return std::nullopt;
  auto global = SymbolTable::lookupNearestSymbolFrom<memref::GlobalOp>(from, get.getNameAttr());
  if (!global || !global.getConstant() || !global.getInitialValue()) return std::nullopt;
  if (auto r = dyn_cast<DenseResourceElementsAttr>(*global.getInitialValue()))
    if (AsmResourceBlob *blob = r.getRawHandle().getBlob()) return blob->getData();
  if (auto d = dyn_cast<DenseElementsAttr>(*global.getInitialValue()))
    return d.getRawData(); // one element when a splat

  return std::nullopt;
}

LogicalResult NMWeightsOp::verify() {
  int64_t n = getN(), m = getM();
  if (n >= m) return emitOpError("keeps n = ") << n << " of every m = " << m << ": n must be less than m";
  auto result = getResult().getType();
  if (result.getRank() < 2) return emitOpError("result must have rank 2 or more, got ") << result.getRank();
  if (!result.getElementType().isF32()) return emitOpError("result must be f32");
  int64_t rows = getRows(), k = getReduction();
  int64_t groups = (k + m - 1) / m;
  auto vt = getValues().getType(), it = getIndices().getType();
  if (!vt.hasStaticShape() || !it.hasStaticShape())
    return emitOpError("values and indices must have static shapes");
  if (vt.getShape() != it.getShape())
    return emitOpError("values ") << vt << " and indices " << it << " must have the same shape";
  if (vt.getDimSize(0) != rows || vt.getDimSize(1) != groups * n)
    return emitOpError("values must be ") << rows << "x" << groups * n << " (" << rows << " rows, ceil(" << k << " / "
                                          << m << ") groups of " << n << "), got " << vt;
  if (auto bytes = constantBytes(*this, getIndices()); bytes && int64_t(bytes->size()) == rows * groups * n) {
    std::string why = checkNMIndices(reinterpret_cast<const int8_t *>(bytes->data()), rows, k, n, m);
    if (!why.empty()) return emitOpError("indices: ") << why;
  }
  return success();
}

std::string checkSmartDeal(int64_t rows, int64_t positions, int64_t exponentBits, ArrayRef<uint64_t> mask,
                           ArrayRef<uint32_t> rowStart, int64_t codesBytes, ArrayRef<uint16_t> bases) {
  const int64_t bits = rows * positions;
  if (!mask.empty() && bits % 64 && mask.back() >> (bits % 64))
    return "mask has bits set past the " + std::to_string(bits) + " chunks";
  if (!rowStart.empty()) {
    if (rowStart[0] != 0) return "row_start[0] is " + std::to_string(rowStart[0]) + ", not 0";
    for (int64_t o = 0; o < rows && !mask.empty(); ++o) {
      int64_t kept = 0;
      for (int64_t p = o * positions; p < (o + 1) * positions; ++p) kept += (mask[size_t(p / 64)] >> (p % 64)) & 1;
      if (int64_t(rowStart[size_t(o + 1)]) - int64_t(rowStart[size_t(o)]) != kept)
        return "row " + std::to_string(o) + " keeps " + std::to_string(kept) + " chunks in the mask but row_start counts " +
               std::to_string(int64_t(rowStart[size_t(o + 1)]) - int64_t(rowStart[size_t(o)]));
    }
    int64_t need = (int64_t(rowStart.back()) * 3 * (exponentBits + 1) + 7) / 8 + 8;
    if (codesBytes != need)
      return "codes hold " + std::to_string(codesBytes) + " bytes; " + std::to_string(rowStart.back()) +
             " kept chunks need " + std::to_string(need) + " (with 8 bytes of padding)";
  }
  for (size_t i = 0; i < bases.size(); ++i)
    if ((bases[i] & 0x7f80) == 0x7f80)
      return "basis " + std::to_string(i / 9) + " entry " + std::to_string(i % 9) + " is not finite";
  return "";
}

int64_t SmartDealWeightsOp::getRows() { return rowsAndReduction(getType(), getRowsLast()).first; }
int64_t SmartDealWeightsOp::getReduction() { return rowsAndReduction(getType(), getRowsLast()).second; }

std::array<int64_t, 3> SmartDealWeightsOp::getTaps() {
  auto shape = getResult().getType().getShape();
  if (!getRowsLast() && shape.size() == 4) return {shape[1], shape[2], shape[3]};
  return {1, 1, getReduction()};
}

int64_t SmartDealWeightsOp::getPositions() {
  auto [kh, kw, c] = getTaps();
  return isFlat() ? (kh * kw * c + 2) / 3 : kh * c;
}

int64_t SmartDealWeightsOp::getGroups() {
  int64_t span = isFlat() ? getPositions() : getTaps()[2];
  return (span + int64_t(getGroup()) - 1) / int64_t(getGroup());
}

LogicalResult SmartDealWeightsOp::verify() {
  auto result = getResult().getType();
  if (result.getRank() < 2) return emitOpError("result must have rank 2 or more, got ") << result.getRank();
  if (!result.getElementType().isF32()) return emitOpError("result must be f32");
  if (getLayout() != "taps3" && getLayout() != "flat")
    return emitOpError("layout must be \"taps3\" or \"flat\", got \"") << getLayout() << "\"";
  auto [kh, kw, c] = getTaps();
  if (!isFlat() && kw != 3)
    return emitOpError("layout \"taps3\" needs a filter [F, KH, 3, C] (rows first), got ") << result;
  int64_t b = getExponentBits(), e = getExponentOffset();
  // Every coefficient 2^(e - t), 0 <= t <= 2^b - 2, must be a normal f32: the rebuild is exact.
  if (e > 127 || e - ((int64_t(1) << b) - 2) < -126)
    return emitOpError("exponent_offset ") << e << " with exponent_bits " << b
                                           << " puts coefficients outside the normal f32 range";
  const int64_t rows = getRows(), positions = getPositions(), groups = getGroups();
  auto size = [](Value v) { return cast<MemRefType>(v.getType()).getShape(); };
  for (Value v : {getMask(), getRowStart(), getCodes(), getBases()})
    if (!cast<MemRefType>(v.getType()).hasStaticShape()) return emitOpError("operands must have static shapes");
  if (size(getMask())[0] != (rows * positions + 63) / 64)
    return emitOpError("mask must hold ceil(") << rows << " rows x " << positions << " chunks / 64) = "
                                               << (rows * positions + 63) / 64 << " words, got " << size(getMask())[0];
  if (size(getRowStart())[0] != rows + 1)
    return emitOpError("row_start must hold rows + 1 = ") << rows + 1 << " counts, got " << size(getRowStart())[0];
  int64_t maxCodes = (rows * positions * 3 * (b + 1) + 7) / 8 + 8;
  if (size(getCodes())[0] < 8 || size(getCodes())[0] > maxCodes)
    return emitOpError("codes must hold 8 to ") << maxCodes << " bytes (every chunk kept, plus 8 of padding), got "
                                                << size(getCodes())[0];
  if (size(getBases())[0] != groups || size(getBases())[1] != 9)
    return emitOpError("bases must be ") << groups << "x9 (" << groups << " groups of a 3x3 basis), got "
                                         << getBases().getType();
  std::string why = checkSmartDeal(rows, positions, b, constantArray<uint64_t>(*this, getMask(), size(getMask())[0]),
                                   constantArray<uint32_t>(*this, getRowStart(), rows + 1), size(getCodes())[0],
                                   constantArray<uint16_t>(*this, getBases(), groups * 9));
  if (!why.empty()) return emitOpError(why);
  return success();
}

} // namespace kiln

namespace kiln {

int64_t ButterflyWeightsOp::getOutputs() {
  auto shape = getResult().getType().getShape();
  return getRowsLast() ? shape.back() : shape.front();
}

int64_t ButterflyWeightsOp::getReduction() {
  int64_t outputs = getOutputs();
  return outputs ? getResult().getType().getNumElements() / outputs : 0;
}

LogicalResult ButterflyWeightsOp::verify() {
  auto result = getResult().getType();
  if (result.getRank() < 2) return emitOpError("result must have rank 2 or more, got ") << result.getRank();
  if (!result.getElementType().isF32()) return emitOpError("result must be f32");
  auto ft = getFactors().getType();
  if (!ft.hasStaticShape()) return emitOpError("factors must have a static shape");
  int64_t stages = ft.getDimSize(0), n = ft.getDimSize(2);
  if (ft.getDimSize(1) != 2) return emitOpError("factors must be [log2(n), 2, n] (a_s then b_s), got ") << ft;
  if (n < 2 || (n & (n - 1)))
    return emitOpError("butterfly size n = ") << n << " must be a power of two of at least 2";
  int64_t log2n = llvm::Log2_64(uint64_t(n));
  if (stages != log2n)
    return emitOpError("a butterfly of size n = ") << n << " has log2(n) = " << log2n << " factors, got " << stages;
  int64_t k = getReduction(), outputs = getOutputs();
  if (n < k || n < outputs)
    return emitOpError("butterfly size n = ") << n << " is smaller than the weight's " << k << " x " << outputs
                                              << " (K x N)";
  if (auto bytes = constantBytes(*this, getFactors()); bytes && int64_t(bytes->size()) == ft.getNumElements() * 4) {
    const float *f = reinterpret_cast<const float *>(bytes->data());
    for (int64_t i = 0; i < ft.getNumElements(); ++i)
      if (!std::isfinite(f[i]))
        return emitOpError("factors: stage ") << i / (2 * n) << ", " << ((i / n) % 2 ? "b" : "a") << "[" << i % n
                                              << "] is not finite";
  }
  return success();
}

} // namespace kiln
