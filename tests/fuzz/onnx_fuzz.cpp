// Fuzzes the ONNX importer: bytes -> ModelProto (protobuf) -> ONNX checker and shape
// inference -> Kiln's import of every node. The import must either fail with a report
// or return a module that verifies; it must never crash, hang or exhaust memory.
#include "frontend/onnx/Importer.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

mlir::DialectRegistry &registry() {
  static mlir::DialectRegistry *r = [] {
    auto *r = new mlir::DialectRegistry;
    kiln::onnx_frontend::registerImporterDialects(*r);
    return r;
  }();
  return *r;
}

/// Under libFuzzer, a fork per input would cost more than the import: shape inference
/// runs in process, so a libonnx crash stops the fuzzer (docs/HARDENING.md: run with
/// -ignore_crashes=1). The replay driver (KILN_FUZZ_REPLAY) imports as kiln does.
const kiln::onnx_frontend::ImportOptions &options() {
  static kiln::onnx_frontend::ImportOptions o = [] {
    kiln::onnx_frontend::ImportOptions o;
#ifndef KILN_FUZZ_REPLAY
    o.isolateLibOnnx = false;
#endif
    return o;
  }();
  return o;
}

/// The import must fail with a report, or give a module that verifies.
void check(mlir::OwningOpRef<mlir::ModuleOp> &module,
           const std::vector<kiln::onnx_frontend::ImportDiagnostic> &diags) {
  if (!module) {
    if (diags.empty()) std::abort(); // a failure without a report
    (void)kiln::onnx_frontend::formatDiagnostics(diags);
    return;
  }
  if (!diags.empty()) std::abort();
  if (mlir::failed(mlir::verify(*module))) std::abort(); // the importer emitted invalid IR
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  // A fresh context per input: the importer's constants (resource blobs, attributes)
  // live as long as their context.
  mlir::MLIRContext ctx(registry(), mlir::MLIRContext::Threading::DISABLED);
  std::vector<kiln::onnx_frontend::ImportDiagnostic> diags;
  std::string bytes(reinterpret_cast<const char *>(data), size);
  auto module = kiln::onnx_frontend::importOnnxBytes(ctx, bytes, "fuzz.onnx", options(), diags);
  check(module, diags);
  return 0;
}

/// For the replay driver (replay_main.cpp): ONNX's text syntax (.onnxtxt, the lit tests'
/// models) is read by path, as `kiln import` reads it.
extern "C" int KilnReplayFile(const char *path) {
  if (!llvm::StringRef(path).ends_with(".onnxtxt")) return -1;
  mlir::MLIRContext ctx(registry(), mlir::MLIRContext::Threading::DISABLED);
  std::vector<kiln::onnx_frontend::ImportDiagnostic> diags;
  auto module = kiln::onnx_frontend::importOnnxFile(ctx, path, options(), diags);
  check(module, diags);
  return 0;
}
