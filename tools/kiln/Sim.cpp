//===- Sim.cpp - kiln sim and kiln hw-gen: the accelerator from the command line -===//
//
// `kiln sim` compiles a model for the accelerator (int8, quantised here), loads it
// into the Verilated RTL and, unless told not to, into the reference model as well,
// runs each input on both, compares the whole device memory bit for bit after every
// inference, and prints cycles, PE utilisation and bytes moved per layer.
//
//===----------------------------------------------------------------------===//
#include "hw_gen/HwGen.h"
#include "tools/kiln/Dataset.h"
#include "tools/kiln/Tool.h"

#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

extern "C" {
#include "kiln/accel.h"
#include "kiln/npy.h"
}
#ifdef KILN_HAVE_RTL
#include "hw_gen/sim/VerilatedAccel.h"
#endif

namespace kiln::tool {

const char *kSimHelp = R"(kiln sim MODEL.onnx [options]

Compiles the model for Kiln's accelerator (int8; docs/ACCELERATOR.md), runs it on the
Verilated RTL, checks every inference bit for bit against the reference model (the
instruction set executed in C), and prints cycles, PE utilisation and bytes moved per
layer.

Inputs (one of):
  --input NAME=FILE.npy     one inference; the output is printed (or written with -o DIR)
  --data X --labels Y       top-1 accuracy on a labelled set (.npy or IDX, as kiln eval)
  --limit N                 with --data: the first N samples (default 500)

Quantisation (required: the accelerator runs int8, int4 weights in its W4 mode):
  --calib DATA              calibrate here (as kiln compile --quantize int8 --calib)
  --quantize int4|mixed     with --calib: int4 weights, or kiln compile's int8/int4 search
  --plan FILE               or use a plan written by an earlier compile
  --sparsify N:M ... and the other compression options of kiln compile: layers whose N:M
                            group size is the accelerator's run in its N:M mode

Accelerator:
  --config FILE             accelerator description (default: hw_gen/default.json)
  --device rtl|ref          run on the Verilated RTL (default when built with Verilator)
                            or on the reference model only
  --no-check                do not also run the reference model
  --latency N               memory read latency in cycles (RTL; default 4)
  --stall P                 percent of cycles the memory refuses a request (RTL; default 0)
  --max-cycles N            give up on a layer after N cycles (RTL; default 100000000)
  --keep DIR                keep the compiled artifact (the .kaccel, its accel IR, the plan)
  --shape NAME=d0,...       as kiln compile (with --data, batch 1 and the data's shape)
)";

namespace {

struct Device {
  kiln_accel_device_t dev{};
  bool open = false;
  ~Device() {
    if (open && dev.close) dev.close(dev.ctx);
  }
};

} // namespace

int cmdSim(int argc, char **argv) {
  std::vector<char *> rest{argv[0], argv[1]};
  std::string dataPath, labelPath, keep, config, device = "", inputArg;
  int64_t limit = 500, latency = 4, stall = 0, maxCycles = 100000000;
  bool check = true;
  for (int k = 2; k < argc; ++k) {
    std::string a = argv[k];
    auto next = [&](std::string &dst) {
      if (k + 1 >= argc) return false;
      dst = argv[++k];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      llvm::outs() << kSimHelp;
      return 0;
    } else if (a == "--data") {
      if (!next(dataPath)) return commandUsage("--data needs a file", kSimHelp);
    } else if (a == "--labels") {
      if (!next(labelPath)) return commandUsage("--labels needs a file", kSimHelp);
    } else if (a == "--keep") {
      if (!next(keep)) return commandUsage("--keep needs a directory", kSimHelp);
    } else if (a == "--config") {
      if (!next(config)) return commandUsage("--config needs a file", kSimHelp);
    } else if (a == "--device") {
      if (!next(device) || (device != "rtl" && device != "ref")) return commandUsage("--device takes rtl or ref", kSimHelp);
    } else if (a == "--input") {
      if (!next(inputArg)) return commandUsage("--input needs NAME=FILE.npy", kSimHelp);
    } else if (a == "--no-check") {
      check = false;
    } else if (a == "--limit" || a == "--latency" || a == "--stall" || a == "--max-cycles") {
      int64_t &dst = a == "--limit" ? limit : a == "--latency" ? latency : a == "--stall" ? stall : maxCycles;
      if (!next(v) || llvm::StringRef(v).getAsInteger(10, dst) || dst < (a == "--stall" ? 0 : 1) ||
          (a == "--stall" && dst > 90) || (a == "--latency" && dst > 1000))
        return commandUsage(a + " needs a number in range", kSimHelp);
    } else {
      rest.push_back(argv[k]);
    }
  }
  // The accelerator runs int8: calibration data means --quantize int8.
  static char quantizeFlag[] = "--quantize", int8Value[] = "int8";
  auto given = [&](const char *flag) {
    return std::any_of(rest.begin(), rest.end(), [&](const char *a) { return std::strcmp(a, flag) == 0; });
  };
  if (given("--calib") && !given("--quantize") && !given("--plan")) {
    rest.push_back(quantizeFlag);
    rest.push_back(int8Value);
  }
  CommonOptions o;
  if (int rc = parseCommonArgs(int(rest.size()), rest.data(), o, kSimHelp); rc >= 0) return rc;
  if (dataPath.empty() == inputArg.empty()) return commandUsage("give --input NAME=FILE.npy or --data/--labels", kSimHelp);
  if (!dataPath.empty() && labelPath.empty()) return commandUsage("--data needs --labels", kSimHelp);
  if (o.quantize.empty() && o.planIn.empty()) {
    if (o.calibPath.empty())
      return commandUsage("the accelerator runs int8: give --calib DATA (or --plan FILE)", kSimHelp);
    o.quantize = "int8";
  }
  if (!o.quantize.empty() && o.quantize != "int8" && o.quantize != "int4" && o.quantize != "mixed")
    return commandUsage("the accelerator runs --quantize int8, int4 (int4 weights) or mixed", kSimHelp);
#ifndef KILN_HAVE_RTL
  if (device == "rtl") return commandUsage("this kiln was built without Verilator: only --device ref", kSimHelp);
  if (device.empty()) {
    llvm::errs() << "note: this kiln was built without Verilator: running the reference model only\n";
    device = "ref";
  }
#else
  if (device.empty()) device = "rtl";
#endif
  kiln_accel_config_t cfg = hw::defaultConfig();
  std::string err;
  if (!config.empty()) {
    if (!hw::loadConfig(config, cfg, err)) {
      llvm::errs() << "error: " << err << "\n";
      return 1;
    }
    o.compile.accelConfig = config;
  }
  o.compile.target = "accel";

  // Samples: the data set, or the one --input array.
  kiln::tools::Array data, labels;
  int64_t n = 1, perSample = 0;
  std::vector<int64_t> inDims;
  if (!dataPath.empty()) {
    if (int rc = readLabelledSet(dataPath, labelPath, limit, data, labels, n, perSample)) return rc;
    std::string inputName;
    if (int rc = shapeFromData(o, data, perSample, 1, inputName, "kiln sim")) return rc;
  } else {
    size_t eq = inputArg.find('=');
    if (eq == std::string::npos || eq == 0) return commandUsage("bad --input: expected NAME=FILE.npy", kSimHelp);
    kiln_npy_t npy{};
    if (kiln_npy_read(inputArg.substr(eq + 1).c_str(), &npy) != KILN_OK || npy.dtype != KILN_DTYPE_F32) {
      kiln_npy_free(&npy);
      llvm::errs() << "error: --input " << inputArg << ": not a readable float32 .npy file\n";
      return 1;
    }
    inDims.assign(npy.dims, npy.dims + npy.rank);
    data.f.assign(static_cast<const float *>(npy.data), static_cast<const float *>(npy.data) + npy.size_bytes / 4);
    perSample = int64_t(data.f.size());
    kiln_npy_free(&npy);
    if (!o.import.inputShapes.count(inputArg.substr(0, eq))) o.import.inputShapes[inputArg.substr(0, eq)] = inDims;
  }

  WorkDir wd(keep, "kiln-sim");
  if (!wd.ok()) return 1;
  o.compile.name = "model";
  codegen::Artifact artifact;
  if (int rc = compileCommon(o, wd.path, artifact)) return rc;

  char msg[512] = "";
  kiln_accel_model_t *model = nullptr;
  if (kiln_accel_model_open((wd.path + "/model.kaccel").c_str(), &model, msg, sizeof msg) != KILN_OK) {
    llvm::errs() << "error: " << msg << "\n";
    return 1;
  }
  std::unique_ptr<kiln_accel_model_t, void (*)(kiln_accel_model_t *)> modelOwner(model, kiln_accel_model_free);
  const uint64_t mem = (kiln_accel_model_mem_bytes(model) + 4095) / 4096 * 4096;
  Device main, ref;
  if (device == "ref") {
    check = false;
    main.open = kiln_accel_ref_open(&cfg, mem, &main.dev) == KILN_OK;
  } else {
#ifdef KILN_HAVE_RTL
    kiln_accel_sim_options_t so{};
    so.read_latency = uint32_t(latency);
    so.stall_percent = uint32_t(stall);
    so.seed = 1;
    main.open = kiln_accel_verilated_open(&cfg, mem, &so, &main.dev) == KILN_OK;
#endif
  }
  if (check) ref.open = kiln_accel_ref_open(&cfg, mem, &ref.dev) == KILN_OK;
  if (!main.open || (check && !ref.open)) {
    llvm::errs() << "error: cannot open the accelerator device\n";
    return 1;
  }
  for (Device *d : {&main, &ref})
    if (d->open && kiln_accel_model_load(model, &d->dev, msg, sizeof msg) != KILN_OK) {
      llvm::errs() << "error: " << msg << "\n";
      return 1;
    }

  const size_t layers = kiln_accel_model_layer_count(model);
  const size_t inSize = kiln_accel_model_input_size(model, nullptr, nullptr);
  int64_t outDims[KILN_ACCEL_MAX_DIMS];
  size_t outRank = 0;
  const size_t outSize = kiln_accel_model_output_size(model, outDims, &outRank);
  if (size_t(perSample) != inSize) {
    llvm::errs() << "error: the model takes " << inSize << " values, the input has " << perSample << "\n";
    return 1;
  }
  std::vector<kiln_accel_counters_t> total(layers), one(layers);
  std::vector<float> out(outSize), outRef(outSize);
  std::vector<uint8_t> memA(mem), memB(mem);
  int64_t right = 0, mismatches = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float *x = data.f.data() + i * perSample;
    if (kiln_accel_model_run(model, &main.dev, x, inSize, out.data(), outSize, one.data(), uint64_t(maxCycles), msg,
                             sizeof msg) != KILN_OK) {
      llvm::errs() << "error: " << main.dev.name << ": " << msg << "\n";
      return 1;
    }
    for (size_t l = 0; l < layers; ++l) {
      total[l].cycles += one[l].cycles, total[l].gemm_cycles += one[l].gemm_cycles;
      total[l].rd_beats += one[l].rd_beats, total[l].wr_beats += one[l].wr_beats, total[l].wt_beats += one[l].wt_beats;
      total[l].insns += one[l].insns;
    }
    if (check) {
      if (kiln_accel_model_run(model, &ref.dev, x, inSize, outRef.data(), outSize, nullptr, 0, msg, sizeof msg) !=
          KILN_OK) {
        llvm::errs() << "error: reference model: " << msg << "\n";
        return 1;
      }
      if (main.dev.mem_read(main.dev.ctx, 0, memA.data(), mem) != KILN_OK ||
          ref.dev.mem_read(ref.dev.ctx, 0, memB.data(), mem) != KILN_OK) {
        llvm::errs() << "error: cannot read device memory back\n";
        return 1;
      }
      if (memA != memB) {
        size_t at = 0;
        while (memA[at] == memB[at]) ++at;
        if (mismatches++ == 0)
          llvm::errs() << "MISMATCH: sample " << i << ": device memory differs from the reference model first at byte "
                       << at << " (" << unsigned(memA[at]) << " vs " << unsigned(memB[at]) << ")\n";
      }
    }
    if (!labels.i.empty()) {
      size_t best = 0;
      for (size_t k = 1; k < outSize; ++k)
        if (out[k] > out[best]) best = k;
      right += int64_t(best) == labels.i[size_t(i)];
    }
  }

  // Per-layer figures, per inference.
  const double pes = double(cfg.rows) * cfg.cols, bus = cfg.bus_bytes;
  llvm::outs() << "accelerator " << cfg.rows << "x" << cfg.cols << " PEs, N:M lanes " << cfg.nm_m << ", " << cfg.bus_bytes
               << "-byte bus (config " << llvm::format_hex_no_prefix(cfg.config_id, 8) << "), device: " << main.dev.name
               << "; per inference, mean of " << n << ":\n";
  llvm::outs() << llvm::format("%-26s %-14s %10s %10s %7s %10s %10s %10s\n", "layer", "kind", "cycles", "gemm cyc",
                               "PE util", "rd bytes", "wt bytes", "wr bytes");
  double sumCycles = 0, sumRd = 0, sumWt = 0, sumWr = 0, sumMacs = 0, sumGemm = 0;
  for (size_t l = 0; l < layers; ++l) {
    double cyc = double(total[l].cycles) / n, gemm = double(total[l].gemm_cycles) / n;
    double rd = total[l].rd_beats * bus / n, wt = total[l].wt_beats * bus / n, wr = total[l].wr_beats * bus / n;
    double macs = double(kiln_accel_model_layer_macs(model, l));
    double util = cyc > 0 ? macs / (pes * cyc) : 0;
    llvm::outs() << llvm::format("%-26s %-14s %10.0f %10.0f %6.1f%% %10.0f %10.0f %10.0f\n",
                                 kiln_accel_model_layer_name(model, l), kiln_accel_model_layer_kind(model, l), cyc, gemm,
                                 100 * util, rd, wt, wr);
    sumCycles += cyc, sumGemm += gemm, sumRd += rd, sumWt += wt, sumWr += wr, sumMacs += macs;
  }
  llvm::outs() << llvm::format("%-26s %-14s %10.0f %10.0f %6.1f%% %10.0f %10.0f %10.0f\n", "total", "", sumCycles, sumGemm,
                               sumCycles > 0 ? 100 * sumMacs / (pes * sumCycles) : 0.0, sumRd, sumWt, sumWr);
  if (device == "ref") llvm::outs() << "(the reference model counts bytes, not cycles)\n";
  if (check)
    llvm::outs() << "bit-exact vs the reference model: " << (n - mismatches) << " of " << n << " inferences\n";
  if (!labels.i.empty())
    llvm::outs() << llvm::format("top-1: %.4f (%lld of %lld)\n", double(right) / double(n), (long long)right,
                                 (long long)n);
  if (labels.i.empty()) {
    if (!o.outDir.empty()) {
      std::string path = o.outDir + "/output.npy";
      if (std::error_code ec = llvm::sys::fs::create_directories(o.outDir)) {
        llvm::errs() << "error: cannot create '" << o.outDir << "': " << ec.message() << "\n";
        return 1;
      }
      if (kiln_npy_write(path.c_str(), KILN_DTYPE_F32, outRank, outDims, out.data()) != KILN_OK) {
        llvm::errs() << "error: cannot write '" << path << "'\n";
        return 1;
      }
      llvm::outs() << "wrote " << path << "\n";
    } else {
      llvm::outs() << "output:";
      for (float v : out) llvm::outs() << " " << llvm::format("%.6g", v);
      llvm::outs() << "\n";
    }
  }
  return mismatches ? 1 : 0;
}

int cmdHwGen(int argc, char **argv) {
  std::string config, out;
  for (int k = 2; k < argc; ++k) {
    std::string a = argv[k];
    if (a == "-h" || a == "--help") {
      llvm::outs() << "kiln hw-gen [--config FILE] -o DIR\n\nWrites the accelerator's RTL for a configuration "
                      "(default: hw_gen/default.json):\nthe SystemVerilog package, the C header and the RTL sources "
                      "(docs/ACCELERATOR.md).\n";
      return 0;
    }
    if ((a == "--config" || a == "-o") && k + 1 < argc) (a == "-o" ? out : config) = argv[++k];
    else return commandUsage("unknown option '" + a + "'", "kiln hw-gen [--config FILE] -o DIR\n");
  }
  if (out.empty()) return commandUsage("-o DIR is required", "kiln hw-gen [--config FILE] -o DIR\n");
  kiln_accel_config_t cfg = hw::defaultConfig();
  std::string err;
  if ((!config.empty() && !hw::loadConfig(config, cfg, err)) ||
      !hw::generate(cfg, std::string(KILN_SOURCE_DIR) + "/hw_gen/rtl", out, err)) {
    llvm::errs() << "error: " << err << "\n";
    return 1;
  }
  llvm::outs() << "wrote the accelerator RTL for " << hw::canonical(cfg) << " (config "
               << llvm::format_hex_no_prefix(cfg.config_id, 8) << ") -> " << out << "\n";
  return 0;
}

} // namespace kiln::tool
