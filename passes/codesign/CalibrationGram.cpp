//===- CalibrationGram.cpp - Reads the runner's calibration Gram file ------===//
#include "passes/codesign/CalibrationGram.h"

#include "llvm/Support/MemoryBuffer.h"

#include <cstring>

using namespace mlir;

namespace kiln {

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
    Gram &g = out[id];
    if (g.sum.empty()) {
      g.k = k;
      g.sum.assign(size_t(k * k), 0.0);
    } else if (g.k != k) {
      return module.emitError() << "calibration Gram file '" << path << "': layer " << id << " has two sizes";
    }
    const double *src = reinterpret_cast<const double *>(data.data() + at);
    std::vector<double> tmp(size_t(k * k));
    std::memcpy(tmp.data(), src, tmp.size() * 8);
    for (size_t i = 0; i < tmp.size(); ++i) g.sum[i] += tmp[i];
    g.rows += rows;
    at += size_t(k * k) * 8;
  }
  return success();
}

const Gram *findGram(const std::map<int64_t, Gram> &grams, int64_t id, int64_t k) {
  auto it = grams.find(id);
  return it != grams.end() && it->second.k == k && it->second.rows > 0 ? &it->second : nullptr;
}

} // namespace kiln
