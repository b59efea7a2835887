// Fuzzes the quantisation plan reader: the bytes are the plan file (JSON) given to
// kiln-quantize, which runs on a fixed module with one quantisable convolution and
// one matmul, followed by kiln-lower-to-kernels, which quantises the weights with the
// plan's parameters. A bad plan must be an error, never a crash.
#include "passes/Passes.h"

#include "fuzz_util.h"

#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"

#include <cstdint>
#include <cstdlib>
#include <string>

namespace {

const char *kModule = R"mlir(
#bias = affine_map<(d0, d1, d2, d3) -> (d3)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
module {
  memref.global "private" constant @filter : memref<2x1x1x3xf32> = dense<[[[[1.0, -2.0, 0.5]]], [[[4.0, 5.0, -6.0]]]]>
  memref.global "private" constant @bias : memref<2xf32> = dense<[0.5, -0.5]>
  memref.global "private" constant @w : memref<1x2x3xf32> = dense<[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]]>
  func.func @forward(%in: memref<1x4x4x3xf32>, %out: memref<1x4x4x2xf32>, %a: memref<1x16x2xf32>, %out2: memref<1x16x3xf32>) {
    %f = memref.get_global @filter : memref<2x1x1x3xf32>
    %b = memref.get_global @bias : memref<2xf32>
    linalg.generic {indexing_maps = [#bias, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%b : memref<2xf32>) outs(%out : memref<1x4x4x2xf32>) {
    ^bb0(%x: f32, %y: f32):
      linalg.yield %x : f32
    }
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x4x4x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x4x4x2xf32>) loc("conv1")
    %w = memref.get_global @w : memref<1x2x3xf32>
    linalg.batch_matmul ins(%a, %w : memref<1x16x2xf32>, memref<1x2x3xf32>) outs(%out2 : memref<1x16x3xf32>) loc("fc")
    return
  }
}
)mlir";

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static mlir::DialectRegistry *registry = [] {
    kiln::registerKilnPasses();
    auto *r = new mlir::DialectRegistry;
    r->insert<mlir::arith::ArithDialect, mlir::func::FuncDialect, mlir::linalg::LinalgDialect,
              mlir::memref::MemRefDialect, mlir::tensor::TensorDialect, mlir::LLVM::LLVMDialect>();
    return r;
  }();
  static const std::string planPath = kiln_fuzz::scratchPath(".plan.json");
  static const std::string reportPath = kiln_fuzz::scratchPath(".report.json");
  kiln_fuzz::writeFile(planPath, data, size);

  mlir::MLIRContext ctx(*registry, mlir::MLIRContext::Threading::DISABLED);
  ctx.allowUnregisteredDialects(false);
  // Errors are the expected outcome for most inputs; keep them off stderr.
  mlir::ScopedDiagnosticHandler quiet(&ctx, [](mlir::Diagnostic &) { return mlir::success(); });
  auto module = mlir::parseSourceString<mlir::ModuleOp>(kModule, &ctx);
  if (!module) std::abort();
  mlir::PassManager pm(&ctx);
  std::string pipeline = "kiln-quantize{plan=" + planPath + " report=" + reportPath + "},kiln-lower-to-kernels";
  if (mlir::failed(mlir::parsePassPipeline(pipeline, pm))) std::abort();
  if (mlir::succeeded(pm.run(*module)) && mlir::failed(mlir::verify(*module))) std::abort();
  return 0;
}
