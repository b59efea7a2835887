// Fuzzes the calibration Gram file (the runner's --observe-gram output, `kiln compile
// --gram FILE`) through the passes that fit compressed weights to it: the bytes after
// the first are the file; the first byte picks kiln-sparsify-nm (2:4 with
// reconstruction), kiln-decompose (SmartDeal) or kiln-butterfly, run with gram= on a
// fixed module (a 3x3 convolution and a matmul) and followed by kiln-lower-to-kernels.
// A bad file must be an error, never a crash, a hang or weights that are not finite.
#include "fuzz_util.h"
#include "pass_fuzz.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/MemoryBuffer.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

/// Deterministic weights in [-1, 1] as a dense literal of `shape` (nested brackets).
std::string values(const std::vector<int> &shape, uint32_t &x, size_t dim = 0) {
  std::string s = "[";
  for (int i = 0; i < shape[dim]; ++i) {
    if (i) s += ", ";
    if (dim + 1 < shape.size()) {
      s += values(shape, x, dim + 1);
      continue;
    }
    x ^= x << 13, x ^= x >> 17, x ^= x << 5;
    s += std::to_string(int(x % 2001) - 1000) + ".0e-3";
  }
  return s + "]";
}

std::string module() {
  uint32_t x = 2463534242u;
  std::string filter = values({4, 3, 3, 4}, x);
  return kiln_fuzz::convMatmulModule(6, 4, 4, 3, 8, 4, filter, "[0.5, -0.5, 0.25, 0.0]", values({1, 8, 4}, x));
}

/// Aborts if a constant the passes made holds a value that is not finite: a Gram file
/// must never turn into NaN or infinite weights.
void checkFinite(mlir::ModuleOp m) {
  m.walk([](mlir::memref::GlobalOp g) {
    mlir::Attribute init = g.getInitialValueAttr();
    if (auto dense = llvm::dyn_cast_or_null<mlir::DenseElementsAttr>(init)) {
      if (llvm::isa<mlir::FloatType>(dense.getElementType()))
        for (llvm::APFloat v : dense.getValues<llvm::APFloat>())
          if (!v.isFinite()) std::abort();
    } else if (auto blob = llvm::dyn_cast_or_null<mlir::DenseResourceElementsAttr>(init)) {
      // The passes' new constants (factors, bases, rebuilt or reconstructed weights).
      mlir::AsmResourceBlob *data = blob.getRawHandle().getBlob();
      if (!data || !blob.getType().getElementType().isF32()) return;
      llvm::ArrayRef<char> bytes = data->getData();
      for (size_t i = 0; i + 4 <= bytes.size(); i += 4) {
        float v;
        std::memcpy(&v, bytes.data() + i, 4);
        if (!std::isfinite(v)) std::abort();
      }
    }
  });
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  static const std::string source = module();
  static const std::string gramPath = kiln_fuzz::scratchPath(".gram");
  static const std::string reportPath = kiln_fuzz::scratchPath(".report.json");
  kiln_fuzz::writeFile(gramPath, data + 1, size - 1);
  std::string tail = " gram=" + gramPath + " report=" + reportPath + "}";
  std::string pass;
  switch (data[0] % 3) {
  case 0: pass = "kiln-sparsify-nm{layers=\"conv1=2:4,fc=1:4\"" + tail; break;
  case 1: pass = "kiln-decompose{layers=\"conv1=b3:d0.5,fc=b3:d0.75\" only-named=true" + tail; break;
  default: pass = "kiln-butterfly{layers=\"fc\"" + tail; break;
  }
  kiln_fuzz::runPipeline(source, pass + ",kiln-lower-to-kernels", [](mlir::ModuleOp m) {
    checkFinite(m);
    if (std::getenv("KILN_FUZZ_VERBOSE")) // the pass's report: "method" says whether the Gram was used
      if (auto report = llvm::MemoryBuffer::getFile(reportPath)) llvm::errs() << (*report)->getBuffer();
  });
  return 0;
}
