//===- OpsQuant.cpp - QuantizeLinear, DequantizeLinear, QLinear*, *Integer --===//
//
// ONNX's linear quantization, with ONNX Runtime's exact arithmetic:
//   quantize    y = saturate(roundHalfEven(x / scale) + zp)         (f32 division)
//   dequantize  y = float(x - zp) * scale                           (x - zp in i32)
//   QLinear*    y = saturate(roundHalfEven(float(acc) * ((sa * sb) / sy)) + zy)
//               with acc = sum (a - za) * (b - zb) (+ bias) in i32
// where saturate clamps to [-128, 127] (int8) or [0, 255] (uint8) (NaN gives the
// lower bound). uint8 is carried as i8 bits (DType::U8): its values are widened
// with arith.extui / uitofp and produced with fptoui.
//
// Everything is elementwise linalg.generic (n.generic) plus one i32 contraction
// (a linalg.generic with reduction loops) per conv/matmul. TOSA does not state
// these semantics: its int8 conv2d/matmul need constant per-tensor zero points
// and signed operands, and tosa.rescale rounds half up in fixed point rather than
// half-to-even in f32. Exact but not fast: the contractions widen to i32 and run
// as plain loops (int8 performance is left for later).
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <cmath>

using namespace mlir;

namespace kiln::onnx_frontend {

static Type i32(NodeImporter &n) { return n.b.getI32Type(); }
static Type f32(NodeImporter &n) { return n.b.getF32Type(); }

//===----------------------------------------------------------------------===//
// Element arithmetic shared by the ops (used in linalg bodies).
//===----------------------------------------------------------------------===//

static Value toI32(OpBuilder &b, Location l, Value v, bool isUnsigned) {
  Type t = b.getI32Type();
  if (v.getType() == t) return v;
  if (isUnsigned) return arith::ExtUIOp::create(b, l, t, v);
  return arith::ExtSIOp::create(b, l, t, v);
}

static Value toF32(OpBuilder &b, Location l, Value v, bool isUnsigned) {
  if (isUnsigned) return arith::UIToFPOp::create(b, l, b.getF32Type(), v);
  return arith::SIToFPOp::create(b, l, b.getF32Type(), v);
}

static Value cf32(OpBuilder &b, Location l, double v) {
  return arith::ConstantOp::create(b, l, b.getF32FloatAttr(float(v)));
}

/// roundHalfEven(q) + zp, saturated to the 8-bit range, as i8 bits. `zp` may be null.
static Value saturate8(OpBuilder &b, Location l, Value q, Value zp, bool isUnsigned) {
  Value v = math::RoundEvenOp::create(b, l, q);
  if (zp) v = arith::AddFOp::create(b, l, v, toF32(b, l, zp, isUnsigned));
  v = arith::MaxNumFOp::create(b, l, v, cf32(b, l, isUnsigned ? 0 : -128));
  v = arith::MinNumFOp::create(b, l, v, cf32(b, l, isUnsigned ? 255 : 127));
  if (isUnsigned) return arith::FPToUIOp::create(b, l, b.getI8Type(), v);
  return arith::FPToSIOp::create(b, l, b.getI8Type(), v);
}

/// The same on the host (float arithmetic, default rounding mode = half to even).
static int64_t saturate8Host(float q, double zp, bool isUnsigned) {
  float v = std::nearbyint(q) + float(zp);
  float lo = isUnsigned ? 0.f : -128.f, hi = isUnsigned ? 255.f : 127.f;
  v = std::isnan(v) ? lo : std::min(std::max(v, lo), hi);
  return int64_t(v);
}

static bool is8Bit(DType t) { return t == DType::I8 || t == DType::U8; }

/// Fails unless input `i` (named `what`) is int8 or uint8.
static LogicalResult require8Bit(NodeImporter &n, size_t i, const char *what) {
  if (!is8Bit(n.inDType(i)))
    return n.fail(std::string(what) + " has element type " + dtypeName(n.inDType(i)) +
                  "; only int8 and uint8 are supported");
  return success();
}

/// Whether quantized input `i` holds uint8. Its zero point `zp` has the same ONNX
/// type and decides when the value's own type was not inferred.
static bool isUnsignedInput(NodeImporter &n, size_t i, size_t zp) {
  return n.inDType(i) == DType::U8 || (n.hasInput(zp) && n.inDType(zp) == DType::U8);
}

//===----------------------------------------------------------------------===//
// QuantizeLinear / DequantizeLinear
//===----------------------------------------------------------------------===//

/// Per-tensor or per-axis layout of a scale/zero-point pair.
struct QuantAxis {
  bool perAxis = false;
  int64_t axis = 0;
};

/// Checks the scale (input `scale`) and zero point (input `zp`, optional) of a
/// QuantizeLinear/DequantizeLinear against x of shape `xs`: one element means
/// per-tensor, a 1-D tensor of x's `axis` extent per-axis. (Opset 19/21's
/// block_size, output_dtype and saturate are checked and removed before import:
/// see normalizeQuantNode in Importer.cpp.)
static FailureOr<QuantAxis> quantAxis(NodeImporter &n, const std::vector<int64_t> &xs, size_t scale, size_t zp) {
  if (n.inDType(scale) != DType::F32)
    return n.fail(std::string("scale has element type ") + dtypeName(n.inDType(scale)) + "; only float is supported");
  auto ss = n.inShape(scale);
  if (n.hasInput(zp) && numElements(n.inShape(zp)) != numElements(ss))
    return n.fail("zero point shape " + shapeText(n.inShape(zp)) + " differs from scale shape " + shapeText(ss));
  QuantAxis q;
  if (numElements(ss) == 1 && ss.size() <= 1) return q;
  int64_t r = int64_t(xs.size());
  auto axis = normalizeAxis(n.attrInt("axis", 1), r);
  if (!axis) return n.fail("axis " + std::to_string(n.attrInt("axis", 1)) + " is out of range for rank " + std::to_string(r));
  if (ss.size() != 1 || ss[0] != xs[*axis])
    return n.fail("scale shape " + shapeText(ss) + " is neither per-tensor nor per-axis [" + std::to_string(xs[*axis]) +
                  "] for axis " + std::to_string(*axis) + " of input " + shapeText(xs));
  q.perAxis = true;
  q.axis = *axis;
  return q;
}

/// Input `i` (a scale or zero point) shaped to broadcast against x of rank `r`.
static Value axisShaped(NodeImporter &n, size_t i, const QuantAxis &q, int64_t r) {
  std::vector<int64_t> s(size_t(std::max<int64_t>(r, 1)), 1);
  if (q.perAxis) s[q.axis] = n.inShape(i)[0];
  return n.reshape(n.in(i), s);
}

/// Index of x's element k into a per-axis parameter (0 when per-tensor).
static std::function<int64_t(int64_t)> paramIndex(const std::vector<int64_t> &xs, const QuantAxis &q) {
  if (!q.perAxis) return [](int64_t) { return int64_t(0); };
  int64_t stride = stridesOf(xs)[q.axis], extent = xs[q.axis];
  return [stride, extent](int64_t k) { return (k / stride) % extent; };
}

// QuantizeLinear (10-21): y = saturate(roundHalfEven(x / y_scale) + y_zero_point).
// The output type is y_zero_point's, else uint8 (an int8 output_dtype became an
// int8 zero point before import).
LogicalResult importQuantizeLinear(NodeImporter &n) {
  if (!isFloat(n.inDType(0)))
    return n.fail(std::string("input has element type ") + dtypeName(n.inDType(0)) + "; only float is supported");
  bool hasZp = n.hasInput(2);
  if (hasZp && failed(require8Bit(n, 2, "y_zero_point"))) return failure();
  bool isUnsigned = !hasZp || n.inDType(2) == DType::U8;
  auto xs = n.inShape(0);
  FailureOr<QuantAxis> q = quantAxis(n, xs, 1, 2);
  if (failed(q)) return failure();

  const HostTensor *xc = n.inConst(0), *sc = n.inConst(1), *zc = hasZp ? n.inConst(2) : nullptr;
  if (xc && sc && (zc || !hasZp)) {
    HostTensor y = HostTensor::make(isUnsigned ? DType::U8 : DType::I8, xs);
    auto at = paramIndex(xs, *q);
    for (int64_t k = 0; k < xc->numel(); ++k)
      y.i[k] = saturate8Host(float(xc->get(k)) / float(sc->get(at(k))), zc ? zc->get(at(k)) : 0, isUnsigned);
    n.outConst(0, std::move(y));
    return success();
  }
  int64_t r = int64_t(xs.size());
  SmallVector<Value> ops{n.in(0), axisShaped(n, 1, *q, r)};
  if (hasZp) ops.push_back(axisShaped(n, 2, *q, r));
  Value y = n.generic(ops, n.b.getI8Type(), [&](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value quot = arith::DivFOp::create(b, l, v[0], v[1]);
    return saturate8(b, l, quot, hasZp ? v[2] : Value(), isUnsigned);
  });
  n.out(0, n.reshape(y, xs));
  return success();
}

// DequantizeLinear (10-21): y = float(x - x_zero_point) * x_scale, the subtraction
// in i32 (x is int8, uint8 or int32).
LogicalResult importDequantizeLinear(NodeImporter &n) {
  DType xt = n.inDType(0);
  if (!is8Bit(xt) && xt != DType::I32)
    return n.fail(std::string("input has element type ") + dtypeName(xt) + "; only int8, uint8 and int32 are supported");
  bool hasZp = n.hasInput(2);
  bool isUnsigned = isUnsignedInput(n, 0, 2);
  auto xs = n.inShape(0);
  FailureOr<QuantAxis> q = quantAxis(n, xs, 1, 2);
  if (failed(q)) return failure();

  const HostTensor *xc = n.inConst(0), *sc = n.inConst(1), *zc = hasZp ? n.inConst(2) : nullptr;
  if (xc && sc && (zc || !hasZp)) {
    // Constant weights are dequantized on the host, so the consumer sees f32 constants.
    HostTensor y = HostTensor::make(DType::F32, xs);
    auto at = paramIndex(xs, *q);
    for (int64_t k = 0; k < xc->numel(); ++k) {
      int32_t d = int32_t(uint32_t(xc->i[k]) - uint32_t(zc ? zc->i[at(k)] : 0));
      y.f[k] = float(d) * float(sc->get(at(k)));
    }
    n.outConst(0, std::move(y));
    return success();
  }
  int64_t r = int64_t(xs.size());
  SmallVector<Value> ops{n.in(0), axisShaped(n, 1, *q, r)};
  if (hasZp) ops.push_back(axisShaped(n, 2, *q, r));
  Value y = n.generic(ops, f32(n), [&](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value d = toI32(b, l, v[0], isUnsigned);
    if (hasZp) d = arith::SubIOp::create(b, l, d, toI32(b, l, v[2], isUnsigned));
    Value f = arith::SIToFPOp::create(b, l, b.getF32Type(), d);
    return arith::MulFOp::create(b, l, f, v[1]);
  });
  n.out(0, n.reshape(y, xs));
  return success();
}

// DynamicQuantizeLinear (11-21), uint8, as ONNX defines it:
//   lo = min(0, min(x)), hi = max(0, max(x)), y_scale = (hi - lo) / 255
//   y_zero_point = roundHalfEven(clamp(0 - lo / y_scale, 0, 255))
//   y = saturate(roundHalfEven(x / y_scale) + y_zero_point)
// An all-zero x (y_scale 0) gives zero point 0 and y 0.
LogicalResult importDynamicQuantizeLinear(NodeImporter &n) {
  if (n.inDType(0) != DType::F32)
    return n.fail(std::string("input has element type ") + dtypeName(n.inDType(0)) + "; only float32 is supported");
  auto xs = n.inShape(0);
  int64_t count = numElements(xs);
  if (count == 0) return n.fail("empty input");
  Value x = n.in(0);
  Value flat = n.reshape(x, {count});
  Value mn = n.reduce("tosa.reduce_min", flat, 0), mx = n.reduce("tosa.reduce_max", flat, 0);
  Value scale = n.generic({mn, mx}, f32(n), [](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value zero = cf32(b, l, 0);
    Value lo = arith::MinimumFOp::create(b, l, v[0], zero), hi = arith::MaximumFOp::create(b, l, v[1], zero);
    return arith::DivFOp::create(b, l, arith::SubFOp::create(b, l, hi, lo), cf32(b, l, 255));
  });
  Value zp = n.generic({mn, scale}, n.b.getI8Type(), [](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value zero = cf32(b, l, 0);
    Value lo = arith::MinimumFOp::create(b, l, v[0], zero);
    Value z = arith::SubFOp::create(b, l, zero, arith::DivFOp::create(b, l, lo, v[1]));
    z = arith::MinNumFOp::create(b, l, arith::MaxNumFOp::create(b, l, z, zero), cf32(b, l, 255));
    return arith::FPToUIOp::create(b, l, b.getI8Type(), math::RoundEvenOp::create(b, l, z));
  });
  Value y = n.generic({x, scale, zp}, n.b.getI8Type(), [](OpBuilder &b, Location l, ValueRange v) -> Value {
    return saturate8(b, l, arith::DivFOp::create(b, l, v[0], v[1]), v[2], /*isUnsigned=*/true);
  });
  n.out(0, n.reshape(y, xs));
  n.out(1, n.reshape(scale, {}));
  n.out(2, n.reshape(zp, {}));
  return success();
}

//===----------------------------------------------------------------------===//
// Integer contractions
//===----------------------------------------------------------------------===//

/// sum over the trailing `reductions` loops of a * b (i32) into a zero-filled i32
/// tensor of `outShape` (the leading loops, indexed by identity).
static Value contractI32(NodeImporter &n, Value a, AffineMap aMap, Value b, AffineMap bMap,
                         ArrayRef<int64_t> outShape, int64_t reductions) {
  int64_t par = int64_t(outShape.size()), loops = par + reductions;
  SmallVector<AffineExpr> outExprs;
  for (int64_t d = 0; d < par; ++d) outExprs.push_back(n.b.getAffineDimExpr(d));
  SmallVector<AffineMap> maps{aMap, bMap, AffineMap::get(loops, 0, outExprs, n.b.getContext())};
  SmallVector<utils::IteratorType> iters(par, utils::IteratorType::parallel);
  iters.append(size_t(reductions), utils::IteratorType::reduction);
  Value init = tensor::EmptyOp::create(n.b, n.loc, outShape, i32(n));
  Value zero = arith::ConstantOp::create(n.b, n.loc, n.b.getI32IntegerAttr(0));
  init = linalg::FillOp::create(n.b, n.loc, ValueRange{zero}, ValueRange{init}).getResult(0);
  auto op = linalg::GenericOp::create(n.b, n.loc, TypeRange{init.getType()}, ValueRange{a, b}, ValueRange{init}, maps,
                                      iters, [](OpBuilder &nb, Location l, ValueRange args) {
                                        Value p = arith::MulIOp::create(nb, l, args[0], args[1]);
                                        linalg::YieldOp::create(nb, l, ValueRange{arith::AddIOp::create(nb, l, args[2], p)});
                                      });
  return op.getResult(0);
}

/// Input `x` widened to i32 minus its zero point (input `zp`; none when the node
/// lacks it), the zero point reshaped to `zpShape` to broadcast against x. Folded
/// on the host when both are constants (constant weights).
static Value widenMinusZp(NodeImporter &n, size_t x, size_t zp, const std::vector<int64_t> &zpShape,
                          bool isUnsigned) {
  bool hasZp = n.hasInput(zp);
  auto xs = n.inShape(x);
  const HostTensor *xc = n.inConst(x), *zc = hasZp ? n.inConst(zp) : nullptr;
  if (xc && (zc || !hasZp)) {
    // Host values of uint8 tensors are already 0..255.
    HostTensor z = zc ? *zc : HostTensor::ints({0}, DType::I32);
    z.shape = zc ? zpShape : std::vector<int64_t>{1};
    auto r = hostBinary(*xc, z, DType::I32, [](double a, double b) { return a - b; });
    if (r && r->shape == xs) return n.constant(*r);
  }
  SmallVector<Value> ops{n.in(x)};
  if (hasZp) ops.push_back(n.reshape(n.in(zp), zpShape));
  return n.generic(ops, i32(n), [&](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value d = toI32(b, l, v[0], isUnsigned);
    return v.size() > 1 ? arith::SubIOp::create(b, l, d, toI32(b, l, v[1], isUnsigned)).getResult() : d;
  });
}

//===----------------------------------------------------------------------===//
// ConvInteger / QLinearConv
//===----------------------------------------------------------------------===//

/// The operand positions of a quantized convolution.
struct QConvInputs {
  size_t x, xZp, w, wZp;
};

/// sum (x - x_zp) * (w - w_zp) over each window, as i32 [N, M, out...]: x padded
/// (after subtracting its zero point, so padding contributes 0, as ONNX pads with
/// the zero point) and grouped as [N, G, C/G, ...], one linalg.generic over
/// (n, g, m, out..., c, k...). Any spatial rank.
static FailureOr<Value> integerConv(NodeImporter &n, const QConvInputs &in) {
  if (failed(require8Bit(n, in.x, "x")) || failed(require8Bit(n, in.w, "w"))) return failure();
  auto xs = n.inShape(in.x), ws = n.inShape(in.w);
  if (xs.size() < 3) return n.fail("input must have rank >= 3 (N, C, spatial...)");
  if (ws.size() != xs.size()) return n.fail("weight rank differs from input rank");
  int64_t r = int64_t(xs.size()) - 2, N = xs[0], C = xs[1], M = ws[0], Cg = ws[1];
  int64_t G = n.attrInt("group", 1);
  if (G <= 0 || C % G || M % G || Cg != C / G)
    return n.fail("weight shape " + shapeText(ws) + " does not match input channels " + std::to_string(C) +
                  " with group " + std::to_string(G));
  std::vector<int64_t> kernel(ws.begin() + 2, ws.end());
  auto ks = n.attrInts("kernel_shape");
  if (!ks.empty() && ks != kernel) return n.fail("kernel_shape differs from the weight shape");
  auto stride = n.attrInts("strides"), dil = n.attrInts("dilations"), pads = n.attrInts("pads");
  if (stride.empty()) stride.assign(size_t(r), 1);
  if (dil.empty()) dil.assign(size_t(r), 1);
  if (int64_t(stride.size()) != r || int64_t(dil.size()) != r)
    return n.fail("strides/dilations do not match the spatial rank");
  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  if (autoPad == "NOTSET" && !pads.empty() && int64_t(pads.size()) != 2 * r)
    return n.fail("pads must have 2 entries per spatial axis");
  std::vector<int64_t> padSpec(size_t(2 * (r + 2)), 0), padded = xs, out;
  for (int64_t k = 0; k < r; ++k) {
    int64_t in = xs[k + 2];
    if (stride[k] <= 0 || dil[k] <= 0) return n.fail("non-positive stride or dilation");
    int64_t eff = (kernel[k] - 1) * dil[k] + 1, pb = 0, pe = 0;
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      std::tie(pb, pe) = samePads(in, stride[k], eff, autoPad == "SAME_UPPER");
    } else if (autoPad == "NOTSET") {
      if (!pads.empty()) { pb = pads[k]; pe = pads[k + r]; }
      if (pb < 0 || pe < 0) return n.fail("negative pads");
    } else if (autoPad != "VALID") {
      return n.fail("unknown auto_pad '" + autoPad + "'");
    }
    int64_t span = in + pb + pe - eff;
    if (span < 0) return n.fail("window " + std::to_string(eff) + " is larger than the padded input");
    out.push_back(span / stride[k] + 1);
    padSpec[2 * (k + 2)] = pb;
    padSpec[2 * (k + 2) + 1] = pe;
    padded[k + 2] += pb + pe;
  }

  if (n.hasInput(in.xZp)) {
    if (failed(require8Bit(n, in.xZp, "x_zero_point"))) return failure();
    if (numElements(n.inShape(in.xZp)) != 1) return n.fail("x_zero_point must be a scalar (per-tensor)");
  }
  std::vector<int64_t> wZpShape(ws.size(), 1);
  if (n.hasInput(in.wZp)) {
    if (failed(require8Bit(n, in.wZp, "w_zero_point"))) return failure();
    int64_t cnt = numElements(n.inShape(in.wZp));
    if (cnt != 1 && (n.inShape(in.wZp).size() != 1 || cnt != M))
      return n.fail("w_zero_point shape " + shapeText(n.inShape(in.wZp)) + " is neither a scalar nor [" +
                    std::to_string(M) + "] (per output channel)");
    wZpShape[0] = cnt;
  }
  Value xi = widenMinusZp(n, in.x, in.xZp, std::vector<int64_t>(xs.size(), 1), isUnsignedInput(n, in.x, in.xZp));
  Value wi = widenMinusZp(n, in.w, in.wZp, wZpShape, isUnsignedInput(n, in.w, in.wZp));
  if (padded != xs)
    xi = n.emit("tosa.pad", {xi, n.shapeValue(padSpec), n.splat(0, 1, i32(n))}, n.tensorType(padded, i32(n)));
  std::vector<int64_t> xg{N, G, Cg}, wg{G, M / G, Cg}, yg{N, G, M / G};
  xg.insert(xg.end(), padded.begin() + 2, padded.end());
  wg.insert(wg.end(), kernel.begin(), kernel.end());
  yg.insert(yg.end(), out.begin(), out.end());
  xi = n.reshape(xi, xg);
  wi = n.reshape(wi, wg);
  // Loops: n, g, m, o_1..o_r | c, k_1..k_r.
  int64_t loops = 3 + 2 * r + 1;
  auto d = [&](int64_t k) { return n.b.getAffineDimExpr(unsigned(k)); };
  SmallVector<AffineExpr> xe{d(0), d(1), d(3 + r)}, we{d(1), d(2), d(3 + r)};
  for (int64_t k = 0; k < r; ++k) {
    xe.push_back(d(3 + k) * stride[k] + d(4 + r + k) * dil[k]);
    we.push_back(d(4 + r + k));
  }
  Value acc = contractI32(n, xi, AffineMap::get(unsigned(loops), 0, xe, n.b.getContext()), wi,
                          AffineMap::get(unsigned(loops), 0, we, n.b.getContext()), yg, 1 + r);
  std::vector<int64_t> ys{N, M};
  ys.insert(ys.end(), out.begin(), out.end());
  return n.reshape(acc, ys);
}

// ConvInteger (10-21): int32 y = conv(x - x_zero_point, w - w_zero_point), any
// spatial rank, groups, per-tensor x zero point, per-tensor or per-output-channel
// w zero point.
LogicalResult importConvInteger(NodeImporter &n) {
  FailureOr<Value> acc = integerConv(n, {0, 2, 1, 3});
  if (failed(acc)) return failure();
  n.out(0, *acc);
  return success();
}

/// Scale input `i` as f32, checked to have one element or `perChannel` (when
/// nonzero) elements, reshaped to `shape` (for broadcasting against the output).
static FailureOr<Value> scaleInput(NodeImporter &n, size_t i, const char *what, int64_t perChannel,
                                   std::vector<int64_t> shape) {
  if (n.inDType(i) != DType::F32)
    return n.fail(std::string(what) + " has element type " + dtypeName(n.inDType(i)) + "; only float is supported");
  int64_t cnt = numElements(n.inShape(i));
  if (cnt != 1 && (!perChannel || cnt != perChannel || n.inShape(i).size() != 1))
    return n.fail(std::string(what) + " shape " + shapeText(n.inShape(i)) + " is not supported");
  if (cnt == 1) shape.assign(shape.size(), 1);
  return n.reshape(n.in(i), shape);
}

/// y = saturate(roundHalfEven(float(acc + bias) * ((sa * sb) / sy)) + y_zero_point),
/// the operands shaped to broadcast against acc; `bias` may be null.
static Value requantize(NodeImporter &n, Value acc, Value bias, Value sa, Value sb, Value sy, Value yZp,
                        bool yUnsigned) {
  SmallVector<Value> ops{acc, sa, sb, sy, yZp};
  if (bias) ops.push_back(bias);
  return n.generic(ops, n.b.getI8Type(), [&](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value a = v.size() > 5 ? arith::AddIOp::create(b, l, v[0], v[5]).getResult() : v[0];
    Value mult = arith::DivFOp::create(b, l, arith::MulFOp::create(b, l, v[1], v[2]), v[3]);
    Value f = arith::MulFOp::create(b, l, arith::SIToFPOp::create(b, l, b.getF32Type(), a), mult);
    return saturate8(b, l, f, v[4], yUnsigned);
  });
}

// QLinearConv (10-21): ConvInteger's accumulator plus the int32 bias, requantized
// with x_scale * w_scale (per tensor or per output channel) / y_scale.
LogicalResult importQLinearConv(NodeImporter &n) {
  if (failed(require8Bit(n, 7, "y_zero_point"))) return failure();
  FailureOr<Value> acc = integerConv(n, {0, 2, 3, 5});
  if (failed(acc)) return failure();
  auto ys = n.shapeOf(*acc);
  int64_t M = ys[1];
  std::vector<int64_t> chan(ys.size(), 1);
  chan[1] = M;
  FailureOr<Value> sx = scaleInput(n, 1, "x_scale", 0, chan), sw = scaleInput(n, 4, "w_scale", M, chan),
                   sy = scaleInput(n, 6, "y_scale", 0, chan);
  if (failed(sx) || failed(sw) || failed(sy)) return failure();
  if (numElements(n.inShape(7)) != 1) return n.fail("y_zero_point must be a scalar (per-tensor)");
  Value bias;
  if (n.hasInput(8)) {
    if (n.inDType(8) != DType::I32) return n.fail("bias must be int32");
    if (n.inShape(8) != std::vector<int64_t>{M}) return n.fail("bias shape must be [" + std::to_string(M) + "]");
    bias = n.reshape(n.in(8), chan);
  }
  Value yZp = n.reshape(n.in(7), std::vector<int64_t>(ys.size(), 1));
  n.out(0, requantize(n, *acc, bias, *sx, *sw, *sy, yZp, n.inDType(7) == DType::U8));
  return success();
}

//===----------------------------------------------------------------------===//
// MatMulInteger / QLinearMatMul
//===----------------------------------------------------------------------===//

/// Shapes of a numpy matmul: 1-D operands get a unit row (a) or column (b).
struct MatMulShape {
  std::vector<int64_t> a, b, batch, out;
  int64_t M, K, N;
};

static FailureOr<MatMulShape> matmulShape(NodeImporter &n, size_t a, size_t b) {
  MatMulShape s;
  s.a = n.inShape(a);
  s.b = n.inShape(b);
  if (s.a.empty() || s.b.empty()) return n.fail("matmul of a scalar");
  bool aVec = s.a.size() == 1, bVec = s.b.size() == 1;
  if (aVec) s.a.insert(s.a.begin(), 1);
  if (bVec) s.b.push_back(1);
  s.M = s.a[s.a.size() - 2];
  s.K = s.a.back();
  s.N = s.b.back();
  if (s.b[s.b.size() - 2] != s.K)
    return n.fail("inner dimensions differ: " + shapeText(n.inShape(a)) + " x " + shapeText(n.inShape(b)));
  auto batch = broadcastShapes({s.a.begin(), s.a.end() - 2}, {s.b.begin(), s.b.end() - 2});
  if (!batch) return n.fail("batch dimensions do not broadcast");
  s.batch = *batch;
  s.out = s.batch;
  if (!aVec) s.out.push_back(s.M);
  if (!bVec) s.out.push_back(s.N);
  return s;
}

/// The shape to give zero point or scale input `i` of matmul operand a (`rows`)
/// or b of shape `opShape` (1-D operands already made 2-D) so that it broadcasts
/// against the operand and equally against the [batch..., M, N] result: one
/// element (per tensor); a 1-D tensor of M elements for a (per row, as [M, 1]) or
/// of N for b (per column); or a tensor that broadcasts against the operand with
/// a unit K dimension.
static FailureOr<std::vector<int64_t>> matmulParamShape(NodeImporter &n, size_t i, const char *what, bool rows,
                                                        const std::vector<int64_t> &opShape) {
  auto ps = n.inShape(i);
  int64_t cnt = numElements(ps), extent = rows ? opShape[opShape.size() - 2] : opShape.back();
  if (cnt == 1) return std::vector<int64_t>{1};
  if (ps.size() == 1 && cnt == extent) return rows ? std::vector<int64_t>{extent, 1} : std::vector<int64_t>{extent};
  auto bs = ps.size() >= 2 ? broadcastShapes(ps, opShape) : std::nullopt;
  if (!bs || *bs != opShape || ps[rows ? ps.size() - 1 : ps.size() - 2] != 1)
    return n.fail(std::string(what) + " shape " + shapeText(ps) + " is neither per-tensor nor per-" +
                  (rows ? "row" : "column") + " for an operand of shape " + shapeText(opShape));
  return ps;
}

/// sum_k (a - a_zp) * (b - b_zp) as i32 [batch..., M, N] (1-D operands' unit
/// dims kept), one linalg.generic over (batch..., m, n, k) reading broadcast
/// batch dims at 0.
static FailureOr<Value> integerMatMul(NodeImporter &n, const MatMulShape &s, size_t a, size_t aZp, size_t b,
                                      size_t bZp) {
  if (failed(require8Bit(n, a, "A")) || failed(require8Bit(n, b, "B"))) return failure();
  auto operand = [&](size_t x, size_t zp, bool rows, const std::vector<int64_t> &shape,
                     const char *what) -> FailureOr<Value> {
    std::vector<int64_t> zs;
    if (n.hasInput(zp)) {
      if (failed(require8Bit(n, zp, what))) return failure();
      FailureOr<std::vector<int64_t>> p = matmulParamShape(n, zp, what, rows, shape);
      if (failed(p)) return failure();
      zs = *p;
    }
    return n.reshape(widenMinusZp(n, x, zp, zs, isUnsignedInput(n, x, zp)), shape);
  };
  FailureOr<Value> ai = operand(a, aZp, true, s.a, "a_zero_point");
  if (failed(ai)) return failure();
  FailureOr<Value> bi = operand(b, bZp, false, s.b, "b_zero_point");
  if (failed(bi)) return failure();
  int64_t nb = int64_t(s.batch.size()), loops = nb + 3;
  auto d = [&](int64_t k) { return n.b.getAffineDimExpr(unsigned(k)); };
  // Loops: batch..., m, n | k. Operands get unit batch dims in front; broadcast ones read index 0.
  auto map = [&](Value &v, int64_t r0, int64_t r1) {
    std::vector<int64_t> vs = n.shapeOf(v);
    std::vector<int64_t> full(size_t(nb) - (vs.size() - 2), 1);
    full.insert(full.end(), vs.begin(), vs.end());
    v = n.reshape(v, full);
    SmallVector<AffineExpr> e;
    for (int64_t k = 0; k < nb; ++k) e.push_back(full[k] == 1 && s.batch[k] != 1 ? n.b.getAffineConstantExpr(0) : d(k));
    e.push_back(d(r0));
    e.push_back(d(r1));
    return AffineMap::get(unsigned(loops), 0, e, n.b.getContext());
  };
  Value av = *ai, bv = *bi;
  AffineMap am = map(av, nb, nb + 2), bm = map(bv, nb + 2, nb + 1);
  std::vector<int64_t> outShape = s.batch;
  outShape.push_back(s.M);
  outShape.push_back(s.N);
  return contractI32(n, av, am, bv, bm, outShape, 1);
}

// MatMulInteger (10-21): int32 Y = matmul(A - a_zero_point, B - b_zero_point)
// with numpy broadcasting; zero points per tensor, per row of A, per column of B.
LogicalResult importMatMulInteger(NodeImporter &n) {
  FailureOr<MatMulShape> s = matmulShape(n, 0, 1);
  if (failed(s)) return failure();
  FailureOr<Value> acc = integerMatMul(n, *s, 0, 2, 1, 3);
  if (failed(acc)) return failure();
  n.out(0, n.reshape(*acc, s->out));
  return success();
}

// QLinearMatMul (10-21): MatMulInteger's accumulator requantized with
// a_scale * b_scale / y_scale; a's scale/zero point per tensor or per row, b's
// per tensor or per column, y's per tensor.
LogicalResult importQLinearMatMul(NodeImporter &n) {
  if (failed(require8Bit(n, 7, "y_zero_point"))) return failure();
  FailureOr<MatMulShape> s = matmulShape(n, 0, 3);
  if (failed(s)) return failure();
  for (size_t i : {1, 4, 6})
    if (n.inDType(i) != DType::F32)
      return n.fail(std::string("scale input ") + std::to_string(i) + " has element type " + dtypeName(n.inDType(i)) +
                    "; only float is supported");
  FailureOr<Value> acc = integerMatMul(n, *s, 0, 2, 3, 5);
  if (failed(acc)) return failure();
  FailureOr<std::vector<int64_t>> sas = matmulParamShape(n, 1, "a_scale", true, s->a);
  if (failed(sas)) return failure();
  FailureOr<std::vector<int64_t>> sbs = matmulParamShape(n, 4, "b_scale", false, s->b);
  if (failed(sbs)) return failure();
  Value sa = n.reshape(n.in(1), *sas), sb = n.reshape(n.in(4), *sbs);
  if (numElements(n.inShape(6)) != 1 || numElements(n.inShape(7)) != 1)
    return n.fail("y_scale and y_zero_point must be scalars (per-tensor)");
  Value sy = n.reshape(n.in(6), {1}), yZp = n.reshape(n.in(7), {1});
  Value y = requantize(n, *acc, Value(), sa, sb, sy, yZp, n.inDType(7) == DType::U8);
  n.out(0, n.reshape(y, s->out));
  return success();
}

} // namespace kiln::onnx_frontend
