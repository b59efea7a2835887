//===- main.cpp - The kiln command-line compiler ----------------------------===//
//
//   kiln compile MODEL.onnx -o DIR [--target T] [--shape NAME=d0,d1,...]...
//   kiln run MODEL.onnx --input NAME=FILE.npy... [--output DIR] [--target T]
//
// `compile` writes <name>.o, <name>.h and <name>.kw; `run` compiles into a
// temporary directory, links the object with the runtime and a generic driver,
// runs it (under qemu for aarch64) and writes one .npy per model output.
//
//===----------------------------------------------------------------------===//
#include "codegen/Driver.h"
#include "passes/codesign/Common.h"
#include "tools/kiln/Dataset.h"
#include "tools/kiln/Tool.h"
#include "codegen/Target.h"
#include "frontend/onnx/Importer.h"

extern "C" {
#include "kiln/npy.h"
}

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <onnx/onnx_pb.h>
#include <set>
#include <cstdlib>
#include <fcntl.h>
#include <random>
#include <sys/wait.h>
#include <cstring>
#include <optional>
#include <map>
#include <string>
#include <unistd.h>
#include <vector>

#ifndef KILN_SOURCE_DIR
#error "KILN_SOURCE_DIR must point at the Kiln source tree"
#endif
#ifndef KILN_HOST_CC
#define KILN_HOST_CC "cc"
#endif

namespace kiln::tool {

/// Runs a program; returns its exit code (or -1 if it could not start).
int execute(const std::vector<std::string> &args, std::string *errMsg) {
  auto prog = llvm::sys::findProgramByName(args[0]);
  if (!prog) {
    if (errMsg) *errMsg = "'" + args[0] + "' not found on PATH";
    return -1;
  }
  std::vector<llvm::StringRef> refs(args.begin(), args.end());
  std::string msg;
  int rc = llvm::sys::ExecuteAndWait(*prog, refs, std::nullopt, {}, 0, 0, &msg);
  if (rc < 0 && errMsg) *errMsg = msg;
  return rc;
}

/// Runs a program (stdout discarded when `quiet`); returns its exit code or -1.
int runProgram(const std::vector<std::string> &args, bool quiet, std::string *errMsg) {
  auto prog = llvm::sys::findProgramByName(args[0]);
  if (!prog) {
    if (errMsg) *errMsg = "'" + args[0] + "' not found";
    return -1;
  }
  std::vector<llvm::StringRef> refs(args.begin(), args.end());
  std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef("/dev/null"), std::nullopt};
  std::string msg;
  int rc = llvm::sys::ExecuteAndWait(*prog, refs, std::nullopt,
                                     quiet ? llvm::ArrayRef<std::optional<llvm::StringRef>>(redirects)
                                           : llvm::ArrayRef<std::optional<llvm::StringRef>>(),
                                     0, 0, &msg);
  if (rc < 0 && errMsg) *errMsg = msg;
  return rc;
}

/// Links <work>/model.o with the runtime and the generic driver into <work>/runner.
/// The runtime's C sources compiled once per process and compiler flags (a command
/// that links several runners, e.g. calibration and a bit-width search, reuses them);
/// the objects live in a temporary directory removed at exit.
struct RuntimeObjects {
  std::string dir;
  std::map<std::string, std::vector<std::string>> byFlags;
  ~RuntimeObjects() {
    if (!dir.empty()) removeTree(dir);
  }
};

int linkRunner(const std::string &work, bool cross, const std::string &cpu) {
  const char *envCc = std::getenv(cross ? "KILN_AARCH64_CC" : "KILN_CC");
  std::string cc = envCc ? envCc : cross ? "aarch64-linux-gnu-gcc" : KILN_HOST_CC;
  std::string src = KILN_SOURCE_DIR;
  // The runtime's kernels are built for the machine that runs them: the host, or for
  // aarch64 the --cpu given (e.g. cortex-a76: SDOT int8 kernels) or a generic armv8-a.
  std::string arch = !cross ? "-march=native" : cpu.empty() ? "-march=armv8-a" : "-mcpu=" + cpu;
  // A sanitizer build of kiln (-DKILN_SANITIZE=ON) checks the runtime it links too.
  std::vector<std::string> sanitize;
#ifdef KILN_RUNNER_SANITIZE
  if (!cross) sanitize = {"-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"};
#endif
  static RuntimeObjects cache;
  std::string key = cc + " " + arch + (sanitize.empty() ? "" : " sanitize");
  std::string err;
  auto it = cache.byFlags.find(key);
  if (it == cache.byFlags.end()) {
    if (cache.dir.empty()) {
      llvm::SmallString<128> tmp;
      if (llvm::sys::fs::createUniqueDirectory("kiln-runtime", tmp)) {
        llvm::errs() << "error: cannot create a temporary directory\n";
        return 1;
      }
      cache.dir = tmp.str().str();
    }
    std::error_code ec;
    std::vector<std::string> sources, objects;
    for (llvm::sys::fs::recursive_directory_iterator di(src + "/runtime/src", ec), end; di != end && !ec;
         di.increment(ec))
      // The device HALs (src/hal/: Vulkan) are not part of the portable runtime.
      if (llvm::StringRef(di->path()).ends_with(".c") && !llvm::StringRef(di->path()).contains("/runtime/src/hal/"))
        sources.push_back(di->path());
    std::sort(sources.begin(), sources.end());
    std::string objDir = cache.dir + "/" + std::to_string(cache.byFlags.size());
    llvm::sys::fs::create_directories(objDir);
    for (const std::string &source : sources) {
      std::string obj = objDir + "/" + std::to_string(objects.size()) + ".o";
      std::vector<std::string> compile{cc, "-O3", "-std=c11", arch, "-I" + src + "/runtime/include", "-c", source,
                                       "-o", obj};
      compile.insert(compile.end(), sanitize.begin(), sanitize.end());
      if (execute(compile, &err) != 0) {
        llvm::errs() << "error: compiling the runtime with '" << cc << "' failed" << (err.empty() ? "" : ": " + err)
                     << "\n";
        return 1;
      }
      objects.push_back(obj);
    }
    it = cache.byFlags.emplace(key, std::move(objects)).first;
  }
  std::vector<std::string> link{cc, "-O3", "-std=c11", arch, "-I" + work,
                                "-I" + src + "/runtime/include", src + "/tools/kiln-runner/main.c"};
  link.insert(link.end(), it->second.begin(), it->second.end());
  link.insert(link.end(), {work + "/model.o", "-lm", "-pthread", "-o", work + "/runner"});
  if (cross) link.push_back("-static");
  link.insert(link.end(), sanitize.begin(), sanitize.end());
  if (execute(link, &err) != 0) {
    llvm::errs() << "error: linking the runner with '" << cc << "' failed" << (err.empty() ? "" : ": " + err) << "\n";
    return 1;
  }
  return 0;
}

} // namespace kiln::tool

namespace {

using kiln::codegen::CompileOptions;
using namespace kiln::tool;

const char *kMainHelp = R"(kiln - ahead-of-time compiler for ONNX models

Usage:
  kiln compile MODEL.onnx -o DIR [options]   compile to an object, C header and weights file
  kiln run MODEL.onnx --input NAME=FILE.npy... [--output DIR] [options]
                                             compile, run, and print/write the outputs
  kiln import MODEL.onnx [--shape NAME=d0,...]  print the imported MLIR (func + TOSA)
  kiln inspect MODEL.onnx [--shape ...]       pre-flight report: ops, support, parameters, FLOPs
  kiln eval MODEL.onnx --data X --labels Y [--vs onnxruntime]
                                             top-1 accuracy of the compiled model on a labelled set
  kiln bench MODEL.onnx [--vs onnxruntime] [--threads 1,2]
                                             time Kiln (and ONNX Runtime) on this machine
  kiln sim MODEL.onnx (--input NAME=FILE.npy | --data X --labels Y) --calib DATA
                                             run on the Verilated accelerator, checked bit for
                                             bit; cycles, PE utilisation, bytes per layer
  kiln hw-gen [--config FILE] -o DIR          write the accelerator's RTL for a configuration
  kiln plan MODEL.onnx --calib X --eval X --labels Y --budget B -o DIR
                                             choose every layer's precision and compression
                                             together under a budget; plan.json + report.html
  kiln COMMAND --help                        options of a command

Targets: x86-64 (default, this machine), aarch64 (run under qemu-aarch64), null (writes IR),
         accel (Kiln's accelerator: writes <name>.kaccel and its accel IR)
)";

const char *kCompileHelp = R"(kiln compile MODEL.onnx -o DIR [options]

Compiles an ONNX model to DIR/<name>.o (relocatable object), DIR/<name>.h (C header
declaring the model descriptor for the runtime API in kiln/kiln.h) and DIR/<name>.kw
(the weights file the runtime memory-maps). Nothing is written unless the whole
compile succeeds.

Options:
  -o, --output DIR          artifact directory (created if missing)
  --target T                x86-64 (default) | aarch64 | null | accel (Kiln's accelerator,
                            int8: needs --quantize int8 --calib DATA or --plan FILE)
  --accel-config FILE       with --target accel: the accelerator description (JSON,
                            docs/ACCELERATOR.md; default hw_gen/default.json)
  --gpu-tile                with --target vulkan: run matmuls and 1x1 convolutions as 16x16
                            tiles staged through workgroup memory (docs/GPU.md: slower on
                            lavapipe, meant for GPUs with fast shared memory)
  --shape NAME=d0,d1,...    fix the shape of input NAME (repeat per input); needed
                            for symbolic dimensions such as a batch size
  --freeze NAME=FILE.npy    fix input NAME to this value at compile time: it becomes
                            a constant and is no longer an input of the compiled model
                            (for inputs that determine shapes, such as axes or sizes)
  --name NAME               C identifier for symbols and file names (default: the
                            model file name)
  --cpu CPU                 LLVM CPU name (default: x86-64-v3, i.e. AVX2+FMA, or generic aarch64)
  --dump-import             print the imported MLIR (func + TOSA) to stderr
  --dump-ir-after PASS      print the IR after PASS (an MLIR pass name such as
                            one-shot-bufferize or kiln-plan-arena; "all" for every
                            pass); repeatable
  --print-pipeline          print the target's pass pipeline and exit

Quantisation (see docs/QUANTIZATION.md):
  --quantize int8|int4|mixed|bf16  int8: u8 activations x s8 weights; int4: 4-bit
                            weights; mixed: int8/int4 per layer, searched under --budget;
                            bf16: bfloat16 activations and weights (no calibration)
  --calib FILE              calibration samples (float32 .npy [N, ...] or IDX images)
  --calib-limit N           use the first N samples (default 500)
  --calib-method M          minmax (default) | percentile[=P] (default P = 99.99)
  --budget bits=B|size=BYTES  with mixed: average bits per weight, or weight bytes
  --plan FILE               apply a plan written by an earlier --quantize or by kiln plan
                            (editable; a kiln plan's per-layer "structure" is applied too,
                            fitted to the calibration data the plan names, or --calib);
                            the plan used is written as <name>.plan.json
  --gram FILE               for N:M, SmartDeal and butterfly fits: the layers' calibration
                            Gram matrices recorded earlier (e.g. kiln plan's
                            DIR/cache/gram/gram.bin, same model) instead of a calibration run

Structured sparsity (see docs/COMPRESSION.md):
  --sparsify N:M            keep N of every M weights per output channel (e.g. 2:4) in
                            every conv/matmul layer with a reduction of 32 or more; with
                            --calib, pruning is reconstructed from the layers' calibration
                            inputs (one-shot OBS), otherwise by magnitude; the per-layer
                            report is written as <name>.sparsity.json
  --sparsify-layers LIST    per-layer patterns, NAME=N:M or NAME=dense, comma separated

Weight decomposition (see docs/SMARTDEAL.md):
  --decompose smartdeal[:bB][:dD]   store each conv/matmul layer with a reduction of 32 or
                            more as SmartDeal weights (W ~ C x B: a fraction D of 3-weight
                            chunks kept, coefficients signed powers of two with B exponent
                            bits; default b3:d0.75); with --calib, fitted to the layers'
                            calibration inputs; the per-layer report is written as
                            <name>.decompose.json. With --sparsify, a layer N:M pruning
                            takes stays N:M (naming it in --decompose-layers is an error)
  --decompose-layers LIST   per-layer settings, NAME=bB:dD[:gG] or NAME=dense, comma
                            separated (G: chunks per basis; 0 or absent picks it)

Butterfly factorisation (see docs/BUTTERFLY.md):
  --butterfly LIST|all      replace these linear layers' weights (MatMul/Gemm, names as
                            the reports print them, comma separated; all: every one the
                            format makes smaller) by fitted butterfly factors; with --calib the fit minimises the
                            layer's output error on the calibration inputs; the per-layer
                            report is written as <name>.butterfly.json
)";

const char *kImportHelp = R"(kiln import MODEL.onnx [--shape NAME=d0,d1,...]... [--freeze NAME=FILE.npy]...

Prints the imported module (func + TOSA, weights as dense_resource blobs, elided) with
each operation's location: the name of the ONNX node it came from. MODEL may also be
ONNX's textual syntax in a .onnxtxt file. Problems are reported as by kiln compile.
)";

const char *kRunHelp = R"(kiln run MODEL.onnx --input NAME=FILE.npy... [options]

Compiles the model with input shapes taken from the given .npy files, links it with
the Kiln runtime, runs it once, prints a summary of every output and, with --output,
writes DIR/<output name>.npy per output.

Options:
  --input NAME=FILE.npy     value of model input NAME (one per model input)
  --output DIR              write one .npy per model output into DIR
  --freeze NAME=FILE.npy    compile input NAME in as a constant (see kiln compile)
  --target T                x86-64 (default) | aarch64 (runs under qemu-aarch64) |
                            vulkan (SPIR-V kernels on the first Vulkan device; prints
                            which; KILN_VK_DEVICE=N picks device N)
  --cpu CPU                 LLVM CPU name
  --threads N               run the model's kernels on N threads (default 1)
  --keep DIR                keep the compiled artifact and runner in DIR
  --dump-import, --dump-ir-after PASS   as for `kiln compile`
  --quantize, --calib, --calib-limit, --calib-method, --budget, --plan,
  --sparsify, --sparsify-layers, --decompose, --decompose-layers, --butterfly   as for `kiln compile`
)";

/// The path of the executable `name` installed beside this kiln, or "" if there is none.
std::string siblingTool(const char *argv0, llvm::StringRef name) {
  static int anchor;
  std::string self = llvm::sys::fs::getMainExecutable(argv0, &anchor);
  llvm::SmallString<256> path(llvm::sys::path::parent_path(self));
  llvm::sys::path::append(path, name);
  return llvm::sys::fs::can_execute(path) ? std::string(path) : std::string();
}

/// kiln-vk-runner beside this kiln, or "" after saying that this build has no Vulkan runtime.
std::string vulkanRunner(const char *argv0) {
  std::string runner = siblingTool(argv0, "kiln-vk-runner");
  if (runner.empty())
    llvm::errs() << "error: this kiln was built without the Vulkan runtime (kiln-vk-runner is missing; install "
                    "libvulkan-dev and rebuild)\n";
  return runner;
}

int usageError(const std::string &msg, const char *help) {
  llvm::errs() << "error: " << msg << "\n\n" << help;
  return 2;
}

std::string sanitizeName(llvm::StringRef s) {
  std::string out;
  for (char c : s) out += (llvm::isAlnum(c) || c == '_') ? c : '_';
  if (out.empty() || llvm::isDigit(out[0])) out = "m_" + out;
  return out;
}

bool parseDims(llvm::StringRef text, std::vector<int64_t> &dims) {
  llvm::SmallVector<llvm::StringRef> parts;
  text.split(parts, ',', -1, false);
  if (parts.empty()) return false;
  for (llvm::StringRef p : parts) {
    int64_t v;
    if (p.trim().getAsInteger(10, v) || v < 0) return false;
    dims.push_back(v);
  }
  return true;
}

/// Reads a .npy file as a host tensor (for --freeze).
std::optional<kiln::onnx_frontend::HostTensor> readNpy(const std::string &path, std::string &err) {
  using kiln::onnx_frontend::DType;
  kiln_npy_t npy{};
  kiln_status_t st = kiln_npy_read(path.c_str(), &npy);
  if (st != KILN_OK) {
    err = "cannot read '" + path + "': " + kiln_status_string(st);
    kiln_npy_free(&npy);
    return std::nullopt;
  }
  DType t = npy.dtype == KILN_DTYPE_F32 ? DType::F32 : npy.dtype == KILN_DTYPE_I64 ? DType::I64
            : npy.dtype == KILN_DTYPE_I32 ? DType::I32 : npy.dtype == KILN_DTYPE_I8 ? DType::I8
            : npy.dtype == KILN_DTYPE_U8 ? DType::U8 : npy.dtype == KILN_DTYPE_BOOL ? DType::Bool : DType::Unknown;
  if (t == DType::Unknown) {
    err = "'" + path + "' has element type " + npy.descr + ", which --freeze does not take";
    kiln_npy_free(&npy);
    return std::nullopt;
  }
  auto h = kiln::onnx_frontend::HostTensor::make(t, std::vector<int64_t>(npy.dims, npy.dims + npy.rank));
  const char *p = static_cast<const char *>(npy.data);
  for (size_t k = 0; k < npy.num_elements; ++k) {
    switch (npy.dtype) {
    case KILN_DTYPE_F32: { float f; std::memcpy(&f, p + 4 * k, 4); h.f[k] = f; break; }
    case KILN_DTYPE_I64: { int64_t x; std::memcpy(&x, p + 8 * k, 8); h.i[k] = x; break; }
    case KILN_DTYPE_I32: { int32_t x; std::memcpy(&x, p + 4 * k, 4); h.i[k] = x; break; }
    case KILN_DTYPE_I8: h.i[k] = int8_t(p[k]); break;
    case KILN_DTYPE_U8: h.i[k] = uint8_t(p[k]); break;
    default: h.i[k] = p[k] != 0; break;
    }
  }
  kiln_npy_free(&npy);
  return h;
}

/// "N:M" with 1 <= N < M <= 16 (as kiln-sparsify-nm reads it; "dense" is not a pattern here).
bool isNMPattern(const std::string &p) {
  auto parsed = kiln::codesign::parseNMPattern(p);
  return parsed && parsed->n > 0;
}

/// --decompose's value: "smartdeal", optionally ":bB" and ":dD" for the layers
/// --decompose-layers does not name (B in 1..7, 0 < D <= 1). Leaves the method alone.
bool parseDecompose(kiln::codegen::CompileOptions &c) {
  llvm::SmallVector<llvm::StringRef> parts;
  llvm::StringRef(c.decompose).split(parts, ':');
  if (parts[0] != "smartdeal") return false;
  for (llvm::StringRef p : llvm::ArrayRef(parts).drop_front()) {
    if (p.consume_front("b")) {
      if (p.getAsInteger(10, c.decomposeBits) || c.decomposeBits < 1 || c.decomposeBits > 7) return false;
    } else if (!p.consume_front("d") || p.getAsDouble(c.decomposeDensity) ||
               !(c.decomposeDensity > 0 && c.decomposeDensity <= 1)) {
      return false;
    }
  }
  c.decompose = "smartdeal";
  return true;
}

/// Parses options shared by compile and run; returns a non-negative exit code to stop.
int parseArgs(int argc, char **argv, bool isRun, CommonOptions &o, const char *help = nullptr) {
  if (!help) help = isRun ? kRunHelp : kCompileHelp;
  for (int k = 2; k < argc; ++k) {
    std::string a = argv[k];
    auto value = [&](std::string &dst) -> bool {
      if (k + 1 >= argc) return false;
      dst = argv[++k];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      llvm::outs() << help;
      return 0;
    } else if ((a == "-o" || a == "--output")) {
      if (!value(o.outDir)) return usageError(a + " needs a directory", help);
    } else if (a == "--target") {
      if (!value(o.compile.target)) return usageError("--target needs a value", help);
    } else if (a == "--accel-config") {
      if (!value(o.compile.accelConfig)) return usageError("--accel-config needs a file", help);
    } else if (a == "--gpu-tile") {
      o.compile.gpuTile = true;
    } else if (a == "--cpu") {
      if (!value(o.compile.cpu)) return usageError("--cpu needs a value", help);
    } else if (a == "--name" && !isRun) {
      if (!value(o.nameOverride)) return usageError("--name needs a value", help);
    } else if (a == "--keep" && isRun) {
      if (!value(o.keepDir)) return usageError("--keep needs a directory", help);
    } else if (a == "--shape" && !isRun) {
      if (!value(v)) return usageError("--shape needs NAME=d0,d1,...", help);
      size_t eq = v.rfind('=');
      std::vector<int64_t> dims;
      if (eq == std::string::npos || eq == 0 || !parseDims(llvm::StringRef(v).substr(eq + 1), dims))
        return usageError("bad --shape '" + v + "': expected NAME=d0,d1,... with non-negative integers", help);
      o.import.inputShapes[v.substr(0, eq)] = dims;
    } else if (a == "--freeze") {
      if (!value(v)) return usageError("--freeze needs NAME=FILE.npy", help);
      size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
        return usageError("bad --freeze '" + v + "': expected NAME=FILE.npy", help);
      std::string err;
      auto t = readNpy(v.substr(eq + 1), err);
      if (!t) {
        llvm::errs() << "error: --freeze " << v.substr(0, eq) << ": " << err << "\n";
        return 1;
      }
      o.import.frozenInputs[v.substr(0, eq)] = std::move(*t);
    } else if (a == "--input" && isRun) {
      if (!value(v)) return usageError("--input needs NAME=FILE.npy", help);
      size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
        return usageError("bad --input '" + v + "': expected NAME=FILE.npy", help);
      o.inputs.push_back({v.substr(0, eq), v.substr(eq + 1)});
    } else if (a == "--threads" && isRun) {
      if (!value(v) || llvm::StringRef(v).getAsInteger(10, o.threads) || o.threads < 1 || o.threads > 256)
        return usageError("--threads needs a count from 1 to 256", help);
    } else if (a == "--quantize") {
      if (!value(o.quantize) ||
          (o.quantize != "int8" && o.quantize != "int4" && o.quantize != "mixed" && o.quantize != "bf16"))
        return usageError("--quantize takes int8, int4 (4-bit weights, 8-bit activations), mixed or bf16", help);
    } else if (a == "--budget") {
      double bits = 0;
      int64_t bytes = 0;
      llvm::StringRef b;
      if (!value(o.budget) || !((b = o.budget).consume_front("bits=") ? !b.getAsDouble(bits) && bits > 0
                                : b.consume_front("size=")            ? !b.getAsInteger(10, bytes) && bytes > 0
                                                                      : false))
        return usageError("--budget needs bits=B (average bits per weight) or size=BYTES, positive", help);
    } else if (a == "--sparsify") {
      if (!value(o.compile.sparsify) || !isNMPattern(o.compile.sparsify))
        return usageError("--sparsify takes N:M with 1 <= N < M <= 16 (e.g. 2:4)", help);
    } else if (a == "--sparsify-layers") {
      if (!value(o.compile.sparsifyLayers) || !kiln::tool::fitsPassOption(o.compile.sparsifyLayers))
        return usageError("--sparsify-layers takes NAME=N:M|dense,... (names as the report prints them)", help);
    } else if (a == "--decompose") {
      if (!value(o.compile.decompose) || !parseDecompose(o.compile))
        return usageError("--decompose takes smartdeal[:bB][:dD] (B exponent bits in 1..7, D density in (0, 1])",
                          help);
    } else if (a == "--decompose-layers") {
      if (!value(o.compile.decomposeLayers) || !kiln::tool::fitsPassOption(o.compile.decomposeLayers))
        return usageError("--decompose-layers takes NAME=bB:dD[:gG]|dense,... (names as the report prints them)",
                          help);
    } else if (a == "--butterfly") {
      if (!value(o.compile.butterfly) || llvm::StringRef(o.compile.butterfly).trim(" ,").empty() ||
          !kiln::tool::fitsPassOption(o.compile.butterfly))
        return usageError("--butterfly takes NAME,NAME2,... or all (names as the reports print them)", help);
    } else if (a == "--calib") {
      if (!value(o.calibPath)) return usageError("--calib needs a file (.npy or IDX)", help);
    } else if (a == "--calib-limit") {
      if (!value(v) || llvm::StringRef(v).getAsInteger(10, o.calibLimit) || o.calibLimit < 1)
        return usageError("--calib-limit needs a positive count", help);
    } else if (a == "--calib-method") {
      if (!value(v)) return usageError("--calib-method needs minmax or percentile[=P]", help);
      if (v == "minmax" || v == "percentile") {
        o.calibMethod = v;
      } else if (llvm::StringRef(v).starts_with("percentile=")) {
        o.calibMethod = "percentile";
        if (llvm::StringRef(v).drop_front(11).getAsDouble(o.calibPercentile) || !(o.calibPercentile > 50) ||
            !(o.calibPercentile <= 100))
          return usageError("--calib-method percentile=P needs P in (50, 100]", help);
      } else {
        return usageError("--calib-method takes minmax or percentile[=P]", help);
      }
    } else if (a == "--plan") {
      if (!value(o.planIn)) return usageError("--plan needs a JSON file", help);
    } else if (a == "--gram") {
      if (!value(o.gramIn) || !kiln::tool::fitsPassOption(o.gramIn))
        return usageError("--gram needs a Gram file (the runner's --observe-gram output)", help);
    } else if (a == "--dump-import") {
      o.dumpImport = true;
    } else if (a == "--dump-ir-after") {
      if (!value(v)) return usageError("--dump-ir-after needs a pass name or 'all'", help);
      o.compile.dumpIrAfter.push_back(v);
    } else if (a == "--print-pipeline" && !isRun) {
      o.printPipeline = true;
    } else if (!a.empty() && a[0] == '-') {
      return usageError("unknown option '" + a + "'", help);
    } else if (o.model.empty()) {
      o.model = a;
    } else {
      return usageError("unexpected argument '" + a + "'", help);
    }
  }
  if (o.model.empty() && !o.printPipeline) return usageError("no model given", help);
  if (!o.quantize.empty() && o.quantize != "bf16" && o.calibPath.empty() && o.planIn.empty())
    return usageError("--quantize needs calibration data (--calib FILE) or a plan (--plan FILE)", help);
  if (!o.calibPath.empty() && o.quantize.empty() && o.compile.sparsify.empty() && o.compile.decompose.empty() &&
      o.compile.butterfly.empty() && o.planIn.empty())
    return usageError("--calib is used with --quantize, --sparsify, --decompose, --butterfly or --plan", help);
  if (!o.compile.decomposeLayers.empty() && o.compile.decompose.empty())
    return usageError("--decompose-layers is used with --decompose", help);
  // A butterfly layer is not also N:M sparse or decomposed.
  llvm::SmallVector<llvm::StringRef> bfNames;
  llvm::StringRef(o.compile.butterfly).split(bfNames, ',', -1, false);
  for (auto [list, what] : {std::pair{&o.compile.sparsifyLayers, "N:M sparsity (--sparsify-layers)"},
                            std::pair{&o.compile.decomposeLayers, "decomposition (--decompose-layers)"}}) {
    llvm::SmallVector<llvm::StringRef> entries;
    llvm::StringRef(*list).split(entries, ',', -1, false);
    for (llvm::StringRef e : entries) {
      llvm::StringRef name = e.rsplit('=').first.trim(), setting = e.rsplit('=').second.trim();
      if (setting != "dense" && llvm::any_of(bfNames, [&](llvm::StringRef b) { return b.trim() == name; }))
        return usageError("layer '" + name.str() + "' is named both for " + what +
                              " and for butterfly factorisation (--butterfly): choose one",
                          help);
    }
  }
  if (!o.compile.sparsifyLayers.empty() && o.compile.sparsify.empty())
    return usageError("--sparsify-layers is used with --sparsify", help);
  if ((o.quantize == "mixed") != !o.budget.empty())
    return usageError("--quantize mixed and --budget go together", help);
  if (o.quantize == "mixed" && !o.planIn.empty())
    return usageError("--quantize mixed searches a plan: it takes --calib, not --plan", help);
  auto targets = kiln::codegen::targetNames();
  if (std::find(targets.begin(), targets.end(), o.compile.target) == targets.end())
    return usageError("unknown target '" + o.compile.target + "' (known: x86-64, aarch64, null, accel, vulkan)", help);
  if (o.compile.gpuTile && o.compile.target != "vulkan")
    return usageError("--gpu-tile applies to --target vulkan", help);
  if (o.compile.target == "vulkan" && (!o.quantize.empty() || !o.planIn.empty() || !o.compile.sparsify.empty() ||
                                       !o.compile.decompose.empty() || !o.compile.butterfly.empty()))
    return usageError("the vulkan target compiles float32 models: quantisation and compression options are not "
                      "supported on it yet", help);
  o.compile.name = o.nameOverride.empty() ? sanitizeName(llvm::sys::path::stem(o.model)) : sanitizeName(o.nameOverride);
  return -1;
}

/// A fresh directory in the nearest existing ancestor of `near` (so the final
/// renames stay on one file system and a failure creates nothing the user sees).
std::string makeTempDir(const std::string &near) {
  llvm::SmallString<256> path(near.empty() ? "." : near);
  llvm::sys::fs::make_absolute(path);
  llvm::sys::path::remove_dots(path, true);
  std::string dir = llvm::sys::path::parent_path(path).str();
  while (!dir.empty() && !llvm::sys::fs::is_directory(dir)) dir = llvm::sys::path::parent_path(dir).str();
  if (dir.empty()) dir = ".";
  std::string base = dir + "/.kiln-tmp-" + std::to_string(getpid());
  for (int k = 0; k < 1000; ++k) {
    std::string cand = base + "-" + std::to_string(k);
    if (!llvm::sys::fs::create_directory(cand, /*IgnoreExisting=*/false)) return cand;
  }
  return "";
}


/// Imports and compiles; writes the artifact into `dir` (which must exist); with
/// quantisation options, through kiln::tool::compileQuantized.
int compileInto(CommonOptions &o, const std::string &dir, kiln::codegen::Artifact &artifact) {
  // N:M sparsity, decomposition and butterfly factorisation first (their calibration
  // sees the dense model); quantisation then calibrates the compressed one.
  std::unique_ptr<kiln::tool::WorkDir> gramWork;
  // A plan (kiln plan's, or a quantisation plan) may also choose each layer's structure;
  // its compressed layers are fitted to the calibration data the plan names unless
  // --calib gives other data (a plan's quantisation ranges are never recalibrated).
  if (!o.planIn.empty()) {
    bool compressed = false;
    std::string planCalib;
    int64_t planSamples = 0;
    if (int rc = kiln::tool::applyPlanStructures(o, o.planIn, compressed, &planCalib, &planSamples)) return rc;
    if (compressed && o.calibPath.empty() && o.gramIn.empty()) {
      if (planCalib.empty() || !llvm::sys::fs::exists(planCalib)) {
        llvm::errs() << "error: plan '" << o.planIn << "' compresses layers, which are fitted to calibration data; "
                     << (planCalib.empty() ? "it names none" : "the data it names ('" + planCalib + "') is missing")
                     << ": give --calib FILE\n";
        return 1;
      }
      o.calibPath = planCalib;
      if (planSamples > 0) o.calibLimit = planSamples;
    }
  }
  bool decompose = !o.compile.decompose.empty(), butterfly = !o.compile.butterfly.empty();
  if (!o.compile.sparsify.empty()) o.compile.sparsifyReport = dir + "/" + o.compile.name + ".sparsity.json";
  if (decompose) o.compile.decomposeReport = dir + "/" + o.compile.name + ".decompose.json";
  if (butterfly) o.compile.butterflyReport = dir + "/" + o.compile.name + ".butterfly.json";
  // One calibration build observes the Gram matrices of all their layers.
  if ((!o.compile.sparsify.empty() || decompose || butterfly) && !o.gramIn.empty()) {
    if (!llvm::sys::fs::exists(o.gramIn)) {
      llvm::errs() << "error: --gram: cannot read '" << o.gramIn << "'\n";
      return 1;
    }
    o.compile.compressGram = o.gramIn;
  } else if ((!o.compile.sparsify.empty() || decompose || butterfly) && !o.calibPath.empty()) {
    gramWork = std::make_unique<kiln::tool::WorkDir>(o.keepDir.empty() ? "" : o.keepDir + "/gram", "kiln-gram");
    if (int rc = kiln::tool::calibrateGram(o, *gramWork)) return rc;
  }
  int rc = o.quantize.empty() && o.planIn.empty()
               ? int(failed(kiln::compileOnnxFile(o.model, o.import, o.compile, dir, artifact, llvm::errs(),
                                                  o.dumpImport)))
               : kiln::tool::compileQuantized(o, dir, artifact);
  if (rc == 0 && !o.compile.sparsify.empty()) {
    if (!kiln::tool::printSparsityReport(o.compile.sparsifyReport, llvm::outs())) {
      llvm::errs() << "error: cannot read the N:M report\n";
      return 1;
    }
    artifact.files.push_back(o.compile.name + ".sparsity.json");
  }
  if (rc == 0 && decompose) {
    if (!kiln::tool::printDecomposeReport(o.compile.decomposeReport, artifact.weightsBytes,
                                          !o.quantize.empty() || !o.planIn.empty(), o.compile.target == "accel",
                                          llvm::outs())) {
      llvm::errs() << "error: cannot read the decomposition report\n";
      return 1;
    }
    artifact.files.push_back(o.compile.name + ".decompose.json");
  }
  if (rc == 0 && butterfly) {
    if (!kiln::tool::printButterflyReport(o.compile.butterflyReport, llvm::outs())) {
      llvm::errs() << "error: cannot read the butterfly report\n";
      return 1;
    }
    artifact.files.push_back(o.compile.name + ".butterfly.json");
  }
  o.compile.compressGram.clear();
  return rc;
}

const char *kInspectHelp = R"(kiln inspect MODEL.onnx [--shape NAME=d0,d1,...]...

A pre-flight report, before any lowering: the ops and how many of each, which Kiln
supports at the model's opset, every unsupported node, the inputs and their dynamic
dimensions, the parameter count and size, and the FLOPs of each convolution and matrix
product (sized by ONNX shape inference; --shape fixes symbolic dimensions). Exits 1 if
the model has unsupported nodes.
)";

int cmdInspect(int argc, char **argv) {
  CommonOptions o;
  if (int rc = parseArgs(argc, argv, false, o, kInspectHelp); rc >= 0) return rc;
  std::string report;
  bool ok = kiln::onnx_frontend::inspectOnnxFile(o.model, o.import, report);
  llvm::outs() << report;
  return ok ? 0 : 1;
}

int cmdImport(int argc, char **argv) {
  CommonOptions o;
  if (int rc = parseArgs(argc, argv, false, o, kImportHelp); rc >= 0) return rc;
  mlir::DialectRegistry registry;
  kiln::registerCompilerDialects(registry);
  mlir::MLIRContext ctx(registry);
  std::vector<kiln::onnx_frontend::ImportDiagnostic> diags;
  auto module = kiln::onnx_frontend::importOnnxFile(ctx, o.model, o.import, diags);
  if (!module) {
    llvm::errs() << kiln::onnx_frontend::formatDiagnostics(diags);
    return 1;
  }
  module->print(llvm::outs(), mlir::OpPrintingFlags().elideLargeElementsAttrs(16).elideLargeResourceString(64).enableDebugInfo(true, true));
  llvm::outs() << "\n";
  return 0;
}

int cmdCompile(int argc, char **argv) {
  CommonOptions o;
  if (int rc = parseArgs(argc, argv, false, o); rc >= 0) return rc;
  if (o.printPipeline) {
    llvm::outs() << kiln::codegen::createTarget(o.compile.target)->pipeline(o.compile) << "\n";
    return 0;
  }
  if (o.outDir.empty()) return usageError("no output directory: pass -o DIR", kCompileHelp);
  if (llvm::sys::fs::exists(o.outDir) && !llvm::sys::fs::is_directory(o.outDir)) {
    llvm::errs() << "error: '" << o.outDir << "' exists and is not a directory\n";
    return 1;
  }
  std::string tmp = makeTempDir(o.outDir);
  if (tmp.empty()) {
    llvm::errs() << "error: cannot create a temporary directory beside '" << o.outDir << "'\n";
    return 1;
  }
  kiln::codegen::Artifact artifact;
  int rc = compileInto(o, tmp, artifact);
  if (rc == 0) {
    if (std::error_code ec = llvm::sys::fs::create_directories(o.outDir)) {
      llvm::errs() << "error: cannot create '" << o.outDir << "': " << ec.message() << "\n";
      rc = 1;
    }
    // Each file is renamed into place: readers never see a half-written file.
    for (size_t k = 0; rc == 0 && k < artifact.files.size(); ++k) {
      std::string from = tmp + "/" + artifact.files[k], to = o.outDir + "/" + artifact.files[k];
      if (std::error_code ec = llvm::sys::fs::rename(from, to)) {
        llvm::errs() << "error: cannot move '" << from << "' to '" << to << "': " << ec.message() << "\n";
        rc = 1;
      }
    }
  }
  removeTree(tmp);
  if (rc == 0) {
    llvm::outs() << "compiled " << o.model << " for " << o.compile.target << " -> " << o.outDir << "/{";
    for (size_t k = 0; k < artifact.files.size(); ++k) llvm::outs() << (k ? "," : "") << artifact.files[k];
    llvm::outs() << "}";
    if (o.compile.target != "null")
      llvm::outs() << "  (weights " << artifact.weightsBytes << " B, arena " << artifact.arenaBytes << " B, code "
                   << artifact.objectBytes << " B)";
    llvm::outs() << "\n";
  }
  return rc;
}

int cmdRun(int argc, char **argv) {
  CommonOptions o;
  if (int rc = parseArgs(argc, argv, true, o); rc >= 0) return rc;
  if (o.compile.target == "null") return usageError("the null target produces no code to run", kRunHelp);
  if (o.inputs.empty() && o.import.frozenInputs.empty()) return usageError("no --input given", kRunHelp);
  for (auto &[name, path] : o.inputs)
    if (o.import.frozenInputs.count(name))
      return usageError("input '" + name + "' is given both with --input and --freeze", kRunHelp);
  // Input shapes come from the given arrays.
  for (auto &[name, path] : o.inputs) {
    kiln_npy_t npy{};
    kiln_status_t st = kiln_npy_read(path.c_str(), &npy);
    if (st != KILN_OK) {
      llvm::errs() << "error: cannot read input '" << name << "' from '" << path << "': " << kiln_status_string(st)
                   << "\n";
      kiln_npy_free(&npy);
      return 1;
    }
    o.import.inputShapes[name] = std::vector<int64_t>(npy.dims, npy.dims + npy.rank);
    kiln_npy_free(&npy);
  }
  o.compile.name = "model"; // the generic driver links against kiln_model_model
  WorkDir wd(o.keepDir, "kiln-run");
  if (!wd.ok()) return 1;
  const std::string &work = wd.path;
  kiln::codegen::Artifact artifact;
  if (int rc = compileInto(o, work, artifact)) return rc;

  bool cross = o.compile.target == "aarch64", vulkan = o.compile.target == "vulkan";
  std::vector<std::string> run;
  if (vulkan) {
    std::string runner = vulkanRunner(argv[0]);
    if (runner.empty()) return 1;
    run = {runner, "--weights", work + "/model.kvk"};
  } else {
    if (linkRunner(work, cross, o.compile.cpu)) return 1;
    if (cross) run = {"qemu-aarch64", "-cpu", "max", "-L", "/usr/aarch64-linux-gnu"};
    run.insert(run.end(), {work + "/runner", "--weights", work + "/model.kw"});
  }
  for (auto &[name, path] : o.inputs) run.insert(run.end(), {"--input", name + "=" + path});
  if (o.threads > 1 && vulkan) return usageError("--threads does not apply to the vulkan target", kRunHelp);
  if (o.threads > 1) run.insert(run.end(), {"--threads", std::to_string(o.threads)});
  std::string outputs = o.outDir.empty() ? work + "/outputs" : o.outDir;
  if (std::error_code e2 = llvm::sys::fs::create_directories(outputs)) {
    llvm::errs() << "error: cannot create '" << outputs << "': " << e2.message() << "\n";
    return 1;
  }
  run.insert(run.end(), {"--output", outputs});
  llvm::outs().flush();
  std::string err;
  int rc = execute(run, &err);
  if (rc != 0) {
    if (rc < 0) llvm::errs() << "error: cannot run the model: " << err << "\n";
    return 1;
  }
  return 0;
}

const char *kBenchHelp = R"(kiln bench MODEL.onnx [--shape NAME=d0,d1,...]... [--vs onnxruntime] [--threads 1,2]

Compiles the model for this machine, makes random inputs (seeded), then times Kiln and,
with --vs onnxruntime, ONNX Runtime (npm onnxruntime-node, out of process) on the same
inputs in the same run: rounds alternate between the two, each round a fresh process
that loads the model, runs it once cold and --runs more times. Prints per thread count
the median latency, the Kiln/ONNX Runtime ratio, each process's peak RSS, and the cold
start (model load + first run, measured inside each process).

Options:
  --shape NAME=d0,d1,...    fix input shapes (needed for symbolic dimensions)
  --vs onnxruntime          also time ONNX Runtime and print ratios
  --threads LIST            thread counts to measure, e.g. 1,2 (default 1)
  --target vulkan           time the Vulkan target instead (first Vulkan device; no --threads):
                            each round starts the model once without and once with its
                            pipeline cache, and prints both start-up times
  --runs N                  timed runs per round after the cold one (default 20)
  --rounds N                rounds per engine and thread count (default 5)
  --seed N                  seed of the random inputs (default 1)
  --keep DIR                keep the compiled model, inputs and runner in DIR
  --ort-model FILE          ONNX Runtime runs FILE instead of MODEL (same inputs), e.g.
                            the QDQ form of a Kiln quantisation plan (models/export_qdq.py)
  --quantize int8 --calib DATA | --plan FILE   Kiln runs the quantised model (see
                            kiln compile --help)
  --sparsify, --decompose, --butterfly, --freeze   Kiln runs the compressed model (as for
                            kiln compile)
)";

} // namespace

namespace kiln::tool {

/// Runs a process with stdout discarded and stderr captured; reads the "timing ..." line.
Timing timeProcess(const std::vector<std::string> &args, std::string &errText) {
  Timing t;
  llvm::SmallString<128> errFile;
  if (llvm::sys::fs::createTemporaryFile("kiln-bench", "err", errFile)) return t;
  struct RemoveOnExit {
    llvm::SmallString<128> &path;
    ~RemoveOnExit() { llvm::sys::fs::remove(path); }
  } removeErr{errFile};
  pid_t pid = fork();
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    int err = open(errFile.c_str(), O_WRONLY | O_TRUNC);
    dup2(devnull, 1);
    dup2(err, 2);
    std::vector<char *> argv;
    for (const std::string &a : args) argv.push_back(const_cast<char *>(a.c_str()));
    argv.push_back(nullptr);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return t;
  auto buf = llvm::MemoryBuffer::getFile(errFile);
  if (buf) errText = (*buf)->getBuffer().str();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return t;
  size_t at = errText.rfind("timing ");
  if (at == std::string::npos) return t;
  if (sscanf(errText.c_str() + at, "timing load_ms=%lf first_ms=%lf median_ms=%lf", &t.loadMs, &t.firstMs,
             &t.medianMs) != 3)
    return t;
  // The process reports its own peak (VmHWM): the rusage of a forked child also
  // counts the pages it shared with this (large) process before exec.
  size_t rss = errText.find("peak_rss_kb=", at);
  t.maxRssKb = rss == std::string::npos ? -1 : atol(errText.c_str() + rss + 12);
  t.ok = true;
  return t;
}

/// timeProcess, printing "error: the WHAT run failed" and the process's stderr on failure.
bool timedRun(const std::vector<std::string> &args, const char *what, Timing &t, std::string &errText) {
  t = timeProcess(args, errText);
  if (!t.ok) llvm::errs() << "error: the " << what << " run failed:\n" << errText;
  return t.ok;
}

/// One ONNX Runtime process (tests/oracle/ort_run.js under node) on the same inputs, timed
/// like a Kiln run: 1 cold + `runs` runs on `threads` threads.
bool timeOrt(const std::string &model, const std::string &work, const std::vector<std::string> &inputs, int threads,
             int runs, Timing &t) {
  std::vector<std::string> args{"node", std::string(KILN_SOURCE_DIR) + "/tests/oracle/ort_run.js", model,
                                work + "/ort-out"};
  args.insert(args.end(), inputs.begin(), inputs.end());
  args.insert(args.end(), {"--threads", std::to_string(threads), "--repeat", std::to_string(runs + 1), "--timing"});
  std::string errText;
  return timedRun(args, "ONNX Runtime", t, errText);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

} // namespace kiln::tool

namespace {

/// `kiln bench --target vulkan`: per round, one process that starts without the pipeline
/// cache (deleted first) and one that starts with the cache the first wrote, then ONNX
/// Runtime on one CPU thread; prints medians of latency and of both kinds of start.
int benchVulkan(const std::string &runner, const std::string &work, const std::vector<std::string> &inputs,
                const std::vector<std::string> &ortInputs, const std::string &ortModel, bool vsOrt, int runs,
                int rounds) {
  std::string kvk = work + "/model.kvk", cache = kvk + ".cache";
  std::vector<double> med, first, second, firstPipes, secondPipes, oMed, oCold;
  long rss = 0, oRss = 0;
  int hits = 0;
  std::string device;
  auto field = [](const std::string &text, const char *key) {
    size_t at = text.rfind(key);
    return at == std::string::npos ? -1.0 : atof(text.c_str() + at + strlen(key));
  };
  for (int r = 0; r < rounds; ++r) {
    llvm::sys::fs::remove(cache);
    for (int start = 0; start < 2; ++start) {
      std::vector<std::string> args{runner, "--weights", kvk, "--output", work + "/out", "--repeat",
                                    std::to_string(runs + 1), "--timing"};
      args.insert(args.end(), inputs.begin(), inputs.end());
      std::string errText;
      Timing t;
      if (!timedRun(args, "Kiln", t, errText)) return 1;
      size_t at = errText.find("vulkan: device '");
      if (at != std::string::npos) device = errText.substr(at + 16, errText.find('\'', at + 16) - at - 16);
      bool hit = errText.find("pipeline cache hit") != std::string::npos;
      double pipes = field(errText, "pipelines_ms=");
      if (start == 0) {
        first.push_back(t.loadMs + t.firstMs);
        firstPipes.push_back(pipes);
      } else {
        second.push_back(t.loadMs + t.firstMs);
        secondPipes.push_back(pipes);
        hits += hit;
        med.push_back(t.medianMs);
      }
      rss = std::max(rss, t.maxRssKb);
    }
    if (!vsOrt) continue;
    Timing t;
    if (!timeOrt(ortModel, work, ortInputs, 1, runs, t)) return 1;
    oMed.push_back(t.medianMs);
    oCold.push_back(t.loadMs + t.firstMs);
    oRss = std::max(oRss, t.maxRssKb);
  }
  llvm::outs() << "vulkan device: " << device << "\n";
  llvm::outs() << llvm::format("%-8s %10s %10s %9s %10s %10s %12s %12s %11s\n", "engine", "kiln ms", "ort ms",
                               "kiln/ort", "kiln MiB", "ort MiB", "first start", "second start", "ort cold");
  double km = median(med);
  if (vsOrt)
    llvm::outs() << llvm::format("%-8s %10.2f %10.2f %9.2f %10.1f %10.1f %12.1f %12.1f %11.1f\n", "vulkan", km,
                                 median(oMed), km / median(oMed), rss / 1024.0, oRss / 1024.0, median(first),
                                 median(second), median(oCold));
  else
    llvm::outs() << llvm::format("%-8s %10.2f %10s %9s %10.1f %10s %12.1f %12.1f %11s\n", "vulkan", km, "-", "-",
                                 rss / 1024.0, "-", median(first), median(second), "-");
  llvm::outs() << llvm::format("pipeline creation: %.1f ms at the first start, %.1f ms at the second (pipeline cache "
                               "hit in %d of %d rounds)\n",
                               median(firstPipes), median(secondPipes), hits, rounds);
  llvm::outs() << "ms: median latency per run (second-start process); first start: open without a pipeline cache + "
                  "first run; second start: the same with the cache the first start wrote; ort: ONNX Runtime, CPU, 1 "
                  "thread\n";
  return 0;
}

int cmdBench(int argc, char **argv) {
  // Options of its own first; the rest are the shared compile options.
  std::vector<char *> rest{argv[0], argv[1]};
  std::vector<int> threadCounts{1};
  int runs = 20, rounds = 5;
  unsigned seed = 1;
  bool vsOrt = false;
  std::string keep, ortModel;
  for (int k = 2; k < argc; ++k) {
    std::string a = argv[k];
    auto intArg = [&](int &dst, int lo, int hi) {
      if (k + 1 >= argc || llvm::StringRef(argv[k + 1]).getAsInteger(10, dst) || dst < lo || dst > hi) return false;
      ++k;
      return true;
    };
    if (a == "-h" || a == "--help") {
      llvm::outs() << kBenchHelp;
      return 0;
    } else if (a == "--vs") {
      if (k + 1 >= argc || std::string(argv[k + 1]) != "onnxruntime")
        return usageError("--vs takes 'onnxruntime'", kBenchHelp);
      vsOrt = true;
      ++k;
    } else if (a == "--ort-model") {
      if (k + 1 >= argc) return usageError("--ort-model needs an ONNX file", kBenchHelp);
      ortModel = argv[++k];
    } else if (a == "--threads") {
      if (k + 1 >= argc) return usageError("--threads needs a list such as 1,2", kBenchHelp);
      threadCounts.clear();
      llvm::SmallVector<llvm::StringRef> parts;
      llvm::StringRef(argv[++k]).split(parts, ',');
      for (llvm::StringRef p : parts) {
        int t;
        if (p.getAsInteger(10, t) || t < 1 || t > 256) return usageError("bad --threads list", kBenchHelp);
        threadCounts.push_back(t);
      }
    } else if (a == "--runs") {
      if (!intArg(runs, 2, 100000)) return usageError("--runs needs a count of at least 2", kBenchHelp);
    } else if (a == "--rounds") {
      if (!intArg(rounds, 1, 1000)) return usageError("--rounds needs a positive count", kBenchHelp);
    } else if (a == "--seed") {
      int s;
      if (!intArg(s, 0, INT32_MAX)) return usageError("--seed needs a non-negative integer", kBenchHelp);
      seed = unsigned(s);
    } else if (a == "--keep") {
      if (k + 1 >= argc) return usageError("--keep needs a directory", kBenchHelp);
      keep = argv[++k];
    } else {
      rest.push_back(argv[k]);
    }
  }
  CommonOptions o;
  if (int rc = parseArgs(int(rest.size()), rest.data(), false, o, kBenchHelp); rc >= 0) return rc;
  bool vulkan = o.compile.target == "vulkan";
  if (o.compile.target != "x86-64" && !vulkan)
    return usageError("kiln bench measures on this machine: --target x86-64 or vulkan", kBenchHelp);
  std::string vkRunner = vulkan ? vulkanRunner(argv[0]) : "";
  if (vulkan && vkRunner.empty()) return 1;
  if (vulkan && (threadCounts.size() != 1 || threadCounts[0] != 1))
    return usageError("--threads does not apply to --target vulkan (ONNX Runtime runs on 1 CPU thread)", kBenchHelp);
  o.compile.name = "model";

  WorkDir wd(keep, "kiln-bench");
  if (!wd.ok()) return 1;
  const std::string &work = wd.path;
  kiln::codegen::Artifact artifact;
  auto compileStart = std::chrono::steady_clock::now();
  if (int rc = compileInto(o, work, artifact)) return rc;
  double compileS = std::chrono::duration<double>(std::chrono::steady_clock::now() - compileStart).count();
  if (!vulkan && linkRunner(work, false)) return 1;

  // Seeded random inputs: normal floats, small non-negative integers (valid indices).
  std::mt19937 gen(seed);
  std::vector<std::string> kilnInputs, ortInputs;
  for (const auto &in : artifact.signature.inputs) {
    std::string path = work + "/input_" + std::to_string(ortInputs.size()) + ".npy";
    size_t n = 1;
    for (int64_t d : in.dims) n *= size_t(d);
    std::vector<char> data(in.sizeBytes);
    std::normal_distribution<float> normal;
    std::uniform_int_distribution<int> small(0, 9);
    for (size_t e = 0; e < n; ++e) {
      switch (in.dtype) {
      case KILN_DTYPE_F32: { float v = normal(gen); std::memcpy(data.data() + 4 * e, &v, 4); break; }
      case KILN_DTYPE_I64: { int64_t v = small(gen); std::memcpy(data.data() + 8 * e, &v, 8); break; }
      case KILN_DTYPE_I32: { int32_t v = small(gen); std::memcpy(data.data() + 4 * e, &v, 4); break; }
      default: data[e] = char(small(gen) & 1); break;
      }
    }
    if (kiln_npy_write(path.c_str(), kiln_dtype_t(in.dtype), in.dims.size(), in.dims.data(), data.data()) != KILN_OK) {
      llvm::errs() << "error: cannot write '" << path << "'\n";
      return 1;
    }
    kilnInputs.insert(kilnInputs.end(), {"--input", in.name + "=" + path});
    ortInputs.push_back(in.name + "=" + path);
  }

  llvm::outs() << "model " << o.model << ": compiled in " << llvm::format("%.1f", compileS) << " s; inputs";
  for (const auto &in : artifact.signature.inputs) {
    llvm::outs() << " " << in.name << "[";
    for (size_t d = 0; d < in.dims.size(); ++d) llvm::outs() << (d ? "," : "") << in.dims[d];
    llvm::outs() << "]";
  }
  llvm::outs() << " (seed " << seed << "); " << rounds << " rounds x (1 cold + " << runs << " runs), alternating\n";
  if (vulkan) return benchVulkan(vkRunner, work, kilnInputs, ortInputs, ortModel.empty() ? o.model : ortModel, vsOrt,
                                 runs, rounds);
  llvm::outs() << llvm::format("%-8s %10s %10s %9s %10s %10s %11s %11s\n", "threads", "kiln ms", "ort ms", "kiln/ort",
                               "kiln MiB", "ort MiB", "kiln cold", "ort cold");
  int rc = 0;
  for (int threads : threadCounts) {
    std::vector<double> kMed, oMed, kCold, oCold;
    long kRss = 0, oRss = 0;
    for (int r = 0; r < rounds; ++r) {
      std::vector<std::string> kArgs{work + "/runner", "--weights", work + "/model.kw", "--output", work + "/out",
                                     "--repeat", std::to_string(runs + 1), "--threads", std::to_string(threads),
                                     "--timing"};
      kArgs.insert(kArgs.end(), kilnInputs.begin(), kilnInputs.end());
      std::string errText;
      Timing k;
      if (!timedRun(kArgs, "Kiln", k, errText)) return 1;
      kMed.push_back(k.medianMs);
      kCold.push_back(k.loadMs + k.firstMs);
      kRss = std::max(kRss, k.maxRssKb);
      if (!vsOrt) continue;
      Timing t;
      if (!timeOrt(ortModel.empty() ? o.model : ortModel, work, ortInputs, threads, runs, t)) return 1;
      oMed.push_back(t.medianMs);
      oCold.push_back(t.loadMs + t.firstMs);
      oRss = std::max(oRss, t.maxRssKb);
    }
    double km = median(kMed), om = median(oMed);
    if (vsOrt)
      llvm::outs() << llvm::format("%-8d %10.4f %10.4f %9.2f %10.1f %10.1f %11.1f %11.1f\n", threads, km, om, km / om,
                                   kRss / 1024.0, oRss / 1024.0, median(kCold), median(oCold));
    else
      llvm::outs() << llvm::format("%-8d %10.4f %10s %9s %10.1f %10s %11.1f %11s\n", threads, km, "-", "-",
                                   kRss / 1024.0, "-", median(kCold), "-");
  }
  llvm::outs() << "ms: median latency per run; MiB: peak RSS of the process (the ONNX Runtime figure includes "
                  "node); cold: model load + first run, inside the process\n";
  return rc;
}

const char *kEvalHelp = R"(kiln eval MODEL.onnx --data X --labels Y [options]

Top-1 accuracy of a compiled classifier on a labelled set: compiles the model for a
batch size, runs every batch through the compiled code and compares the argmax of the
model's first output with the labels. X is a float32 .npy [N, ...] or an IDX file of
unsigned bytes (gzipped or not; scaled to [0, 1]); Y is an integer .npy [N] or an IDX
label file. Prints `top-1: <accuracy>`; with --vs onnxruntime also ONNX Runtime's
accuracy on the same batches and how often the two predictions agree.

Options:
  --limit N                 only the first N samples
  --batch B                 batch size to compile for (default 100; the last batch is
                            padded and the padding ignored)
  --vs onnxruntime          also run ONNX Runtime (npm onnxruntime-node)
  --threads N               threads for the compiled model
  --target T                x86-64 (default) | aarch64 (runs under qemu-aarch64) | vulkan
                            (the first Vulkan device)
  --keep DIR                keep the compiled model and runner in DIR
  --quantize, --calib, --calib-limit, --calib-method, --budget, --plan,
  --sparsify, --sparsify-layers, --decompose, --decompose-layers, --butterfly   as for `kiln compile`
)";

/// Argmax of each row of a [rows, classes] float .npy output.
} // namespace

namespace kiln::tool {

bool argmaxRows(const std::string &path, int64_t rows, std::vector<int64_t> &out, std::string &err) {
  kiln_npy_t npy{};
  kiln_status_t st = kiln_npy_read(path.c_str(), &npy);
  bool ok = st == KILN_OK && npy.dtype == KILN_DTYPE_F32 && npy.rank >= 1 && npy.dims[0] == rows;
  if (!ok) {
    err = "cannot read the model output '" + path + "'" + (st == KILN_OK ? " (expected float32 [batch, classes])" : "");
  } else {
    size_t classes = npy.num_elements / size_t(rows);
    const float *v = static_cast<const float *>(npy.data);
    for (int64_t r = 0; r < rows; ++r) {
      size_t best = 0;
      for (size_t c = 1; c < classes; ++c)
        if (v[size_t(r) * classes + c] > v[size_t(r) * classes + best]) best = c;
      out.push_back(int64_t(best));
    }
  }
  kiln_npy_free(&npy);
  return ok;
}


/// Reads samples and their labels (kiln eval's formats); `n` is the number to use (all,
/// or the first `limit` when it is positive), `perSample` the values per sample.
/// Returns 0, or 1 after printing why.
int readLabelledSet(const std::string &dataPath, const std::string &labelPath, int64_t limit,
                    kiln::tools::Array &data, kiln::tools::Array &labels, int64_t &n, int64_t &perSample) {
  std::string err;
  if (!kiln::tools::readSamples(dataPath, data, err) || !kiln::tools::readLabels(labelPath, labels, err)) {
    llvm::errs() << "error: " << err << "\n";
    return 1;
  }
  if (data.dims.empty() || labels.dims[0] != data.dims[0]) {
    llvm::errs() << "error: " << labels.dims[0] << " labels for " << (data.dims.empty() ? 0 : data.dims[0])
                 << " samples\n";
    return 1;
  }
  n = data.dims[0];
  if (limit > 0) n = std::min(n, limit);
  if (n == 0) {
    llvm::errs() << "error: the data set is empty\n";
    return 1;
  }
  perSample = int64_t(data.f.size()) / data.dims[0];
  return 0;
}

/// Sets the shape of the model's one input for samples of `data` (`perSample` values
/// each) in batches of `batch`: the dimensions the model fixes, the rest from the data.
/// Returns 0, or an exit code after printing why.
int shapeFromData(CommonOptions &o, const kiln::tools::Array &data, int64_t perSample, int64_t batch,
                  std::string &inputName, const char *command) {
  // The model's one input: its batch dimension becomes --batch; the other dimensions
  // come from the model where it fixes them, else from the data.
  onnx::ModelProto model;
  {
    auto buf = llvm::MemoryBuffer::getFile(o.model);
    if (!buf || !model.ParseFromArray((*buf)->getBufferStart(), int((*buf)->getBufferSize()))) {
      llvm::errs() << "error: cannot read '" << o.model << "' as an ONNX model\n";
      return 1;
    }
  }
  std::set<std::string> inits;
  for (const auto &t : model.graph().initializer()) inits.insert(t.name());
  std::vector<const onnx::ValueInfoProto *> inputs;
  for (const auto &i : model.graph().input())
    if (!inits.count(i.name())) inputs.push_back(&i);
  if (inputs.size() != 1) {
    llvm::errs() << "error: " << command << " takes models with one input; this one has " << inputs.size() << "\n";
    return 1;
  }
  inputName = inputs[0]->name();
  std::vector<int64_t> shape{batch};
  const auto &mdims = inputs[0]->type().tensor_type().shape().dim();
  std::vector<int64_t> sampleDims(data.dims.begin() + 1, data.dims.end());
  if (mdims.size() == 0) {
    llvm::errs() << "error: input '" << inputName << "' has no shape\n";
    return 1;
  }
  if (size_t(mdims.size()) - 1 == sampleDims.size()) {
    for (int d = 1; d < mdims.size(); ++d)
      shape.push_back(mdims[d].has_dim_value() && mdims[d].dim_value() > 0 ? mdims[d].dim_value() : sampleDims[d - 1]);
  } else {
    for (int d = 1; d < mdims.size(); ++d) {
      if (!mdims[d].has_dim_value() || mdims[d].dim_value() <= 0) {
        llvm::errs() << "error: input '" << inputName << "' has rank " << mdims.size() << " but samples have rank "
                     << sampleDims.size() << "; cannot infer its symbolic dimensions\n";
        return 1;
      }
      shape.push_back(mdims[d].dim_value());
    }
  }
  int64_t modelPerSample = 1;
  for (size_t d = 1; d < shape.size(); ++d) modelPerSample *= shape[d];
  if (modelPerSample != perSample) {
    llvm::errs() << "error: the model takes " << modelPerSample << " values per sample, the data has " << perSample
                 << "\n";
    return 1;
  }
  o.import.inputShapes[inputName] = shape;
  return 0;
}

// kiln sim (Sim.cpp) and kiln plan (Plan.cpp) share compile's option parsing and compile step.
int parseCommonArgs(int argc, char **argv, CommonOptions &o, const char *help) {
  return parseArgs(argc, argv, false, o, help);
}
int compileCommon(CommonOptions &o, const std::string &dir, kiln::codegen::Artifact &artifact) {
  return compileInto(o, dir, artifact);
}
int commandUsage(const std::string &msg, const char *help) { return usageError(msg, help); }

int cmdSim(int argc, char **argv);
int cmdHwGen(int argc, char **argv);
int cmdPlan(int argc, char **argv);

} // namespace kiln::tool

namespace {

int cmdEval(int argc, char **argv) {
  std::vector<char *> rest{argv[0], argv[1]};
  std::string dataPath, labelPath, keep;
  int64_t limit = -1;
  int batch = 100, threads = 1;
  bool vsOrt = false;
  for (int k = 2; k < argc; ++k) {
    std::string a = argv[k];
    auto next = [&](std::string &dst) {
      if (k + 1 >= argc) return false;
      dst = argv[++k];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      llvm::outs() << kEvalHelp;
      return 0;
    } else if (a == "--data") {
      if (!next(dataPath)) return usageError("--data needs a file", kEvalHelp);
    } else if (a == "--labels") {
      if (!next(labelPath)) return usageError("--labels needs a file", kEvalHelp);
    } else if (a == "--keep") {
      if (!next(keep)) return usageError("--keep needs a directory", kEvalHelp);
    } else if (a == "--limit") {
      if (!next(v) || llvm::StringRef(v).getAsInteger(10, limit) || limit < 1)
        return usageError("--limit needs a positive count", kEvalHelp);
    } else if (a == "--batch") {
      if (!next(v) || llvm::StringRef(v).getAsInteger(10, batch) || batch < 1 || batch > 65536)
        return usageError("--batch needs a size from 1 to 65536", kEvalHelp);
    } else if (a == "--threads") {
      if (!next(v) || llvm::StringRef(v).getAsInteger(10, threads) || threads < 1 || threads > 256)
        return usageError("--threads needs a count from 1 to 256", kEvalHelp);
    } else if (a == "--vs") {
      if (!next(v) || v != "onnxruntime") return usageError("--vs takes 'onnxruntime'", kEvalHelp);
      vsOrt = true;
    } else {
      rest.push_back(argv[k]);
    }
  }
  CommonOptions o;
  if (int rc = parseArgs(int(rest.size()), rest.data(), false, o, kEvalHelp); rc >= 0) return rc;
  if (dataPath.empty() || labelPath.empty()) return usageError("--data and --labels are required", kEvalHelp);
  if (o.compile.target == "null") return usageError("the null target produces no code to run", kEvalHelp);

  kiln::tools::Array data, labels;
  int64_t n = 0, perSample = 0;
  if (int rc = kiln::tool::readLabelledSet(dataPath, labelPath, limit, data, labels, n, perSample)) return rc;
  std::string err;

  std::string inputName;
  if (int rc = kiln::tool::shapeFromData(o, data, perSample, batch, inputName, "kiln eval")) return rc;
  const std::vector<int64_t> shape = o.import.inputShapes[inputName];
  o.compile.name = "model";

  WorkDir wd(keep, "kiln-eval");
  if (!wd.ok()) return 1;
  const std::string &work = wd.path;
  kiln::codegen::Artifact artifact;
  bool cross = o.compile.target == "aarch64", vulkan = o.compile.target == "vulkan";
  std::string vkRunner = vulkan ? vulkanRunner(argv[0]) : "";
  if (vulkan && vkRunner.empty()) return 1;
  if (vulkan && threads > 1) return usageError("--threads does not apply to the vulkan target", kEvalHelp);
  if (int rc = compileInto(o, work, artifact)) return rc;
  if (!vulkan && linkRunner(work, cross, o.compile.cpu)) return 1;
  std::string oracle = std::string(KILN_SOURCE_DIR) + "/tests/oracle/ort_run.js";

  int64_t kilnRight = 0, ortRight = 0, agree = 0;
  for (int64_t start = 0; start < n; start += batch) {
    int64_t rows = std::min<int64_t>(batch, n - start);
    std::vector<float> chunk(size_t(batch * perSample), 0.f);
    std::copy(data.f.begin() + start * perSample, data.f.begin() + (start + rows) * perSample, chunk.begin());
    std::string in = work + "/batch.npy";
    if (kiln_npy_write(in.c_str(), KILN_DTYPE_F32, shape.size(), shape.data(), chunk.data()) != KILN_OK) {
      llvm::errs() << "error: cannot write '" << in << "'\n";
      return 1;
    }
    std::vector<std::string> run;
    if (vulkan) {
      run = {vkRunner, "--weights", work + "/model.kvk", "--input", inputName + "=" + in, "--output",
             work + "/kiln-out"};
    } else {
      if (cross) run = {"qemu-aarch64", "-cpu", "max", "-L", "/usr/aarch64-linux-gnu"};
      run.insert(run.end(), {work + "/runner", "--weights", work + "/model.kw", "--input", inputName + "=" + in,
                             "--output", work + "/kiln-out", "--threads", std::to_string(threads)});
    }
    std::string runErr;
    llvm::SmallString<128> outFile;
    llvm::sys::fs::createTemporaryFile("kiln-eval", "out", outFile);
    std::vector<llvm::StringRef> refs(run.begin(), run.end());
    std::optional<llvm::StringRef> redirects[] = {std::nullopt, llvm::StringRef(outFile), std::nullopt};
    auto prog = llvm::sys::findProgramByName(run[0]);
    int rc = prog ? llvm::sys::ExecuteAndWait(*prog, refs, std::nullopt, redirects, 0, 0, &runErr) : -1;
    llvm::sys::fs::remove(outFile);
    if (rc != 0) {
      llvm::errs() << "error: running the compiled model failed" << (runErr.empty() ? "" : ": " + runErr) << "\n";
      return 1;
    }
    std::string outputFile = outputFileName(artifact.signature.outputs[0].name);
    std::vector<int64_t> kilnPred, ortPred;
    if (!argmaxRows(work + "/kiln-out/" + outputFile, batch, kilnPred, err)) {
      llvm::errs() << "error: " << err << "\n";
      return 1;
    }
    if (vsOrt) {
      std::vector<std::string> ort{"node", oracle, o.model, work + "/ort-out", inputName + "=" + in};
      std::vector<llvm::StringRef> orefs(ort.begin(), ort.end());
      auto node = llvm::sys::findProgramByName("node");
      llvm::SmallString<128> ortOut;
      llvm::sys::fs::createTemporaryFile("kiln-eval", "ort", ortOut);
      std::optional<llvm::StringRef> oredirects[] = {std::nullopt, llvm::StringRef(ortOut), std::nullopt};
      int orc = node ? llvm::sys::ExecuteAndWait(*node, orefs, std::nullopt, oredirects, 0, 0, &runErr) : -1;
      llvm::sys::fs::remove(ortOut);
      if (orc != 0 || !argmaxRows(work + "/ort-out/" + outputFile, batch, ortPred, err)) {
        llvm::errs() << "error: running ONNX Runtime failed\n";
        return 1;
      }
    }
    for (int64_t r = 0; r < rows; ++r) {
      int64_t label = labels.i[size_t(start + r)];
      kilnRight += kilnPred[size_t(r)] == label;
      if (vsOrt) {
        ortRight += ortPred[size_t(r)] == label;
        agree += ortPred[size_t(r)] == kilnPred[size_t(r)];
      }
    }
  }
  llvm::outs() << llvm::format("top-1: %.4f (%lld of %lld)\n", double(kilnRight) / double(n), (long long)kilnRight,
                               (long long)n);
  if (vsOrt)
    llvm::outs() << llvm::format("onnxruntime top-1: %.4f (%lld of %lld); predictions agree on %.4f\n",
                                 double(ortRight) / double(n), (long long)ortRight, (long long)n,
                                 double(agree) / double(n));
  return 0;
}

} // namespace

int main(int argc, char **argv) {
  kiln::registerCompilerPasses();
  if (argc < 2) {
    llvm::errs() << kMainHelp;
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "-h" || cmd == "--help" || cmd == "help") {
    llvm::outs() << kMainHelp;
    return 0;
  }
  if (cmd == "compile") return cmdCompile(argc, argv);
  if (cmd == "run") return cmdRun(argc, argv);
  if (cmd == "import") return cmdImport(argc, argv);
  if (cmd == "bench") return cmdBench(argc, argv);
  if (cmd == "eval") return cmdEval(argc, argv);
  if (cmd == "inspect") return cmdInspect(argc, argv);
  if (cmd == "sim") return kiln::tool::cmdSim(argc, argv);
  if (cmd == "plan") return kiln::tool::cmdPlan(argc, argv);
  if (cmd == "hw-gen") return kiln::tool::cmdHwGen(argc, argv);
  llvm::errs() << "error: unknown command '" << cmd << "'\n\n" << kMainHelp;
  return 2;
}
