//===- Plan.cpp - kiln plan: every layer's compression, chosen jointly -----===//
//
// `kiln plan` chooses, per layer, a precision (fp32, bf16, int8, int4) and a
// structure (dense, N:M sparse, SmartDeal-decomposed, butterfly-factorised) together,
// to meet a budget with the least accuracy loss. Every figure it uses comes from code
// Kiln generated on this machine:
//
//   1. Calibration (once): activation ranges and the layers' input Gram matrices on the
//      calibration data, and the fp32 model's outputs on its first samples.
//   2. Sensitivity and cost (once per layer and choice, cached): a trial build with only
//      that layer changed; its output noise against fp32 on those samples, its latency
//      change (timed alternately with the fp32 build) and its weights-file bytes.
//   3. Search: per-layer noises and costs add up; the Pareto front of total noise
//      against total cost, for the joint choice and for each technique alone
//      (exhaustive when small, a Lagrangian sweep otherwise).
//   4. Verification: the front's candidates are compiled and measured for real (top-1
//      on the held-out set, latency, bytes); the plan chosen is the best measured one.
//
// The trial and verification results are cached in DIR/cache/planner.json, so an
// interrupted search resumes where it stopped.
//
//===----------------------------------------------------------------------===//
#include "codegen/Driver.h"
#include "tools/kiln/Dataset.h"
#include "tools/kiln/Tool.h"

extern "C" {
#include "kiln/npy.h"
}

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <map>
#include <set>

namespace kiln::tool {

int cmdPlan(int argc, char **argv);

namespace {

const char *kPlanHelp = R"(kiln plan MODEL.onnx --calib DATA --eval DATA --labels LABELS --budget B -o DIR [options]

Chooses every layer's precision (fp32, bf16, int8, int4) and structure (dense, N:M
sparse, SmartDeal-decomposed, butterfly-factorised) together, to meet a budget with the
least accuracy loss, priced by the code Kiln generates on this machine:
  1. calibration on DATA: activation ranges, the layers' input Gram matrices, and the
     fp32 model's outputs on the first calibration samples;
  2. one trial build per layer and choice (the other layers fp32): its output error
     against fp32 on those samples, its latency change and its weights-file bytes
     (cached in DIR/cache: an interrupted search resumes where it stopped);
  3. the Pareto front of summed per-layer error against summed cost, for the joint
     choice and for each technique alone;
  4. the front's candidates measured for real: top-1 on the --eval set, latency,
     bytes; the plan is the best measured one.
Writes DIR/plan.json (editable; kiln compile MODEL --plan DIR/plan.json), DIR/report.html
and DIR/report.json.

Options:
  --budget latency=MS       at most MS milliseconds per inference (at --shape's batch)
  --budget size=BYTES       at most BYTES in the weights file
  --budget latency|size     as fast / as small as possible within --max-drop
  --max-drop P              largest top-1 drop accepted, in points (default 1.0)
  --calib DATA              calibration samples (.npy or IDX); --calib-limit N (default 500)
  --eval DATA --labels L    held-out labelled set (as kiln eval); --eval-limit N (default 2000)
  --sens-samples N          calibration samples the per-layer error is measured on (default 128)
  --techniques LIST         any of quant,nm,smartdeal,butterfly (default all four)
  --nm N:M                  the N:M pattern tried (default 2:4)
  --threads N               threads latency is measured with (default 1)
  --runs N                  timed runs per latency measurement (default 200)
  --target x86-64|accel     the target priced: this machine's CPU (default), or Kiln's
                            accelerator: int8 layers (int4 weights with quant), dense,
                            N:M or SmartDeal, priced by
                            kiln sim on the Verilated RTL (--budget cycles=N|size=BYTES|
                            cycles|size, size being weight bytes moved per inference;
                            --accel-config FILE)
  --shape NAME=d0,...       the input shape latency is measured at (default batch 1)
)";

/// One layer's choice.
struct Choice {
  int bits = 32;              ///< 32, 16 (bf16), 8, 4
  std::string structure = "dense";
};

std::string precisionName(int bits) { return bits == 32 ? "fp32" : bits == 16 ? "bf16" : bits == 8 ? "int8" : "int4"; }

std::string label(const Choice &c) {
  if (c.structure == "butterfly") return "butterfly";
  return precisionName(c.bits) + (c.structure == "dense" ? "" : "+" + c.structure);
}

/// The technique a choice belongs to ("none" for fp32 dense).
std::string technique(const Choice &c, bool accel = false) {
  if (accel) { // int8 is the accelerator's baseline; int4 weights are the quantisation choice
    if (c.structure == "dense") return c.bits == 4 ? "quant" : "none";
    if (c.structure == "smartdeal") return "smartdeal";
    return c.bits == 4 ? "joint" : "nm";
  }
  if (c.structure == "butterfly") return "butterfly";
  if (c.structure == "smartdeal") return c.bits == 32 ? "smartdeal" : "joint";
  if (c.structure != "dense") return c.bits == 32 ? "nm" : "joint";
  return c.bits == 32 ? "none" : "quant";
}

/// What a build measured.
struct Measure {
  bool ok = false;
  std::string reason;    ///< why not (a choice the layer cannot take, a failed build)
  double noise = 0;      ///< output noise power / signal power against fp32
  double latencyMs = 0;  ///< trials: change against fp32; plans: absolute
  double bytes = 0;      ///< trials: change of the weights file; plans: absolute
  double top1 = -1;      ///< plans only
  bool priced = true;    ///< false: a reference the target cannot run (fp32 on the accelerator)
};

llvm::json::Object toJson(const Measure &m) {
  return llvm::json::Object{{"ok", m.ok},          {"reason", m.reason}, {"noise", m.noise},
                            {"latency_ms", m.latencyMs}, {"bytes", m.bytes}, {"top1", m.top1},
                            {"priced", m.priced}};
}
Measure fromJson(const llvm::json::Object &o) {
  Measure m;
  m.ok = o.getBoolean("ok").value_or(false);
  m.reason = o.getString("reason").value_or("").str();
  m.noise = o.getNumber("noise").value_or(0);
  m.latencyMs = o.getNumber("latency_ms").value_or(0);
  m.bytes = o.getNumber("bytes").value_or(0);
  m.top1 = o.getNumber("top1").value_or(-1);
  m.priced = o.getBoolean("priced").value_or(true);
  return m;
}

double sqnrDb(double noise) { return noise > 0 ? -10 * std::log10(noise) : 999.0; }

struct Layer {
  std::string name, op;
  int64_t params = 0;
  std::vector<Choice> choices;   ///< choices[0] is fp32 dense
  std::vector<Measure> measures; ///< per choice (measures[0]: zeros)
};

/// A whole-model plan: one choice index per layer.
using Pick = std::vector<int>;

struct Point {
  Pick pick;
  double noise = 0, cost = 0; ///< predicted: summed per-layer noise, base + summed cost change
};

struct Verified {
  std::string family; ///< the search that proposed it (joint, quant, nm, smartdeal, butterfly, fp32)
  Pick pick;
  Measure m;
  Point predicted;
};

/// Which kiln binary measured (its size and modification time): a rebuilt compiler
/// measures again.
std::string kilnStamp() {
  llvm::sys::fs::file_status st;
  if (llvm::sys::fs::status("/proc/self/exe", st)) return "?";
  return std::to_string(st.getSize()) + "@" +
         std::to_string(std::chrono::duration_cast<std::chrono::seconds>(
                            st.getLastModificationTime().time_since_epoch())
                            .count());
}

volatile std::sig_atomic_t interrupted = 0;
void onInterrupt(int) { interrupted = 1; }

class Planner {
public:
  CommonOptions o;
  std::string dir, cacheDir, evalData, evalLabels, metric, nmPattern = "2:4";
  double budget = -1, maxDrop = 1.0;
  int64_t evalLimit = 2000, sensSamples = 128;
  int threads = 1, runs = 200;
  std::set<std::string> techniques{"quant", "nm", "smartdeal", "butterfly"};
  bool accel = false;       ///< price on Kiln's accelerator (kiln sim) instead of this CPU
  std::string accelConfig;  ///< --accel-config (empty: the default description)

  int run();

private:
  std::vector<int64_t> latShape;    ///< the input shape latency is measured at
  std::string inputName, gramPath, latInput, baseLatDir;
  llvm::json::Value calPlan = nullptr;
  std::vector<std::string> sensInputs;               ///< chunks at latShape
  std::vector<std::vector<std::vector<float>>> sensRef; ///< fp32 outputs per chunk
  std::vector<Layer> layers;
  llvm::json::Object cache;
  std::string cachePath;
  double baseLatencyMs = 0, baseBytes = 0, baseTop1 = -1, ortLatencyMs = -1;
  std::vector<Verified> verified;
  int64_t evalSamples = 0, evalPerSample = 0;
  kiln::tools::Array evalX, evalY;
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  void saveCache() {
    std::string tmp = cachePath + ".tmp";
    if (writeJson(tmp, llvm::json::Value(llvm::json::Object(cache)))) llvm::sys::fs::rename(tmp, cachePath);
  }
  int prepare();
  llvm::json::Value planJson(const Pick &pick) const;
  std::string key(const Pick &pick) const;
  bool build(const Pick &pick, const std::vector<int64_t> &shape, const std::string &where,
             codegen::Artifact &artifact, std::string &denseReason);
  bool runChunks(const std::string &where, const codegen::Artifact &artifact, double *noise,
                 std::vector<std::vector<std::vector<float>>> *outs);
  bool latency(const std::string &where, double &deltaMs, double *absMs = nullptr);
  int measureTrials();
  Measure verify(const Pick &pick);
  std::vector<Point> front(const std::string &family) const;
  int search();
  int writeOutputs();
  /// The budgeted figure. On the accelerator, latencyMs holds cycles and bytes the
  /// weight bytes moved per inference.
  double value(const Measure &m) const { return metric == "size" ? m.bytes : m.latencyMs; }
  std::vector<std::string> families() const;
  /// A measure's cost for the console: cycles and weight bytes moved on the accelerator,
  /// else latency and weights (`change`: signed, as trials report them).
  std::string costText(const Measure &m, bool change) const {
    if (accel) return llvm::formatv("{0:f0} cycles, {1:f0} weight bytes moved", m.latencyMs, m.bytes).str();
    const char *sign = change ? "+" : "";
    return llvm::formatv("latency {0}{1:f4} ms, weights {2}{3:f0} B", m.latencyMs < 0 ? "" : sign, m.latencyMs,
                         m.bytes < 0 ? "" : sign, m.bytes)
        .str();
  }
  /// Runs `pick` on the Verilated accelerator (kiln sim, one inference): total cycles
  /// and weight bytes moved, and per layer (name -> cycles, weight bytes).
  bool simulate(const Pick &pick, Measure &m, std::map<std::string, std::pair<double, double>> *perLayer);
  /// Per layer and choice label ("int8", "int4+2:4" ...), the accelerator's cycles and
  /// weight bytes (kiln sim of the model with every layer in that form).
  std::map<std::string, std::map<std::string, std::pair<double, double>>> accelTable;
  bool fits(const Measure &m) const; ///< within --max-drop and the budget
  const Verified *chosen() const;
};

/// A plan file: the calibration plan's entries (ranges) with each layer's choice.
llvm::json::Value Planner::planJson(const Pick &pick) const {
  llvm::json::Value plan = calPlan;
  auto *root = plan.getAsObject();
  llvm::json::Array *rows = root->getArray("layers");
  for (llvm::json::Value &v : *rows) {
    auto *row = v.getAsObject();
    std::string name = row->getString("name").value_or("").str();
    Choice c;
    for (size_t l = 0; l < layers.size(); ++l)
      if (layers[l].name == name) c = layers[l].choices[size_t(pick[l])];
    // A layer calibration never reached keeps no range: it stays fp32.
    if (!row->get("input_range") && (c.bits == 8 || c.bits == 4)) c.bits = 32;
    (*row)["bits"] = c.bits;
    (*row)["structure"] = c.structure;
  }
  return plan;
}

std::string Planner::key(const Pick &pick) const {
  std::string k;
  for (size_t l = 0; l < layers.size(); ++l) k += (l ? ";" : "") + label(layers[l].choices[size_t(pick[l])]);
  return k;
}

/// Compiles `pick` at input shape `shape` into `where` and links its runner. A
/// structure the pass left dense (a layer it cannot take) sets `denseReason`.
bool Planner::build(const Pick &pick, const std::vector<int64_t> &shape, const std::string &where,
                    codegen::Artifact &artifact, std::string &denseReason) {
  removeTree(where);
  if (llvm::sys::fs::create_directories(where)) return false;
  std::string planPath = where + "/plan.json";
  if (!writeJson(planPath, planJson(pick))) return false;
  CommonOptions c = trialOptions(o, planPath);
  c.import.inputShapes[inputName] = shape;
  bool compressed = false;
  if (applyPlanStructures(c, planPath, compressed)) return false;
  if (compressed) c.compile.compressGram = gramPath;
  if (!c.compile.sparsify.empty()) c.compile.sparsifyReport = where + "/nm.json";
  if (!c.compile.decompose.empty()) c.compile.decomposeReport = where + "/sd.json";
  if (!c.compile.butterfly.empty()) c.compile.butterflyReport = where + "/bf.json";
  std::string log;
  llvm::raw_string_ostream err(log);
  if (failed(kiln::compileOnnxFile(c.model, c.import, c.compile, where, artifact, err, false))) {
    denseReason = "build failed: " + llvm::StringRef(log).trim().split('\n').first.str();
    return false;
  }
  // A structure asked for but not applied: the pass says why in its report.
  std::map<std::string, Structure::Kind> asked;
  for (size_t l = 0; l < layers.size(); ++l)
    asked[layers[l].name] = parseStructure(layers[l].choices[size_t(pick[l])].structure)->kind;
  for (auto [path, field, kind] : {std::tuple{c.compile.sparsifyReport, "pattern", Structure::NM},
                                 std::tuple{c.compile.decomposeReport, "setting", Structure::SmartDeal},
                                 std::tuple{c.compile.butterflyReport, "method", Structure::Butterfly}}) {
    if (path.empty()) continue;
    auto rep = readJson(path);
    auto *rows = rep && rep->getAsObject() ? rep->getAsObject()->getArray("layers") : nullptr;
    if (!rows) continue;
    for (const llvm::json::Value &v : *rows) {
      const auto *row = v.getAsObject();
      auto it = asked.find(row->getString("name").value_or("").str());
      if (it != asked.end() && it->second == kind && row->getString(field).value_or("") == "dense")
        denseReason = row->getString("reason").value_or("the pass left it dense").str();
    }
  }
  if (!denseReason.empty()) return false;
  return linkRunner(where, false) == 0;
}

/// Runs the build in `where` on the sensitivity chunks: the output noise against the
/// fp32 reference (`noise`), or the outputs themselves (`outs`).
bool Planner::runChunks(const std::string &where, const codegen::Artifact &artifact, double *noise,
                        std::vector<std::vector<std::vector<float>>> *outs) {
  double signal = 0, err = 0;
  for (size_t k = 0; k < sensInputs.size(); ++k) {
    std::string out = where + "/out", msg;
    if (runProgram({where + "/runner", "--weights", where + "/model.kw", "--input", inputName + "=" + sensInputs[k],
                    "--output", out},
                   true, &msg) != 0) {
      llvm::errs() << "error: running a trial build failed" << (msg.empty() ? "" : ": " + msg) << "\n";
      return false;
    }
    auto got = readOutputs(out, artifact.signature);
    if (outs) {
      outs->push_back(std::move(got));
      continue;
    }
    addOutputError(sensRef[k], got, signal, err);
  }
  if (noise) *noise = signal > 0 ? err / signal : 0;
  return true;
}

/// Latency of the runner in `where` against the fp32 build, timed alternately (three
/// rounds each, medians): the change, and the absolute figure.
bool Planner::latency(const std::string &where, double &deltaMs, double *absMs) {
  std::vector<double> mine, base;
  auto args = [&](const std::string &d) {
    return std::vector<std::string>{d + "/runner", "--weights", d + "/model.kw", "--input", inputName + "=" + latInput,
                                    "--output", d + "/lat-out", "--threads", std::to_string(threads), "--repeat",
                                    std::to_string(runs + 1), "--timing"};
  };
  for (int r = 0; r < 3; ++r) {
    Timing t;
    std::string err;
    if (!timedRun(args(baseLatDir), "fp32 Kiln", t, err)) return false;
    base.push_back(t.medianMs);
    if (where == baseLatDir) continue;
    if (!timedRun(args(where), "Kiln", t, err)) return false;
    mine.push_back(t.medianMs);
  }
  double b = median(base), m = where == baseLatDir ? b : median(mine);
  deltaMs = m - b;
  if (absMs) *absMs = m;
  return true;
}

int Planner::prepare() {
  // The held-out set fixes the input (name, per-sample shape); latency is measured at
  // --shape's batch (default 1), calibration runs in batches of 100.
  if (int rc = readLabelledSet(evalData, evalLabels, evalLimit, evalX, evalY, evalSamples, evalPerSample)) return rc;
  std::map<std::string, std::vector<int64_t>> userShapes = o.import.inputShapes;
  if (int rc = shapeFromData(o, evalX, evalPerSample, 100, inputName, "kiln plan")) return rc;
  std::vector<int64_t> calShape = o.import.inputShapes[inputName];
  latShape = calShape;
  latShape[0] = 1;
  if (auto it = userShapes.find(inputName); it != userShapes.end()) {
    if (it->second.size() != calShape.size() ||
        !std::equal(it->second.begin() + 1, it->second.end(), calShape.begin() + 1) || it->second[0] < 1) {
      llvm::errs() << "error: --shape " << inputName << " does not fit the samples of '" << evalData << "'\n";
      return 1;
    }
    latShape = it->second;
  }

  // The cache: valid for this model, data, options and Kiln build.
  auto model = llvm::MemoryBuffer::getFile(o.model);
  if (!model) {
    llvm::errs() << "error: cannot read '" << o.model << "'\n";
    return 1;
  }
  std::string shapeText;
  for (int64_t d : latShape) shapeText += std::to_string(d) + ",";
  std::string techs;
  for (const std::string &t : techniques) techs += t + ",";
  std::string fingerprint = llvm::formatv("model={0:x} calib={1}:{2} sens={3} eval={4}:{5} shape={6} threads={7} "
                                          "runs={8} nm={9} techniques={10} kiln={11} target={12}:{13}",
                                          codegen::weightsChecksum((*model)->getBufferStart(),
                                                                   (*model)->getBufferSize()),
                                          o.calibPath, o.calibLimit, sensSamples, evalData, evalLimit, shapeText,
                                          threads, runs, nmPattern, techs, kilnStamp(), o.compile.target,
                                          accelConfig)
                                .str();
  cacheDir = dir + "/cache";
  cachePath = cacheDir + "/planner.json";
  if (llvm::sys::fs::create_directories(cacheDir)) {
    llvm::errs() << "error: cannot create '" << cacheDir << "'\n";
    return 1;
  }
  std::string damaged;
  auto c = readJson(cachePath);
  if (c && c->getAsObject() && c->getAsObject()->getString("fingerprint").value_or("") == fingerprint &&
      checkPlannerCache(*c->getAsObject(), damaged)) {
    cache = std::move(*c->getAsObject());
    llvm::outs() << "plan: resuming from " << cachePath << "\n";
  } else {
    if (!damaged.empty())
      llvm::outs() << "plan: ignoring the damaged cache " << cachePath << " (" << damaged << "); starting afresh\n";
    cache = llvm::json::Object{{"fingerprint", fingerprint}, {"trials", llvm::json::Object{}},
                               {"verified", llvm::json::Object{}}};
  }

  // 1. Calibration: ranges (the quantisation plan every trial starts from) and Gram
  // matrices, in batches of 100.
  auto t0 = std::chrono::steady_clock::now();
  Calibration cal;
  removeTree(cacheDir + "/calibration");
  removeTree(cacheDir + "/gram");
  cal.work = std::make_unique<WorkDir>(cacheDir + "/calibration", "kiln-plan");
  std::string calPlanPath = cacheDir + "/calibration-plan.json";
  CommonOptions q = o;
  q.quantize = "int8";
  if (int rc = calibrate(q, calPlanPath, cal)) return rc;
  auto cp = readJson(calPlanPath);
  if (!cp || !cp->getAsObject() || !cp->getAsObject()->getArray("layers")) {
    llvm::errs() << "error: cannot read the calibration plan\n";
    return 1;
  }
  calPlan = std::move(*cp);
  auto list = readJson(cal.work->path + "/layers.json");
  std::map<std::string, int64_t> params;
  if (list && list->getAsObject() && list->getAsObject()->getArray("layers"))
    for (const auto &l : *list->getAsObject()->getArray("layers"))
      params[l.getAsObject()->getString("name").value_or("").str()] = l.getAsObject()->getInteger("params").value_or(0);
  bool needGram = techniques.count("nm") || techniques.count("smartdeal") || techniques.count("butterfly");
  if (needGram) {
    CommonOptions g = o;
    g.compile.sparsify = nmPattern;
    g.compile.decompose = "smartdeal";
    g.compile.butterfly = "all";
    WorkDir gw(cacheDir + "/gram", "kiln-plan");
    if (int rc = calibrateGram(g, gw)) return rc;
    gramPath = g.compile.compressGram;
  }
  llvm::outs() << llvm::format("plan: calibrated on %s in %.1f s\n", o.calibPath.c_str(),
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());

  // The layers and their choices.
  for (const llvm::json::Value &v : *calPlan.getAsObject()->getArray("layers")) {
    const auto *row = v.getAsObject();
    Layer l;
    l.name = row->getString("name").value_or("").str();
    l.op = row->getString("op").value_or("").str();
    l.params = params[l.name];
    bool reached = row->get("input_range") != nullptr;
    std::vector<std::string> structures{"dense"};
    if (techniques.count("nm")) structures.push_back(nmPattern);
    if (techniques.count("smartdeal")) structures.push_back("smartdeal");
    if (accel) {
      // The accelerator runs int8 layers, and int4 weights (its GEMM W4 mode; SmartDeal
      // layers are rebuilt as int8): fp32 (choice 0) is the reference only.
      if (!reached) {
        llvm::errs() << "error: layer '" << l.name << "' was never reached on the calibration data, so it has no "
                     << "int8 range: the accelerator cannot run it\n";
        return 1;
      }
      l.choices.push_back({32, "dense"});
      for (const std::string &s : structures) {
        l.choices.push_back({8, s});
        if (techniques.count("quant") && s != "smartdeal") l.choices.push_back({4, s});
      }
    } else {
      for (const std::string &s : structures)
        for (int bits : {32, 16, 8, 4}) {
          if (bits != 32 && !techniques.count("quant")) continue;
          if ((bits == 8 || bits == 4) && !reached) continue;
          l.choices.push_back({bits, s});
        }
      if (techniques.count("butterfly") && l.op == "matmul") l.choices.push_back({32, "butterfly"});
    }
    l.measures.assign(l.choices.size(), Measure{});
    l.measures[0].ok = !accel;
    if (accel) l.measures[0].reason = "the accelerator runs int8 layers";
    layers.push_back(std::move(l));
  }
  if (layers.empty()) {
    llvm::errs() << "error: the model has no layer Kiln can quantise or compress (convolutions, matmuls by "
                    "constant weights)\n";
    return 1;
  }

  // The fp32 build at the latency shape: the reference outputs on the sensitivity
  // samples (chunks of latShape's batch), and the latency and bytes every trial is
  // compared with.
  kiln::tools::Array calib;
  std::string err;
  if (!kiln::tools::readSamples(o.calibPath, calib, err)) {
    llvm::errs() << "error: calibration data: " << err << "\n";
    return 1;
  }
  int64_t per = 1, batch = latShape[0];
  for (size_t d = 1; d < latShape.size(); ++d) per *= latShape[d];
  int64_t avail = std::min<int64_t>({calib.dims.empty() ? 0 : calib.dims[0], sensSamples, o.calibLimit});
  std::string sensDir = cacheDir + "/samples";
  llvm::sys::fs::create_directories(sensDir);
  for (int64_t s = 0; s + batch <= avail; s += batch) {
    std::string path = sensDir + "/chunk" + std::to_string(s / batch) + ".npy";
    if (kiln_npy_write(path.c_str(), KILN_DTYPE_F32, latShape.size(), latShape.data(), calib.f.data() + s * per) !=
        KILN_OK) {
      llvm::errs() << "error: cannot write '" << path << "'\n";
      return 1;
    }
    sensInputs.push_back(path);
  }
  if (sensInputs.empty()) {
    llvm::errs() << "error: fewer calibration samples than the latency batch (" << batch << ")\n";
    return 1;
  }
  latInput = sensInputs[0];
  baseLatDir = cacheDir + "/fp32";
  Pick fp32(layers.size(), 0);
  codegen::Artifact a;
  std::string why;
  if (!build(fp32, latShape, baseLatDir, a, why) || !runChunks(baseLatDir, a, nullptr, &sensRef)) {
    llvm::errs() << "error: the fp32 build failed" << (why.empty() ? "" : ": " + why) << "\n";
    return 1;
  }
  if (!accel) {
    double unused = 0;
    if (!latency(baseLatDir, unused, &baseLatencyMs)) return 1;
    baseBytes = double(a.weightsBytes);
    return 0;
  }
  // The accelerator's cost table: one simulation per choice (precision and structure)
  // with every layer in it. A layer's cycles and weight bytes do not depend on the other
  // layers' forms.
  for (size_t si = 1; si < layers[0].choices.size(); ++si) {
    std::string st = label(layers[0].choices[si]);
    Pick all(layers.size(), int(si));
    Measure m;
    std::map<std::string, std::pair<double, double>> per;
    if (!simulate(all, m, &per)) {
      if (st == "int8") {
        llvm::errs() << "error: kiln sim of the int8 model failed: " << m.reason << "\n";
        return 1;
      }
      // One layer at a time (the rest int8 dense): the layers that can take the form.
      llvm::outs() << "plan: kiln sim with every layer " << st << " failed (" << m.reason << "); pricing one layer "
                   << "at a time\n";
      for (size_t l = 0; l < layers.size(); ++l) {
        Pick one(layers.size(), 1);
        one[l] = int(si);
        std::map<std::string, std::pair<double, double>> single;
        Measure ml;
        if (simulate(one, ml, &single) && single.count(layers[l].name))
          accelTable[layers[l].name][st] = single[layers[l].name];
        else
          llvm::outs() << "plan:   " << layers[l].name << " " << st << ": " << ml.reason << "\n";
      }
      continue;
    }
    for (auto &[name, cb] : per) accelTable[name][st] = cb;
    if (st == "int8") {
      // What the rest of the model (pooling, transposes ...) costs.
      baseLatencyMs = m.latencyMs;
      baseBytes = m.bytes;
      for (const Layer &l : layers)
        if (auto it = per.find(l.name); it != per.end()) {
          baseLatencyMs -= it->second.first;
          baseBytes -= it->second.second;
        }
    }
    llvm::outs() << llvm::format("plan: accelerator, every layer %s: %.0f cycles, %.0f weight bytes moved\n",
                                 st.c_str(), m.latencyMs, m.bytes);
  }
  return 0;
}

/// 2. One trial per layer and choice (cached).
int Planner::measureTrials() {
  size_t total = 0, done = 0;
  for (const Layer &l : layers) total += l.choices.size() - 1;
  auto *trials = cache.getObject("trials");
  double spent = 0;
  size_t timed = 0;
  for (size_t li = 0; li < layers.size(); ++li) {
    Layer &l = layers[li];
    std::set<std::string> ineligible; // structures the layer cannot take
    for (size_t ci = 1; ci < l.choices.size(); ++ci) {
      ++done;
      const Choice &c = l.choices[ci];
      std::string k = l.name + "|" + label(c);
      Measure m;
      bool cached = false;
      if (const llvm::json::Object *hit = trials->getObject(k)) {
        m = fromJson(*hit);
        cached = true;
      } else if (ineligible.count(c.structure)) {
        m.reason = "structure not applicable";
      } else {
        if (interrupted) return 130;
        auto t0 = std::chrono::steady_clock::now();
        Pick pick(layers.size(), 0);
        pick[li] = int(ci);
        codegen::Artifact a;
        std::string where = cacheDir + "/trial", why;
        const std::pair<double, double> *priced = nullptr;
        if (accel)
          if (auto lt = accelTable.find(l.name); lt != accelTable.end())
            if (auto st = lt->second.find(label(c)); st != lt->second.end()) priced = &st->second;
        if (accel && !priced) {
          why = "the accelerator does not run this layer in this form (kiln sim failed on it)";
        } else if (accel && build(pick, latShape, where, a, why) && runChunks(where, a, &m.noise, nullptr)) {
          m.ok = true;
          m.latencyMs = priced->first;
          m.bytes = priced->second;
        } else if (!accel && build(pick, latShape, where, a, why) && runChunks(where, a, &m.noise, nullptr) &&
                   latency(where, m.latencyMs)) {
          m.ok = true;
          m.bytes = double(a.weightsBytes) - baseBytes;
        }
        if (!m.ok) {
          m.reason = why.empty() ? "build or run failed" : why;
        }
        removeTree(where);
        if (interrupted) return 130; // a run cut short measures nothing
        spent += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ++timed;
        (*trials)[k] = toJson(m);
        saveCache();
      }
      if (!m.ok && c.structure != "dense" && c.bits == 32) ineligible.insert(c.structure);
      l.measures[ci] = m;
      double eta = timed ? spent / double(timed) * double(total - done) : 0;
      if (m.ok)
        llvm::outs() << llvm::format("plan: [%zu/%zu] %-24s %-15s output SQNR %6.1f dB, %s   (%s)\n", done,
                                     total, l.name.c_str(), label(c).c_str(), sqnrDb(m.noise),
                                     costText(m, true).c_str(),
                                     cached ? "cached"
                                            : llvm::formatv("{0:f0} s, ~{1:f0} s left", elapsed(), eta).str().c_str());
      else
        llvm::outs() << llvm::format("plan: [%zu/%zu] %-24s %-15s not available: %s%s\n", done, total,
                                     l.name.c_str(), label(c).c_str(), m.reason.c_str(), cached ? " (cached)" : "");
      llvm::outs().flush();
    }
  }
  return 0;
}

/// Compiles and measures a whole plan: top-1 on the held-out set (batches of 100),
/// latency and bytes at the latency shape. Cached by the plan's choices.
Measure Planner::verify(const Pick &pick) {
  auto *ver = cache.getObject("verified");
  std::string k = key(pick);
  if (const llvm::json::Object *hit = ver->getObject(k)) return fromJson(*hit);
  Measure m;
  if (interrupted) return m;
  std::string where = cacheDir + "/verify", why;
  codegen::Artifact a;
  double delta = 0;
  bool fp32 = std::all_of(pick.begin(), pick.end(), [](int c) { return c == 0; });
  if (!build(pick, latShape, where, a, why) || (!accel && !latency(where, delta, &m.latencyMs))) {
    m.reason = why.empty() ? "build or run failed" : why;
    return m;
  }
  m.bytes = double(a.weightsBytes);
  if (accel && fp32) {
    m.priced = false; // the reference: the accelerator does not run fp32
  } else if (accel && !simulate(pick, m, nullptr)) {
    return m;
  }
  runChunks(where, a, &m.noise, nullptr);
  // Accuracy at batch 100.
  const kiln::tools::Array &data = evalX, &labels = evalY;
  int64_t n = evalSamples, perSample = evalPerSample;
  std::vector<int64_t> shape = latShape;
  shape[0] = 100;
  if (!build(pick, shape, where, a, why)) {
    m.reason = why;
    return m;
  }
  int64_t right = 0;
  for (int64_t s = 0; s < n; s += 100) {
    int64_t rows = std::min<int64_t>(100, n - s);
    std::vector<float> chunk(size_t(100 * perSample), 0.f);
    std::copy(data.f.begin() + s * perSample, data.f.begin() + (s + rows) * perSample, chunk.begin());
    std::string in = where + "/batch.npy", err;
    if (kiln_npy_write(in.c_str(), KILN_DTYPE_F32, shape.size(), shape.data(), chunk.data()) != KILN_OK ||
        runProgram({where + "/runner", "--weights", where + "/model.kw", "--input", inputName + "=" + in, "--output",
                    where + "/out"},
                   true, &err) != 0) {
      m.reason = "running the plan on the held-out set failed";
      return m;
    }
    std::vector<int64_t> pred;
    if (!argmaxRows(where + "/out/" + outputFileName(a.signature.outputs[0].name), 100, pred, err)) {
      m.reason = err;
      return m;
    }
    for (int64_t r = 0; r < rows; ++r) right += pred[size_t(r)] == labels.i[size_t(s + r)];
  }
  removeTree(where);
  m.top1 = double(right) / double(n);
  m.ok = true;
  (*ver)[k] = toJson(m);
  saveCache();
  return m;
}

/// The predicted Pareto front (noise against cost, cost ascending) over the choices
/// of `family` ("joint": all).
std::vector<Point> Planner::front(const std::string &family) const {
  bool bySize = metric == "size";
  std::vector<std::vector<int>> allowed(layers.size());
  double combos = 1;
  for (size_t l = 0; l < layers.size(); ++l) {
    for (size_t c = 0; c < layers[l].choices.size(); ++c) {
      std::string t = technique(layers[l].choices[c], accel);
      if (layers[l].measures[c].ok && (family == "joint" || t == "none" || t == family)) allowed[l].push_back(int(c));
    }
    combos *= double(allowed[l].size());
  }
  auto cost = [&](size_t l, int c) {
    return bySize ? layers[l].measures[size_t(c)].bytes : layers[l].measures[size_t(c)].latencyMs;
  };
  std::vector<Point> pts;
  auto evalPick = [&](const Pick &p) {
    Point pt{p, 0, bySize ? baseBytes : baseLatencyMs};
    for (size_t l = 0; l < layers.size(); ++l) {
      pt.noise += layers[l].measures[size_t(p[l])].noise;
      pt.cost += cost(l, p[l]);
    }
    return pt;
  };
  if (combos <= 200000) {
    Pick p(layers.size(), 0);
    std::function<void(size_t)> rec = [&](size_t l) {
      if (l == layers.size()) {
        pts.push_back(evalPick(p));
        return;
      }
      for (int c : allowed[l]) {
        p[l] = c;
        rec(l + 1);
      }
    };
    rec(0);
  } else {
    // Lagrangian sweep: each layer independently minimises noise + lambda * cost.
    for (int s = -1; s <= 400; ++s) {
      double lambda = s < 0 ? 0 : std::pow(10.0, -12 + s * 0.05);
      Pick p(layers.size(), 0);
      for (size_t l = 0; l < layers.size(); ++l) {
        double best = INFINITY;
        for (int c : allowed[l]) {
          double v = layers[l].measures[size_t(c)].noise + lambda * cost(l, c);
          if (v < best) best = v, p[l] = c;
        }
      }
      pts.push_back(evalPick(p));
    }
  }
  std::sort(pts.begin(), pts.end(), [](const Point &a, const Point &b) {
    return a.cost < b.cost || (a.cost == b.cost && a.noise < b.noise);
  });
  std::vector<Point> out;
  for (Point &p : pts)
    if (out.empty() || p.noise < out.back().noise - 1e-15) out.push_back(std::move(p));
  return out;
}

std::vector<std::string> Planner::families() const {
  std::vector<std::string> out{"joint"};
  for (std::string t : {"quant", "nm", "smartdeal", "butterfly"})
    if (techniques.count(t) && !(accel && t == "butterfly")) out.push_back(t);
  return out;
}

/// Runs kiln sim (this executable) on `pick` for one inference, on the latency input.
bool Planner::simulate(const Pick &pick, Measure &m, std::map<std::string, std::pair<double, double>> *perLayer) {
  std::string where = cacheDir + "/sim";
  removeTree(where);
  if (llvm::sys::fs::create_directories(where)) return false;
  std::string planPath = where + "/plan.json", outPath = where + "/out.txt", errPath = where + "/err.txt";
  if (!writeJson(planPath, planJson(pick))) return false;
  std::string self = llvm::sys::fs::getMainExecutable("kiln", reinterpret_cast<void *>(&cmdPlan));
  std::vector<std::string> args{self, "sim", o.model, "--plan", planPath, "--input", inputName + "=" + latInput,
                                "--no-check"};
  if (!gramPath.empty()) args.insert(args.end(), {"--gram", gramPath});
  if (!accelConfig.empty()) args.insert(args.end(), {"--config", accelConfig});
  std::vector<llvm::StringRef> refs(args.begin(), args.end());
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(outPath), llvm::StringRef(errPath)};
  std::string msg;
  int rc = llvm::sys::ExecuteAndWait(self, refs, std::nullopt, redirects, 0, 0, &msg);
  auto out = llvm::MemoryBuffer::getFile(outPath);
  if (rc != 0 || !out) {
    auto err = llvm::MemoryBuffer::getFile(errPath);
    llvm::StringRef text = err ? (*err)->getBuffer() : llvm::StringRef(msg);
    size_t at = text.find("error:");
    m.reason = "kiln sim failed: " + (at == llvm::StringRef::npos ? text : text.drop_front(at)).split('\n').first.str();
    return false;
  }
  // The per-layer table: NAME KIND... cycles gemm-cycles util% rd wt wr; then "total".
  llvm::SmallVector<llvm::StringRef> lines;
  (*out)->getBuffer().split(lines, '\n');
  bool table = false, total = false;
  for (llvm::StringRef line : lines) {
    if (line.starts_with("layer ") && line.contains("cycles")) {
      table = true;
      continue;
    }
    if (!table) continue;
    llvm::SmallVector<llvm::StringRef> f;
    line.split(f, ' ', -1, false);
    double cycles, wt;
    if (f.size() < 7 || f[f.size() - 6].getAsDouble(cycles) || f[f.size() - 2].getAsDouble(wt)) break;
    if (f[0] == "total") {
      m.latencyMs = cycles;
      m.bytes = wt;
      total = true;
      break;
    }
    if (perLayer) (*perLayer)[f[0].str()] = {cycles, wt};
  }
  if (!total) {
    m.reason = "kiln sim printed no cycle table";
    return false;
  }
  removeTree(where);
  return true;
}

/// 3-4. Fronts per family, candidates verified, the best measured plan chosen.
int Planner::search() {
  verified.push_back({"fp32", Pick(layers.size(), 0), verify(Pick(layers.size(), 0)), {}});
  if (!verified.back().m.ok) {
    llvm::errs() << "error: the fp32 model could not be measured: " << verified.back().m.reason << "\n";
    return 1;
  }
  baseTop1 = verified.back().m.top1;
  // What steers each search: the budget when it has a number, else --max-drop.
  auto steer = [&](const Measure &m) {
    return m.ok && m.priced && (budget >= 0 ? value(m) <= budget : 100 * (baseTop1 - m.top1) <= maxDrop + 1e-9);
  };
  if (accel) { // the all-int8 dense model: what compression is compared with
    Pick int8(layers.size(), 1);
    verified.push_back({"int8", int8, verify(int8), {}});
  }
  for (const std::string &fam : families()) {
    std::vector<Point> f = front(fam);
    if (f.size() <= 1 && fam != "joint") continue;
    auto check = [&](size_t i) -> const Verified & {
      for (const Verified &v : verified)
        if (v.pick == f[i].pick && v.family == fam) return v;
      Measure m = verify(f[i].pick);
      verified.push_back({fam, f[i].pick, m, f[i]});
      llvm::outs() << llvm::format("plan: %-9s candidate %-40s top-1 %.4f, %s %.4g (predicted %.4g, output SQNR "
                                   "%.1f dB)%s\n",
                                   fam.c_str(), key(f[i].pick).substr(0, 40).c_str(), m.top1, metric.c_str(),
                                   value(m), f[i].cost, sqnrDb(f[i].noise), m.ok ? "" : "  [failed]");
      if (const Verified *b = chosen())
        llvm::outs() << llvm::format("plan:   best so far: top-1 %.4f, %s (%zu plans measured, %.0f s)\n", b->m.top1,
                                     costText(b->m, false).c_str(), verified.size(), elapsed());
      llvm::outs().flush();
      return verified.back();
    };
    if (budget >= 0) {
      // The least noisy point predicted within the budget; if it measures over, the
      // next cheaper ones (up to four).
      size_t i = f.size();
      while (i > 0 && f[i - 1].cost > budget) --i;
      if (i == 0) i = 1; // even the cheapest is predicted over: measure it anyway
      for (size_t tries = 0; i > 0 && tries < 4 && !interrupted; --i, ++tries)
        if (steer(check(i - 1).m)) break;
    } else {
      // The cheapest point within --max-drop: bisection along the front (accuracy
      // falls with predicted noise, which falls along the front).
      size_t lo = 0, hi = f.size() - 1;
      if (steer(check(hi).m))
        while (lo < hi && !interrupted) {
          size_t mid = (lo + hi) / 2;
          if (steer(check(mid).m))
            hi = mid;
          else
            lo = mid + 1;
        }
    }
    if (fam == "joint") // a few more of the joint front, for the plot
      for (size_t s = 1; s <= 3 && f.size() > 4 && !interrupted; ++s) check(s * (f.size() - 1) / 4);
    if (interrupted) return 130;
  }
  return 0;
}

std::string jsString(const llvm::json::Value &v) {
  std::string s = llvm::formatv("{0}", v).str();
  // Safe inside <script>: no "</" can close the element.
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (s[i] == '<') ? std::string("\\u003c") : std::string(1, s[i]);
  return out;
}

const char *kReportHtml = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Kiln plan: @MODEL@</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd;padding-bottom:4px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.chosen{background:#fff5d6;font-weight:600}
.plots{display:flex;flex-wrap:wrap;gap:24px}figure{margin:0}figcaption{color:#555;font-size:12px;max-width:520px}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:5px}
.note{color:#555}
</style></head><body>
<h1>Kiln plan for <code>@MODEL@</code></h1>
<p id="summary"></p>
<div class="plots">
<figure><svg id="pareto" width="520" height="360" role="img" aria-label="measured accuracy against cost"></svg>
<figcaption>Measured: top-1 on the held-out set against the budgeted metric, for every plan the planner compiled and ran. The joint search proposes any mix; the others one technique alone. The dashed line is the budget; the ring marks the chosen plan.</figcaption></figure>
<figure><svg id="fronts" width="520" height="360" role="img" aria-label="predicted fronts"></svg>
<figcaption>Predicted: the Pareto fronts of summed per-layer output error (as SQNR against fp32, higher is better) against the summed cost, per search, from the per-layer trials.</figcaption></figure>
</div>
<div class="legend" id="legend"></div>
<h2>Chosen plan, per layer</h2>
<table id="layers"></table>
<h2>Every plan measured</h2>
<table id="plans"></table>
<h2>Per-layer trials (one layer changed, the rest fp32)</h2>
<table id="trials"></table>
<p class="note" id="method"></p>
<script>
"use strict";
window.onerror=function(m){document.body.setAttribute("data-error",String(m));};
const R=@DATA@;
const colors={fp32:"#444",int8:"#8c564b",joint:"#d62728",quant:"#1f77b4",nm:"#2ca02c",smartdeal:"#9467bd",butterfly:"#ff7f0e"};
const unit=R.metric==="size"?"bytes":R.accel?"cycles":"ms";
const costOf=v=>R.accel?v.cycles:v.latency_ms;
const costFmt=v=>R.accel?fmt(v,0):fmt(v,4);
const fmt=(v,d)=>v===null||v===undefined?"-":Number(v).toFixed(d);
const NS="http://www.w3.org/2000/svg";
function el(svg,tag,attrs,text){const e=document.createElementNS(NS,tag);for(const k in attrs)e.setAttribute(k,attrs[k]);if(text!==undefined)e.textContent=text;svg.appendChild(e);return e;}
function plot(id,series,xlabel,ylabel,extra){
  const svg=document.getElementById(id),W=520,H=360,L=64,B=44,T=14,Rm=14;
  let xs=[],ys=[];series.forEach(s=>s.points.forEach(p=>{xs.push(p[0]);ys.push(p[1]);}));
  if(extra&&extra.x!==undefined)xs.push(extra.x);
  let x0=Math.min(...xs),x1=Math.max(...xs),y0=Math.min(...ys),y1=Math.max(...ys);
  if(x1===x0){x1+=Math.abs(x0)*0.1+1e-9;x0-=Math.abs(x0)*0.1+1e-9;}if(y1===y0){y1+=0.5;y0-=0.5;}
  const px=(x1-x0)*0.06,py=(y1-y0)*0.08;x0-=px;x1+=px;y0-=py;y1+=py;
  const sx=v=>L+(v-x0)/(x1-x0)*(W-L-Rm),sy=v=>H-B-(v-y0)/(y1-y0)*(H-B-T);
  el(svg,"rect",{x:L,y:T,width:W-L-Rm,height:H-B-T,fill:"#fff",stroke:"#999"});
  for(let i=0;i<=4;i++){const xv=x0+(x1-x0)*i/4,yv=y0+(y1-y0)*i/4;
    el(svg,"text",{x:sx(xv),y:H-B+16,"text-anchor":"middle","font-size":11},Math.abs(xv)>=1000?xv.toExponential(2):xv.toPrecision(3));
    el(svg,"text",{x:L-6,y:sy(yv)+4,"text-anchor":"end","font-size":11},yv.toFixed(2));}
  el(svg,"text",{x:(L+W)/2,y:H-6,"text-anchor":"middle","font-size":12},xlabel);
  el(svg,"text",{x:14,y:(T+H-B)/2,"text-anchor":"middle","font-size":12,transform:"rotate(-90 14 "+((T+H-B)/2)+")"},ylabel);
  if(extra&&extra.x!==undefined){el(svg,"line",{x1:sx(extra.x),x2:sx(extra.x),y1:T,y2:H-B,stroke:"#888","stroke-dasharray":"5 4"});}
  series.forEach(s=>{
    if(s.line&&s.points.length>1)el(svg,"polyline",{points:s.points.map(p=>sx(p[0])+","+sy(p[1])).join(" "),fill:"none",stroke:colors[s.name]||"#000","stroke-width":1.5});
    s.points.forEach(p=>{const c=el(svg,"circle",{cx:sx(p[0]),cy:sy(p[1]),r:s.line?2.5:4.5,fill:colors[s.name]||"#000","fill-opacity":0.8,"class":"pt"});
      el(c,"title",{},s.name+": "+p[0].toPrecision(4)+" "+unit+", "+p[1].toFixed(4));});
  });
  if(extra&&extra.ring)el(svg,"circle",{cx:sx(extra.ring[0]),cy:sy(extra.ring[1]),r:9,fill:"none",stroke:"#000","stroke-width":2});
}
const metricOf=v=>R.metric==="size"?v.bytes:costOf(v);
const fams=[...new Set(R.verified.map(v=>v.family))];
plot("pareto",fams.map(f=>({name:f,points:R.verified.filter(v=>v.family===f&&v.ok&&v.priced!==false).map(v=>[metricOf(v),100*v.top1])})),
  (R.metric==="size"?R.bytes_label:R.cost_label),"top-1 (%)",
  {x:R.budget>=0?R.budget:undefined,ring:R.chosen?[metricOf(R.chosen),100*R.chosen.top1]:undefined});
plot("fronts",Object.keys(R.fronts).map(f=>({name:f,line:true,points:R.fronts[f].map(p=>[p.cost,Math.min(p.sqnr_db,80)])})),
  "predicted "+(R.metric==="size"?R.bytes_label:R.cost_label),"predicted output SQNR (dB)");
document.getElementById("legend").innerHTML=Object.keys(colors).filter(k=>fams.includes(k)||R.fronts[k]).map(k=>'<span><i class="sw" style="background:'+colors[k]+'"></i>'+k+'</span>').join("");
function table(id,head,rows,cls){const t=document.getElementById(id);t.innerHTML="<tr>"+head.map(h=>"<th>"+h+"</th>").join("")+"</tr>"+
  rows.map((r,i)=>"<tr"+(cls&&cls[i]?' class="'+cls[i]+'"':"")+">"+r.map(c=>"<td>"+c+"</td>").join("")+"</tr>").join("");}
const dl=R.accel?"":" change";
table("layers",["layer","op","params","choice","output SQNR alone (dB)",R.cost_label+dl,R.bytes_label+dl],
  R.layers.map(l=>[l.name,l.op,l.params,l.choice,fmt(l.sqnr_db,1),costFmt(costOf(l)),fmt(l.bytes,0)]));
const ch=R.chosen;
table("plans",["search","choices","top-1","drop (points)",R.cost_label,R.bytes_label,"predicted "+unit,"predicted SQNR (dB)"],
  R.verified.map(v=>[v.family,v.plan+(v.ok?"":" (not built: "+v.reason+")"),v.ok?fmt(v.top1,4):"-",v.ok?fmt(100*(R.fp32.top1-v.top1),2):"-",v.ok&&v.priced?costFmt(costOf(v)):"-",v.ok&&v.priced?fmt(v.bytes,0):"-",v.predicted_cost===null?"-":Number(v.predicted_cost).toPrecision(4),fmt(v.predicted_sqnr_db,1)]),
  R.verified.map(v=>ch&&v.plan===ch.plan?"chosen":""));
table("trials",["layer","choice","output SQNR (dB)",R.cost_label+dl,R.bytes_label+dl,"note"],
  R.trials.map(t=>[t.layer,t.choice,t.ok?fmt(t.sqnr_db,1):"-",t.ok?costFmt(costOf(t)):"-",t.ok?fmt(t.bytes,0):"-",t.ok?"":t.reason]));
document.getElementById("summary").textContent=(ch?("Chosen ("+ch.family+" search): top-1 "+fmt(ch.top1,4)+" vs fp32 "+fmt(R.fp32.top1,4)+
  " ("+fmt(100*(R.fp32.top1-ch.top1),2)+" points), "+(R.accel?(fmt(ch.cycles,0)+" cycles and "+fmt(ch.bytes,0)+
  " weight bytes moved per inference vs int8 dense "+fmt(R.int8.cycles,0)+" and "+fmt(R.int8.bytes,0)+" (Kiln's accelerator, simulated). "):
  (fmt(ch.latency_ms,4)+" ms vs fp32 "+fmt(R.fp32.latency_ms,4)+" ms"+
  (R.ort_latency_ms>0?(" and ONNX Runtime fp32 "+fmt(R.ort_latency_ms,4)+" ms"):"")+", weights "+fmt(ch.bytes,0)+" B vs "+fmt(R.fp32.bytes,0)+" B. ")))
  :"No plan met the constraints. ")+"Budget: "+R.budget_text+"; max drop "+R.max_drop+" points; "+R.eval_samples+" held-out samples; target "+R.target+".";
document.getElementById("method").textContent="Method: "+R.method;
document.body.setAttribute("data-rendered",String(document.querySelectorAll("circle.pt").length));
</script></body></html>
)HTML";

/// Within --max-drop and the budget, the most accurate (a numeric budget) or the
/// cheapest (no number) of every plan measured so far; null if none qualifies.
const Verified *Planner::chosen() const {
  const Verified *best = nullptr;
  for (const Verified &v : verified) {
    if (!fits(v.m)) continue;
    if (!best) {
      best = &v;
      continue;
    }
    // Ties go to the better of the other figures (accuracy, then the other metric).
    auto other = [&](const Measure &m) { return metric == "size" ? m.latencyMs : m.bytes; };
    auto rank = [&](const Measure &m) {
      return budget >= 0 ? std::make_tuple(-m.top1, value(m), other(m)) : std::make_tuple(value(m), -m.top1, other(m));
    };
    bool better = rank(v.m) < rank(best->m);
    if (better) best = &v;
  }
  return best;
}

bool Planner::fits(const Measure &m) const {
  return m.ok && m.priced && 100 * (baseTop1 - m.top1) <= maxDrop + 1e-9 && (budget < 0 || value(m) <= budget);
}

int Planner::writeOutputs() {
  const Verified *best = chosen();
  const char *costKey = accel ? "cycles" : "latency_ms";
  // Per search, its own best: the comparison with single techniques.
  std::map<std::string, const Verified *> bestOf;
  for (const Verified &v : verified) {
    if (!fits(v.m) && v.family != "fp32" && v.family != "int8") continue;
    const Verified *&b = bestOf[v.family];
    if (!b || (budget >= 0 ? v.m.top1 > b->m.top1 : value(v.m) < value(b->m))) b = &v;
  }

  llvm::json::Array trialRows, layerRows, verRows;
  for (const Layer &l : layers)
    for (size_t c = 1; c < l.choices.size(); ++c)
      trialRows.push_back(llvm::json::Object{{"layer", l.name},
                                             {"choice", label(l.choices[c])},
                                             {"ok", l.measures[c].ok},
                                             {"reason", l.measures[c].reason},
                                             {"sqnr_db", sqnrDb(l.measures[c].noise)},
                                             {costKey, l.measures[c].latencyMs},
                                             {"bytes", l.measures[c].bytes}});
  auto verJson = [&](const Verified &v) {
    bool reference = v.family == "fp32" || v.family == "int8"; // measured, not proposed by a search
    return llvm::json::Object{{"family", v.family},
                              {"plan", key(v.pick)},
                              {"ok", v.m.ok},
                              {"reason", v.m.reason},
                              {"top1", v.m.top1},
                              {costKey, v.m.latencyMs},
                              {"priced", v.m.priced},
                              {"bytes", v.m.bytes},
                              {"measured_sqnr_db", sqnrDb(v.m.noise)},
                              {"predicted_cost", reference ? llvm::json::Value(nullptr) : v.predicted.cost},
                              {"predicted_sqnr_db", reference ? llvm::json::Value(nullptr)
                                                              : llvm::json::Value(sqnrDb(v.predicted.noise))}};
  };
  for (const Verified &v : verified) verRows.push_back(verJson(v));
  if (best)
    for (size_t l = 0; l < layers.size(); ++l) {
      const Measure &m = layers[l].measures[size_t(best->pick[l])];
      layerRows.push_back(llvm::json::Object{{"name", layers[l].name},
                                             {"op", layers[l].op},
                                             {"params", layers[l].params},
                                             {"choice", label(layers[l].choices[size_t(best->pick[l])])},
                                             {"sqnr_db", best->pick[l] ? llvm::json::Value(sqnrDb(m.noise)) : nullptr},
                                             {costKey, m.latencyMs},
                                             {"bytes", m.bytes}});
    }
  llvm::json::Object fronts;
  for (const std::string &fam : families()) {
    llvm::json::Array pts;
    for (const Point &p : front(fam)) pts.push_back(llvm::json::Object{{"cost", p.cost}, {"sqnr_db", sqnrDb(p.noise)}});
    fronts[fam] = std::move(pts);
  }
  llvm::json::Object singles;
  for (auto &[fam, v] : bestOf)
    if (fam != "fp32" && fam != "joint" && fam != "int8") singles[fam] = verJson(*v);
  std::string budgetText = budget >= 0 ? metric + "=" + llvm::formatv("{0}", budget).str() : metric + " (minimise)";
  llvm::json::Object report{
      {"kiln_plan_report", 1},
      {"model", o.model},
      {"target", o.compile.target},
      {"metric", metric},
      {"budget", budget},
      {"budget_text", budgetText},
      {"max_drop", maxDrop},
      {"eval_samples", evalSamples},
      {"threads", threads},
      {"latency_shape", llvm::json::Array(latShape)},
      {"fp32", verJson(verified[0])},
      {"ort_latency_ms", ortLatencyMs},
      {"accel", accel},
      {"cost_label", accel ? "cycles" : "latency (ms)"},
      {"bytes_label", accel ? "weight bytes moved" : "weights file (B)"},
      {"int8", accel && verified.size() > 1 ? llvm::json::Value(verJson(verified[1])) : llvm::json::Value(nullptr)},
      {"chosen", best ? llvm::json::Value(verJson(*best)) : llvm::json::Value(nullptr)},
      {"best_single_technique", std::move(singles)},
      {"layers", std::move(layerRows)},
      {"verified", std::move(verRows)},
      {"trials", std::move(trialRows)},
      {"fronts", std::move(fronts)},
      {"search_seconds", elapsed()},
      {"method",
       "per layer and choice, one trial build (the other layers fp32) measured the model output's error against fp32 "
       "on " + std::to_string(sensInputs.size() * size_t(latShape[0])) +
           " calibration samples, the latency change (timed alternately with the fp32 build, " +
           std::to_string(runs) +
           " runs x 3) and the weights-file change; the searches add these up per plan; the plans listed were then "
           "compiled and measured whole (top-1 on the held-out set, latency, bytes). Activation ranges come from "
           "calibrating the fp32 model."}};
  if (!writeJson(dir + "/report.json", llvm::json::Value(llvm::json::Object(report)))) return 1;
  std::string html = kReportHtml;
  std::string modelName = llvm::sys::path::filename(o.model).str();
  std::string escaped;
  for (char c : modelName) escaped += c == '<' ? "&lt;" : c == '&' ? "&amp;" : c == '>' ? "&gt;" : std::string(1, c);
  for (size_t at; (at = html.find("@MODEL@")) != std::string::npos;) html.replace(at, 7, escaped);
  html.replace(html.find("@DATA@"), 6, jsString(llvm::json::Value(std::move(report))));
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(dir + "/report.html", ec);
    if (ec) {
      llvm::errs() << "error: cannot write '" << dir << "/report.html': " << ec.message() << "\n";
      return 1;
    }
    os << html;
  }

  // The console summary.
  if (accel)
    llvm::outs() << "\nplans measured (" << evalSamples << " held-out samples, top-1 on the CPU int8 path, which "
                 << "the accelerator matches bit for bit; cycles and weight bytes moved per inference simulated on "
                 << "the Verilated accelerator):\n";
  else
    llvm::outs() << "\nplans measured (" << evalSamples << " held-out samples; " << metric << " at batch "
                 << latShape[0] << ", " << threads << " thread(s)):\n";
  llvm::outs() << llvm::format("  %-9s %7s %7s %10s %10s  %s\n", "search", "top-1", "drop",
                               accel ? "cycles" : "latency ms", accel ? "wt bytes" : "weights B", "choices");
  for (const Verified &v : verified) {
    if (!v.m.ok || !v.m.priced) {
      if (v.m.ok) {
        llvm::outs() << llvm::format("  %-9s %7.4f %7.2f %10s %10s  %s  (reference)\n", v.family.c_str(), v.m.top1,
                                     0.0, "-", "-", key(v.pick).c_str());
        continue;
      }
      llvm::outs() << llvm::format("  %-9s %7s %7s %10s %10s  %s  [not built: %s]\n", v.family.c_str(), "-", "-", "-",
                                   "-", key(v.pick).c_str(), v.m.reason.c_str());
      continue;
    }
    std::string cost = llvm::formatv(accel ? "{0:f0}" : "{0:f4}", v.m.latencyMs).str();
    llvm::outs() << llvm::format("%s %-9s %7.4f %7.2f %10s %10.0f  %s\n", &v == best ? "*" : " ", v.family.c_str(),
                                 v.m.top1, 100 * (baseTop1 - v.m.top1), cost.c_str(), v.m.bytes, key(v.pick).c_str());
  }
  if (ortLatencyMs > 0 && !accel)
    llvm::outs() << llvm::format("ONNX Runtime fp32: %.4f ms (Kiln fp32 %.4f ms)\n", ortLatencyMs,
                                 verified[0].m.latencyMs);
  for (auto &[fam, v] : bestOf)
    if (fam != "fp32" && fam != "joint" && fam != "int8")
      llvm::outs() << llvm::format("best %-9s alone: top-1 %.4f, %s %.4g\n", fam.c_str(), v->m.top1, metric.c_str(),
                                   value(v->m));
  if (!best) {
    llvm::errs() << "error: no plan measured within the budget (" << budgetText << ") and --max-drop " << maxDrop
                 << "; see " << dir << "/report.html\n";
    return 1;
  }
  if (accel) {
    const Measure &i8 = verified[1].m;
    llvm::outs() << llvm::format("chosen (%s search): top-1 %.4f (fp32 %.4f, drop %.2f points; int8 dense %.4f), "
                                 "%.0f cycles (int8 dense %.0f: %.2fx), %.0f weight bytes moved (int8 dense %.0f: "
                                 "%.2fx); search %.0f s\n",
                                 best->family.c_str(), best->m.top1, baseTop1, 100 * (baseTop1 - best->m.top1), i8.top1,
                                 best->m.latencyMs, i8.latencyMs, best->m.latencyMs / i8.latencyMs, best->m.bytes,
                                 i8.bytes, best->m.bytes / i8.bytes, elapsed());
  }
  // "2.06x faster" / "1.50x slower" than a reference latency.
  auto speed = [&](double ref) {
    double r = ref / best->m.latencyMs;
    return r >= 1 ? llvm::formatv("{0:f2}x faster", r).str() : llvm::formatv("{0:f2}x slower", 1 / r).str();
  };
  std::string vsOrt = ortLatencyMs > 0 ? llvm::formatv("; ONNX Runtime fp32 {0:f4} ms: {1}", ortLatencyMs,
                                                       speed(ortLatencyMs))
                                             .str()
                                       : "";
  if (!accel)
    llvm::outs() << llvm::format("chosen (%s search): top-1 %.4f (fp32 %.4f, drop %.2f points), latency %.4f ms "
                               "(fp32 %.4f ms: %s%s), weights %.0f B (fp32 %.0f B: %.2fx smaller); search %.0f s\n",
                               best->family.c_str(), best->m.top1, baseTop1, 100 * (baseTop1 - best->m.top1),
                               best->m.latencyMs, verified[0].m.latencyMs, speed(verified[0].m.latencyMs).c_str(),
                               vsOrt.c_str(), best->m.bytes, verified[0].m.bytes, verified[0].m.bytes / best->m.bytes,
                               elapsed());
  llvm::json::Value plan = planJson(best->pick);
  auto *root = plan.getAsObject();
  (*root)["kiln_plan"] = 1;
  (*root)["planner"] = llvm::json::Object{{"budget", budgetText},
                                          {"max_drop", maxDrop},
                                          {"target", o.compile.target},
                                          {"search", best->family},
                                          {"top1", best->m.top1},
                                          {"top1_fp32", baseTop1},
                                          {costKey, best->m.latencyMs},
                                          {"weights_bytes", best->m.bytes}};
  if (!writeJson(dir + "/plan.json", plan)) return 1;
  llvm::outs() << "wrote " << dir << "/plan.json, " << dir << "/report.html, " << dir << "/report.json\n";
  return 0;
}

int Planner::run() {
  if (int rc = prepare()) return rc;
  if (!accel)
    llvm::outs() << llvm::format("plan: %zu layers; fp32: %.4f ms at batch %lld, weights %.0f B\n", layers.size(),
                                 baseLatencyMs, (long long)latShape[0], baseBytes);
  std::signal(SIGINT, onInterrupt);
  int rc = measureTrials();
  if (!rc) rc = search();
  std::signal(SIGINT, SIG_DFL);
  if (rc == 130) {
    llvm::errs() << "plan: interrupted; run the same command again to resume from " << cachePath << "\n";
    return rc;
  }
  if (rc) return rc;
  // ONNX Runtime on the same input, for the report's comparison (informational).
  Timing t;
  if (!accel && timeOrt(o.model, cacheDir, {inputName + "=" + latInput}, threads, runs, t)) ortLatencyMs = t.medianMs;
  return writeOutputs();
}

} // namespace

int cmdPlan(int argc, char **argv) {
  Planner p;
  std::vector<char *> rest{argv[0], argv[1]};
  std::string budget, calib;
  bool explicitTechniques = false;
  for (int k = 2; k < argc; ++k) {
    std::string a = argv[k], v;
    auto next = [&](std::string &dst) {
      if (k + 1 >= argc) return false;
      dst = argv[++k];
      return true;
    };
    auto count = [&](auto &dst, long lo, long hi) {
      int64_t x;
      if (!next(v) || llvm::StringRef(v).getAsInteger(10, x) || x < lo || x > hi) return false;
      dst = x;
      return true;
    };
    if (a == "-h" || a == "--help") {
      llvm::outs() << kPlanHelp;
      return 0;
    } else if (a == "--budget") {
      if (!next(budget)) return commandUsage("--budget needs latency=MS, size=BYTES, latency or size", kPlanHelp);
    } else if (a == "--max-drop") {
      if (!next(v) || llvm::StringRef(v).getAsDouble(p.maxDrop) || !(p.maxDrop >= 0) || p.maxDrop > 100)
        return commandUsage("--max-drop needs points of top-1 from 0 to 100", kPlanHelp);
    } else if (a == "--calib") {
      if (!next(calib)) return commandUsage("--calib needs a file (.npy or IDX)", kPlanHelp);
    } else if (a == "--calib-limit") {
      if (!count(p.o.calibLimit, 1, 1L << 30)) return commandUsage("--calib-limit needs a positive count", kPlanHelp);
    } else if (a == "--eval") {
      if (!next(p.evalData)) return commandUsage("--eval needs a file", kPlanHelp);
    } else if (a == "--labels") {
      if (!next(p.evalLabels)) return commandUsage("--labels needs a file", kPlanHelp);
    } else if (a == "--eval-limit") {
      if (!count(p.evalLimit, 1, 1L << 30)) return commandUsage("--eval-limit needs a positive count", kPlanHelp);
    } else if (a == "--sens-samples") {
      if (!count(p.sensSamples, 1, 100000)) return commandUsage("--sens-samples needs a positive count", kPlanHelp);
    } else if (a == "--threads") {
      if (!count(p.threads, 1, 256)) return commandUsage("--threads needs a count from 1 to 256", kPlanHelp);
    } else if (a == "--runs") {
      if (!count(p.runs, 1, 1000000)) return commandUsage("--runs needs a positive count", kPlanHelp);
    } else if (a == "--nm") {
      int64_t n, m;
      auto [ns, ms] = llvm::StringRef(next(v) ? v : "").split(':');
      if (ns.getAsInteger(10, n) || ms.getAsInteger(10, m) || n < 1 || n >= m || m > 16)
        return commandUsage("--nm takes N:M with 1 <= N < M <= 16", kPlanHelp);
      p.nmPattern = v;
    } else if (a == "--techniques") {
      if (!next(v)) return commandUsage("--techniques needs a list", kPlanHelp);
      p.techniques.clear();
      explicitTechniques = true;
      llvm::SmallVector<llvm::StringRef> parts;
      llvm::StringRef(v).split(parts, ',', -1, false);
      for (llvm::StringRef t : parts) {
        t = t.trim();
        if (t != "quant" && t != "nm" && t != "smartdeal" && t != "butterfly")
          return commandUsage("--techniques takes quant, nm, smartdeal, butterfly; got '" + t.str() + "'", kPlanHelp);
        p.techniques.insert(t.str());
      }
      if (p.techniques.empty()) return commandUsage("--techniques needs at least one technique", kPlanHelp);
    } else if (a == "--quantize" || a == "--plan" || a == "--sparsify" || a == "--decompose" || a == "--butterfly" ||
               a == "--sparsify-layers" || a == "--decompose-layers" || a == "--budget-bits") {
      return commandUsage(a + " is chosen by the planner; it is not an option of kiln plan", kPlanHelp);
    } else {
      rest.push_back(argv[k]);
    }
  }
  if (int rc = parseCommonArgs(int(rest.size()), rest.data(), p.o, kPlanHelp); rc >= 0) return rc;
  p.accel = p.o.compile.target == "accel";
  p.accelConfig = p.o.compile.accelConfig;
  if (p.o.compile.target != "x86-64" && !p.accel)
    return commandUsage("kiln plan prices plans on this machine's CPU (--target x86-64) or on Kiln's accelerator "
                        "(--target accel, simulated); aarch64 and vulkan are not supported by the planner yet",
                        kPlanHelp);
  if (p.accel && explicitTechniques && p.techniques.count("butterfly"))
    return commandUsage("--target accel: the accelerator has no butterfly unit; choose from quant, nm, smartdeal",
                        kPlanHelp);
  // The time budget: milliseconds on the CPU, simulated cycles on the accelerator.
  std::string timeName = p.accel ? "cycles" : "latency";
  llvm::StringRef b(budget);
  if (b == timeName || b == "size") {
    p.metric = b.str();
  } else if (b.consume_front(timeName + "=")) {
    p.metric = timeName;
    if (b.getAsDouble(p.budget) || !(p.budget > 0))
      return commandUsage("--budget " + timeName + "=N needs N > 0", kPlanHelp);
  } else if (b.consume_front("size=")) {
    p.metric = "size";
    if (b.getAsDouble(p.budget) || !(p.budget > 0))
      return commandUsage("--budget size=BYTES needs BYTES > 0", kPlanHelp);
  } else if (b.starts_with("energy")) {
    return commandUsage("--budget energy: Kiln has no energy model yet; use latency or size (cycles or size on the "
                        "accelerator)",
                        kPlanHelp);
  } else {
    return commandUsage(p.accel ? "--budget on the accelerator needs cycles=N, size=BYTES (weight bytes moved per "
                                  "inference), cycles or size"
                                : "--budget needs latency=MS, size=BYTES, latency or size",
                        kPlanHelp);
  }
  p.o.calibPath = calib; // after the shared parser, which takes --calib only with a compression option
  if (p.o.outDir.empty()) return commandUsage("-o DIR is required", kPlanHelp);
  if (p.o.calibPath.empty() || p.evalData.empty() || p.evalLabels.empty())
    return commandUsage("--calib, --eval and --labels are required", kPlanHelp);
  p.dir = p.o.outDir;
  if (std::error_code ec = llvm::sys::fs::create_directories(p.dir)) {
    llvm::errs() << "error: cannot create '" << p.dir << "': " << ec.message() << "\n";
    return 1;
  }
  return p.run();
}

} // namespace kiln::tool
