//===- Tool.h - What the kiln commands share ---------------------*- C++ -*-===//
#ifndef KILN_TOOLS_KILN_TOOL_H
#define KILN_TOOLS_KILN_TOOL_H

#include "codegen/Target.h"
#include "tools/kiln/Dataset.h"
#include "frontend/onnx/Importer.h"

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
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
  std::string gramIn; ///< --gram: calibration Gram matrices recorded earlier (no Gram calibration run)
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


/// Samples of the calibration set a search measures output error on.
constexpr int64_t kSearchSamples = 256;

/// What calibration leaves for a search: its work directory (with the runner's
/// inputs), and the fp32 outputs of the first chunks (up to kSearchSamples samples).
struct Calibration {
  std::unique_ptr<WorkDir> work;
  std::string inputName;
  std::vector<std::string> chunks;
  std::vector<std::vector<std::vector<float>>> reference; ///< [chunk][output][values]
};

/// Calibration (Quantization.cpp): compiles the model with an observer before every
/// quantisable layer, runs it on o.calibPath in chunks of the model's batch size and
/// writes to `planPath` a plan putting every layer at o.quantize's width with the
/// ranges seen (and the layer list at <cal.work>/layers.json). Returns an exit code.
int calibrate(CommonOptions &o, const std::string &planPath, Calibration &cal);
/// The options of a build a command runs itself (calibration, search trials): named
/// "model" for the generic runner, for this machine, with quantisation plan `plan`
/// and nothing dumped or reported.
CommonOptions trialOptions(const CommonOptions &o, const std::string &plan);
/// The file the runner (and ort_run.js) writes an output named `name` to: `name`
/// with every character outside [A-Za-z0-9_.-] replaced by '_', plus ".npy".
std::string outputFileName(const std::string &name);
/// Every f32 output the runner wrote into `dir`, in signature order (empty if missing).
std::vector<std::vector<float>> readOutputs(const std::string &dir, const codegen::ModelSignature &sig);
/// Adds the squared values of `want` to `signal` and the squared differences of `got`
/// from them to `noise`, over every output (a model output's error against a reference).
void addOutputError(const std::vector<std::vector<float>> &want, const std::vector<std::vector<float>> &got,
                    double &signal, double &noise);
/// Writes `v` as indented JSON; false after printing why.
bool writeJson(const std::string &path, const llvm::json::Value &v);
/// Parses a JSON file; nullopt if it cannot be read or parsed.
std::optional<llvm::json::Value> readJson(const std::string &path);

/// One timed process (the runner's or ONNX Runtime's "timing ..." line).
struct Timing {
  double loadMs = 0, firstMs = 0, medianMs = 0;
  long maxRssKb = 0;
  bool ok = false;
};
/// Runs a process with stdout discarded and stderr captured into `errText`; reads its
/// "timing ..." line.
Timing timeProcess(const std::vector<std::string> &args, std::string &errText);
/// timeProcess, printing "error: the WHAT run failed" and the process's stderr on failure.
bool timedRun(const std::vector<std::string> &args, const char *what, Timing &t, std::string &errText);
/// One ONNX Runtime process on `inputs` (NAME=FILE.npy): 1 cold + `runs` runs on `threads`.
bool timeOrt(const std::string &model, const std::string &work, const std::vector<std::string> &inputs, int threads,
             int runs, Timing &t);
double median(std::vector<double> v);
/// Per row of the [rows, ...] f32 array in `path`, the index of its largest value.
bool argmaxRows(const std::string &path, int64_t rows, std::vector<int64_t> &out, std::string &err);

/// compile's option parsing (MODEL, --shape, -o, compression and quantisation options);
/// returns a non-negative exit code to stop, -1 to go on.
int parseCommonArgs(int argc, char **argv, CommonOptions &o, const char *help);
/// compile's compile step: calibrations, passes, reports; the artifact in `dir`.
int compileCommon(CommonOptions &o, const std::string &dir, codegen::Artifact &artifact);
/// Prints "error: MSG" and the command's help to stderr; returns 2.
int commandUsage(const std::string &msg, const char *help);

/// Whether `s` can be a quoted pass option's value (layer lists, file paths): the pass
/// pipeline syntax cannot carry '"', '{' or '}' there.
inline bool fitsPassOption(llvm::StringRef s) { return s.find_first_of("\"{}") == llvm::StringRef::npos; }

/// A plan layer's structure: "dense", "N:M", "smartdeal[:bB][:dD][:gG]" or "butterfly".
struct Structure {
  enum Kind { Dense, NM, SmartDeal, Butterfly } kind = Dense;
  std::string setting; ///< N:M pattern, or the SmartDeal setting "bB:dD..." (may be empty)
};
/// Parses a plan's "structure" value; nullopt if it is none of the forms above (PlanFile.cpp).
std::optional<Structure> parseStructure(llvm::StringRef s);

/// Whether a planner cache (DIR/cache/planner.json, whose fingerprint matched) has the
/// shape the planner reads: "trials" and "verified" objects of measures with typed,
/// finite fields. False with `why` otherwise; the planner then starts afresh.
bool checkPlannerCache(const llvm::json::Object &cache, std::string &why);

/// A plan's per-layer "structure" keys (dense, N:M, smartdeal[:bB:dD], butterfly) as
/// the compression options of `o` (Plan.cpp). `needsCalibration` tells whether any
/// layer is compressed (the passes fit to calibration Gram matrices). Returns 0, or 1
/// after printing an error naming the layer.
int applyPlanStructures(CommonOptions &o, const std::string &planPath, bool &needsCalibration,
                        std::string *calibFromPlan = nullptr, int64_t *calibSamplesFromPlan = nullptr);

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
