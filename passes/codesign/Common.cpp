//===- Common.cpp - Gram file reader, constants and reports of the co-design passes ===//
#include "passes/codesign/Common.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace mlir;

namespace kiln::codesign {

void forEachPackedLayer(
    func::FuncOp func, SymbolTable &symbols,
    llvm::function_ref<void(Operation *, kernels::PackedLayer &, const std::string &, int64_t)> fn) {
  kernels::LayerNamer namer;
  int64_t index = 0;
  func.walk([&](Operation *op) {
    if (auto layer = kernels::matchPackedLayer(op, symbols)) fn(op, *layer, namer(op), index++);
  });
}

std::optional<NMPattern> parseNMPattern(llvm::StringRef s) {
  s = s.trim();
  if (s == "dense") return NMPattern{};
  auto [a, b] = s.split(':');
  int64_t n, m;
  if (a.getAsInteger(10, n) || b.getAsInteger(10, m) || n < 1 || m < 2 || m > 16 || n >= m) return std::nullopt;
  return NMPattern{n, m};
}

LogicalResult readGrams(ModuleOp module, const std::string &path, std::map<int64_t, Gram> &out) {
  auto buf = llvm::MemoryBuffer::getFile(path, /*IsText=*/false);
  if (!buf) return module.emitError() << "cannot read the calibration Gram file '" << path << "'";
  llvm::StringRef data = (*buf)->getBuffer();
  size_t at = 0;
  while (at < data.size()) {
    int32_t id;
    int64_t k, rows;
    if (data.size() - at < 24 || data.substr(at, 4) != "KGRM")
      return module.emitError() << "calibration Gram file '" << path << "' is malformed at byte " << at;
    std::memcpy(&id, data.data() + at + 4, 4);
    std::memcpy(&k, data.data() + at + 8, 8);
    std::memcpy(&rows, data.data() + at + 16, 8);
    at += 24;
    if (k <= 0 || k > (1 << 15) || uint64_t(k * k) * 8 > data.size() - at)
      return module.emitError() << "calibration Gram file '" << path << "': a record claims " << k
                                << " inputs, more than the file holds";
    if (rows < 0 || (out.count(id) && rows > std::numeric_limits<int64_t>::max() - out[id].rows))
      return module.emitError() << "calibration Gram file '" << path << "': layer " << id << " has a row count of "
                                << rows << (rows < 0 ? "" : " (the records' total overflows)");
    Gram &g = out[id];
    if (g.sum.empty()) {
      g.k = k;
      g.sum.assign(size_t(k * k), 0.0);
    } else if (g.k != k) {
      return module.emitError() << "calibration Gram file '" << path << "': layer " << id << " has two sizes";
    }
    for (size_t i = 0; i < g.sum.size(); ++i) { // the data need not be aligned for double
      double v;
      std::memcpy(&v, data.data() + at + i * 8, 8);
      g.sum[i] += v;
      if (!std::isfinite(g.sum[i]))
        return module.emitError() << "calibration Gram file '" << path << "': layer " << id
                                  << " holds a value that is not finite (or whose sum is not)";
    }
    g.rows += rows;
    at += size_t(k * k) * 8;
  }
  // A sum of x x^T over inputs x is symmetric, with a non-negative diagonal and no entry
  // beyond what its diagonal allows (|g_ij| <= sqrt(g_ii g_jj)). The fits factor it
  // (Cholesky with a growing ridge): a matrix that is not one could make them loop or
  // overflow, so it is refused here.
  for (auto &[id, g] : out) {
    const int64_t k = g.k;
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        double a = g.sum[size_t(i * k + j)], b = g.sum[size_t(j * k + i)];
        double di = g.sum[size_t(i * k + i)], dj = g.sum[size_t(j * k + j)];
        const char *why = nullptr;
        if (std::fabs(a) > 1e150)
          why = "an entry beyond 1e150";
        else if (di < 0)
          why = "a negative diagonal entry";
        else if (std::fabs(a - b) > 1e-6 * std::sqrt(di * dj))
          why = "it is not symmetric";
        else if (a * a > di * dj * (1 + 1e-6) + 1e-300)
          why = "an entry larger than its diagonal entries allow";
        if (why)
          return module.emitError() << "calibration Gram file '" << path << "': layer " << id
                                    << " is not a Gram matrix (" << why << ", at " << i << "," << j << ")";
      }
  }
  return success();
}

Value newConstant(OpBuilder &b, ModuleOp module, Location loc, const std::string &name, Type elem,
                  ArrayRef<int64_t> shape, ArrayRef<char> bytes) {
  auto type = MemRefType::get(shape, elem);
  {
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPointToStart(module.getBody());
    auto blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(bytes, 64);
    auto init = DenseResourceElementsAttr::get(RankedTensorType::get(shape, elem), name, std::move(blob));
    memref::GlobalOp::create(b, loc, b.getStringAttr(name), b.getStringAttr("private"), TypeAttr::get(type), init,
                             b.getUnitAttr(), b.getI64IntegerAttr(64));
  }
  return memref::GetGlobalOp::create(b, loc, type, name);
}

Value atWeights(OpBuilder &b, Operation *op) {
  Value weight = kernels::weightOperand(op);
  b.setInsertionPointAfterValue(weight);
  return weight;
}

LogicalResult writeReport(ModuleOp module, const std::string &path, llvm::json::Array layers) {
  std::error_code ec;
  llvm::raw_fd_ostream os(path, ec);
  if (ec) return module.emitError() << "cannot write '" << path << "': " << ec.message();
  os << llvm::formatv("{0:2}", llvm::json::Value(llvm::json::Object{{"layers", std::move(layers)}})) << "\n";
  return success();
}

} // namespace kiln::codesign
