//===- OpsSignal.cpp - Windows, mel filter banks, DFT and STFT ---------------===//
//
// Window functions and MelWeightMatrix depend only on their (compile-time)
// arguments and fold to constants. DFT and STFT are matrix products with constant
// cosine/sine tables: for the short transforms of audio front ends a dense
// product runs as one GEMM, which is what Kiln's kernels are best at.
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;

namespace kiln::onnx_frontend {

static constexpr int64_t kMaxTable = int64_t(1) << 24; ///< elements of a folded table

/// Integer scalar input `i`, which must be known at compile time.
static FailureOr<int64_t> scalarInput(NodeImporter &n, size_t i, const char *what) {
  const HostTensor *c = n.inConst(i);
  if (!c || c->numel() != 1) return n.fail(std::string(what) + " must be known at compile time (a scalar)");
  return int64_t(c->get(0));
}

/// The element type named by `output_datatype` (default float).
static FailureOr<DType> outputType(NodeImporter &n) {
  DType t = dtypeFromOnnx(int(n.attrInt("output_datatype", 1)));
  if (t == DType::Unknown || t == DType::Bool)
    return n.fail("output_datatype " + onnxTypeName(int(n.attrInt("output_datatype", 1))) + " is not supported");
  return t;
}

/// Hann, Hamming and Blackman: a0 - a1 cos(2 pi k / D) + a2 cos(4 pi k / D) with
/// D = size (periodic) or size - 1 (symmetric).
static LogicalResult window(NodeImporter &n, double a0, double a1, double a2) {
  auto size = scalarInput(n, 0, "size");
  auto dt = outputType(n);
  if (failed(size) || failed(dt)) return failure();
  if (*size <= 0 || *size > kMaxTable) return n.fail("size " + std::to_string(*size) + " is out of range");
  bool periodic = n.attrInt("periodic", 1) != 0;
  double d = double(periodic ? *size : *size - 1);
  HostTensor w = HostTensor::make(*dt, {*size});
  for (int64_t k = 0; k < *size; ++k) {
    double x = d > 0 ? 2 * M_PI * double(k) / d : 0;
    w.set(k, a0 - a1 * std::cos(x) + a2 * std::cos(2 * x));
  }
  n.outConst(0, std::move(w));
  return success();
}

LogicalResult importHannWindow(NodeImporter &n) { return window(n, 0.5, 0.5, 0); }
LogicalResult importHammingWindow(NodeImporter &n) { return window(n, 25.0 / 46.0, 21.0 / 46.0, 0); }
LogicalResult importBlackmanWindow(NodeImporter &n) { return window(n, 0.42, 0.5, 0.08); }

/// Triangular filters on the mel scale, [dft_length/2 + 1, num_mel_bins], with
/// ONNX's integer bin edges floor((dft_length + 1) * hz / sample_rate).
LogicalResult importMelWeightMatrix(NodeImporter &n) {
  auto bins = scalarInput(n, 0, "num_mel_bins"), dft = scalarInput(n, 1, "dft_length"),
       rate = scalarInput(n, 2, "sample_rate");
  const HostTensor *lo = n.inConst(3), *hi = n.inConst(4);
  auto dt = outputType(n);
  if (failed(bins) || failed(dft) || failed(rate) || failed(dt)) return failure();
  if (!lo || !hi || lo->numel() != 1 || hi->numel() != 1)
    return n.fail("the edge frequencies must be known at compile time (scalars)");
  int64_t spec = *dft / 2 + 1;
  if (*bins <= 0 || *dft <= 0 || *rate <= 0 || spec * *bins > kMaxTable)
    return n.fail("num_mel_bins, dft_length and sample_rate must be positive and of sensible size");
  auto mel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
  double lowMel = mel(lo->get(0)), highMel = mel(hi->get(0));
  // ONNX's reference (and ONNX Runtime) divide the mel range into num_mel_bins + 2
  // steps although only num_mel_bins + 1 are spanned; Kiln matches them.
  double step = (highMel - lowMel) / double(*bins + 2);
  std::vector<int64_t> edge(*bins + 2);
  for (int64_t k = 0; k < *bins + 2; ++k) {
    double hz = 700.0 * (std::pow(10.0, (double(k) * step + lowMel) / 2595.0) - 1.0);
    edge[k] = int64_t(std::floor(double(*dft + 1) * hz / double(*rate)));
    if (edge[k] < 0 || edge[k] >= spec) return n.fail("the edge frequencies fall outside the spectrum");
  }
  HostTensor m = HostTensor::make(*dt, {spec, *bins});
  for (int64_t i = 0; i < *bins; ++i) {
    int64_t l = edge[i], c = edge[i + 1], h = edge[i + 2];
    if (c == l) m.set(c * *bins + i, 1);
    else
      for (int64_t j = l; j <= c; ++j) m.set(j * *bins + i, double(j - l) / double(c - l));
    if (h > c)
      for (int64_t j = c; j < h; ++j) m.set(j * *bins + i, double(h - j) / double(h - c));
  }
  n.outConst(0, std::move(m));
  return success();
}

/// Cosine and sine tables [n, k] for a DFT of length `len` over the first n
/// samples (zero padding beyond them), keeping the first k frequencies.
static std::pair<HostTensor, HostTensor> dftTables(int64_t n, int64_t len, int64_t k) {
  HostTensor c = HostTensor::make(DType::F32, {n, k}), s = HostTensor::make(DType::F32, {n, k});
  for (int64_t t = 0; t < n; ++t)
    for (int64_t f = 0; f < k; ++f) {
      double a = 2 * M_PI * double((t * f) % len) / double(len);
      c.f[t * k + f] = float(std::cos(a));
      s.f[t * k + f] = float(std::sin(a));
    }
  return {c, s};
}

/// [rows, n] x [n, k] as a tosa.matmul with a batch of one.
static Value matmul2d(NodeImporter &n, Value a, Value b) {
  auto as = NodeImporter::shapeOf(a), bs = NodeImporter::shapeOf(b);
  Type f32 = n.b.getF32Type();
  Value zp = n.zeroPoint(f32);
  Value r = n.emit("tosa.matmul", {n.reshape(a, {1, as[0], as[1]}), n.reshape(b, {1, bs[0], bs[1]}), zp, zp},
                   n.tensorType({1, as[0], bs[1]}, f32));
  return n.reshape(r, {as[0], bs[1]});
}

/// The DFT of `re` (and `im`, may be null), both [rows, n], as [rows, k, 2].
static Value dftRows(NodeImporter &n, Value re, Value im, int64_t len, int64_t k, bool inverse) {
  int64_t rows = NodeImporter::shapeOf(re)[0], used = NodeImporter::shapeOf(re)[1];
  auto [c, s] = dftTables(used, len, k);
  // Forward: X = sum x e^{-i a}: Re = xr cos + xi sin, Im = xi cos - xr sin.
  // Inverse: X = (1/len) sum x e^{+i a}: Re = xr cos - xi sin, Im = xr sin + xi cos.
  double sign = inverse ? -1.0 : 1.0;
  Value C = n.constant(c), S = n.constant(s);
  Value outRe = matmul2d(n, re, C), outIm = n.mul(matmul2d(n, re, S), n.splat(-sign, 2, n.b.getF32Type()));
  if (im) {
    outRe = n.add(outRe, n.mul(matmul2d(n, im, S), n.splat(sign, 2, n.b.getF32Type())));
    outIm = n.add(outIm, matmul2d(n, im, C));
  }
  if (inverse) {
    Value inv = n.splat(1.0 / double(len), 2, n.b.getF32Type());
    outRe = n.mul(outRe, inv);
    outIm = n.mul(outIm, inv);
  }
  return n.concat({n.reshape(outRe, {rows, k, 1}), n.reshape(outIm, {rows, k, 1})}, 2);
}

LogicalResult importDFT(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  if (rank < 3 || (xs.back() != 1 && xs.back() != 2))
    return n.fail("input must be [batch, ..., n, 1 or 2], got " + shapeText(xs));
  auto axisOpt = normalizeAxis(n.attrInt("axis", 1), rank);
  if (!axisOpt || *axisOpt == 0 || *axisOpt == rank - 1) return n.fail("axis must name a signal dimension");
  int64_t axis = *axisOpt, sigLen = xs[axis];
  int64_t len = sigLen;
  if (n.hasInput(1)) {
    auto l = scalarInput(n, 1, "dft_length");
    if (failed(l)) return failure();
    len = *l;
  }
  if (len <= 0 || len > (1 << 16)) return n.fail("dft_length " + std::to_string(len) + " is out of range");
  bool inverse = n.attrInt("inverse", 0) != 0, onesided = n.attrInt("onesided", 0) != 0;
  if (inverse && onesided) return n.fail("an inverse one-sided DFT is not supported");
  int64_t k = onesided ? len / 2 + 1 : len, used = std::min(sigLen, len);

  // Move the signal axis last (before it, all other dims flatten into rows).
  std::vector<int64_t> perm;
  for (int64_t d = 0; d < rank - 1; ++d)
    if (d != axis) perm.push_back(d);
  perm.push_back(axis);
  perm.push_back(rank - 1);
  Value x = n.transpose(n.in(0), perm);
  std::vector<int64_t> ts;
  for (int64_t p : perm) ts.push_back(xs[p]);
  int64_t rows = 1;
  for (int64_t d = 0; d < rank - 2; ++d) rows *= ts[d];
  x = n.reshape(x, {rows, sigLen, xs.back()});
  if (used < sigLen) x = n.slice(x, {0, 0, 0}, {rows, used, xs.back()});
  Value re = n.reshape(n.slice(x, {0, 0, 0}, {rows, used, 1}), {rows, used});
  Value im = xs.back() == 2 ? n.reshape(n.slice(x, {0, 0, 1}, {rows, used, 1}), {rows, used}) : Value();
  Value y = dftRows(n, re, im, len, k, inverse);
  // Back to the input's layout with the signal axis now holding k frequencies.
  std::vector<int64_t> ys(ts.begin(), ts.end() - 2);
  ys.push_back(k);
  ys.push_back(2);
  y = n.reshape(y, ys);
  std::vector<int64_t> inv(rank);
  for (int64_t d = 0; d < rank; ++d) inv[perm[d]] = d;
  n.out(0, n.transpose(y, inv));
  return success();
}

/// Frames [batch, frames, frameLength] of a [batch, length, 1|2] signal, each
/// multiplied by the window, DFT'd along the frame: [batch, frames, bins, 2].
LogicalResult importSTFT(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  if (xs.size() != 3 || (xs[2] != 1 && xs[2] != 2)) return n.fail("signal must be [batch, length, 1 or 2]");
  auto step = scalarInput(n, 1, "frame_step");
  if (failed(step)) return failure();
  int64_t frameLen = -1;
  if (n.hasInput(3)) {
    auto fl = scalarInput(n, 3, "frame_length");
    if (failed(fl)) return failure();
    frameLen = *fl;
  }
  bool hasWindow = n.hasInput(2);
  if (hasWindow) {
    auto ws = n.inShape(2);
    if (ws.size() != 1) return n.fail("window must be 1-D");
    if (frameLen >= 0 && ws[0] != frameLen) return n.fail("window length differs from frame_length");
    frameLen = ws[0];
  }
  if (frameLen <= 0) return n.fail("frame_length or window must be given");
  int64_t batch = xs[0], length = xs[1];
  if (*step <= 0 || frameLen > length) return n.fail("frame_step must be positive and frames fit the signal");
  int64_t frames = (length - frameLen) / *step + 1;
  bool onesided = n.attrInt("onesided", 1) != 0;
  if (onesided && xs[2] == 2) return n.fail("a one-sided STFT of a complex signal is not supported");
  int64_t bins = onesided ? frameLen / 2 + 1 : frameLen;
  Value x = n.in(0);
  Type f32 = n.b.getF32Type();
  int64_t st = *step;
  auto framesOf = [&](int64_t part) {
    return n.indexed({}, {}, {batch, frames, frameLen}, f32, [&, part](OpBuilder &b, Location l, ValueRange) -> Value {
      Value bi = linalg::IndexOp::create(b, l, 0), fi = linalg::IndexOp::create(b, l, 1),
            ti = linalg::IndexOp::create(b, l, 2);
      Value pos = arith::AddIOp::create(b, l, arith::MulIOp::create(b, l, fi, arith::ConstantIndexOp::create(b, l, st)), ti);
      return tensor::ExtractOp::create(b, l, x, ValueRange{bi, pos, arith::ConstantIndexOp::create(b, l, part)});
    });
  };
  Value re = framesOf(0), im = xs[2] == 2 ? framesOf(1) : Value();
  if (hasWindow) {
    Value w = n.reshape(n.in(2), {1, 1, frameLen});
    re = n.mul(re, w);
    if (im) im = n.mul(im, w);
  }
  int64_t rows = batch * frames;
  re = n.reshape(re, {rows, frameLen});
  if (im) im = n.reshape(im, {rows, frameLen});
  n.out(0, n.reshape(dftRows(n, re, im, frameLen, bins, false), {batch, frames, bins, 2}));
  return success();
}

} // namespace kiln::onnx_frontend
