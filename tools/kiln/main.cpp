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
#include "codegen/Target.h"
#include "frontend/onnx/Importer.h"

extern "C" {
#include "kiln/npy.h"
}

#include "mlir/IR/AsmState.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
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

namespace {

using kiln::codegen::CompileOptions;

const char *kMainHelp = R"(kiln - ahead-of-time compiler for ONNX models

Usage:
  kiln compile MODEL.onnx -o DIR [options]   compile to an object, C header and weights file
  kiln run MODEL.onnx --input NAME=FILE.npy... [--output DIR] [options]
                                             compile, run, and print/write the outputs
  kiln import MODEL.onnx [--shape NAME=d0,...]  print the imported MLIR (func + TOSA)
  kiln COMMAND --help                        options of a command

Targets: x86-64 (default, this machine), aarch64 (run under qemu-aarch64), null (writes IR)
)";

const char *kCompileHelp = R"(kiln compile MODEL.onnx -o DIR [options]

Compiles an ONNX model to DIR/<name>.o (relocatable object), DIR/<name>.h (C header
declaring the model descriptor for the runtime API in kiln/kiln.h) and DIR/<name>.kw
(the weights file the runtime memory-maps). Nothing is written unless the whole
compile succeeds.

Options:
  -o, --output DIR          artifact directory (created if missing)
  --target T                x86-64 (default) | aarch64 | null
  --shape NAME=d0,d1,...    fix the shape of input NAME (repeat per input); needed
                            for symbolic dimensions such as a batch size
  --freeze NAME=FILE.npy    fix input NAME to this value at compile time: it becomes
                            a constant and is no longer an input of the compiled model
                            (for inputs that determine shapes, such as axes or sizes)
  --name NAME               C identifier for symbols and file names (default: the
                            model file name)
  --cpu CPU                 LLVM CPU name (default: x86-64-v2 or generic aarch64)
  --dump-import             print the imported MLIR (func + TOSA) to stderr
  --dump-ir-after PASS      print the IR after PASS (an MLIR pass name such as
                            one-shot-bufferize or kiln-plan-arena; "all" for every
                            pass); repeatable
  --print-pipeline          print the target's pass pipeline and exit
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
  --target T                x86-64 (default) | aarch64 (runs under qemu-aarch64)
  --cpu CPU                 LLVM CPU name
  --keep DIR                keep the compiled artifact and runner in DIR
  --dump-import, --dump-ir-after PASS   as for `kiln compile`
)";

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

struct CommonOptions {
  std::string model, outDir, keepDir;
  CompileOptions compile;
  kiln::onnx_frontend::ImportOptions import;
  std::vector<std::pair<std::string, std::string>> inputs;
  bool dumpImport = false, printPipeline = false;
  std::string nameOverride;
};

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
  auto targets = kiln::codegen::targetNames();
  if (std::find(targets.begin(), targets.end(), o.compile.target) == targets.end())
    return usageError("unknown target '" + o.compile.target + "' (known: x86-64, aarch64, null)", help);
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

void removeTree(const std::string &dir) { llvm::sys::fs::remove_directories(dir, /*IgnoreErrors=*/true); }

/// Imports and compiles; writes the artifact into `dir` (which must exist).
int compileInto(CommonOptions &o, const std::string &dir, kiln::codegen::Artifact &artifact) {
  return failed(kiln::compileOnnxFile(o.model, o.import, o.compile, dir, artifact, llvm::errs(), o.dumpImport));
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
  std::string work;
  if (!o.keepDir.empty()) {
    work = o.keepDir;
    if (std::error_code ec = llvm::sys::fs::create_directories(work)) {
      llvm::errs() << "error: cannot create '" << work << "': " << ec.message() << "\n";
      return 1;
    }
  } else {
    llvm::SmallString<128> tmp;
    if (llvm::sys::fs::createUniqueDirectory("kiln-run", tmp)) {
      llvm::errs() << "error: cannot create a temporary directory\n";
      return 1;
    }
    work = tmp.str().str();
  }
  auto cleanup = [&](int rc) {
    if (o.keepDir.empty()) removeTree(work);
    return rc;
  };
  kiln::codegen::Artifact artifact;
  if (int rc = compileInto(o, work, artifact)) return cleanup(rc);

  bool cross = o.compile.target == "aarch64";
  const char *envCc = std::getenv(cross ? "KILN_AARCH64_CC" : "KILN_CC");
  std::string cc = envCc ? envCc : cross ? "aarch64-linux-gnu-gcc" : KILN_HOST_CC;
  std::string src = KILN_SOURCE_DIR;
  // The runtime's kernels are built for the machine that runs them: the host, or
  // a generic armv8-a (NEON) for aarch64.
  std::vector<std::string> link{cc, "-O3", "-std=c11", cross ? "-march=armv8-a" : "-march=native", "-I" + work,
                                "-I" + src + "/runtime/include", src + "/tools/kiln-runner/main.c"};
  std::error_code ec;
  std::vector<std::string> sources;
  for (llvm::sys::fs::recursive_directory_iterator it(src + "/runtime/src", ec), end; it != end && !ec;
       it.increment(ec))
    if (llvm::StringRef(it->path()).ends_with(".c")) sources.push_back(it->path());
  std::sort(sources.begin(), sources.end());
  link.insert(link.end(), sources.begin(), sources.end());
  link.insert(link.end(), {work + "/model.o", "-lm", "-o", work + "/runner"});
  if (cross) link.push_back("-static");
  std::string err;
  int rc = execute(link, &err);
  if (rc != 0) {
    llvm::errs() << "error: linking the runner with '" << cc << "' failed" << (err.empty() ? "" : ": " + err) << "\n";
    return cleanup(1);
  }
  std::vector<std::string> run;
  if (cross) run = {"qemu-aarch64", "-L", "/usr/aarch64-linux-gnu"};
  run.insert(run.end(), {work + "/runner", "--weights", work + "/model.kw"});
  for (auto &[name, path] : o.inputs) run.insert(run.end(), {"--input", name + "=" + path});
  std::string outputs = o.outDir.empty() ? work + "/outputs" : o.outDir;
  if (std::error_code e2 = llvm::sys::fs::create_directories(outputs)) {
    llvm::errs() << "error: cannot create '" << outputs << "': " << e2.message() << "\n";
    return cleanup(1);
  }
  run.insert(run.end(), {"--output", outputs});
  llvm::outs().flush();
  rc = execute(run, &err);
  if (rc != 0) {
    if (rc < 0) llvm::errs() << "error: cannot run the model: " << err << "\n";
    return cleanup(1);
  }
  return cleanup(0);
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
  llvm::errs() << "error: unknown command '" << cmd << "'\n\n" << kMainHelp;
  return 2;
}
