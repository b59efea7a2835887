//===- HostTensor.cpp - Host-side constant evaluation helpers ----------------===//
#include "frontend/onnx/HostTensor.h"

#include <cmath>
#include <limits>
#include <onnx/onnx_pb.h>

namespace kiln::onnx_frontend {

const char *dtypeName(DType t) {
  switch (t) {
  case DType::F32: return "float32";
  case DType::F64: return "float64";
  case DType::F16: return "float16";
  case DType::I64: return "int64";
  case DType::I32: return "int32";
  case DType::I16: return "int16";
  case DType::I8: return "int8";
  case DType::U8: return "uint8";
  case DType::U16: return "uint16";
  case DType::U32: return "uint32";
  case DType::Bool: return "bool";
  case DType::Unknown: break;
  }
  return "unknown";
}

bool isFloat(DType t) { return t == DType::F32 || t == DType::F64 || t == DType::F16; }

unsigned computeBits(DType t) {
  switch (t) {
  case DType::I64: case DType::U32: return 64;
  case DType::I32: case DType::I16: case DType::U16: return 32;
  case DType::I8: case DType::U8: return 8;
  case DType::Bool: return 1;
  default: return 0;
  }
}

DType dtypeFromOnnx(int t) {
  switch (t) {
  case onnx::TensorProto::FLOAT: return DType::F32;
  case onnx::TensorProto::DOUBLE: return DType::F64;
  case onnx::TensorProto::FLOAT16: return DType::F16;
  case onnx::TensorProto::INT64: return DType::I64;
  case onnx::TensorProto::INT32: return DType::I32;
  case onnx::TensorProto::INT16: return DType::I16;
  case onnx::TensorProto::INT8: return DType::I8;
  case onnx::TensorProto::UINT8: return DType::U8;
  case onnx::TensorProto::UINT16: return DType::U16;
  case onnx::TensorProto::UINT32: return DType::U32;
  case onnx::TensorProto::BOOL: return DType::Bool;
  default: return DType::Unknown;
  }
}

std::string onnxTypeName(int t) {
  static const char *names[] = {"undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64",
                                "string", "bool", "float16", "double", "uint32", "uint64", "complex64",
                                "complex128", "bfloat16", "float8e4m3fn", "float8e4m3fnuz", "float8e5m2",
                                "float8e5m2fnuz", "uint4", "int4", "float4e2m1"};
  if (t >= 0 && t < int(sizeof(names) / sizeof(names[0]))) return names[t];
  return "type " + std::to_string(t);
}

int64_t numElements(const std::vector<int64_t> &shape) {
  // Saturates instead of overflowing: a hostile model can declare any dimensions, and
  // callers compare the count against their limits.
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return std::numeric_limits<int64_t>::max();
  return n;
}

HostTensor HostTensor::make(DType t, std::vector<int64_t> shape) {
  HostTensor h;
  h.dtype = t;
  h.shape = std::move(shape);
  if (isFloat(t)) h.f.assign(h.numel(), 0.f);
  else h.i.assign(h.numel(), 0);
  return h;
}

HostTensor HostTensor::ints(std::vector<int64_t> values, DType t) {
  HostTensor h;
  h.dtype = t;
  h.shape = {int64_t(values.size())};
  h.i = std::move(values);
  return h;
}

static double convertValue(double v, DType t) {
  switch (t) {
  case DType::Bool: return v != 0 ? 1 : 0;
  case DType::I64: case DType::I32: case DType::I16: case DType::I8: case DType::U8: case DType::U16: case DType::U32:
    return std::isfinite(v) ? std::trunc(v) : 0;
  default: return v;
  }
}

HostTensor HostTensor::castTo(DType t) const {
  HostTensor out = make(t, shape);
  for (int64_t k = 0, n = numel(); k < n; ++k) out.set(k, convertValue(get(k), t));
  return out;
}

std::vector<int64_t> HostTensor::toInts() const {
  std::vector<int64_t> v(numel());
  for (int64_t k = 0; k < numel(); ++k) v[k] = floating() ? int64_t(f[k]) : i[k];
  return v;
}

std::vector<double> HostTensor::toDoubles() const {
  std::vector<double> v(numel());
  for (int64_t k = 0; k < numel(); ++k) v[k] = get(k);
  return v;
}

std::vector<int64_t> stridesOf(const std::vector<int64_t> &shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t d = int64_t(shape.size()) - 2; d >= 0; --d) s[d] = s[d + 1] * shape[d + 1];
  return s;
}

std::optional<std::vector<int64_t>> broadcastShapes(const std::vector<int64_t> &a,
                                                    const std::vector<int64_t> &b) {
  size_t r = std::max(a.size(), b.size());
  std::vector<int64_t> out(r);
  for (size_t k = 0; k < r; ++k) {
    int64_t da = k < r - a.size() ? 1 : a[k - (r - a.size())];
    int64_t db = k < r - b.size() ? 1 : b[k - (r - b.size())];
    if (da != db && da != 1 && db != 1) return std::nullopt;
    out[k] = da == 1 ? db : da;
  }
  return out;
}

// Strides of `shape` right-aligned into `rank` dims, 0 where broadcast.
static std::vector<int64_t> broadcastStrides(const std::vector<int64_t> &shape,
                                             const std::vector<int64_t> &outShape) {
  size_t r = outShape.size();
  std::vector<int64_t> own = stridesOf(shape), s(r, 0);
  for (size_t k = 0; k < shape.size(); ++k) {
    size_t o = k + (r - shape.size());
    s[o] = shape[k] == 1 ? 0 : own[k];
  }
  return s;
}

// Calls fn(outIndex, offsets...) over every element of outShape.
template <typename Fn>
static void forEachIndex(const std::vector<int64_t> &outShape,
                         const std::vector<std::vector<int64_t>> &strides, Fn fn) {
  int64_t n = numElements(outShape);
  size_t r = outShape.size();
  std::vector<int64_t> idx(r, 0), off(strides.size(), 0);
  for (int64_t k = 0; k < n; ++k) {
    fn(k, off);
    for (int64_t d = int64_t(r) - 1; d >= 0; --d) {
      ++idx[d];
      for (size_t s = 0; s < strides.size(); ++s) off[s] += strides[s][d];
      if (idx[d] < outShape[d]) break;
      for (size_t s = 0; s < strides.size(); ++s) off[s] -= strides[s][d] * idx[d];
      idx[d] = 0;
    }
  }
}

std::optional<HostTensor> hostBinary(const HostTensor &a, const HostTensor &b, DType outType,
                                     const std::function<double(double, double)> &fn) {
  auto shape = broadcastShapes(a.shape, b.shape);
  if (!shape) return std::nullopt;
  HostTensor out = HostTensor::make(outType, *shape);
  forEachIndex(*shape, {broadcastStrides(a.shape, *shape), broadcastStrides(b.shape, *shape)},
               [&](int64_t k, const std::vector<int64_t> &off) {
                 out.set(k, convertValue(fn(a.get(off[0]), b.get(off[1])), outType));
               });
  return out;
}

HostTensor hostBroadcastTo(const HostTensor &t, const std::vector<int64_t> &shape) {
  HostTensor out = HostTensor::make(t.dtype, shape);
  forEachIndex(shape, {broadcastStrides(t.shape, shape)},
               [&](int64_t k, const std::vector<int64_t> &off) { out.set(k, t.get(off[0])); });
  return out;
}

HostTensor hostTranspose(const HostTensor &t, const std::vector<int64_t> &perm) {
  std::vector<int64_t> outShape(perm.size()), inStrides = stridesOf(t.shape), s(perm.size());
  for (size_t k = 0; k < perm.size(); ++k) {
    outShape[k] = t.shape[perm[k]];
    s[k] = inStrides[perm[k]];
  }
  HostTensor out = HostTensor::make(t.dtype, outShape);
  if (t.floating())
    forEachIndex(outShape, {s}, [&](int64_t k, const std::vector<int64_t> &off) { out.f[k] = t.f[off[0]]; });
  else
    forEachIndex(outShape, {s}, [&](int64_t k, const std::vector<int64_t> &off) { out.i[k] = t.i[off[0]]; });
  return out;
}

HostTensor hostGather(const HostTensor &data, const HostTensor &indices, int64_t axis) {
  std::vector<int64_t> outShape(data.shape.begin(), data.shape.begin() + axis);
  outShape.insert(outShape.end(), indices.shape.begin(), indices.shape.end());
  outShape.insert(outShape.end(), data.shape.begin() + axis + 1, data.shape.end());
  int64_t outer = numElements({data.shape.begin(), data.shape.begin() + axis});
  int64_t inner = numElements({data.shape.begin() + axis + 1, data.shape.end()});
  int64_t extent = data.shape[axis], nIdx = indices.numel();
  HostTensor out = HostTensor::make(data.dtype, outShape);
  int64_t k = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < nIdx; ++j)
      for (int64_t in = 0; in < inner; ++in)
        out.set(k++, data.get((o * extent + indices.i[j]) * inner + in));
  return out;
}

HostTensor hostSlice(const HostTensor &t, const std::vector<int64_t> &starts,
                     const std::vector<int64_t> &steps, const std::vector<int64_t> &outShape) {
  std::vector<int64_t> s = stridesOf(t.shape), st(s.size());
  int64_t base = 0;
  for (size_t d = 0; d < s.size(); ++d) {
    base += starts[d] * s[d];
    st[d] = steps[d] * s[d];
  }
  HostTensor out = HostTensor::make(t.dtype, outShape);
  forEachIndex(outShape, {st}, [&](int64_t k, const std::vector<int64_t> &off) {
    out.set(k, t.get(base + off[0]));
  });
  return out;
}

HostTensor hostConcat(const std::vector<const HostTensor *> &parts, int64_t axis) {
  std::vector<int64_t> shape = parts[0]->shape;
  shape[axis] = 0;
  for (auto *p : parts) shape[axis] += p->shape[axis];
  HostTensor out = HostTensor::make(parts[0]->dtype, shape);
  int64_t outer = numElements({shape.begin(), shape.begin() + axis});
  int64_t k = 0;
  for (int64_t o = 0; o < outer; ++o)
    for (auto *p : parts) {
      int64_t chunk = numElements({p->shape.begin() + axis, p->shape.end()});
      for (int64_t j = 0; j < chunk; ++j) out.set(k++, p->get(o * chunk + j));
    }
  return out;
}

} // namespace kiln::onnx_frontend
