//===- Target.h - The interface every code generation target implements ----===//
//
// A target turns the imported module (func + TOSA) into files in an artifact
// directory. The driver (Compiler.cpp) runs the target's pass pipeline, with the
// user's IR dumps, then calls emit(). One folder per target; codegen/null is the
// template to copy for a new one.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_CODEGEN_TARGET_H
#define KILN_CODEGEN_TARGET_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Support/LLVM.h"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace kiln::codegen {

/// One model input or output as the runtime will see it.
struct TensorSignature {
  std::string name;
  int32_t dtype = 0; ///< kiln_dtype_t
  std::vector<int64_t> dims;
  uint64_t sizeBytes = 0;
};

struct ModelSignature {
  std::vector<TensorSignature> inputs, outputs;
};

struct CompileOptions {
  std::string name;          ///< C identifier used for symbols and file names
  std::string target = "x86-64";
  std::string cpu;           ///< target CPU; empty = the target's default
  std::string entryName = "forward";
  /// Quantisation (kiln-quantize): mark layers for calibration, apply a JSON plan,
  /// write the per-layer JSON report. Paths may not contain '"'.
  bool quantObserve = false, quantCompare = false;
  int quantDefaultBits = 32; ///< precision of layers the plan does not name (16: bf16)
  std::string quantPlan, quantReport;
  /// N:M sparsity (kiln-sparsify-nm): the pattern ("2:4"; empty: none), per-layer
  /// overrides ("NAME=N:M|dense,..."), report path.
  std::string sparsify, sparsifyLayers, sparsifyReport;
  /// Weight decomposition (kiln-decompose): the method ("smartdeal"; empty: none), the
  /// setting of layers not named (exponent bits, density), per-layer settings
  /// ("NAME=bB:dD|dense,..."), report path.
  std::string decompose, decomposeLayers, decomposeReport;
  int decomposeBits = 3;
  bool decomposeOnlyNamed = false; ///< layers decomposeLayers does not name stay dense
  double decomposeDensity = 0.75;
  /// Butterfly factorisation (kiln-butterfly): linear layers ("NAME,..." or "all";
  /// empty: none), report path.
  std::string butterfly, butterflyReport;
  /// What the three passes above share: the calibration Gram file they read, or a
  /// calibration build in which they observe their layers' Gram matrices instead.
  std::string compressGram;
  bool compressObserve = false;
  /// Accelerator description (JSON) for the accel target; empty: hw_gen/default.json.
  std::string accelConfig;
  /// Vulkan target: contractions as workgroup-memory tiles (kiln-gpu-outline-dispatches tile).
  bool gpuTile = false;
  /// Print the IR after these passes ("all" for every pass) to stderr.
  std::vector<std::string> dumpIrAfter;
};

/// Files a target wrote, relative to the artifact directory.
struct Artifact {
  std::vector<std::string> files;
  ModelSignature signature; ///< inputs and outputs of the compiled model
  uint64_t weightsBytes = 0, arenaBytes = 0, objectBytes = 0;
};

class Target {
public:
  virtual ~Target() = default;
  virtual llvm::StringRef name() const = 0;
  /// Textual MLIR pass pipeline from the imported module to what emit() reads.
  virtual std::string pipeline(const CompileOptions &options) const = 0;
  /// Writes the artifact files into `dir` (which exists and is empty).
  virtual mlir::LogicalResult emit(mlir::ModuleOp module, const ModelSignature &signature,
                                   const CompileOptions &options, const std::string &dir,
                                   Artifact &artifact) = 0;
};

/// The checksum of Kiln's weight files (.kw data, .kvk): FNV-1a 64 over little-endian
/// 64-bit words, then over the tail bytes; kiln_fnv1a64 in runtime/src/weights.c.
uint64_t weightsChecksum(const void *data, size_t size);

/// Known target names, and a factory (null for an unknown name).
std::vector<std::string> targetNames();
std::unique_ptr<Target> createTarget(llvm::StringRef name);

/// Reads the entry function's signature (before the pipeline rewrites it).
mlir::FailureOr<ModelSignature> readSignature(mlir::ModuleOp module, llvm::StringRef entry);

/// Runs the target's pipeline on `module`, then emits into `dir`.
mlir::LogicalResult compileModule(mlir::ModuleOp module, Target &target, const CompileOptions &options,
                                  const std::string &dir, Artifact &artifact);

// Per-target factories.
std::unique_ptr<Target> createCpuTarget(llvm::StringRef arch);
std::unique_ptr<Target> createNullTarget();
std::unique_ptr<Target> createAccelTarget();
std::unique_ptr<Target> createVulkanTarget();
/// The weight-compression passes the options ask for (kiln-butterfly, kiln-sparsify-nm,
/// kiln-decompose, in that order), each followed by a comma; "" for none.
inline std::string compressionPipeline(const CompileOptions &o) {
  std::string entry = "entry=" + o.entryName;
  // Calibration (observe, or the Gram file) and the report; then the closing "},".
  auto tail = [&](const std::string &report) {
    std::string p = o.compressObserve ? " observe=true" : "";
    if (!o.compressGram.empty()) p += " gram=\"" + o.compressGram + "\"";
    if (!report.empty()) p += " report=\"" + report + "\"";
    return p + "},";
  };
  std::string p;
  if (!o.butterfly.empty()) p += "kiln-butterfly{" + entry + " layers=\"" + o.butterfly + "\"" + tail(o.butterflyReport);
  if (!o.sparsify.empty()) {
    p += "kiln-sparsify-nm{" + entry + " pattern=\"" + o.sparsify + "\"";
    if (!o.sparsifyLayers.empty()) p += " layers=\"" + o.sparsifyLayers + "\"";
    p += tail(o.sparsifyReport);
  }
  if (!o.decompose.empty()) {
    char density[32];
    std::snprintf(density, sizeof density, "%.9g", o.decomposeDensity);
    p += "kiln-decompose{" + entry + " method=" + o.decompose + " exponent-bits=" + std::to_string(o.decomposeBits) +
         " density=" + density;
    if (!o.decomposeLayers.empty()) p += " layers=\"" + o.decomposeLayers + "\"";
    if (o.decomposeOnlyNamed) p += " only-named=true";
    p += tail(o.decomposeReport);
  }
  return p;
}

/// The passes every target that reads bufferized IR shares (graph clean-up, linalg,
/// bufferization, compression, quantisation), each followed by a comma.
std::string frontPipeline(const CompileOptions &o);

} // namespace kiln::codegen

#endif
