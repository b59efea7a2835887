//===- Tool.h - What the kiln commands share ---------------------*- C++ -*-===//
#ifndef KILN_TOOLS_KILN_TOOL_H
#define KILN_TOOLS_KILN_TOOL_H

#include "codegen/Target.h"
#include "tools/kiln/Dataset.h"
#include "frontend/onnx/Importer.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace kiln::tool {

/// Options shared by compile, run, eval and bench.
struct CommonOptions {
  std::string model, outDir, keepDir;
  codegen::CompileOptions compile;
  onnx_frontend::ImportOptions import;
  std::vector<std::pair<std::string, std::string>> inputs;
  bool dumpImport = false, printPipeline = false;
  int threads = 1;
  std::string nameOverride;
  // Quantisation: --quantize int8|int4|mixed with --calib DATA (calibrate here; mixed
  // also --budget bits=B|size=BYTES), or --plan FILE.
  std::string quantize, calibPath, planIn, budget;
  int64_t calibLimit = 500;
  std::string calibMethod = "minmax"; ///< minmax | percentile (--calib-method)
  double calibPercentile = 99.99;
};


inline void removeTree(const std::string &dir) { llvm::sys::fs::remove_directories(dir, /*IgnoreErrors=*/true); }

/// The directory a command works in: the user's --keep DIR (kept), or a fresh
/// temporary one removed when the command ends.
struct WorkDir {
  std::string path;
  bool keep;
  WorkDir(const std::string &keepDir, const char *prefix) : keep(!keepDir.empty()) {
    if (keep) {
      if (std::error_code ec = llvm::sys::fs::create_directories(keepDir))
        llvm::errs() << "error: cannot create '" << keepDir << "': " << ec.message() << "\n";
      else
        path = keepDir;
      return;
    }
    llvm::SmallString<128> tmp;
    if (llvm::sys::fs::createUniqueDirectory(prefix, tmp))
      llvm::errs() << "error: cannot create a temporary directory\n";
    else
      path = tmp.str().str();
  }
  ~WorkDir() {
    if (!keep && !path.empty()) removeTree(path);
  }
  bool ok() const { return !path.empty(); }
};


/// Reads samples and their labels; `n` is the number to use (all, or the first `limit`
/// when positive). Returns 0, or 1 after printing why.
int readLabelledSet(const std::string &dataPath, const std::string &labelPath, int64_t limit,
                    kiln::tools::Array &data, kiln::tools::Array &labels, int64_t &n, int64_t &perSample);

/// Sets the shape of the model's one input for samples of `data` (`perSample` values
/// each) in batches of `batch`; returns 0 or an exit code after printing why.
int shapeFromData(CommonOptions &o, const kiln::tools::Array &data, int64_t perSample, int64_t batch,
                  std::string &inputName, const char *command);

/// Runs a program; returns its exit code (or -1 if it could not start).
int execute(const std::vector<std::string> &args, std::string *errMsg);
/// Runs a program (stdout discarded when `quiet`); returns its exit code or -1.
int runProgram(const std::vector<std::string> &args, bool quiet, std::string *errMsg);
/// Links <work>/model.o with the runtime and the generic driver into <work>/runner;
/// for aarch64 (`cross`) with the runtime built for `cpu` (empty: generic armv8-a).
int linkRunner(const std::string &work, bool cross, const std::string &cpu = "");

/// Compiles with quantisation (Quantization.cpp): calibrates (--calib) or reads a plan
/// (--plan), searches bit-widths (--quantize mixed), compiles with the plan, prints the
/// per-layer report and adds <name>.plan.json to the artifact. Returns an exit code.
int compileQuantized(CommonOptions &o, const std::string &dir, codegen::Artifact &artifact);

/// Runs the calibration build in `wd` on the calibration samples in chunks of the
/// model's batch size, with `extra` runner arguments; `after(start, input, outputDir)`
/// sees each chunk; `samples` (if given) receives how many samples ran. Returns an exit code.
int runCalibrationChunks(CommonOptions &o, const std::string &wd, const codegen::Artifact &artifact,
                         const std::vector<std::string> &extra,
                         const std::function<void(int64_t, const std::string &, const std::string &)> &after,
                         int64_t *samples = nullptr);

/// --sparsify, --decompose or --butterfly with --calib: a calibration build records each
/// chosen layer's input Gram matrix into <wd>/gram.bin, which o.compile.compressGram
/// then names. Returns an exit code.
int calibrateGram(CommonOptions &o, const WorkDir &wd);
/// Prints the per-layer N:M report kiln-sparsify-nm wrote. Returns false if unreadable.
bool printSparsityReport(const std::string &path, llvm::raw_ostream &os);
/// Prints the per-layer report kiln-decompose wrote, the weight bytes of the model's
/// conv/matmul layers against dense int8 and fp32, and the weights file's size.
/// `quantized`: say that quantised layers run the int8 kernel on the rebuilt weights.
/// Returns false if unreadable.
bool printDecomposeReport(const std::string &path, uint64_t weightsFileBytes, bool quantized, bool accel,
                          llvm::raw_ostream &os);
/// Prints the per-layer report kiln-butterfly wrote and the parameter reduction.
/// Returns false if unreadable.
bool printButterflyReport(const std::string &path, llvm::raw_ostream &os);

} // namespace kiln::tool

#endif
