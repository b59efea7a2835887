// What the fuzz targets that run Kiln's passes share (plan_fuzz.cpp, gram_fuzz.cpp): a
// fixed module with one convolution ("conv1") and one matmul ("fc") on constant
// weights, and a runner of a pass pipeline on it.
#ifndef KILN_TESTS_FUZZ_PASS_FUZZ_H
#define KILN_TESTS_FUZZ_PASS_FUZZ_H

#include "passes/Passes.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <string>

namespace kiln_fuzz {

/// The module: `conv1` is a KxK convolution (stride 1, no padding) of a 1xHxHxC input
/// into F channels after a bias fill, `fc` a batch matmul of a [1, M, K2] input by
/// [1, K2, N] weights, M = (H - K + 1)^2. The literals are MLIR dense bodies.
inline std::string convMatmulModule(int h, int c, int f, int k, int k2, int n, const std::string &filter,
                                    const std::string &bias, const std::string &w) {
  const std::string o = std::to_string(h - k + 1), m = std::to_string((h - k + 1) * (h - k + 1));
  const std::string in = "memref<1x" + std::to_string(h) + "x" + std::to_string(h) + "x" + std::to_string(c) + "xf32>";
  const std::string fl = "memref<" + std::to_string(f) + "x" + std::to_string(k) + "x" + std::to_string(k) + "x" +
                         std::to_string(c) + "xf32>";
  const std::string out = "memref<1x" + o + "x" + o + "x" + std::to_string(f) + "xf32>";
  const std::string b = "memref<" + std::to_string(f) + "xf32>";
  const std::string a = "memref<1x" + m + "x" + std::to_string(k2) + "xf32>";
  const std::string wt = "memref<1x" + std::to_string(k2) + "x" + std::to_string(n) + "xf32>";
  const std::string out2 = "memref<1x" + m + "x" + std::to_string(n) + "xf32>";
  return "#bias = affine_map<(d0, d1, d2, d3) -> (d3)>\n"
         "#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>\n"
         "module {\n"
         "  memref.global \"private\" constant @filter : " + fl + " = dense<" + filter + ">\n"
         "  memref.global \"private\" constant @bias : " + b + " = dense<" + bias + ">\n"
         "  memref.global \"private\" constant @w : " + wt + " = dense<" + w + ">\n"
         "  func.func @forward(%in: " + in + ", %out: " + out + ", %a: " + a + ", %out2: " + out2 + ") {\n"
         "    %f = memref.get_global @filter : " + fl + "\n"
         "    %b = memref.get_global @bias : " + b + "\n"
         "    linalg.generic {indexing_maps = [#bias, #id], iterator_types = [\"parallel\", \"parallel\", "
         "\"parallel\", \"parallel\"]}\n"
         "        ins(%b : " + b + ") outs(%out : " + out + ") {\n"
         "    ^bb0(%x: f32, %y: f32):\n"
         "      linalg.yield %x : f32\n"
         "    }\n"
         "    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}\n"
         "        ins(%in, %f : " + in + ", " + fl + ") outs(%out : " + out + ") loc(\"conv1\")\n"
         "    %w = memref.get_global @w : " + wt + "\n"
         "    linalg.batch_matmul ins(%a, %w : " + a + ", " + wt + ") outs(%out2 : " + out2 + ") loc(\"fc\")\n"
         "    return\n"
         "  }\n"
         "}\n";
}

/// Parses `source` and runs `pipeline` on it in a fresh context. A module the passes
/// accept must verify; `accepted` then sees it. Errors are the expected outcome for most
/// inputs and stay off stderr; KILN_FUZZ_VERBOSE=1 prints them and the outcome.
inline bool runPipeline(const std::string &source, const std::string &pipeline,
                        llvm::function_ref<void(mlir::ModuleOp)> accepted = {}) {
  static mlir::DialectRegistry *registry = [] {
    kiln::registerKilnPasses();
    auto *r = new mlir::DialectRegistry;
    r->insert<mlir::arith::ArithDialect, mlir::func::FuncDialect, mlir::linalg::LinalgDialect,
              mlir::memref::MemRefDialect, mlir::tensor::TensorDialect, mlir::LLVM::LLVMDialect>();
    return r;
  }();
  static const bool verbose = std::getenv("KILN_FUZZ_VERBOSE") != nullptr;
  mlir::MLIRContext ctx(*registry, mlir::MLIRContext::Threading::DISABLED);
  ctx.allowUnregisteredDialects(false);
  mlir::ScopedDiagnosticHandler quiet(&ctx, [](mlir::Diagnostic &d) {
    if (verbose) llvm::errs() << d << "\n";
    return mlir::success();
  });
  auto module = mlir::parseSourceString<mlir::ModuleOp>(source, &ctx);
  if (!module) std::abort(); // the harness's module, not the input
  mlir::PassManager pm(&ctx);
  if (mlir::failed(mlir::parsePassPipeline(pipeline, pm))) std::abort();
  bool ok = mlir::succeeded(pm.run(*module));
  if (ok && mlir::failed(mlir::verify(*module))) std::abort(); // a pass accepted the input, then emitted invalid IR
  if (verbose) llvm::errs() << (ok ? "accepted: " : "refused: ") << pipeline << "\n";
  if (ok && accepted) accepted(*module);
  return ok;
}

} // namespace kiln_fuzz

#endif
