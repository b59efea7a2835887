//===- OpsImage.cpp - Resize, Upsample, DepthToSpace, ConvTranspose, LRN ----===//
//
// Resize and Upsample follow ONNX's reference interpolation exactly: for every
// resized axis the source taps and their weights are computed on the host in
// double precision (they depend only on the shapes and attributes), and a
// linalg.generic reads the taps from the input with tensor.extract. Nearest
// resizes all axes in one generic; linear and cubic resize one axis at a time,
// innermost first, which is how the reference nests its 1-D interpolations.
//
// ConvTranspose is decomposed into zero insertion (stride), padding and a
// tosa.conv2d with the flipped, transposed kernel, so that dilations, groups,
// output_padding and negative pads all follow from one rule.
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::onnx_frontend {

static Type f32(NodeImporter &n) { return n.b.getF32Type(); }

/// The largest output dimension Resize/Upsample accept.
static constexpr double kMaxDim = double(int64_t(1) << 28);

static int64_t floorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

//===----------------------------------------------------------------------===//
// Resize / Upsample
//===----------------------------------------------------------------------===//

namespace {

enum class InterpMode { Nearest, Linear, Cubic };

/// Per-axis source taps: for output coordinate x and tap t, the (edge-clamped)
/// source index idx[x*taps+t] with weight w[x*taps+t]; `outside` marks the
/// coordinates that tf_crop_and_resize maps outside the input.
struct AxisTable {
  int64_t in = 0, out = 0;
  int taps = 1;
  std::vector<int64_t> idx;
  std::vector<double> w;
  std::vector<uint8_t> outside;
  bool anyOutside = false;
  bool identity = false;
};

struct ResizeSpec {
  InterpMode mode = InterpMode::Nearest;
  std::string ctm = "half_pixel";
  std::string nearestMode = "round_prefer_floor";
  double cubicA = -0.75;
  bool excludeOutside = false;
  double extrapolation = 0.0;
  bool simpleNearest = false; ///< Upsample/Resize-10: floor when upsampling, ceil when downsampling
};

} // namespace

/// The source coordinate of output coordinate x, as ONNX's reference computes it.
/// Returns false when tf_crop_and_resize maps it outside the input.
static bool sourceCoord(const ResizeSpec &s, double x, double scale, int64_t in, int64_t outInt, double roiStart,
                        double roiEnd, double &xo) {
  double outW = scale * double(in);
  const std::string &m = s.ctm;
  if (m == "align_corners") {
    xo = outW == 1 ? 0.0 : x * double(in - 1) / (outW - 1);
  } else if (m == "asymmetric") {
    xo = x / scale;
  } else if (m == "tf_half_pixel_for_nn") {
    xo = (x + 0.5) / scale;
  } else if (m == "pytorch_half_pixel") {
    xo = outW == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
  } else if (m == "half_pixel_symmetric") {
    double adjustment = double(outInt) / outW;
    double center = double(in) / 2;
    double offset = center * (1 - adjustment);
    xo = offset + (x + 0.5) / scale - 0.5;
  } else if (m == "tf_crop_and_resize") {
    if (outW == 1) xo = (roiEnd - roiStart) * double(in - 1) / 2;
    else xo = x * (roiEnd - roiStart) * double(in - 1) / (outW - 1);
    xo += roiStart * double(in - 1);
    if (xo < 0 || xo > double(in - 1)) return false;
  } else { // half_pixel
    xo = (x + 0.5) / scale - 0.5;
  }
  return true;
}

static AxisTable buildAxisTable(const ResizeSpec &s, int64_t in, int64_t out, double scale, double roiStart,
                                double roiEnd) {
  AxisTable t;
  t.in = in;
  t.out = out;
  int n = s.mode == InterpMode::Cubic ? 4 : 2;
  t.taps = s.mode == InterpMode::Nearest ? 1 : n;
  t.idx.assign(size_t(out * t.taps), 0);
  t.w.assign(size_t(out * t.taps), 0.0);
  t.outside.assign(size_t(out), 0);
  bool identity = in == out;
  for (int64_t x = 0; x < out; ++x) {
    double xo = 0;
    if (!sourceCoord(s, double(x), scale, in, out, roiStart, roiEnd, xo)) {
      t.outside[x] = 1;
      t.anyOutside = true;
      identity = false;
      for (int k = 0; k < t.taps; ++k) t.idx[x * t.taps + k] = s.mode == InterpMode::Nearest ? -1 : 0;
      continue;
    }
    double fl = std::floor(xo);
    bool integral = fl == xo;
    double ratio = integral ? 1.0 : xo - fl;
    // The n nearest indices of the edge-padded axis, preferring the lower ones.
    int64_t pad = (n + 1) / 2, limit = in + 2 * pad;
    double xp = xo + double(pad);
    double startD = std::ceil(xp) - double(n / 2);
    startD = std::min(std::max(startD, 0.0), double(limit - n));
    int64_t start = int64_t(startD);
    auto clampIdx = [&](int64_t i) { return std::min(std::max<int64_t>(i, 0), in - 1); };
    if (s.mode == InterpMode::Nearest) {
      int pick;
      if (s.simpleNearest) {
        // Upsample's rule: truncate when enlarging, round up when shrinking.
        int64_t i = scale < 1 ? int64_t(std::ceil(xo)) : int64_t(std::floor(xo));
        t.idx[x] = clampIdx(i);
        identity &= t.idx[x] == x;
        continue;
      }
      if (integral) pick = 1;
      else if (s.nearestMode == "round_prefer_ceil") pick = ratio < 0.5 ? 0 : 1;
      else if (s.nearestMode == "floor") pick = 0;
      else if (s.nearestMode == "ceil") pick = 1;
      else pick = ratio <= 0.5 ? 0 : 1; // round_prefer_floor
      t.idx[x] = clampIdx(start + pick - pad);
      identity &= t.idx[x] == x;
      continue;
    }
    std::vector<double> c;
    if (s.mode == InterpMode::Linear) {
      c = {1 - ratio, ratio};
    } else {
      double A = s.cubicA, r = ratio;
      c = {((A * (r + 1) - 5 * A) * (r + 1) + 8 * A) * (r + 1) - 4 * A,
           ((A + 2) * r - (A + 3)) * r * r + 1,
           ((A + 2) * (1 - r) - (A + 3)) * (1 - r) * (1 - r) + 1,
           ((A * ((1 - r) + 1) - 5 * A) * ((1 - r) + 1) + 8 * A) * ((1 - r) + 1) - 4 * A};
    }
    if (s.excludeOutside) {
      double sum = 0;
      for (int k = 0; k < n; ++k) {
        int64_t i = start + k - pad;
        if (i < 0 || i >= in) c[k] = 0;
        sum += c[k];
      }
      for (int k = 0; k < n; ++k) c[k] = sum != 0 ? c[k] / sum : 0;
    }
    for (int k = 0; k < n; ++k) {
      t.idx[x * n + k] = clampIdx(start + k - pad);
      t.w[x * n + k] = c[k];
    }
    // Identity: all the weight on the tap at x.
    double onX = 0, offX = 0;
    for (int k = 0; k < n; ++k) (t.idx[x * n + k] == x ? onX : offX) += std::fabs(c[k]);
    identity &= onX == 1.0 && offX == 0.0;
  }
  t.identity = identity;
  return t;
}

/// A rank-1 table along output axis `axis` as a generic input map.
static AffineMap axisMap(NodeImporter &n, int64_t rank, int64_t axis) {
  return AffineMap::get(rank, 0, {n.b.getAffineDimExpr(axis)}, n.b.getContext());
}

static Value idxTable(NodeImporter &n, const AxisTable &t, int k) {
  HostTensor h = HostTensor::make(DType::I32, {t.out});
  for (int64_t x = 0; x < t.out; ++x) h.i[x] = t.idx[x * t.taps + k];
  return n.constant(h);
}

static Value weightTable(NodeImporter &n, const AxisTable &t, int k) {
  HostTensor h = HostTensor::make(DType::F32, {t.out});
  for (int64_t x = 0; x < t.out; ++x) h.f[x] = float(t.w[x * t.taps + k]);
  return n.constant(h);
}

/// One interpolation step along `axis` from tables of shape [out]: idx[k], w[k]
/// (at least one pair unless ext is given), and optionally ext (1.0 where the
/// output takes the extrapolation value).
static Value interpAxis(NodeImporter &n, Value cur, int64_t axis, int64_t out, ArrayRef<Value> idx,
                        ArrayRef<Value> w, Value ext, double extrapolation) {
  auto cs = n.shapeOf(cur);
  int64_t rank = int64_t(cs.size());
  std::vector<int64_t> ns = cs;
  ns[axis] = out;
  SmallVector<Value> ins;
  SmallVector<AffineMap> maps;
  for (size_t k = 0; k < idx.size(); ++k) {
    ins.push_back(idx[k]);
    ins.push_back(w[k]);
    maps.push_back(axisMap(n, rank, axis));
    maps.push_back(axisMap(n, rank, axis));
  }
  if (ext) {
    ins.push_back(ext);
    maps.push_back(axisMap(n, rank, axis));
  }
  size_t taps = idx.size();
  Type elem = f32(n);
  return n.indexed(ins, maps, ns, elem, [&](OpBuilder &b, Location l, ValueRange v) -> Value {
    SmallVector<Value> coords;
    for (int64_t d = 0; d < rank; ++d) coords.push_back(linalg::IndexOp::create(b, l, d));
    Value acc;
    for (size_t k = 0; k < taps; ++k) {
      coords[axis] = arith::IndexCastOp::create(b, l, b.getIndexType(), v[2 * k]);
      Value x = tensor::ExtractOp::create(b, l, cur, coords);
      Value term = arith::MulFOp::create(b, l, v[2 * k + 1], x);
      acc = acc ? arith::AddFOp::create(b, l, acc, term).getResult() : term;
    }
    if (ext) {
      // ext is 1 where the source coordinate falls outside the input.
      Value e = arith::ConstantOp::create(b, l, b.getF32FloatAttr(float(extrapolation)));
      if (!acc) return e;
      Value zero = arith::ConstantOp::create(b, l, b.getF32FloatAttr(0.f));
      Value out = arith::CmpFOp::create(b, l, arith::CmpFPredicate::ONE, v[2 * taps], zero);
      acc = arith::SelectOp::create(b, l, out, e, acc);
    }
    return acc;
  });
}

/// Resizes input 0 to `outShape` with per-axis `scales`. `roi` is empty, or
/// holds [starts..., ends...] (constant); `roiValue` is a runtime roi tensor.
static LogicalResult emitResize(NodeImporter &n, const ResizeSpec &spec, const std::vector<int64_t> &outShape,
                                const std::vector<double> &scales, const std::vector<double> &roi, Value roiValue) {
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  for (int64_t d = 0; d < rank; ++d) {
    if (xs[d] <= 0) return n.fail("resizing an empty tensor is not supported");
    if (outShape[d] <= 0) return n.fail("output shape " + shapeText(outShape) + " is empty");
    if (outShape[d] > (int64_t(1) << 28)) return n.fail("output shape " + shapeText(outShape) + " is too large");
  }
  if (numElements(outShape) > (int64_t(1) << 31)) return n.fail("output shape " + shapeText(outShape) + " is too large");
  bool tfCrop = spec.ctm == "tf_crop_and_resize";
  if (spec.mode != InterpMode::Nearest && !isFloat(n.inDType(0)))
    return n.fail(std::string("linear/cubic resize of ") + dtypeName(n.inDType(0)) + " tensors is not supported");

  if (tfCrop && roiValue) {
    // The roi is only known at run time: compute linear taps in the IR.
    if (spec.mode != InterpMode::Linear)
      return n.fail("tf_crop_and_resize with a runtime roi is only supported for mode linear");
    if (!isFloat(n.inDType(1))) return n.fail("roi must be floating-point");
    Value roiF = roiValue;
    Value cur = n.in(0);
    Type i32 = n.b.getIntegerType(32), i1 = n.b.getI1Type();
    for (int64_t a = rank - 1; a >= 0; --a) {
      int64_t in = xs[a], out = outShape[a];
      if (in == 1 && out == 1) continue;
      Value r0 = n.slice(roiF, {a}, {1}), r1 = n.slice(roiF, {a + rank}, {1});
      Value inm1 = n.splat(double(in - 1), 1, f32(n));
      Value xo;
      double outW = double(out) / double(in) * double(in);
      if (outW == 1) {
        xo = n.mul(n.mul(n.sub(r1, r0), inm1), n.splat(0.5, 1, f32(n)));
      } else {
        HostTensor iota = HostTensor::make(DType::F32, {out});
        for (int64_t x = 0; x < out; ++x) iota.f[x] = float(x);
        Value step = n.mul(n.sub(r1, r0), n.splat(double(in - 1) / (outW - 1), 1, f32(n)));
        xo = n.mul(n.constant(iota), step);
      }
      xo = n.add(xo, n.mul(r0, inm1));
      if (n.shapeOf(xo) != std::vector<int64_t>{out}) xo = n.reshape(xo, {out});
      Value outside = n.binary("tosa.logical_or", n.binary("tosa.greater", n.splat(0, 1, f32(n)), xo, i1),
                               n.binary("tosa.greater", xo, inm1, i1), i1);
      Value base = n.sub(n.unary("tosa.ceil", xo), n.splat(1, 1, f32(n)));
      Value ratio = n.sub(xo, base);
      Value zero = n.splat(0, 1, f32(n));
      Value w1 = n.emit("tosa.select", {outside, n.reshape(zero, {1}), ratio}, ratio.getType());
      Value w0 = n.emit("tosa.select", {outside, n.reshape(zero, {1}),
                                        n.sub(n.splat(1, 1, f32(n)), ratio)}, ratio.getType());
      auto toIdx = [&](Value f) {
        // Clamp in float first so that the cast cannot overflow.
        Value c = n.clamp(f, 0, double(in - 1));
        return n.emit("tosa.cast", {c}, n.tensorType({out}, i32));
      };
      Value i0 = toIdx(base), i1v = toIdx(n.add(base, n.splat(1, 1, f32(n))));
      Value ext = n.emit("tosa.cast", {outside}, n.tensorType({out}, f32(n)));
      cur = interpAxis(n, cur, a, out, {i0, i1v}, {w0, w1}, ext, spec.extrapolation);
    }
    n.out(0, cur);
    return success();
  }

  std::vector<AxisTable> tables;
  for (int64_t d = 0; d < rank; ++d) {
    double r0 = 0, r1 = 1;
    if (tfCrop) {
      if (int64_t(roi.size()) != 2 * rank) return n.fail("roi must hold 2 values per axis");
      r0 = roi[d];
      r1 = roi[d + rank];
    }
    tables.push_back(buildAxisTable(spec, xs[d], outShape[d], scales[d], r0, r1));
  }

  Value x = n.in(0);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  if (spec.mode == InterpMode::Nearest) {
    SmallVector<Value> ins;
    SmallVector<AffineMap> maps;
    std::vector<int64_t> tableOf(rank, -1);
    bool anyOutside = false;
    for (int64_t d = 0; d < rank; ++d) {
      if (tables[d].identity) continue;
      tableOf[d] = int64_t(ins.size());
      ins.push_back(idxTable(n, tables[d], 0));
      maps.push_back(axisMap(n, rank, d));
      anyOutside |= tables[d].anyOutside;
    }
    if (ins.empty()) {
      n.out(0, x);
      return success();
    }
    double extrap = spec.extrapolation;
    n.out(0, n.indexed(ins, maps, outShape, elem, [&](OpBuilder &b, Location l, ValueRange v) -> Value {
      SmallVector<Value> coords;
      Value outside;
      Value zeroI = anyOutside ? arith::ConstantOp::create(b, l, b.getI32IntegerAttr(0)).getResult() : Value();
      for (int64_t d = 0; d < rank; ++d) {
        if (tableOf[d] < 0) {
          coords.push_back(linalg::IndexOp::create(b, l, d));
          continue;
        }
        Value i = v[tableOf[d]];
        if (anyOutside) {
          Value o = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zeroI);
          outside = outside ? arith::OrIOp::create(b, l, outside, o).getResult() : o;
          i = arith::MaxSIOp::create(b, l, i, zeroI);
        }
        coords.push_back(arith::IndexCastOp::create(b, l, b.getIndexType(), i));
      }
      Value r = tensor::ExtractOp::create(b, l, x, coords);
      if (outside) {
        Value e = isa<FloatType>(elem)
                      ? arith::ConstantOp::create(b, l, b.getFloatAttr(elem, extrap)).getResult()
                      : arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, int64_t(extrap))).getResult();
        r = arith::SelectOp::create(b, l, outside, e, r);
      }
      return r;
    }));
    return success();
  }

  // Linear and cubic: one axis at a time, innermost first.
  Value cur = x;
  for (int64_t a = rank - 1; a >= 0; --a) {
    const AxisTable &t = tables[a];
    if (t.identity) continue;
    SmallVector<Value> idx, w;
    for (int k = 0; k < t.taps; ++k) {
      bool used = false;
      for (int64_t xo = 0; xo < t.out; ++xo) used |= t.w[xo * t.taps + k] != 0;
      if (!used) continue;
      idx.push_back(idxTable(n, t, k));
      w.push_back(weightTable(n, t, k));
    }
    Value ext;
    if (t.anyOutside) {
      HostTensor h = HostTensor::make(DType::F32, {t.out});
      for (int64_t xo = 0; xo < t.out; ++xo) h.f[xo] = t.outside[xo] ? 1.f : 0.f;
      ext = n.constant(h);
    }
    if (idx.empty() && !ext) {
      // Every weight is zero (a degenerate exclude_outside): the result is zero.
      idx.push_back(idxTable(n, t, 0));
      w.push_back(weightTable(n, t, 0));
    }
    cur = interpAxis(n, cur, a, t.out, idx, w, ext, spec.extrapolation);
  }
  n.out(0, cur);
  return success();
}

static LogicalResult parseMode(NodeImporter &n, ResizeSpec &spec) {
  std::string mode = n.attrString("mode", "nearest");
  if (mode == "nearest") spec.mode = InterpMode::Nearest;
  else if (mode == "linear" || mode == "bilinear") spec.mode = InterpMode::Linear;
  else if (mode == "cubic" || mode == "bicubic") spec.mode = InterpMode::Cubic;
  else return n.fail("unknown mode '" + mode + "'");
  return success();
}

/// Upsample (opset 7-9) and Resize-10: scales only, asymmetric coordinates.
static LogicalResult upsampleLike(NodeImporter &n, size_t scalesInput, bool scalesAttr) {
  ResizeSpec spec;
  if (failed(parseMode(n, spec))) return failure();
  if (spec.mode == InterpMode::Cubic) return n.fail("mode cubic is not defined for this op version");
  spec.ctm = "asymmetric";
  spec.simpleNearest = true;
  auto xs = n.inShape(0);
  std::vector<double> scales;
  if (scalesAttr) {
    for (float f : n.attrFloats("scales")) scales.push_back(double(f));
  } else {
    const HostTensor *sc = n.inConst(scalesInput);
    if (!sc) return n.fail("scales must be known at compile time");
    scales = sc->toDoubles();
  }
  if (scales.size() != xs.size())
    return n.fail("scales has " + std::to_string(scales.size()) + " entries for a rank-" +
                  std::to_string(xs.size()) + " input");
  std::vector<int64_t> out;
  for (size_t d = 0; d < xs.size(); ++d) {
    if (!(scales[d] > 0) || !std::isfinite(scales[d])) return n.fail("scales must be positive");
    double o = std::floor(scales[d] * double(xs[d]));
    if (o > kMaxDim) return n.fail("scales give an output dimension that is too large");
    out.push_back(int64_t(o));
  }
  return emitResize(n, spec, out, scales, {}, Value());
}

LogicalResult importUpsample(NodeImporter &n) { return upsampleLike(n, 1, n.opset < 9); }

LogicalResult importResize(NodeImporter &n) {
  if (n.opset < 11) return upsampleLike(n, 1, false);
  ResizeSpec spec;
  if (failed(parseMode(n, spec))) return failure();
  spec.ctm = n.attrString("coordinate_transformation_mode", "half_pixel");
  static const char *kModes[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                 "tf_half_pixel_for_nn", "tf_crop_and_resize", "half_pixel_symmetric"};
  if (std::find_if(std::begin(kModes), std::end(kModes), [&](const char *m) { return spec.ctm == m; }) ==
      std::end(kModes))
    return n.fail("unknown coordinate_transformation_mode '" + spec.ctm + "'");
  if (spec.ctm == "tf_half_pixel_for_nn" && n.opset >= 13)
    return n.fail("coordinate_transformation_mode tf_half_pixel_for_nn was removed in opset 13");
  if (spec.ctm == "half_pixel_symmetric" && n.opset < 19)
    return n.fail("coordinate_transformation_mode half_pixel_symmetric needs opset 19");
  spec.nearestMode = n.attrString("nearest_mode", "round_prefer_floor");
  if (spec.nearestMode != "round_prefer_floor" && spec.nearestMode != "round_prefer_ceil" &&
      spec.nearestMode != "floor" && spec.nearestMode != "ceil")
    return n.fail("unknown nearest_mode '" + spec.nearestMode + "'");
  spec.cubicA = n.attrFloat("cubic_coeff_a", -0.75f);
  spec.excludeOutside = n.attrInt("exclude_outside", 0) != 0;
  spec.extrapolation = n.attrFloat("extrapolation_value", 0.f);
  if (n.attrInt("antialias", 0) != 0 && spec.mode != InterpMode::Nearest)
    return n.fail("antialias=1 is not supported");

  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  for (int64_t d : xs)
    if (d <= 0) return n.fail("resizing an empty tensor is not supported");
  std::vector<int64_t> axes;
  if (n.hasAttr("axes")) {
    std::vector<bool> seen(rank, false);
    for (int64_t a : n.attrInts("axes")) {
      auto ax = normalizeAxis(a, rank);
      if (!ax || seen[*ax]) return n.fail("invalid axes " + shapeText(n.attrInts("axes")));
      seen[*ax] = true;
      axes.push_back(*ax);
    }
  } else {
    for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
  }
  int64_t na = int64_t(axes.size());

  auto present = [&](size_t i) { return n.hasInput(i) && numElements(n.inShape(i)) > 0; };
  std::vector<double> scales(rank, 1.0);
  std::vector<int64_t> out = xs;
  if (present(3)) {
    if (present(2)) return n.fail("only one of scales and sizes may be given");
    const HostTensor *sz = n.inConst(3);
    if (!sz) return n.fail("sizes must be known at compile time");
    auto sizes = sz->toInts();
    if (int64_t(sizes.size()) != na)
      return n.fail("sizes has " + std::to_string(sizes.size()) + " entries, expected " + std::to_string(na));
    for (int64_t s : sizes)
      if (s <= 0) return n.fail("sizes " + shapeText(sizes) + " must be positive");
    std::string policy = n.attrString("keep_aspect_ratio_policy", "stretch");
    if (policy == "stretch") {
      for (int64_t k = 0; k < na; ++k) {
        out[axes[k]] = sizes[k];
        scales[axes[k]] = double(sizes[k]) / double(xs[axes[k]]);
      }
    } else if (policy == "not_larger" || policy == "not_smaller") {
      double s = policy == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t k = 0; k < na; ++k) {
        double r = double(sizes[k]) / double(xs[axes[k]]);
        s = policy == "not_larger" ? std::min(s, r) : std::max(s, r);
      }
      for (int64_t k = 0; k < na; ++k) {
        double o = std::floor(s * double(xs[axes[k]]) + 0.5);
        if (o > kMaxDim) return n.fail("sizes give an output dimension that is too large");
        scales[axes[k]] = s;
        out[axes[k]] = int64_t(o);
      }
    } else {
      return n.fail("unknown keep_aspect_ratio_policy '" + policy + "'");
    }
  } else if (present(2)) {
    const HostTensor *sc = n.inConst(2);
    if (!sc) return n.fail("scales must be known at compile time");
    auto sv = sc->toDoubles();
    if (int64_t(sv.size()) != na)
      return n.fail("scales has " + std::to_string(sv.size()) + " entries, expected " + std::to_string(na));
    for (int64_t k = 0; k < na; ++k) {
      if (!(sv[k] > 0) || !std::isfinite(sv[k])) return n.fail("scales must be positive");
      double o = std::floor(sv[k] * double(xs[axes[k]]));
      if (o > kMaxDim) return n.fail("scales give an output dimension that is too large");
      scales[axes[k]] = sv[k];
      out[axes[k]] = int64_t(o);
    }
  } else {
    return n.fail("one of scales and sizes must be given");
  }

  std::vector<double> roi;
  Value roiValue;
  if (spec.ctm == "tf_crop_and_resize") {
    if (!present(1)) return n.fail("tf_crop_and_resize needs a roi");
    if (const HostTensor *r = n.inConst(1)) {
      auto rv = r->toDoubles();
      if (int64_t(rv.size()) != 2 * na) return n.fail("roi must hold 2 values per resized axis");
      roi.assign(2 * rank, 0.0);
      for (int64_t d = 0; d < rank; ++d) roi[d + rank] = 1.0;
      for (int64_t k = 0; k < na; ++k) {
        roi[axes[k]] = rv[k];
        roi[axes[k] + rank] = rv[k + na];
      }
    } else {
      if (na != rank) return n.fail("tf_crop_and_resize with axes needs a constant roi");
      if (n.inShape(1) != std::vector<int64_t>{2 * rank}) return n.fail("roi must hold 2 values per axis");
      roiValue = n.in(1);
    }
  }
  return emitResize(n, spec, out, scales, roi, roiValue);
}

//===----------------------------------------------------------------------===//
// DepthToSpace / SpaceToDepth
//===----------------------------------------------------------------------===//

/// Reshape, transpose, reshape; folded on the host for constants.
static void reshapeTransposeReshape(NodeImporter &n, const std::vector<int64_t> &mid,
                                    const std::vector<int64_t> &perm, const std::vector<int64_t> &out) {
  if (const HostTensor *c = n.inConst(0)) {
    HostTensor t = *c;
    t.shape = mid;
    HostTensor r = hostTranspose(t, perm);
    r.shape = out;
    n.outConst(0, std::move(r));
    return;
  }
  n.out(0, n.reshape(n.transpose(n.reshape(n.in(0), mid), perm), out));
}

LogicalResult importDepthToSpace(NodeImporter &n) {
  auto xs = n.inShape(0);
  if (xs.size() != 4) return n.fail("input must be 4-D, got " + shapeText(xs));
  int64_t bs = n.attrInt("blocksize", 0);
  if (bs <= 0) return n.fail("blocksize must be positive");
  int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
  if (bs > C || C % (bs * bs)) return n.fail("channels " + std::to_string(C) + " are not a multiple of blocksize^2");
  int64_t Co = C / (bs * bs);
  std::string mode = n.attrString("mode", "DCR");
  std::vector<int64_t> out{N, Co, H * bs, W * bs};
  if (mode == "DCR") reshapeTransposeReshape(n, {N, bs, bs, Co, H, W}, {0, 3, 4, 1, 5, 2}, out);
  else if (mode == "CRD") reshapeTransposeReshape(n, {N, Co, bs, bs, H, W}, {0, 1, 4, 2, 5, 3}, out);
  else return n.fail("unknown mode '" + mode + "'");
  return success();
}

LogicalResult importSpaceToDepth(NodeImporter &n) {
  auto xs = n.inShape(0);
  if (xs.size() != 4) return n.fail("input must be 4-D, got " + shapeText(xs));
  int64_t bs = n.attrInt("blocksize", 0);
  if (bs <= 0) return n.fail("blocksize must be positive");
  int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3];
  if (bs > H || bs > W || H % bs || W % bs) return n.fail("spatial size " + shapeText(xs) + " is not a multiple of the blocksize");
  reshapeTransposeReshape(n, {N, C, H / bs, bs, W / bs, bs}, {0, 3, 5, 1, 2, 4},
                          {N, C * bs * bs, H / bs, W / bs});
  return success();
}

//===----------------------------------------------------------------------===//
// ConvTranspose
//===----------------------------------------------------------------------===//

/// Pads (positive) or crops (negative) the spatial axes 1 and 2 of an NHWC value.
static Value padOrCrop(NodeImporter &n, Value x, std::array<int64_t, 2> begin, std::array<int64_t, 2> end) {
  auto s = n.shapeOf(x);
  std::vector<int64_t> start(4, 0), size = s;
  for (int k = 0; k < 2; ++k) {
    if (begin[k] < 0) { start[k + 1] = -begin[k]; size[k + 1] += begin[k]; begin[k] = 0; }
    if (end[k] < 0) { size[k + 1] += end[k]; end[k] = 0; }
  }
  x = n.slice(x, start, size);
  if (begin[0] || end[0] || begin[1] || end[1]) {
    std::vector<int64_t> padded{size[0], size[1] + begin[0] + end[0], size[2] + begin[1] + end[1], size[3]};
    x = n.emit("tosa.pad", {x, n.shapeValue({0, 0, begin[0], end[0], begin[1], end[1], 0, 0}), n.splat(0, 1, f32(n))},
               n.tensorType(padded, f32(n)));
  }
  return x;
}

LogicalResult importConvTranspose(NodeImporter &n) {
  if (failed(n.requireF32(0)) || failed(n.requireF32(1))) return failure();
  auto xs = n.inShape(0), ws = n.inShape(1);
  if (xs.size() == 5) return n.fail("3-D ConvTranspose is not supported");
  if (xs.size() != 3 && xs.size() != 4)
    return n.fail("only 1-D and 2-D ConvTranspose are supported (input rank " + std::to_string(xs.size()) + ")");
  if (ws.size() != xs.size()) return n.fail("weight rank differs from input rank");
  bool is1d = xs.size() == 3;
  size_t r = 2;
  // 1-D gets a leading unit spatial axis; attributes are widened to match.
  auto widen = [&](std::vector<int64_t> v, int64_t fill) {
    if (is1d && !v.empty()) v.insert(v.begin(), fill);
    return v;
  };
  auto widenPads = [&](std::vector<int64_t> v) {
    if (is1d && v.size() == 2) v = {0, v[0], 0, v[1]};
    return v;
  };
  if (is1d) {
    xs = {xs[0], xs[1], 1, xs[2]};
    ws = {ws[0], ws[1], 1, ws[2]};
  }
  int64_t N = xs[0], C = xs[1], group = n.attrInt("group", 1);
  if (group <= 0 || C % group || ws[0] != C)
    return n.fail("weight shape " + shapeText(ws) + " does not match input channels " + std::to_string(C) +
                  " with group " + std::to_string(group));
  int64_t Cg = C / group, Mg = ws[1], M = Mg * group, KH = ws[2], KW = ws[3];
  if (KH <= 0 || KW <= 0 || Mg <= 0) return n.fail("weight shape " + shapeText(ws) + " is empty");
  std::vector<int64_t> kernel{KH, KW};
  std::vector<int64_t> ks = widen(n.attrInts("kernel_shape"), 1);
  if (!ks.empty() && ks != kernel) return n.fail("kernel_shape differs from the weight shape");
  std::vector<int64_t> stride = widen(n.attrInts("strides"), 1), dil = widen(n.attrInts("dilations"), 1);
  std::vector<int64_t> outPad = widen(n.attrInts("output_padding"), 0), pads = widenPads(n.attrInts("pads"));
  std::vector<int64_t> outShapeAttr = n.attrInts("output_shape");
  if (stride.empty()) stride.assign(r, 1);
  if (dil.empty()) dil.assign(r, 1);
  if (outPad.empty()) outPad.assign(r, 0);
  if (!outShapeAttr.empty()) {
    size_t spatial = is1d ? 1 : 2;
    if (outShapeAttr.size() == spatial + 2) // the full [N, C, spatial...] form
      outShapeAttr.erase(outShapeAttr.begin(), outShapeAttr.begin() + 2);
    outShapeAttr = widen(outShapeAttr, 1);
  }
  if (stride.size() != r || dil.size() != r || outPad.size() != r)
    return n.fail("strides/dilations/output_padding do not match the spatial rank");
  if (!outShapeAttr.empty() && outShapeAttr.size() != r) return n.fail("output_shape does not match the spatial rank");
  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  if (autoPad != "NOTSET" && autoPad != "VALID" && autoPad != "SAME_UPPER" && autoPad != "SAME_LOWER")
    return n.fail("unknown auto_pad '" + autoPad + "'");
  std::vector<int64_t> pb(r, 0), pe(r, 0), eff(r), out(r);
  for (size_t k = 0; k < r; ++k) {
    if (stride[k] <= 0 || dil[k] <= 0) return n.fail("non-positive stride or dilation");
    if (outPad[k] < 0) return n.fail("negative output_padding");
    int64_t in = xs[k + 2];
    eff[k] = (kernel[k] - 1) * dil[k] + 1;
    int64_t full = stride[k] * (in - 1) + outPad[k] + eff[k];
    if (!outShapeAttr.empty() || autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      int64_t target = !outShapeAttr.empty() ? outShapeAttr[k] : in * stride[k];
      int64_t total = full - target;
      if (autoPad == "SAME_UPPER") {
        pb[k] = floorDiv(total, 2);
        pe[k] = total - pb[k];
      } else {
        pe[k] = floorDiv(total, 2);
        pb[k] = total - pe[k];
      }
    } else if (autoPad == "NOTSET" && !pads.empty()) {
      if (pads.size() != 2 * r) return n.fail("pads must have 2 entries per spatial axis");
      pb[k] = pads[k];
      pe[k] = pads[k + r];
    }
    out[k] = full - pb[k] - pe[k];
    if (out[k] <= 0) return n.fail("the output would be empty");
  }

  FailureOr<Value> biasOr = convBias(n, 2, M);
  if (failed(biasOr)) return failure();
  Value bias = *biasOr;

  // Zero insertion: [N,H,W,C] -> [N,H,1,W,1,C] -> pad to [N,H,sH,W,sW,C] -> [N,H*sH,W*sW,C].
  Value x = n.reshape(n.in(0), xs);
  Value xh = n.transpose(x, {0, 2, 3, 1});
  int64_t H = xs[2], W = xs[3];
  if (stride[0] > 1 || stride[1] > 1) {
    Value e = n.reshape(xh, {N, H, 1, W, 1, C});
    e = n.emit("tosa.pad",
               {e, n.shapeValue({0, 0, 0, 0, 0, stride[0] - 1, 0, 0, 0, stride[1] - 1, 0, 0}), n.splat(0, 1, f32(n))},
               n.tensorType({N, H, stride[0], W, stride[1], C}, f32(n)));
    xh = n.reshape(e, {N, H * stride[0], W * stride[1], C});
  }
  // The transposed conv is a conv of the zero-inserted input padded by eff-1-pads.
  std::array<int64_t, 2> begin, end;
  for (size_t k = 0; k < r; ++k) {
    begin[k] = eff[k] - 1 - pb[k];
    end[k] = eff[k] - 1 - pe[k] + outPad[k] - (stride[k] - 1); // the trailing zeros are already there
  }
  for (size_t k = 0; k < r; ++k)
    if (xs[k + 2] * stride[k] + std::min<int64_t>(begin[k], 0) + std::min<int64_t>(end[k], 0) < 1)
      return n.fail("pads crop away the whole input");
  // Positive padding goes to the conv; negative padding crops first.
  std::array<int64_t, 2> cropB{std::min<int64_t>(begin[0], 0), std::min<int64_t>(begin[1], 0)};
  std::array<int64_t, 2> cropE{std::min<int64_t>(end[0], 0), std::min<int64_t>(end[1], 0)};
  xh = padOrCrop(n, xh, cropB, cropE);
  SmallVector<int64_t> convPad{std::max<int64_t>(begin[0], 0), std::max<int64_t>(end[0], 0),
                               std::max<int64_t>(begin[1], 0), std::max<int64_t>(end[1], 0)};
  auto hs = n.shapeOf(xh);
  for (size_t k = 0; k < r; ++k)
    if (hs[k + 1] + convPad[2 * k] + convPad[2 * k + 1] < eff[k]) return n.fail("the output would be empty");

  // Conv weight [Mg, KH, KW, Cg] per group: w[c, m, KH-1-kh, KW-1-kw].
  const HostTensor *wc = n.inConst(1);
  Value wRaw = wc ? Value() : n.reshape(n.in(1), ws);
  Value zp = n.zeroPoint(f32(n));
  auto convAttrs = [&]() {
    return SmallVector<NamedAttribute>{n.named("pad", n.b.getDenseI64ArrayAttr(convPad)),
                                       n.named("stride", n.b.getDenseI64ArrayAttr({1, 1})),
                                       n.named("dilation", n.b.getDenseI64ArrayAttr(dil)),
                                       n.named("acc_type", TypeAttr::get(f32(n)))};
  };
  SmallVector<Value> parts;
  for (int64_t g = 0; g < group; ++g) {
    Value wg;
    if (wc) {
      HostTensor t = HostTensor::make(DType::F32, {Mg, KH, KW, Cg});
      for (int64_t m = 0; m < Mg; ++m)
        for (int64_t kh = 0; kh < KH; ++kh)
          for (int64_t kw = 0; kw < KW; ++kw)
            for (int64_t c = 0; c < Cg; ++c)
              t.f[((m * KH + kh) * KW + kw) * Cg + c] =
                  float(wc->get((((g * Cg + c) * Mg + m) * KH + (KH - 1 - kh)) * KW + (KW - 1 - kw)));
      wg = n.constant(t);
    } else {
      Value s = n.slice(wRaw, {g * Cg, 0, 0, 0}, {Cg, Mg, KH, KW});
      s = n.emit("tosa.reverse", {s}, s.getType(), {n.named("axis", n.b.getI32IntegerAttr(2))});
      s = n.emit("tosa.reverse", {s}, s.getType(), {n.named("axis", n.b.getI32IntegerAttr(3))});
      wg = n.transpose(s, {1, 2, 3, 0});
    }
    Value xg = group == 1 ? xh : n.slice(xh, {0, 0, 0, g * Cg}, {hs[0], hs[1], hs[2], Cg});
    Value bg = group == 1 ? bias : n.slice(bias, {g * Mg}, {Mg});
    parts.push_back(n.emit("tosa.conv2d", {xg, wg, bg, zp, zp}, n.tensorType({N, out[0], out[1], Mg}, f32(n)),
                           convAttrs()));
  }
  Value y = n.concat(parts, 3);
  Value res = n.transpose(y, {0, 3, 1, 2});
  if (is1d) res = n.reshape(res, {N, M, out[1]});
  n.out(0, res);
  return success();
}

//===----------------------------------------------------------------------===//
// LRN
//===----------------------------------------------------------------------===//

LogicalResult importLRN(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  if (rank < 3) return n.fail("input must be [N, C, D1, ...], got " + shapeText(xs));
  int64_t size = n.attrInt("size", 0);
  if (size <= 0) return n.fail("size must be positive");
  double alpha = n.attrFloat("alpha", 1e-4f), beta = n.attrFloat("beta", 0.75f), bias = n.attrFloat("bias", 1.0f);
  int64_t C = xs[1];
  if (C <= 0) return n.fail("input has no channels");
  Value x = n.in(0);
  Value sq = n.mul(x, x);
  // Sum of squares over channels [c - floor((size-1)/2), c + ceil((size-1)/2)].
  // Window parts reaching more than C-1 channels away only ever see padding.
  int64_t lo = std::min((size - 1) / 2, C - 1), hi = std::min(size - 1 - (size - 1) / 2, C - 1);
  std::vector<int64_t> padded = xs;
  padded[1] += lo + hi;
  std::vector<int64_t> padSpec(2 * rank, 0);
  padSpec[2] = lo;
  padSpec[3] = hi;
  Value p = lo + hi > 0 ? n.emit("tosa.pad", {sq, n.shapeValue(padSpec), n.splat(0, 1, f32(n))},
                              n.tensorType(padded, f32(n)))
                     : sq;
  Value sum;
  for (int64_t k = 0; k <= lo + hi; ++k) {
    std::vector<int64_t> start(rank, 0);
    start[1] = k;
    Value s = n.slice(p, start, xs);
    sum = sum ? n.add(sum, s) : s;
  }
  Value base = n.add(n.mul(sum, n.splat(alpha / double(size), rank, f32(n))), n.splat(bias, rank, f32(n)));
  Value scale = n.binary("tosa.pow", base, n.splat(-beta, rank, f32(n)));
  n.out(0, n.mul(x, scale));
  return success();
}

} // namespace kiln::onnx_frontend
