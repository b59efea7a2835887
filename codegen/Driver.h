//===- Driver.h - ONNX file to artifact, end to end -------------------------===//
//
// What `kiln compile` and the conformance runner share: registration of every
// dialect, pass and translation the compiler uses, and one call that imports an
// ONNX file and compiles it for a target into a directory.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_DRIVER_H
#define KILN_CODEGEN_DRIVER_H

#include "codegen/Target.h"
#include "frontend/onnx/Importer.h"

#include "mlir/IR/DialectRegistry.h"
#include "llvm/Support/raw_ostream.h"

namespace kiln {

/// Dialects, interfaces and LLVM IR translations the compiler needs.
void registerCompilerDialects(mlir::DialectRegistry &registry);
/// Every upstream pass and Kiln's passes (for textual pipelines); idempotent.
void registerCompilerPasses();

/// Imports `modelPath` and compiles it into `dir` (which must exist). The import
/// report or compiler errors go to `errs`; with `dumpImport` the imported module
/// is printed to `errs` first.
mlir::LogicalResult compileOnnxFile(const std::string &modelPath,
                                    const onnx_frontend::ImportOptions &import,
                                    const codegen::CompileOptions &options, const std::string &dir,
                                    codegen::Artifact &artifact, llvm::raw_ostream &errs,
                                    bool dumpImport = false);

} // namespace kiln

#endif
