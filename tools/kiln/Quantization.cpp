//===- Quantization.cpp - Calibration, bit-width search, quantised compiles -===//
//
// `--quantize int8|int4 --calib DATA`: a calibration build (kiln-quantize{observe})
// runs on the data and records each layer's input range; the plan puts every layer
// at the chosen width. `--quantize mixed --budget bits=B|size=BYTES` then measures,
// per layer, the model output's error when only that layer drops to int4 (the rest
// int8) on the first calibration samples, and moves layers to int4 in order of error
// added per bit saved until the budget holds (greedy, HAWQ-style with a measured
// sensitivity instead of a Hessian). `--plan FILE` skips both.
//
//===----------------------------------------------------------------------===//
#include "codegen/Driver.h"
#include "tools/kiln/Dataset.h"
#include "tools/kiln/Tool.h"

extern "C" {
#include "kiln/kernels.h"
#include "kiln/npy.h"
}

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Format.h"
#include "llvm/TargetParser/Host.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <cmath>
#include <map>
#include <memory>

namespace kiln::tool {

/// The options of a build the command runs itself (calibration, search trials,
/// diagnostics): named "model" for the generic runner, for this machine (ranges and
/// errors do not depend on the target), with `plan` and nothing dumped or reported.
CommonOptions trialOptions(const CommonOptions &o, const std::string &plan) {
  CommonOptions c = o;
  c.compile.name = "model";
  c.compile.target = "x86-64";
  c.compile.cpu.clear();
  c.compile.quantObserve = c.compile.quantCompare = false;
  c.compile.quantDefaultBits = 32;
  c.compile.quantPlan = plan;
  c.compile.quantReport.clear();
  c.compile.dumpIrAfter.clear();
  return c;
}

namespace {

/// One sign's magnitudes as the observers bin them (observe.c): equal bins over [0, range).
struct Histogram {
  double range = 0;
  std::vector<int64_t> bins = std::vector<int64_t>(2048, 0);
  /// Adds `h`, rebinning the one with the smaller (power-of-two) range into the larger.
  void merge(const Histogram &h) {
    if (range == 0) {
      *this = h;
      return;
    }
    const Histogram *small = h.range < range ? &h : this;
    Histogram big = h.range < range ? *this : h;
    double ratio = small->range / big.range;
    for (size_t i = 0; i < bins.size(); ++i)
      big.bins[std::min(bins.size() - 1, size_t(double(i) * ratio))] += small->bins[i];
    *this = std::move(big);
  }
  /// The smallest bin edge with at most `drop` values at or above it.
  double clip(double drop) const {
    double above = 0;
    for (size_t i = bins.size(); i-- > 0;) {
      if (above + double(bins[i]) > drop) return range * double(i + 1) / double(bins.size());
      above += double(bins[i]);
    }
    return 0;
  }
};

} // namespace

std::string outputFileName(const std::string &name) {
  std::string file = name;
  for (char &c : file)
    if (!(llvm::isAlnum(c) || c == '_' || c == '.' || c == '-')) c = '_';
  return file + ".npy";
}

/// Every f32 output the runner wrote into `dir` (others are skipped).
std::vector<std::vector<float>> readOutputs(const std::string &dir, const codegen::ModelSignature &sig) {
  std::vector<std::vector<float>> outs;
  for (const auto &o : sig.outputs) {
    kiln_npy_t npy{};
    std::vector<float> v;
    if (kiln_npy_read((dir + "/" + outputFileName(o.name)).c_str(), &npy) == KILN_OK && npy.dtype == KILN_DTYPE_F32) {
      const float *p = static_cast<const float *>(npy.data);
      v.assign(p, p + npy.num_elements);
    }
    kiln_npy_free(&npy);
    outs.push_back(std::move(v));
  }
  return outs;
}

void addOutputError(const std::vector<std::vector<float>> &want, const std::vector<std::vector<float>> &got,
                    double &signal, double &noise) {
  for (size_t i = 0; i < want.size() && i < got.size(); ++i)
    for (size_t e = 0; e < want[i].size() && e < got[i].size(); ++e) {
      double d = double(got[i][e]) - want[i][e];
      signal += double(want[i][e]) * want[i][e];
      noise += d * d;
    }
}

/// Runs the calibration build in `wd` (model.o, compiled already; `artifact` its result)
/// on the calibration samples, in chunks of the model's batch size, with `extra` runner
/// arguments; `after(start, input, outputDir)` sees each chunk. Returns an exit code.
int runCalibrationChunks(CommonOptions &o, const std::string &wd, const codegen::Artifact &artifact,
                         const std::vector<std::string> &extra,
                         const std::function<void(int64_t, const std::string &, const std::string &)> &after,
                         int64_t *samples) {
  kiln::tools::Array data;
  std::string err;
  if (!kiln::tools::readSamples(o.calibPath, data, err)) {
    llvm::errs() << "error: calibration data: " << err << "\n";
    return 1;
  }
  const auto &ins = artifact.signature.inputs;
  if (ins.size() != 1 || ins[0].dtype != KILN_DTYPE_F32 || ins[0].dims.empty()) {
    llvm::errs() << "error: calibration takes models with one float input; this one has " << ins.size()
                 << " inputs\n";
    return 1;
  }
  std::vector<int64_t> shape = ins[0].dims;
  int64_t chunk = shape[0], perSample = 1;
  for (size_t d = 1; d < shape.size(); ++d) perSample *= shape[d];
  int64_t n = data.dims.empty() ? 0 : std::min<int64_t>(data.dims[0], o.calibLimit);
  if (n == 0 || chunk == 0 || int64_t(data.f.size()) / data.dims[0] != perSample) {
    llvm::errs() << "error: calibration data '" << o.calibPath << "' does not fit input '" << ins[0].name
                 << "': the model takes " << perSample << " values per sample\n";
    return 1;
  }
  if (linkRunner(wd, false)) return 1;
  if (samples) *samples = n;
  for (int64_t start = 0, c = 0; start < n; start += chunk, ++c) {
    int64_t rows = std::min(chunk, n - start);
    std::vector<float> block(size_t(chunk * perSample), 0.f);
    std::copy(data.f.begin() + start * perSample, data.f.begin() + (start + rows) * perSample, block.begin());
    // A partial last chunk is filled by repeating its first sample, so no made-up
    // zeros widen the ranges.
    for (int64_t r = rows; r < chunk; ++r)
      std::copy(block.begin(), block.begin() + perSample, block.begin() + r * perSample);
    std::string in = wd + "/chunk" + std::to_string(c) + ".npy";
    std::string out = wd + "/out" + std::to_string(c);
    if (kiln_npy_write(in.c_str(), KILN_DTYPE_F32, shape.size(), shape.data(), block.data()) != KILN_OK) {
      llvm::errs() << "error: cannot write '" << in << "'\n";
      return 1;
    }
    std::vector<std::string> args{wd + "/runner", "--weights", wd + "/model.kw", "--input", ins[0].name + "=" + in,
                                  "--output", out};
    args.insert(args.end(), extra.begin(), extra.end());
    std::string runErr;
    if (runProgram(args, true, &runErr) != 0) {
      llvm::errs() << "error: running the calibration build failed" << (runErr.empty() ? "" : ": " + runErr) << "\n";
      return 1;
    }
    after(start, in, out);
  }
  return 0;
}

/// Calibration: compiles the model with an observer before every quantisable layer,
/// runs it on the calibration samples (in chunks of the model's batch size) and
/// writes a plan that puts every such layer at int8 with the ranges seen.
int calibrate(CommonOptions &o, const std::string &planPath, Calibration &cal) {
  WorkDir &wd = *cal.work;
  if (!wd.ok()) return 1;
  CommonOptions c = trialOptions(o, "");
  c.compile.quantObserve = true;
  c.compile.quantReport = wd.path + "/layers.json";
  kiln::codegen::Artifact artifact;
  if (failed(kiln::compileOnnxFile(c.model, c.import, c.compile, wd.path, artifact, llvm::errs(), false)))
    return 1;
  std::string ranges = wd.path + "/ranges.txt";
  llvm::sys::fs::remove(ranges);
  if (!artifact.signature.inputs.empty()) cal.inputName = artifact.signature.inputs[0].name;
  int64_t n = 0;
  int rc = runCalibrationChunks(o, wd.path, artifact, {"--observe", ranges},
                                [&](int64_t start, const std::string &in, const std::string &out) {
                                  // The first chunks (up to kSearchSamples samples) stay for the
                                  // bit-width search, with their fp32 outputs as the reference.
                                  if (start < kSearchSamples) {
                                    cal.chunks.push_back(in);
                                    cal.reference.push_back(readOutputs(out, artifact.signature));
                                  }
                                },
                                &n);
  if (rc) return rc;
  // Per layer index: the range over all chunks, and the merged histograms.
  std::map<int64_t, std::pair<double, double>> seen;
  std::map<int64_t, int64_t> counts;
  std::map<std::pair<int64_t, char>, Histogram> hists;
  if (auto buf = llvm::MemoryBuffer::getFile(ranges)) {
    llvm::SmallVector<llvm::StringRef> lines;
    (*buf)->getBuffer().split(lines, '\n', -1, false);
    for (llvm::StringRef line : lines) {
      if (line.starts_with("h ")) {
        llvm::SmallVector<llvm::StringRef> f;
        line.split(f, ' ', -1, false);
        int64_t id;
        double range;
        if (f.size() < 4 || f[1].getAsInteger(10, id) || f[3].getAsDouble(range) || range <= 0) continue;
        Histogram h;
        h.range = range;
        for (size_t k = 4; k < f.size(); ++k) {
          auto [bin, count] = f[k].split(':');
          int64_t b, c;
          if (!bin.getAsInteger(10, b) && !count.getAsInteger(10, c) && b >= 0 && b < int64_t(h.bins.size()))
            h.bins[size_t(b)] += c;
        }
        hists[{id, f[2].empty() ? '+' : f[2][0]}].merge(h);
        continue;
      }
      long long id, count;
      double lo, hi;
      if (sscanf(line.str().c_str(), "%lld %lld %lf %lf", &id, &count, &lo, &hi) != 4) continue;
      counts[id] += count;
      auto [it, fresh] = seen.emplace(id, std::make_pair(lo, hi));
      if (!fresh) it->second = {std::min(it->second.first, lo), std::max(it->second.second, hi)};
    }
  }
  // Percentile clipping: each side keeps all but (100 - P)% of all values.
  if (o.calibMethod == "percentile")
    for (auto &[id, range] : seen) {
      double drop = (1.0 - o.calibPercentile / 100.0) * double(counts[id]);
      if (auto h = hists.find({id, '+'}); h != hists.end() && range.second > 0)
        range.second = std::min(range.second, h->second.clip(drop));
      if (auto h = hists.find({id, '-'}); h != hists.end() && range.first < 0)
        range.first = std::max(range.first, -h->second.clip(drop));
    }
  auto layersBuf = llvm::MemoryBuffer::getFile(c.compile.quantReport);
  auto layers = layersBuf ? llvm::json::parse((*layersBuf)->getBuffer()) : llvm::json::Value(nullptr);
  if (!layers) {
    llvm::consumeError(layers.takeError());
    llvm::errs() << "error: cannot read the calibration build's layer list\n";
    return 1;
  }
  llvm::json::Array planLayers;
  if (auto *root = layers->getAsObject(); root && root->getArray("layers"))
    for (const llvm::json::Value &v : *root->getArray("layers")) {
      const llvm::json::Object *l = v.getAsObject();
      auto id = l->getInteger("index");
      auto it = id ? seen.find(*id) : seen.end();
      llvm::json::Object row{{"name", *l->getString("name")}, {"op", *l->getString("op")}};
      // The output's range (after a fused activation): informational, for exporters.
      if (auto out = id ? seen.find(*id + KILN_OBSERVE_OUTPUT) : seen.end(); out != seen.end())
        row["output_range"] = llvm::json::Array{out->second.first, out->second.second};
      if (it == seen.end()) {
        row["bits"] = 32; // never reached on the calibration data
      } else {
        row["bits"] = o.quantize == "int4" ? 4 : o.quantize == "bf16" ? 16 : 8;
        row["input_range"] = llvm::json::Array{it->second.first, it->second.second};
      }
      planLayers.push_back(std::move(row));
    }
  llvm::json::Object plan{{"kiln_plan", 1},
                          {"calibration",
                           llvm::json::Object{{"data", o.calibPath},
                                              {"samples", n},
                                              {"method", o.calibMethod},
                                              {"percentile", o.calibMethod == "percentile"
                                                                 ? llvm::json::Value(o.calibPercentile)
                                                                 : llvm::json::Value(nullptr)}}},
                          {"layers", std::move(planLayers)}};
  std::error_code ec;
  llvm::raw_fd_ostream os(planPath, ec);
  if (ec) {
    llvm::errs() << "error: cannot write '" << planPath << "': " << ec.message() << "\n";
    return 1;
  }
  os << llvm::formatv("{0:2}", llvm::json::Value(std::move(plan))) << "\n";
  return 0;
}

namespace {

/// Prints the per-layer quantisation report (the kiln-quantize pass's JSON).
void printQuantReport(const llvm::json::Value &report, const std::string &target, llvm::raw_ostream &os) {
  const llvm::json::Object *root = report.getAsObject();
  const llvm::json::Array *layers = root ? root->getArray("layers") : nullptr;
  if (!layers) return;
  int64_t quantised = 0, params = 0, qparams = 0;
  double qbits = 0;
  os << llvm::format("%-4s %-32s %-7s %9s %5s %10s %10s %22s\n", "#", "layer", "op", "params", "bits", "w-SQNR dB",
                     "out-SQNR", "input range");
  for (const llvm::json::Value &v : *layers) {
    const llvm::json::Object *l = v.getAsObject();
    int64_t bits = l->getInteger("bits").value_or(32), p = l->getInteger("params").value_or(0);
    params += p;
    std::string range = "-", sqnr = "-";
    if (auto *r = l->getArray("input_range"); r && r->size() == 2)
      range = llvm::formatv("[{0}, {1}]", llvm::format("%.4g", (*r)[0].getAsNumber().value_or(0)), llvm::format("%.4g", (*r)[1].getAsNumber().value_or(0))).str();
    if (auto d = l->getNumber("weight_sqnr_db")) sqnr = llvm::formatv("{0:f1}", *d);
    std::string outSqnr = "-";
    if (auto d = l->getNumber("output_sqnr_db")) outSqnr = llvm::formatv("{0:f1}", *d);
    if (bits != 32) {
      ++quantised;
      qparams += p;
      qbits += double(bits) * double(p);
    }
    os << llvm::format("%-4lld %-32s %-7s %9lld %5lld %10s %10s %22s", (long long)l->getInteger("index").value_or(0),
                       l->getString("name").value_or("").str().c_str(), l->getString("op").value_or("").str().c_str(),
                       (long long)p, (long long)bits, sqnr.c_str(), outSqnr.c_str(), range.c_str());
    if (auto why = l->getString("float_reason")) os << "  (float: " << *why << ")";
    os << "\n";
  }
  // Why int8 may not pay off: compute left in float, and the kernels' instruction set.
  if (const llvm::json::Array *fl = root->getArray("float_ops"); fl && !fl->empty()) {
    std::map<std::string, int> reasons;
    for (const llvm::json::Value &v : *fl) reasons[v.getAsObject()->getString("reason").value_or("").str()]++;
    for (auto &[why, count] : reasons) os << "left in float: " << count << " x " << why << "\n";
  }
  double avgBits = params ? (qbits + 32.0 * double(params - qparams)) / double(params) : 32.0;
  os << llvm::format("quantised %lld of %zu layers (%.1f%% of their weights); %.2f bits per weight on average, "
                     "%.1f%% of their fp32 size\n",
                     (long long)quantised, layers->size(), params ? 100.0 * qparams / params : 0.0, avgBits,
                     100.0 * avgBits / 32.0);
  if (quantised == 0) return;
  bool bf16 = false, integer = false;
  for (const llvm::json::Value &v : *layers) {
    int64_t bits = v.getAsObject()->getInteger("bits").value_or(32);
    bf16 |= bits == 16;
    integer |= bits == 8 || bits == 4;
  }
  if (bf16) {
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    os << (target == "aarch64" ? "bf16 kernels: portable C on aarch64\n"
           : features.lookup("avx512bf16") ? "bf16 kernels: AVX-512 BF16 on this machine\n"
                                           : "bf16 kernels: this machine has no AVX-512 BF16: they run portable C, "
                                             "which is slower than fp32\n");
  }
  if (!integer) return;
  if (target == "aarch64") {
    os << "int8 kernels: portable C on aarch64 (no SDOT kernel yet): int8 may be slower than fp32 there\n";
  } else {
    llvm::StringMap<bool> features = llvm::sys::getHostCPUFeatures();
    bool vnni = features.lookup("avx512vnni") && features.lookup("avx512bw");
    os << (vnni ? "int8 kernels: AVX-512 VNNI on this machine (kiln run/eval/bench build the runtime with "
                  "-march=native)\n"
                : "int8 kernels: this machine has no AVX-512 VNNI: they run portable C, which may be slower "
                  "than fp32\n");
  }
}


/// Output signal-to-noise ratio (dB) of the model compiled with `plan`, against the
/// fp32 reference, on the calibration chunks kept for the search.
std::optional<double> outputSqnr(CommonOptions &o, Calibration &cal, const llvm::json::Value &plan,
                                 const std::string &tag) {
  std::string dir = cal.work->path + "/trial-" + tag;
  if (std::error_code ec = llvm::sys::fs::create_directories(dir)) return std::nullopt;
  std::string planPath = dir + "/plan.json";
  if (!writeJson(planPath, plan)) return std::nullopt;
  CommonOptions c = trialOptions(o, planPath);
  codegen::Artifact artifact;
  if (failed(kiln::compileOnnxFile(c.model, c.import, c.compile, dir, artifact, llvm::errs(), false)) ||
      linkRunner(dir, false))
    return std::nullopt;
  double signal = 0, noise = 0;
  for (size_t k = 0; k < cal.chunks.size(); ++k) {
    std::string out = dir + "/out" + std::to_string(k), err;
    if (runProgram({dir + "/runner", "--weights", dir + "/model.kw", "--input", cal.inputName + "=" + cal.chunks[k],
                    "--output", out},
                   true, &err) != 0) {
      llvm::errs() << "error: running a search trial failed" << (err.empty() ? "" : ": " + err) << "\n";
      return std::nullopt;
    }
    addOutputError(cal.reference[k], readOutputs(out, artifact.signature), signal, noise);
  }
  removeTree(dir);
  return noise > 0 ? 10 * std::log10(signal / noise) : 999.0;
}

/// Per quantised layer index, the SQNR (dB) of its int8 output against its fp32
/// output on the same input, over the search's calibration chunks.
std::optional<std::map<int64_t, double>> layerOutputErrors(CommonOptions &o, Calibration &cal,
                                                           const std::string &planPath) {
  std::string dir = cal.work->path + "/diagnostic";
  if (llvm::sys::fs::create_directories(dir)) return std::nullopt;
  CommonOptions c = trialOptions(o, planPath);
  c.compile.quantCompare = true;
  codegen::Artifact artifact;
  if (failed(kiln::compileOnnxFile(c.model, c.import, c.compile, dir, artifact, llvm::errs(), false)) ||
      linkRunner(dir, false))
    return std::nullopt;
  std::string errorsPath = dir + "/errors.txt";
  for (size_t k = 0; k < cal.chunks.size(); ++k) {
    std::string err;
    if (runProgram({dir + "/runner", "--weights", dir + "/model.kw", "--input", cal.inputName + "=" + cal.chunks[k],
                    "--output", dir + "/out", "--observe", errorsPath},
                   true, &err) != 0) {
      llvm::errs() << "error: running the diagnostic build failed" << (err.empty() ? "" : ": " + err) << "\n";
      return std::nullopt;
    }
  }
  std::map<int64_t, std::pair<double, double>> sums;
  if (auto buf = llvm::MemoryBuffer::getFile(errorsPath)) {
    llvm::SmallVector<llvm::StringRef> lines;
    (*buf)->getBuffer().split(lines, '\n', -1, false);
    for (llvm::StringRef line : lines) {
      long long id;
      double signal, noise;
      if (sscanf(line.str().c_str(), "e %lld %lf %lf", &id, &signal, &noise) != 3) continue;
      sums[id].first += signal;
      sums[id].second += noise;
    }
  }
  std::map<int64_t, double> out;
  for (auto &[id, sn] : sums) out[id] = sn.second > 0 ? 10 * std::log10(sn.first / sn.second) : 999.0;
  removeTree(dir);
  return out;
}

/// The bit-width search (see the file comment); rewrites the plan at `planPath`.
int searchBits(CommonOptions &o, const std::string &planPath, Calibration &cal) {
  auto plan = readJson(planPath);
  llvm::json::Array *layers = plan && plan->getAsObject() ? plan->getAsObject()->getArray("layers") : nullptr;
  if (!layers) {
    llvm::errs() << "error: cannot read the calibration plan\n";
    return 1;
  }
  // Parameters per layer come from the calibration build's layer list.
  auto list = readJson(cal.work->path + "/layers.json");
  std::map<std::string, int64_t> params;
  if (list && list->getAsObject() && list->getAsObject()->getArray("layers"))
    for (const auto &l : *list->getAsObject()->getArray("layers"))
      params[l.getAsObject()->getString("name")->str()] = l.getAsObject()->getInteger("params").value_or(0);
  int64_t total = 0;
  std::vector<size_t> cands;
  for (size_t k = 0; k < layers->size(); ++k) {
    auto *l = (*layers)[k].getAsObject();
    if (l->getInteger("bits").value_or(32) == 32) continue;
    (*l)["bits"] = 8;
    total += params[l->getString("name")->str()];
    cands.push_back(k);
  }
  if (total == 0) return 0;
  // The budget, as a cap on the quantised layers' weight bits.
  double capBits = 0;
  if (o.budget.rfind("bits=", 0) == 0) {
    double b = 0;
    if (llvm::StringRef(o.budget).drop_front(5).getAsDouble(b) || b <= 0) {
      llvm::errs() << "error: --budget bits=B needs a positive number of bits per weight\n";
      return 1;
    }
    capBits = b * double(total);
  } else if (o.budget.rfind("size=", 0) == 0) {
    int64_t bytes = 0;
    if (llvm::StringRef(o.budget).drop_front(5).getAsInteger(10, bytes) || bytes <= 0) {
      llvm::errs() << "error: --budget size=BYTES needs a positive byte count\n";
      return 1;
    }
    capBits = 8.0 * double(bytes);
  } else {
    llvm::errs() << "error: --quantize mixed needs --budget bits=B or --budget size=BYTES\n";
    return 1;
  }
  if (capBits < 4.0 * double(total)) {
    llvm::errs() << llvm::format("error: the budget (%.2f bits per weight) is below int4 for every layer (4 bits); "
                                 "it cannot be met\n", capBits / double(total));
    return 1;
  }
  auto start = std::chrono::steady_clock::now();
  auto base = outputSqnr(o, cal, *plan, "int8");
  if (!base) return 1;
  double baseNoise = std::pow(10.0, -*base / 10);
  llvm::outs() << llvm::format("search: all layers int8: output SQNR %.1f dB on %zu calibration chunk(s)\n", *base,
                               cal.chunks.size());
  // Sensitivity: the output noise a layer adds at int4 (others int8), per bit saved.
  struct Cand {
    size_t index;
    double sqnr, cost;
    int64_t params;
  };
  std::vector<Cand> scored;
  for (size_t k : cands) {
    auto *l = (*layers)[k].getAsObject();
    (*l)["bits"] = 4;
    auto sq = outputSqnr(o, cal, *plan, std::to_string(k));
    (*l)["bits"] = 8;
    if (!sq) return 1;
    int64_t p = params[l->getString("name")->str()];
    double added = std::max(0.0, std::pow(10.0, -*sq / 10) - baseNoise);
    scored.push_back({k, *sq, added / std::max<double>(1, 4.0 * double(p)), p});
    (*l)["output_sqnr_db_int4"] = *sq;
    llvm::outs() << llvm::format("search: %-32s at int4: output SQNR %.1f dB\n",
                                 l->getString("name")->str().c_str(), *sq);
  }
  std::stable_sort(scored.begin(), scored.end(), [](const Cand &a, const Cand &b) { return a.cost < b.cost; });
  double usedBits = 8.0 * double(total);
  for (const Cand &c : scored) {
    if (usedBits <= capBits) break;
    (*(*layers)[c.index].getAsObject())["bits"] = 4;
    usedBits -= 4.0 * double(c.params);
  }
  auto final = outputSqnr(o, cal, *plan, "final");
  if (!final) return 1;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  llvm::outs() << llvm::format("search: chose %.2f bits per weight (budget %s): output SQNR %.1f dB (all int8: "
                               "%.1f dB); %zu trials in %.1f s\n",
                               usedBits / double(total), o.budget.c_str(), *final, *base, scored.size() + 2, secs);
  auto *root = plan->getAsObject();
  (*root)["search"] = llvm::json::Object{{"budget", o.budget},
                                         {"bits_per_weight", usedBits / double(total)},
                                         {"output_sqnr_db", *final},
                                         {"output_sqnr_db_all_int8", *base}};
  return writeJson(planPath, *plan) ? 0 : 1;
}

} // namespace

/// Imports and compiles; writes the artifact into `dir` (which must exist). With
/// quantisation, calibrates first (unless a plan is given), compiles with the plan,
/// prints the per-layer report and adds <name>.plan.json (the plan as applied, with
/// the report's figures; editable and accepted back by --plan) to the artifact.
int compileQuantized(CommonOptions &o, const std::string &dir, codegen::Artifact &artifact) {
  std::string plan = o.planIn;
  Calibration cal;
  CommonOptions q = o;
  if (plan.empty() && o.quantize == "bf16" && o.calibPath.empty()) {
    q.compile.quantDefaultBits = 16; // every layer, nothing to calibrate
  } else if (plan.empty()) {
    plan = dir + "/calibration-plan.json";
    cal.work = std::make_unique<WorkDir>(o.keepDir.empty() ? "" : o.keepDir + "/calibration", "kiln-calib");
    if (int rc = calibrate(o, plan, cal)) return rc;
    if (o.quantize == "mixed")
      if (int rc = searchBits(o, plan, cal)) return rc;
  }
  q.compile.quantPlan = plan;
  q.compile.quantReport = dir + "/" + o.compile.name + ".plan.json";
  if (failed(kiln::compileOnnxFile(q.model, q.import, q.compile, dir, artifact, llvm::errs(), q.dumpImport)))
    return 1;
  auto buf = llvm::MemoryBuffer::getFile(q.compile.quantReport);
  auto report = buf ? llvm::json::parse((*buf)->getBuffer()) : llvm::json::Value(nullptr);
  if (!report || !report->getAsObject()) {
    if (!report) llvm::consumeError(report.takeError());
    llvm::errs() << "error: cannot read the quantisation report\n";
    return 1;
  }
  report->getAsObject()->try_emplace("kiln_plan", 1);
  // With calibration data at hand: each quantised layer's output error, measured in a
  // diagnostic build that runs every quantised layer in fp32 beside its int8 kernel.
  if (cal.work && !cal.chunks.empty()) {
    auto errors = layerOutputErrors(o, cal, plan);
    if (!errors) return 1;
    if (auto *rows = report->getAsObject()->getArray("layers"))
      for (llvm::json::Value &v : *rows) {
        auto *l = v.getAsObject();
        auto it = errors->find(l->getInteger("index").value_or(-1));
        if (it != errors->end()) (*l)["output_sqnr_db"] = it->second;
      }
  }
  // How the plan was made (calibration, search) travels with it.
  if (auto in = plan.empty() ? std::nullopt : readJson(plan); in && in->getAsObject())
    for (const char *key : {"calibration", "search"})
      if (const llvm::json::Value *v = in->getAsObject()->get(key)) (*report->getAsObject())[key] = *v;
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(q.compile.quantReport, ec);
    os << llvm::formatv("{0:2}", *report) << "\n";
  }
  if (o.planIn.empty() && !plan.empty()) llvm::sys::fs::remove(plan);
  printQuantReport(*report, o.compile.target, llvm::outs());
  artifact.files.push_back(o.compile.name + ".plan.json");
  return 0;
}


int calibrateGram(CommonOptions &o, const WorkDir &wd) {
  if (!wd.ok()) return 1;
  CommonOptions c = trialOptions(o, "");
  c.compile.compressObserve = true;
  c.compile.compressGram.clear();
  c.compile.sparsifyReport.clear();
  c.compile.decomposeReport.clear();
  c.compile.butterflyReport.clear();
  kiln::codegen::Artifact artifact;
  if (failed(kiln::compileOnnxFile(c.model, c.import, c.compile, wd.path, artifact, llvm::errs(), false)))
    return 1;
  std::string gram = wd.path + "/gram.bin";
  llvm::sys::fs::remove(gram);
  if (int rc = runCalibrationChunks(o, wd.path, artifact, {"--observe-gram", gram},
                                    [](int64_t, const std::string &, const std::string &) {}))
    return rc;
  o.compile.compressGram = gram;
  return 0;
}

bool printSparsityReport(const std::string &path, llvm::raw_ostream &os) {
  auto report = readJson(path);
  auto *root = report ? report->getAsObject() : nullptr;
  auto *layers = root ? root->getArray("layers") : nullptr;
  if (!layers) return false;
  int64_t dense = 0, sparse = 0, made = 0;
  os << llvm::format("%-32s %-7s %-14s %10s %10s %12s\n", "N:M layer", "pattern", "method", "weight err",
                     "output err", "bytes");
  for (const llvm::json::Value &v : *layers) {
    const llvm::json::Object *l = v.getAsObject();
    std::string name = l->getString("name").value_or("?").str(), pat = l->getString("pattern").value_or("?").str();
    if (pat == "dense") {
      os << llvm::format("%-32s %-7s %s\n", name.c_str(), "dense",
                         l->getString("reason").value_or("not in the plan").str().c_str());
      continue;
    }
    ++made;
    dense += l->getInteger("dense_bytes").value_or(0);
    sparse += l->getInteger("sparse_bytes").value_or(0);
    auto out = l->getNumber("output_rel_error");
    os << llvm::format("%-32s %-7s %-14s %9.1f%% %9s%% %5lld -> %lld\n", name.c_str(), pat.c_str(),
                       l->getString("method").value_or("?").str().c_str(),
                       100 * l->getNumber("weight_rel_error").value_or(0),
                       out ? llvm::formatv("{0:f1}", 100 * *out).str().c_str() : "-",
                       (long long)l->getInteger("dense_bytes").value_or(0),
                       (long long)l->getInteger("sparse_bytes").value_or(0));
  }
  os << llvm::format("N:M: %lld layer(s) sparse; their weights %lld -> %lld bytes (fp32 values + 1-byte positions)\n",
                     (long long)made, (long long)dense, (long long)sparse);
  return true;
}

bool printDecomposeReport(const std::string &path, uint64_t weightsFileBytes, bool quantized, bool accel,
                          llvm::raw_ostream &os) {
  auto report = readJson(path);
  auto *root = report ? report->getAsObject() : nullptr;
  auto *layers = root ? root->getArray("layers") : nullptr;
  if (!layers) return false;
  // Whole model: decomposed layers at their format's bytes, the others at dense int8
  // (docs/SMARTDEAL.md counts them so), against every layer at int8 and at fp32.
  int64_t stored = 0, int8 = 0, fp32 = 0, made = 0;
  os << llvm::format("%-32s %-12s %-12s %10s %10s %8s %8s\n", "SmartDeal layer", "setting", "method", "weight err",
                     "output err", "bytes", "int8");
  for (const llvm::json::Value &v : *layers) {
    const llvm::json::Object *l = v.getAsObject();
    std::string name = l->getString("name").value_or("?").str(), set = l->getString("setting").value_or("?").str();
    int64_t i8 = l->getInteger("int8_bytes").value_or(0);
    int8 += i8;
    fp32 += l->getInteger("fp32_bytes").value_or(0);
    if (set == "dense") {
      stored += i8;
      os << llvm::format("%-32s %-12s %s\n", name.c_str(), "dense",
                         l->getString("reason").value_or("not in the plan").str().c_str());
      continue;
    }
    ++made;
    int64_t bytes = l->getInteger("bytes").value_or(0);
    stored += bytes;
    auto out = l->getNumber("output_rel_error");
    std::string outErr = out ? llvm::formatv("{0:f1}%", 100 * *out).str() : "-";
    os << llvm::format("%-32s %-12s %-12s %9.1f%% %10s %8lld %8lld\n", name.c_str(), set.c_str(),
                       l->getString("method").value_or("?").str().c_str(),
                       100 * l->getNumber("weight_rel_error").value_or(0), outErr.c_str(), (long long)bytes,
                       (long long)i8);
  }
  os << llvm::format("SmartDeal: %lld layer(s) decomposed; conv/matmul weights %lld bytes (dense layers at int8) vs "
                     "%lld dense int8: %.2fx smaller; %lld fp32: %.2fx\n",
                     (long long)made, (long long)stored, (long long)int8, stored ? double(int8) / double(stored) : 0.0,
                     (long long)fp32, stored ? double(fp32) / double(stored) : 0.0);
  if (accel) {
    os << "SmartDeal: the accelerator loads these layers compressed and rebuilds their int8 weights (REBUILD); "
          "kiln sim reports the weight bytes it moves\n";
    return true;
  }
  os << "SmartDeal: weights file " << weightsFileBytes << " bytes\n";
  if (quantized)
    os << "SmartDeal: with quantisation, a quantised layer runs the int8 kernel on its rebuilt weights, which the "
          "weights file holds at int8: the SmartDeal bytes above are not what it stores for that layer\n";
  return true;
}

bool printButterflyReport(const std::string &path, llvm::raw_ostream &os) {
  auto report = readJson(path);
  auto *root = report ? report->getAsObject() : nullptr;
  auto *layers = root ? root->getArray("layers") : nullptr;
  if (!layers) return false;
  int64_t dense = 0, factored = 0, made = 0;
  double ms = 0;
  os << llvm::format("%-34s %-9s %4s %-7s %10s %10s %15s %7s\n", "butterfly layer", "K x N", "n", "fit",
                     "weight err", "output err", "params", "fit ms");
  for (const llvm::json::Value &v : *layers) {
    const llvm::json::Object *l = v.getAsObject();
    std::string name = l->getString("name").value_or("?").str();
    if (l->getString("method").value_or("") == "dense") {
      os << llvm::format("%-34s dense: %s\n", name.c_str(), l->getString("reason").value_or("").str().c_str());
      continue;
    }
    ++made;
    int64_t d = l->getInteger("dense_params").value_or(0), f = l->getInteger("butterfly_params").value_or(0);
    dense += d;
    factored += f;
    ms += l->getNumber("fit_ms").value_or(0);
    auto out = l->getNumber("output_rel_error");
    std::string shape = std::to_string(l->getInteger("reduction").value_or(0)) + " x " +
                        std::to_string(l->getInteger("out_channels").value_or(0));
    os << llvm::format("%-34s %-9s %4lld %-7s %9.1f%% %10s %6lld -> %-5lld %7.0f\n", name.c_str(), shape.c_str(),
                       (long long)l->getInteger("n").value_or(0), l->getString("method").value_or("?").str().c_str(),
                       100 * l->getNumber("weight_rel_error").value_or(0),
                       out ? llvm::formatv("{0:f1}%", 100 * *out).str().c_str() : "-", (long long)d, (long long)f,
                       l->getNumber("fit_ms").value_or(0));
  }
  os << llvm::format("butterfly: %zu layer(s) factorised; their parameters %lld -> %lld (%.2fx fewer), fit %.1f s\n",
                     size_t(made), (long long)dense, (long long)factored,
                     factored ? double(dense) / double(factored) : 0.0, ms / 1000);
  return true;
}

} // namespace kiln::tool
