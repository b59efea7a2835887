//===- Driver.cpp - ONNX file to artifact, end to end -----------------------===//
#include "codegen/Driver.h"
#include "dialects/kiln/IR/KilnDialect.h"
#include "passes/Passes.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"

namespace kiln {

void registerCompilerDialects(mlir::DialectRegistry &registry) {
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  mlir::registerAllToLLVMIRTranslations(registry);
  onnx_frontend::registerImporterDialects(registry);
  registry.insert<KilnDialect, accel::AccelDialect>();
}

void registerCompilerPasses() {
  static bool done = [] {
    mlir::registerAllPasses();
    registerKilnPasses();
    return true;
  }();
  (void)done;
}

mlir::LogicalResult compileOnnxFile(const std::string &modelPath, const onnx_frontend::ImportOptions &import,
                                    const codegen::CompileOptions &options, const std::string &dir,
                                    codegen::Artifact &artifact, llvm::raw_ostream &errs, bool dumpImport) {
  registerCompilerPasses();
  mlir::DialectRegistry registry;
  registerCompilerDialects(registry);
  mlir::MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  // Compiler diagnostics carry the ONNX node name as their location.
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    const char *sev = d.getSeverity() == mlir::DiagnosticSeverity::Error     ? "error"
                      : d.getSeverity() == mlir::DiagnosticSeverity::Warning ? "warning"
                                                                             : "note";
    errs << sev << ": " << d.getLocation() << ": " << d.str() << "\n";
    return mlir::success();
  });
  std::vector<onnx_frontend::ImportDiagnostic> diags;
  onnx_frontend::ImportOptions opts = import;
  opts.entryName = options.entryName;
  auto module = onnx_frontend::importOnnxFile(ctx, modelPath, opts, diags);
  if (!module) {
    errs << onnx_frontend::formatDiagnostics(diags);
    return mlir::failure();
  }
  if (dumpImport) {
    module->print(errs, mlir::OpPrintingFlags().elideLargeElementsAttrs(16).elideLargeResourceString(64));
    errs << "\n";
  }
  auto target = codegen::createTarget(options.target);
  if (!target) {
    errs << "error: unknown target '" << options.target << "'\n";
    return mlir::failure();
  }
  if (failed(codegen::compileModule(*module, *target, options, dir, artifact))) {
    errs << "error: compiling '" << modelPath << "' for " << options.target << " failed\n";
    return mlir::failure();
  }
  return mlir::success();
}

} // namespace kiln
