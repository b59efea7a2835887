//===- HostTensor.h - Constant tensors known at import time -----------------===//
//
// Initializers, Constant nodes and the results of shape subgraphs are kept on the
// host so that they can be folded (Shape -> Gather -> Concat -> Reshape) and
// pre-packed (weight transposes) before any IR is emitted.
//
//===----------------------------------------------------------------------===//
#ifndef KILN_FRONTEND_ONNX_HOSTTENSOR_H
#define KILN_FRONTEND_ONNX_HOSTTENSOR_H

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace kiln::onnx_frontend {

/// ONNX element types Kiln handles. Kiln computes in fewer types than ONNX names:
/// f64 and f16 as f32, int16 and uint16 as i32, uint32 as i64 (computeBits); the
/// compiled model's inputs and outputs carry the computed type.
enum class DType { Unknown, F32, F64, F16, I64, I32, I16, I8, U8, U16, U32, Bool };

const char *dtypeName(DType t);
bool isFloat(DType t);
/// Bit width of the integer type Kiln computes DType `t` in (0 for floats).
unsigned computeBits(DType t);
/// ONNX TensorProto::DataType to DType (Unknown if unsupported).
DType dtypeFromOnnx(int onnxType);
/// ONNX's name of a TensorProto::DataType ("int4", "float8e4m3fn", ...) for messages.
std::string onnxTypeName(int onnxType);

/// The product of `shape`, or INT64_MAX when that overflows.
int64_t numElements(const std::vector<int64_t> &shape);
/// The most elements Kiln accepts in one tensor: a graph input, an initializer, a
/// constant, or any value a node produces. Larger shapes are reported, not compiled.
inline constexpr int64_t kMaxTensorElements = (int64_t(1) << 31) - 1;

/// A constant tensor on the host. Floats live in `f`, integers and bools in `i`.
struct HostTensor {
  DType dtype = DType::Unknown;
  std::vector<int64_t> shape;
  std::vector<float> f;
  std::vector<int64_t> i;

  int64_t numel() const { return numElements(shape); }
  bool floating() const { return isFloat(dtype); }
  double get(int64_t k) const { return floating() ? f[k] : double(i[k]); }
  void set(int64_t k, double v) {
    if (floating()) f[k] = float(v); else i[k] = int64_t(v);
  }
  static HostTensor make(DType t, std::vector<int64_t> shape);
  static HostTensor ints(std::vector<int64_t> values, DType t = DType::I64);
  static HostTensor scalarInt(int64_t v) { auto h = ints({v}); h.shape = {}; return h; }
  /// Same data, new element type (numeric conversion as ONNX Cast does).
  HostTensor castTo(DType t) const;
  std::vector<int64_t> toInts() const;
  std::vector<double> toDoubles() const;
};

/// Row-major strides of `shape`.
std::vector<int64_t> stridesOf(const std::vector<int64_t> &shape);

/// Numpy broadcasting; nullopt if the shapes are incompatible.
std::optional<std::vector<int64_t>> broadcastShapes(const std::vector<int64_t> &a,
                                                    const std::vector<int64_t> &b);

/// out[idx] = fn(a[bcast idx], b[bcast idx]) with numpy broadcasting.
std::optional<HostTensor> hostBinary(const HostTensor &a, const HostTensor &b, DType outType,
                                     const std::function<double(double, double)> &fn);
HostTensor hostTranspose(const HostTensor &t, const std::vector<int64_t> &perm);
/// Gathers along `axis` (indices already normalised to be non-negative).
HostTensor hostGather(const HostTensor &data, const HostTensor &indices, int64_t axis);
/// Slice with per-axis start/step and output extent (steps may be negative).
HostTensor hostSlice(const HostTensor &t, const std::vector<int64_t> &starts,
                     const std::vector<int64_t> &steps, const std::vector<int64_t> &outShape);
HostTensor hostConcat(const std::vector<const HostTensor *> &parts, int64_t axis);
HostTensor hostBroadcastTo(const HostTensor &t, const std::vector<int64_t> &shape);

} // namespace kiln::onnx_frontend

#endif
