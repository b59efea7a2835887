//===- conformance.cpp - ONNX backend test data through Kiln ----------------===//
//
// Walks ONNX's backend test cases (model.onnx + test_data_set_0/{input,output}_N.pb),
// compiles each with Kiln for the host, links the object into a shared library,
// runs it through the runtime's C API and compares with the golden outputs. Every
// case runs in a forked child, so a compiler crash is reported as such instead of
// ending the run.
//
//   kiln-conformance                        all categories, summary table
//   kiln-conformance --case test_relu       one case, with the reason when it fails
//   kiln-conformance --must-pass FILE       exit 1 unless every listed case passes
//   kiln-conformance --report FILE          write category/case <TAB> status <TAB> reason
//
//===----------------------------------------------------------------------===//
#include "codegen/Driver.h"
#include "frontend/onnx/ImportContext.h"

extern "C" {
#include "kiln/kernels.h"
#include "kiln/kiln.h"
void memrefCopy(int64_t, void *, void *);
}

#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/raw_ostream.h"

#include <onnx/onnx_pb.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <poll.h>
#include <set>
#include <signal.h>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#ifndef KILN_HOST_CC
#define KILN_HOST_CC "cc"
#endif

// Compiled models call these; keep them linked into (and exported from) this binary.
void *kilnKeepSymbols[] = {reinterpret_cast<void *>(&memrefCopy),
                           reinterpret_cast<void *>(&kiln_conv2d_nhwc_f32_packed),
                           reinterpret_cast<void *>(&kiln_dwconv2d_nhwc_f32),
                           reinterpret_cast<void *>(&kiln_batch_matmul_f32),
                           reinterpret_cast<void *>(&kiln_conv2d_nhwc_f32_packed_fused)};

namespace {

using kiln::onnx_frontend::DType;
using kiln::onnx_frontend::HostTensor;

enum class Status { Pass, Fail, Unsupported, Crash, Timeout };
const char *statusName(Status s) {
  switch (s) {
  case Status::Pass: return "pass";
  case Status::Fail: return "fail";
  case Status::Unsupported: return "unsupported";
  case Status::Crash: return "crash";
  case Status::Timeout: return "timeout";
  }
  return "?";
}

struct Case {
  std::string category, name, dir;
  std::string id() const { return category + "/" + name; }
};

struct Result {
  Status status = Status::Fail;
  std::string reason;
};

// ONNX's backend tests compare with rtol 1e-3 and atol 1e-7; f32 transcendental
// approximations need a little more absolute slack near zero.
constexpr double kRtol = 1e-3, kAtol = 1e-5;

std::string oneLine(std::string s) {
  for (char &c : s)
    if (c == '\n' || c == '\t') c = ' ';
  if (s.size() > 300) s = s.substr(0, 297) + "...";
  return s;
}

bool readProto(const std::string &path, google::protobuf::Message &msg) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::stringstream ss;
  ss << in.rdbuf();
  return msg.ParseFromString(ss.str());
}

/// Packs a host tensor into the element type the compiled model expects.
std::vector<char> pack(const HostTensor &t, kiln_dtype_t dtype) {
  size_t n = size_t(t.numel()), esz = kiln_dtype_size(dtype);
  std::vector<char> out(n * esz);
  for (size_t k = 0; k < n; ++k) {
    double v = t.get(int64_t(k));
    char *p = out.data() + k * esz;
    switch (dtype) {
    case KILN_DTYPE_F32: { float f = float(v); std::memcpy(p, &f, 4); break; }
    case KILN_DTYPE_I64: { int64_t x = t.floating() ? int64_t(v) : t.i[k]; std::memcpy(p, &x, 8); break; }
    case KILN_DTYPE_I32: { int32_t x = int32_t(t.i[k]); std::memcpy(p, &x, 4); break; }
    case KILN_DTYPE_I8: case KILN_DTYPE_U8: case KILN_DTYPE_BOOL: { *p = char(t.i[k]); break; }
    default: break;
    }
  }
  return out;
}

double unpack(const char *data, kiln_dtype_t dtype, size_t k) {
  switch (dtype) {
  case KILN_DTYPE_F32: { float f; std::memcpy(&f, data + 4 * k, 4); return f; }
  case KILN_DTYPE_I64: { int64_t x; std::memcpy(&x, data + 8 * k, 8); return double(x); }
  case KILN_DTYPE_I32: { int32_t x; std::memcpy(&x, data + 4 * k, 4); return x; }
  case KILN_DTYPE_I8: return double(int8_t(data[k]));
  case KILN_DTYPE_U8: return double(uint8_t(data[k]));
  case KILN_DTYPE_BOOL: return data[k] != 0;
  default: return 0;
  }
}

std::string errorText;
void errorHook(void *, const char *msg) { errorText = msg; }

/// Runs one case in this process (called in the forked child).
Result runCase(const Case &c, const std::string &work) {
  onnx::ModelProto model;
  if (!readProto(c.dir + "/model.onnx", model)) return {Status::Fail, "cannot parse model.onnx"};
  std::set<std::string> inits;
  for (const auto &t : model.graph().initializer()) inits.insert(t.name());
  std::vector<std::string> inputNames;
  for (const auto &i : model.graph().input())
    if (!inits.count(i.name())) inputNames.push_back(i.name());
  for (const auto *list : {&model.graph().input(), &model.graph().output()})
    for (const auto &v : *list)
      if (!v.type().has_tensor_type())
        return {Status::Unsupported, "graph input/output '" + v.name() + "' is not a tensor (sequence, optional or map)"};

  std::string set = c.dir + "/test_data_set_0";
  std::vector<HostTensor> inputs, expected;
  for (size_t k = 0;; ++k) {
    std::string p = set + "/input_" + std::to_string(k) + ".pb";
    if (!llvm::sys::fs::exists(p)) break;
    onnx::TensorProto tp;
    HostTensor h;
    if (!readProto(p, tp)) return {Status::Fail, "cannot parse " + p};
    if (auto err = kiln::onnx_frontend::decodeTensor(tp, h)) return {Status::Unsupported, "test input: " + *err};
    inputs.push_back(std::move(h));
  }
  for (size_t k = 0;; ++k) {
    std::string p = set + "/output_" + std::to_string(k) + ".pb";
    if (!llvm::sys::fs::exists(p)) break;
    onnx::TensorProto tp;
    HostTensor h;
    if (!readProto(p, tp)) return {Status::Fail, "cannot parse " + p};
    if (auto err = kiln::onnx_frontend::decodeTensor(tp, h)) return {Status::Unsupported, "test output: " + *err};
    expected.push_back(std::move(h));
  }
  if (inputs.size() > inputNames.size()) return {Status::Unsupported, "more test inputs than graph inputs"};

  kiln::onnx_frontend::ImportOptions import;
  for (size_t k = 0; k < inputs.size(); ++k) import.inputShapes[inputNames[k]] = inputs[k].shape;
  kiln::codegen::CompileOptions options;
  options.name = "model";
  options.target = "x86-64";
  kiln::codegen::Artifact artifact;
  std::string errs;
  llvm::raw_string_ostream es(errs);
  bool ok = succeeded(kiln::compileOnnxFile(c.dir + "/model.onnx", import, options, work, artifact, es));
  // Inputs that determine shapes (axes, sizes, repeats) must be known when compiling
  // ahead of time: retry once with every integer input and every float scalar or
  // short vector (scales, min/max) frozen (--freeze).
  std::set<size_t> frozen;
  if (!ok && (errs.find("must be known at compile time") != std::string::npos ||
              errs.find("must be constant") != std::string::npos ||
              errs.find("zero-size dimension") != std::string::npos)) {
    for (size_t k = 0; k < inputs.size(); ++k)
      if (!inputs[k].floating() || (inputs[k].shape.size() <= 1 && inputs[k].numel() <= 8)) {
        import.frozenInputs[inputNames[k]] = inputs[k];
        import.inputShapes.erase(inputNames[k]);
        frozen.insert(k);
      }
    if (!frozen.empty()) {
      errs.clear();
      ok = succeeded(kiln::compileOnnxFile(c.dir + "/model.onnx", import, options, work, artifact, es));
    }
  }
  if (!ok) {
    // An import report is an unsupported feature; anything later is a compiler bug.
    bool report = errs.find("the model cannot be compiled") != std::string::npos;
    std::string reason = errs;
    if (report) {
      size_t nl = reason.find('\n');
      reason = nl == std::string::npos ? reason : reason.substr(nl + 1);
    }
    return {report ? Status::Unsupported : Status::Fail, oneLine(reason)};
  }
  std::vector<HostTensor> runInputs;
  std::string frozenNote;
  for (size_t k = 0; k < inputs.size(); ++k) {
    if (frozen.count(k)) frozenNote += (frozenNote.empty() ? "" : ",") + inputNames[k];
    else runInputs.push_back(inputs[k]);
  }
  inputs = std::move(runInputs);

  std::string so = work + "/model.so";
  std::string cc = KILN_HOST_CC;
  auto prog = llvm::sys::findProgramByName(cc);
  if (!prog) return {Status::Fail, "no C compiler '" + cc + "' to link the model"};
  std::string obj = work + "/model.o";
  llvm::StringRef args[] = {*prog, "-shared", "-o", so, obj};
  if (llvm::sys::ExecuteAndWait(*prog, args) != 0) return {Status::Fail, "linking model.so failed"};
  void *lib = dlopen(so.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!lib) return {Status::Fail, std::string("dlopen: ") + dlerror()};
  auto *desc = static_cast<const kiln_model_desc_t *>(dlsym(lib, "kiln_model_model"));
  if (!desc) return {Status::Fail, "model.so has no kiln_model_model"};

  kiln_set_error_hook(errorHook, nullptr);
  auto check = [&](kiln_status_t st, const char *what) -> std::optional<Result> {
    if (st == KILN_OK) return std::nullopt;
    return Result{Status::Fail, std::string(what) + ": " + kiln_status_string(st) + ": " + errorText};
  };
  kiln_weights_t *weights = nullptr;
  kiln_model_t *m = nullptr;
  if (auto r = check(kiln_weights_open((work + "/model.kw").c_str(), &weights), "weights")) return *r;
  if (auto r = check(kiln_model_create(desc, weights, &m), "create")) return *r;
  size_t arenaSize = 0, align = 64;
  if (auto r = check(kiln_model_plan(m, &arenaSize, &align), "plan")) return *r;
  void *arena = nullptr;
  if (arenaSize) {
    if (posix_memalign(&arena, std::max<size_t>(align, sizeof(void *)), arenaSize)) return {Status::Fail, "out of memory"};
    if (auto r = check(kiln_model_bind_arena(m, arena, arenaSize), "bind arena")) return *r;
  }
  std::vector<std::vector<char>> inBufs, outBufs;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const kiln_tensor_desc_t *d = kiln_model_input(m, k);
    inBufs.push_back(pack(inputs[k], kiln_dtype_t(d->dtype)));
    if (auto r = check(kiln_model_bind_input(m, k, kiln_dtype_t(d->dtype), size_t(d->rank), d->dims,
                                             inBufs.back().data(), inBufs.back().size()),
                       "bind input"))
      return *r;
  }
  size_t nOut = kiln_model_num_outputs(m);
  if (nOut != expected.size())
    return {Status::Fail, "model has " + std::to_string(nOut) + " outputs, test expects " + std::to_string(expected.size())};
  for (size_t k = 0; k < nOut; ++k) {
    const kiln_tensor_desc_t *d = kiln_model_output(m, k);
    outBufs.emplace_back(std::max<size_t>(d->size_bytes, 1));
    if (auto r = check(kiln_model_bind_output(m, k, kiln_dtype_t(d->dtype), size_t(d->rank), d->dims,
                                              outBufs.back().data(), d->size_bytes),
                       "bind output"))
      return *r;
  }
  if (auto r = check(kiln_model_run(m), "run")) return *r;

  for (size_t k = 0; k < nOut; ++k) {
    const kiln_tensor_desc_t *d = kiln_model_output(m, k);
    std::vector<int64_t> dims(d->dims, d->dims + d->rank);
    if (dims != expected[k].shape) return {Status::Fail, "output " + std::to_string(k) + " has the wrong shape"};
    double worst = 0;
    size_t bad = 0, at = 0;
    for (size_t e = 0; e < size_t(expected[k].numel()); ++e) {
      double want = expected[k].get(int64_t(e)), got = unpack(outBufs[k].data(), kiln_dtype_t(d->dtype), e);
      if (std::isnan(want) && std::isnan(got)) continue;
      if (std::isinf(want) && got == want) continue;
      double err = std::fabs(got - want);
      if (!(err <= kAtol + kRtol * std::fabs(want))) {
        if (!bad || err > worst) { worst = err; at = e; }
        ++bad;
      }
    }
    if (bad) {
      std::ostringstream os;
      os << "output " << k << " ('" << d->name << "'): " << bad << " of " << expected[k].numel()
         << " elements out of tolerance; worst at " << at << ": got "
         << unpack(outBufs[k].data(), kiln_dtype_t(d->dtype), at) << ", want " << expected[k].get(int64_t(at));
      return {Status::Fail, os.str()};
    }
  }
  kiln_model_destroy(m);
  kiln_weights_close(weights);
  free(arena);
  return {Status::Pass, frozenNote.empty() ? "" : "with --freeze " + frozenNote};
}

struct Running {
  pid_t pid;
  int fd;
  size_t index;
  std::string work, out;
  std::chrono::steady_clock::time_point start;
};

std::vector<Case> listCases(const std::string &root, const std::vector<std::string> &categories) {
  std::vector<Case> cases;
  for (const std::string &cat : categories) {
    std::error_code ec;
    std::vector<std::string> names;
    for (llvm::sys::fs::directory_iterator it(root + "/" + cat, ec), end; it != end && !ec; it.increment(ec))
      if (llvm::sys::fs::exists(it->path() + "/model.onnx")) names.push_back(llvm::sys::path::filename(it->path()).str());
    std::sort(names.begin(), names.end());
    for (auto &n : names) cases.push_back({cat, n, root + "/" + cat + "/" + n});
  }
  return cases;
}

int usage() {
  llvm::errs() << "usage: kiln-conformance [--data DIR] [--category C[,C...]] [--case NAME] [--must-pass FILE]\n"
                  "                        [--report FILE] [-j N] [--timeout SECONDS] [--verbose]\n";
  return 2;
}

} // namespace

int main(int argc, char **argv) {
  std::string root = "/usr/share/libonnx-testdata/data", mustPass, report, only;
  std::vector<std::string> categories{"node", "simple", "pytorch-converted", "pytorch-operator"};
  int jobs = 2, timeout = 120;
  bool verbose = false;
  for (int k = 1; k < argc; ++k) {
    std::string a = argv[k];
    auto next = [&]() -> std::string { return k + 1 < argc ? argv[++k] : ""; };
    if (a == "--data") root = next();
    else if (a == "--category") {
      categories.clear();
      std::stringstream ss(next());
      for (std::string c; std::getline(ss, c, ',');) categories.push_back(c);
    } else if (a == "--case") only = next();
    else if (a == "--must-pass") mustPass = next();
    else if (a == "--report") report = next();
    else if (a == "-j") jobs = std::max(1, atoi(next().c_str()));
    else if (a == "--timeout") timeout = std::max(1, atoi(next().c_str()));
    else if (a == "--verbose" || a == "-v") verbose = true;
    else return usage();
  }
  if (!llvm::sys::fs::is_directory(root)) {
    llvm::errs() << "error: no test data at '" << root << "' (install Debian's libonnx-testdata)\n";
    return 1;
  }
  std::vector<Case> cases = listCases(root, categories);
  std::set<std::string> wanted;
  if (!mustPass.empty()) {
    std::ifstream in(mustPass);
    if (!in) {
      llvm::errs() << "error: cannot read '" << mustPass << "'\n";
      return 1;
    }
    for (std::string line; std::getline(in, line);)
      if (!line.empty() && line[0] != '#') wanted.insert(line.substr(0, line.find_first_of(" \t")));
    std::set<std::string> found;
    std::vector<Case> kept;
    for (auto &c : cases)
      if (wanted.count(c.id())) { kept.push_back(c); found.insert(c.id()); }
    for (auto &w : wanted)
      if (!found.count(w)) llvm::errs() << "error: must-pass case '" << w << "' does not exist\n";
    if (found.size() != wanted.size()) return 1;
    cases = kept;
  }
  if (!only.empty()) {
    std::vector<Case> kept;
    for (auto &c : cases)
      if (c.name == only || c.id() == only) kept.push_back(c);
    if (kept.empty()) {
      llvm::errs() << "error: no case named '" << only << "'\n";
      return 1;
    }
    cases = kept;
    verbose = true;
  }

  llvm::SmallString<128> tmpRoot;
  if (llvm::sys::fs::createUniqueDirectory("kiln-conformance", tmpRoot)) {
    llvm::errs() << "error: cannot create a temporary directory\n";
    return 1;
  }
  kiln::registerCompilerPasses();
  std::vector<Result> results(cases.size());
  std::vector<Running> running;
  size_t nextCase = 0, done = 0;
  auto startOne = [&](size_t index) {
    std::string work = (tmpRoot + "/" + std::to_string(index)).str();
    llvm::sys::fs::create_directories(work);
    int fds[2];
    if (pipe(fds)) return false;
    pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      // Keep the children quiet: the parent prints the results.
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 2);
      Result r = runCase(cases[index], work);
      std::string msg = std::string(statusName(r.status)) + "\t" + oneLine(r.reason);
      (void)!write(fds[1], msg.data(), msg.size());
      _exit(0);
    }
    close(fds[1]);
    running.push_back({pid, fds[0], index, work, "", std::chrono::steady_clock::now()});
    return true;
  };
  while (done < cases.size()) {
    while (running.size() < size_t(jobs) && nextCase < cases.size()) startOne(nextCase++);
    for (size_t r = 0; r < running.size();) {
      Running &run = running[r];
      pollfd p{run.fd, POLLIN, 0};
      char buf[512];
      while (poll(&p, 1, 0) > 0) {
        ssize_t got = read(run.fd, buf, sizeof buf);
        if (got <= 0) break;
        run.out.append(buf, size_t(got));
      }
      int wstatus;
      pid_t w = waitpid(run.pid, &wstatus, WNOHANG);
      bool expired = std::chrono::steady_clock::now() - run.start > std::chrono::seconds(timeout);
      if (w == 0 && !expired) { ++r; continue; }
      if (w == 0) {
        kill(run.pid, SIGKILL);
        waitpid(run.pid, &wstatus, 0);
        results[run.index] = {Status::Timeout, "no result within " + std::to_string(timeout) + " s"};
      } else {
        ssize_t got;
        while ((got = read(run.fd, buf, sizeof buf)) > 0) run.out.append(buf, size_t(got));
        Result res;
        if (WIFSIGNALED(wstatus)) {
          res = {Status::Crash, std::string("killed by signal ") + strsignal(WTERMSIG(wstatus))};
        } else {
          size_t tab = run.out.find('\t');
          std::string st = run.out.substr(0, tab);
          res.reason = tab == std::string::npos ? "" : run.out.substr(tab + 1);
          res.status = st == "pass" ? Status::Pass : st == "unsupported" ? Status::Unsupported : Status::Fail;
          if (run.out.empty()) res = {Status::Crash, "child exited without a result"};
        }
        results[run.index] = res;
      }
      close(run.fd);
      llvm::sys::fs::remove_directories(run.work, true);
      const Result &res = results[run.index];
      if (verbose || (!mustPass.empty() && res.status != Status::Pass))
        llvm::outs() << statusName(res.status) << "  " << cases[run.index].id()
                     << (res.reason.empty() ? "" : "  " + res.reason) << "\n";
      ++done;
      running.erase(running.begin() + r);
    }
    usleep(2000);
  }
  llvm::sys::fs::remove_directories(tmpRoot, true);

  // Totals per category.
  std::map<std::string, std::map<Status, int>> table;
  for (size_t k = 0; k < cases.size(); ++k) table[cases[k].category][results[k].status]++;
  llvm::outs() << llvm::format("%-20s %7s %7s %7s %12s %7s\n", "category", "cases", "passed", "failed", "unsupported",
                               "crashed");
  std::map<Status, int> total;
  int totalCases = 0;
  for (auto &[cat, counts] : table) {
    int n = 0;
    for (auto &[s, c] : counts) { n += c; total[s] += c; }
    totalCases += n;
    llvm::outs() << llvm::format("%-20s %7d %7d %7d %12d %7d\n", cat.c_str(), n, counts[Status::Pass],
                                 counts[Status::Fail], counts[Status::Unsupported],
                                 counts[Status::Crash] + counts[Status::Timeout]);
  }
  llvm::outs() << llvm::format("%-20s %7d %7d %7d %12d %7d\n", "total", totalCases, total[Status::Pass],
                               total[Status::Fail], total[Status::Unsupported],
                               total[Status::Crash] + total[Status::Timeout]);
  if (!report.empty()) {
    std::ofstream out(report);
    out << "# Generated by kiln-conformance --report; one line per case: case <TAB> status <TAB> reason\n";
    for (size_t k = 0; k < cases.size(); ++k)
      out << cases[k].id() << "\t" << statusName(results[k].status) << "\t" << results[k].reason << "\n";
  }
  int notPassed = totalCases - total[Status::Pass];
  llvm::outs() << total[Status::Pass] << " passed, " << notPassed << " failed\n";
  if (!mustPass.empty()) return notPassed ? 1 : 0;
  return 0;
}
