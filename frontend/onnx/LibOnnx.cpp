//===- LibOnnx.cpp - libonnx's model passes, isolated from its crashes ------===//
#include "frontend/onnx/LibOnnx.h"

#include <onnx/defs/schema.h>
#include <onnx/version_converter/convert.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <functional>
#include <sys/wait.h>
#include <unistd.h>

namespace kiln::onnx_frontend {

namespace {

/// Runs `work` on `model`; its exceptions become the returned message.
std::string guarded(onnx::ModelProto &model, const std::function<void(onnx::ModelProto &)> &work) {
  try {
    work(model);
  } catch (const std::exception &e) {
    std::string what = e.what();
    return what.empty() ? "failed without a reason" : what;
  }
  return "";
}

bool writeAll(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w, n -= size_t(w);
  }
  return true;
}

/// Moves what inference adds (value_info, the outputs' types, the same in every
/// subgraph) from `from` into `to`, in place: the importer holds pointers into `to`.
/// With `apply` false, only checks that the two graphs have the same structure.
bool adopt(onnx::GraphProto &to, onnx::GraphProto &from, bool apply) {
  if (to.node_size() != from.node_size() || to.output_size() != from.output_size()) return false;
  if (apply) {
    to.mutable_value_info()->Swap(from.mutable_value_info());
    for (int k = 0; k < to.output_size(); ++k)
      to.mutable_output(k)->mutable_type()->Swap(from.mutable_output(k)->mutable_type());
  }
  for (int n = 0; n < to.node_size(); ++n) {
    onnx::NodeProto &a = *to.mutable_node(n), &b = *from.mutable_node(n);
    if (a.attribute_size() != b.attribute_size()) return false;
    for (int k = 0; k < a.attribute_size(); ++k) {
      onnx::AttributeProto &x = *a.mutable_attribute(k), &y = *b.mutable_attribute(k);
      if (x.has_g() != y.has_g() || x.graphs_size() != y.graphs_size()) return false;
      if (x.has_g() && !adopt(*x.mutable_g(), *y.mutable_g(), apply)) return false;
      for (int g = 0; g < x.graphs_size(); ++g)
        if (!adopt(*x.mutable_graphs(g), *y.mutable_graphs(g), apply)) return false;
    }
  }
  return true;
}

/// Runs `work` on `model` in a forked child, which sends the model back (without its
/// top-level initializers unless `withInitializers`) into `result`. Returns "" or the
/// error: the work's, or the child's crash.
std::string inChild(onnx::ModelProto &model, const std::function<void(onnx::ModelProto &)> &work,
                    bool withInitializers, onnx::ModelProto &result) {
  int fds[2];
  if (::pipe(fds) != 0) return "cannot create a pipe to run it in a child process";
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]);
    ::close(fds[1]);
    return "cannot fork a child process to run it in";
  }
  if (pid == 0) {
    // The child: "O" + the model, or "E" + the error. _exit: no destructors, no atexit.
    ::close(fds[0]);
    std::string error = guarded(model, work), out;
    if (error.empty()) {
      if (!withInitializers) model.mutable_graph()->clear_initializer();
      out = "O";
      if (!model.AppendToString(&out)) out = "Ecannot serialise the result";
    } else {
      out = "E" + error;
    }
    _exit(writeAll(fds[1], out.data(), out.size()) ? 0 : 1);
  }
  ::close(fds[1]);
  std::string in;
  char buf[1 << 16];
  for (;;) {
    ssize_t r = ::read(fds[0], buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    in.append(buf, size_t(r));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status))
    return "it crashed on this model (signal " + std::to_string(WTERMSIG(status)) + ", " +
           strsignal(WTERMSIG(status)) + "): libonnx does this on some malformed models, e.g. a Conv or pooling " +
           "node whose input and weights differ in rank";
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || in.empty())
    return "it ended without a result (exit status " +
           std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")";
  if (in[0] == 'E') return in.substr(1);
  if (in[0] != 'O' || !result.ParseFromArray(in.data() + 1, int(in.size() - 1)))
    return "it returned a model Kiln cannot read back";
  return "";
}

} // namespace

std::string inferShapes(onnx::ModelProto &model, const onnx::ShapeInferenceOptions &options, bool isolate) {
  auto work = [&](onnx::ModelProto &m) {
    onnx::shape_inference::InferShapes(m, onnx::OpSchemaRegistry::Instance(), options);
  };
  if (!isolate) return guarded(model, work);
  onnx::ModelProto inferred;
  if (std::string why = inChild(model, work, /*withInitializers=*/false, inferred); !why.empty()) return why;
  if (!adopt(*model.mutable_graph(), *inferred.mutable_graph(), false))
    return "it returned a model of another structure";
  adopt(*model.mutable_graph(), *inferred.mutable_graph(), true);
  return "";
}

std::string convertVersion(onnx::ModelProto &model, int64_t opset, bool isolate) {
  auto work = [&](onnx::ModelProto &m) { m = onnx::version_conversion::ConvertVersion(m, int(opset)); };
  if (!isolate) return guarded(model, work); // ConvertVersion builds a new model: a throw leaves `model` as it was
  onnx::ModelProto converted;
  if (std::string why = inChild(model, work, /*withInitializers=*/true, converted); !why.empty()) return why;
  model = std::move(converted);
  return "";
}

} // namespace kiln::onnx_frontend
