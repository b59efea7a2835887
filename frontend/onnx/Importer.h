//===- Importer.h - ONNX model to MLIR (func + TOSA) importer ---------------===//
#ifndef KILN_FRONTEND_ONNX_IMPORTER_H
#define KILN_FRONTEND_ONNX_IMPORTER_H

#include "frontend/onnx/HostTensor.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace kiln::onnx_frontend {

struct ImportOptions {
  /// Values for symbolic or unknown input dimensions, by graph input name.
  std::map<std::string, std::vector<int64_t>> inputShapes;
  /// Graph inputs fixed to a value at compile time (they become constants and
  /// are no longer inputs of the compiled model), by name.
  std::map<std::string, HostTensor> frozenInputs;
  /// Constants at least this many bytes become dense_resource blobs.
  int64_t resourceThresholdBytes = 64;
  /// Name of the generated entry function.
  std::string entryName = "forward";
  /// Run libonnx's shape inference and version converter in a forked child, so that a
  /// libonnx crash on a malformed model is an error (LibOnnx.h). Fuzz targets turn it off.
  bool isolateLibOnnx = true;
};

/// One problem found in the model: the node it concerns and why.
struct ImportDiagnostic {
  std::string node; ///< ONNX node name (or graph input name); may be empty
  std::string op;   ///< ONNX op type, or "input"/"model"
  std::string reason;
  /// Where the node sits when it is inside a subgraph: "in 'body' of node 'Loop_0' (Loop)".
  std::string within = {};
};

/// Imports the ONNX file at `path`. On failure returns null and fills `diags`
/// with every problem found (not only the first).
mlir::OwningOpRef<mlir::ModuleOp>
importOnnxFile(mlir::MLIRContext &ctx, const std::string &path,
               const ImportOptions &options,
               std::vector<ImportDiagnostic> &diags);

/// Same, from an in-memory serialized ModelProto.
mlir::OwningOpRef<mlir::ModuleOp>
importOnnxBytes(mlir::MLIRContext &ctx, const std::string &bytes,
                const std::string &modelName, const ImportOptions &options,
                std::vector<ImportDiagnostic> &diags);

/// Pre-flight report (kiln inspect): ops and counts, support, unsupported nodes,
/// inputs and dynamic dimensions, parameters, FLOPs per compute layer. Returns
/// false if the model cannot be read or has unsupported nodes.
bool inspectOnnxFile(const std::string &path, const ImportOptions &options, std::string &report);

/// Formats diagnostics as the one report users see.
std::string formatDiagnostics(const std::vector<ImportDiagnostic> &diags);

/// Dialects the importer emits into.
void registerImporterDialects(mlir::DialectRegistry &registry);

} // namespace kiln::onnx_frontend

#endif
