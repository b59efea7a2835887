// Fuzzes the ONNX importer: bytes -> ModelProto (protobuf) -> ONNX checker and shape
// inference -> Kiln's import of every node. The import must either fail with a report
// or return a module that verifies; it must never crash, hang or exhaust memory.
#include "frontend/onnx/Importer.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

#include <cstdint>
#include <cstdlib>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::DialectRegistry *registry = [] {
    auto *r = new mlir::DialectRegistry;
    kiln::onnx_frontend::registerImporterDialects(*r);
    return r;
  }();
  // A fresh context per input: the importer's constants (resource blobs, attributes)
  // live as long as their context.
  mlir::MLIRContext ctx(*registry, mlir::MLIRContext::Threading::DISABLED);
  std::vector<kiln::onnx_frontend::ImportDiagnostic> diags;
  std::string bytes(reinterpret_cast<const char *>(data), size);
  auto module = kiln::onnx_frontend::importOnnxBytes(ctx, bytes, "fuzz.onnx", {}, diags);
  if (!module) {
    if (diags.empty()) std::abort(); // a failure without a report
    (void)kiln::onnx_frontend::formatDiagnostics(diags);
    return 0;
  }
  if (!diags.empty()) std::abort();
  if (mlir::failed(mlir::verify(*module))) std::abort(); // the importer emitted invalid IR
  return 0;
}
