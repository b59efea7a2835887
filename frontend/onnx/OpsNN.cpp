//===- OpsNN.cpp - Convolution, matmul, pooling, normalisation, reductions --===//
//
// ONNX is NCHW; TOSA's conv and pooling are NHWC. Each op transposes in and out,
// and graph passes cancel the transposes between neighbours. Constant weights are
// re-laid-out here, on the host, so no weight transform runs in the compiled code.
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"

#include <algorithm>
#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::onnx_frontend {

static Type f32(NodeImporter &n) { return n.b.getF32Type(); }

//===----------------------------------------------------------------------===//
// Window geometry shared by Conv and pooling.
//===----------------------------------------------------------------------===//

struct Window {
  std::vector<int64_t> kernel, stride, dilation, padBegin, padEnd, crop, out;
};

/// Resolves pads (explicit or auto_pad), ceil_mode and TOSA's rule that the
/// padded extent minus the window be a multiple of the stride (surplus end
/// padding is dropped, or the input's unused tail cropped).
static FailureOr<Window> resolveWindow(NodeImporter &n, const std::vector<int64_t> &in,
                                       std::vector<int64_t> kernel, bool allowCeil) {
  size_t r = in.size();
  Window w;
  w.kernel = std::move(kernel);
  w.stride = n.attrInts("strides");
  w.dilation = n.attrInts("dilations");
  if (w.stride.empty()) w.stride.assign(r, 1);
  if (w.dilation.empty()) w.dilation.assign(r, 1);
  if (w.kernel.size() != r || w.stride.size() != r || w.dilation.size() != r)
    return n.fail("kernel_shape/strides/dilations do not match the spatial rank");
  std::vector<int64_t> pads = n.attrInts("pads");
  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  w.padBegin.assign(r, 0);
  w.padEnd.assign(r, 0);
  w.crop.assign(r, 0);
  w.out.assign(r, 0);
  for (size_t k = 0; k < r; ++k) {
    if (w.stride[k] <= 0 || w.dilation[k] <= 0 || w.kernel[k] <= 0)
      return n.fail("non-positive kernel, stride or dilation");
    int64_t eff = (w.kernel[k] - 1) * w.dilation[k] + 1;
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      std::tie(w.padBegin[k], w.padEnd[k]) = samePads(in[k], w.stride[k], eff, autoPad == "SAME_UPPER");
    } else if (autoPad == "VALID") {
    } else if (autoPad == "NOTSET") {
      if (!pads.empty()) {
        if (pads.size() != 2 * r) return n.fail("pads must have 2 entries per spatial axis");
        w.padBegin[k] = pads[k];
        w.padEnd[k] = pads[k + r];
        if (pads[k] < 0 || pads[k + r] < 0) return n.fail("negative pads");
      }
    } else {
      return n.fail("unknown auto_pad '" + autoPad + "'");
    }
    int64_t span = in[k] + w.padBegin[k] + w.padEnd[k] - eff;
    if (span < 0)
      return n.fail("window " + std::to_string(eff) + " is larger than the padded input " +
                    std::to_string(in[k] + w.padBegin[k] + w.padEnd[k]));
    int64_t out = span / w.stride[k] + 1;
    if (allowCeil && n.attrInt("ceil_mode", 0)) {
      out = (span + w.stride[k] - 1) / w.stride[k] + 1;
      // The last window must start inside the input or the begin padding.
      if ((out - 1) * w.stride[k] >= in[k] + w.padBegin[k]) --out;
      int64_t need = (out - 1) * w.stride[k] + eff - (in[k] + w.padBegin[k] + w.padEnd[k]);
      if (need > 0) w.padEnd[k] += need;
    }
    int64_t rem = (in[k] + w.padBegin[k] + w.padEnd[k] - eff) - (out - 1) * w.stride[k];
    if (rem > 0) {
      int64_t fromPad = std::min(rem, w.padEnd[k]);
      w.padEnd[k] -= fromPad;
      w.crop[k] = rem - fromPad;
    }
    w.out[k] = out;
  }
  return w;
}

/// NCHW [N,C,H,W] value -> NHWC, cropping the unused tail rows/cols.
static Value toNHWC(NodeImporter &n, Value x, const Window &w) {
  Value t = n.transpose(x, {0, 2, 3, 1});
  auto s = n.shapeOf(t);
  if (w.crop[0] || w.crop[1]) {
    std::vector<int64_t> size = s;
    size[1] -= w.crop[0];
    size[2] -= w.crop[1];
    t = n.slice(t, {0, 0, 0, 0}, size);
  }
  return t;
}

static SmallVector<int64_t> tosaPad(const Window &w) {
  return {w.padBegin[0], w.padEnd[0], w.padBegin[1], w.padEnd[1]};
}

//===----------------------------------------------------------------------===//
// Conv
//===----------------------------------------------------------------------===//

FailureOr<Value> convBias(NodeImporter &n, size_t input, int64_t channels) {
  if (!n.hasInput(input)) return n.constF32({channels}, std::vector<float>(size_t(channels), 0.f));
  if (n.inShape(input) != std::vector<int64_t>{channels})
    return n.fail("bias shape must be [" + std::to_string(channels) + "]");
  return n.in(input);
}

LogicalResult importConv(NodeImporter &n) {
  if (failed(n.requireF32(0)) || failed(n.requireF32(1))) return failure();
  auto xs = n.inShape(0), ws = n.inShape(1);
  if (xs.size() != 3 && xs.size() != 4)
    return n.fail("only 1-D and 2-D convolutions are supported (input rank " + std::to_string(xs.size()) + ")");
  if (ws.size() != xs.size()) return n.fail("weight rank differs from input rank");
  bool is1d = xs.size() == 3;
  Value x = n.in(0);
  if (is1d) {
    x = n.reshape(x, {xs[0], xs[1], 1, xs[2]});
    xs = {xs[0], xs[1], 1, xs[2]};
    ws = {ws[0], ws[1], 1, ws[2]};
  }
  int64_t N = xs[0], C = xs[1], M = ws[0], Cg = ws[1], KH = ws[2], KW = ws[3];
  int64_t group = n.attrInt("group", 1);
  if (group <= 0 || C % group || M % group || Cg != C / group)
    return n.fail("weight shape " + shapeText(ws) + " does not match input channels " + std::to_string(C) +
                  " with group " + std::to_string(group));
  std::vector<int64_t> ks = n.attrInts("kernel_shape");
  if (!ks.empty() && is1d) ks.insert(ks.begin(), 1);
  if (!ks.empty() && (ks.size() != 2 || ks[0] != KH || ks[1] != KW))
    return n.fail("kernel_shape differs from the weight shape");
  // 1-D attributes get a leading unit spatial axis.
  auto fix1d = [&](const char *name, int64_t fill) {
    std::vector<int64_t> v = n.attrInts(name);
    if (is1d && !v.empty()) v.insert(v.begin(), fill);
    return v;
  };
  Window w;
  {
    std::vector<int64_t> spatial{xs[2], xs[3]};
    FailureOr<Window> r = failure();
    if (is1d) {
      // resolveWindow reads attributes directly; 1-D needs them widened first.
      std::vector<int64_t> st = fix1d("strides", 1), dl = fix1d("dilations", 1), pd = n.attrInts("pads");
      if (st.empty()) st = {1, 1};
      if (dl.empty()) dl = {1, 1};
      std::vector<int64_t> pads4 = pd.empty() ? std::vector<int64_t>{0, 0, 0, 0}
                                              : std::vector<int64_t>{0, pd[0], 0, pd.size() > 1 ? pd[1] : 0};
      std::string ap = n.attrString("auto_pad", "NOTSET");
      Window w1;
      w1.kernel = {KH, KW};
      w1.stride = st;
      w1.dilation = dl;
      w1.padBegin = {0, pads4[1]};
      w1.padEnd = {0, pads4[3]};
      w1.crop = {0, 0};
      w1.out = {1, 0};
      if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
        std::tie(w1.padBegin[1], w1.padEnd[1]) = samePads(xs[3], st[1], (KW - 1) * dl[1] + 1, ap == "SAME_UPPER");
      } else if (ap == "VALID") {
        w1.padBegin[1] = w1.padEnd[1] = 0;
      }
      int64_t eff = (KW - 1) * dl[1] + 1, span = xs[3] + w1.padBegin[1] + w1.padEnd[1] - eff;
      if (span < 0) return n.fail("window is larger than the padded input");
      w1.out[1] = span / st[1] + 1;
      int64_t rem = span - (w1.out[1] - 1) * st[1];
      int64_t fromPad = std::min(rem, w1.padEnd[1]);
      w1.padEnd[1] -= fromPad;
      w1.crop[1] = rem - fromPad;
      r = w1;
    } else {
      r = resolveWindow(n, spatial, {KH, KW}, false);
    }
    if (failed(r)) return failure();
    w = *r;
  }

  FailureOr<Value> bias = convBias(n, 2, M);
  if (failed(bias)) return failure();
  Value xh = toNHWC(n, x, w);
  int64_t OH = w.out[0], OW = w.out[1];
  Value zp = n.zeroPoint(f32(n));
  auto convAttrs = [&]() {
    return SmallVector<NamedAttribute>{
        n.named("pad", n.b.getDenseI64ArrayAttr(tosaPad(w))),
        n.named("stride", n.b.getDenseI64ArrayAttr(w.stride)),
        n.named("dilation", n.b.getDenseI64ArrayAttr(w.dilation)),
        n.named("acc_type", TypeAttr::get(f32(n)))};
  };
  const HostTensor *wc = n.inConst(1);
  if (wc && is1d) {
    HostTensor t = *wc;
    t.shape = ws;
    static thread_local HostTensor keep;
    keep = std::move(t);
    wc = &keep;
  }
  Value wRaw = wc ? Value() : n.reshape(n.in(1), ws);

  Value y;
  bool depthwise = group == C && Cg == 1 && group > 1;
  if (group == 1) {
    Value wt = wc ? n.constant(hostTranspose(*wc, {0, 2, 3, 1})) : n.transpose(wRaw, {0, 2, 3, 1});
    y = n.emit("tosa.conv2d", {xh, wt, *bias, zp, zp}, n.tensorType({N, OH, OW, M}, f32(n)), convAttrs());
  } else if (depthwise) {
    int64_t mult = M / C;
    Value wt;
    if (wc) {
      HostTensor r = *wc;
      r.shape = {C, mult, KH, KW};
      wt = n.constant(hostTranspose(r, {2, 3, 0, 1}));
    } else {
      wt = n.transpose(n.reshape(wRaw, {C, mult, KH, KW}), {2, 3, 0, 1});
    }
    y = n.emit("tosa.depthwise_conv2d", {xh, wt, *bias, zp, zp}, n.tensorType({N, OH, OW, M}, f32(n)),
               convAttrs());
  } else {
    // Grouped convolution: one conv per group, concatenated on channels.
    int64_t Mg = M / group;
    SmallVector<Value> parts;
    auto xhs = n.shapeOf(xh);
    for (int64_t g = 0; g < group; ++g) {
      Value xg = n.slice(xh, {0, 0, 0, g * Cg}, {xhs[0], xhs[1], xhs[2], Cg});
      Value wg;
      if (wc) {
        HostTensor part = hostSlice(*wc, {g * Mg, 0, 0, 0}, {1, 1, 1, 1}, {Mg, Cg, KH, KW});
        wg = n.constant(hostTranspose(part, {0, 2, 3, 1}));
      } else {
        wg = n.transpose(n.slice(wRaw, {g * Mg, 0, 0, 0}, {Mg, Cg, KH, KW}), {0, 2, 3, 1});
      }
      Value bg = n.slice(*bias, {g * Mg}, {Mg});
      parts.push_back(n.emit("tosa.conv2d", {xg, wg, bg, zp, zp}, n.tensorType({N, OH, OW, Mg}, f32(n)),
                             convAttrs()));
    }
    y = n.concat(parts, 3);
  }
  Value out = n.transpose(y, {0, 3, 1, 2});
  if (is1d) out = n.reshape(out, {N, M, OW});
  n.out(0, out);
  return success();
}

//===----------------------------------------------------------------------===//
// Pooling
//===----------------------------------------------------------------------===//

/// The window of one spatial axis as ONNX defines it (pads before any TOSA
/// adjustment; `padEnd` excludes the overhang that ceil_mode adds).
struct PoolAxis {
  int64_t in, kernel, stride, dilation, padBegin, padEnd, out;
};

static FailureOr<std::vector<PoolAxis>> poolAxes(NodeImporter &n, const std::vector<int64_t> &xs) {
  size_t r = xs.size() - 2;
  auto kernel = n.attrInts("kernel_shape"), stride = n.attrInts("strides"), dil = n.attrInts("dilations"),
       pads = n.attrInts("pads");
  if (stride.empty()) stride.assign(r, 1);
  if (dil.empty()) dil.assign(r, 1);
  if (kernel.size() != r || stride.size() != r || dil.size() != r || (!pads.empty() && pads.size() != 2 * r))
    return n.fail("kernel_shape/strides/dilations/pads do not match the spatial rank");
  std::string autoPad = n.attrString("auto_pad", "NOTSET");
  bool ceil = n.attrInt("ceil_mode", 0) != 0;
  std::vector<PoolAxis> axes(r);
  for (size_t k = 0; k < r; ++k) {
    PoolAxis &a = axes[k];
    a = {xs[k + 2], kernel[k], stride[k], dil[k], 0, 0, 0};
    if (a.kernel <= 0 || a.stride <= 0 || a.dilation <= 0) return n.fail("non-positive kernel, stride or dilation");
    int64_t eff = (a.kernel - 1) * a.dilation + 1;
    if (autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER") {
      std::tie(a.padBegin, a.padEnd) = samePads(a.in, a.stride, eff, autoPad == "SAME_UPPER");
    } else if (autoPad == "NOTSET") {
      if (!pads.empty()) { a.padBegin = pads[k]; a.padEnd = pads[k + r]; }
      if (a.padBegin < 0 || a.padEnd < 0) return n.fail("negative pads");
    } else if (autoPad != "VALID") {
      return n.fail("unknown auto_pad '" + autoPad + "'");
    }
    int64_t span = a.in + a.padBegin + a.padEnd - eff;
    if (span < 0) return n.fail("the window is larger than the padded input");
    a.out = (ceil ? (span + a.stride - 1) / a.stride : span / a.stride) + 1;
    if (ceil && (a.out - 1) * a.stride >= a.in + a.padBegin) --a.out; // start inside input or begin pad
  }
  return axes;
}

/// Pooling of any spatial rank, dilation and integer type, with MaxPool's Indices
/// output: one linalg.generic whose body walks the window (unrolled). Used where
/// TOSA's 2-D pools cannot express the case.
static LogicalResult poolGeneric(NodeImporter &n, bool isMax) {
  auto xs = n.inShape(0);
  auto axes = poolAxes(n, xs);
  if (failed(axes)) return failure();
  int64_t r = int64_t(axes->size()), window = 1;
  for (const PoolAxis &a : *axes) window *= a.kernel;
  if (window > 1024) return n.fail("a window of " + std::to_string(window) + " elements is too large to unroll");
  DType dt = n.inDType(0);
  if (!isMax && !isFloat(dt)) return n.fail("AveragePool of integer tensors is not supported");
  bool includePad = n.attrInt("count_include_pad", 0) != 0, isUnsigned = dt == DType::U8;
  int64_t storageOrder = n.attrInt("storage_order", 0);
  Value x = n.in(0);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  std::vector<int64_t> outShape{xs[0], xs[1]};
  for (const PoolAxis &a : *axes) outShape.push_back(a.out);
  bool fp = isa<FloatType>(elem);

  // Visits every window position of output element (indices in the body); calls
  // visit(inputCoords, valid) with valid an i1 (in bounds) and counted (within pads).
  auto walk = [&](OpBuilder &b, Location l,
                  const std::function<void(SmallVector<Value> &, Value, Value)> &visit) {
    std::vector<int64_t> pos(r, 0);
    for (int64_t w = 0; w < window; ++w) {
      int64_t rem = w;
      for (int64_t k = r - 1; k >= 0; --k) { pos[k] = rem % (*axes)[k].kernel; rem /= (*axes)[k].kernel; }
      SmallVector<Value> coords{linalg::IndexOp::create(b, l, 0), linalg::IndexOp::create(b, l, 1)};
      Value valid = arith::ConstantIntOp::create(b, l, 1, 1), counted = valid;
      for (int64_t k = 0; k < r; ++k) {
        const PoolAxis &a = (*axes)[k];
        Value o = linalg::IndexOp::create(b, l, k + 2);
        Value i = arith::AddIOp::create(b, l, arith::MulIOp::create(b, l, o, arith::ConstantIndexOp::create(b, l, a.stride)),
                                        arith::ConstantIndexOp::create(b, l, pos[k] * a.dilation - a.padBegin));
        auto cmp = [&](arith::CmpIPredicate p, Value u, int64_t v) {
          return arith::CmpIOp::create(b, l, p, u, arith::ConstantIndexOp::create(b, l, v)).getResult();
        };
        valid = arith::AndIOp::create(b, l, valid, cmp(arith::CmpIPredicate::sge, i, 0));
        valid = arith::AndIOp::create(b, l, valid, cmp(arith::CmpIPredicate::slt, i, a.in));
        counted = arith::AndIOp::create(b, l, counted, cmp(arith::CmpIPredicate::slt, i, a.in + a.padEnd));
        // Clamp so the (discarded) read of an out-of-bounds position stays in bounds.
        Value lo = arith::ConstantIndexOp::create(b, l, 0), hi = arith::ConstantIndexOp::create(b, l, a.in - 1);
        coords.push_back(arith::MaxSIOp::create(b, l, arith::MinSIOp::create(b, l, i, hi), lo));
      }
      visit(coords, valid, counted);
    }
  };
  auto lowest = [&](OpBuilder &b, Location l) -> Value {
    if (fp) return arith::ConstantOp::create(b, l, b.getFloatAttr(elem, -std::numeric_limits<float>::infinity()));
    unsigned w = elem.getIntOrFloatBitWidth();
    return arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, isUnsigned ? APInt::getMinValue(w) : APInt::getSignedMinValue(w)));
  };
  auto greater = [&](OpBuilder &b, Location l, Value a, Value c) -> Value {
    if (fp) return arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, a, c);
    return arith::CmpIOp::create(b, l, isUnsigned ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt, a, c);
  };

  Value y = n.indexed({}, {}, outShape, elem, [&](OpBuilder &b, Location l, ValueRange) -> Value {
    if (isMax) {
      Value best = lowest(b, l);
      walk(b, l, [&](SmallVector<Value> &c, Value valid, Value) {
        Value v = tensor::ExtractOp::create(b, l, x, c);
        Value take = arith::AndIOp::create(b, l, valid, greater(b, l, v, best));
        best = arith::SelectOp::create(b, l, take, v, best);
      });
      return best;
    }
    Value zero = arith::ConstantOp::create(b, l, b.getFloatAttr(elem, 0.0));
    Value one = arith::ConstantOp::create(b, l, b.getFloatAttr(elem, 1.0));
    Value sum = zero, count = zero;
    walk(b, l, [&](SmallVector<Value> &c, Value valid, Value counted) {
      Value v = tensor::ExtractOp::create(b, l, x, c);
      sum = arith::AddFOp::create(b, l, sum, arith::SelectOp::create(b, l, valid, v, zero));
      count = arith::AddFOp::create(b, l, count, arith::SelectOp::create(b, l, includePad ? counted : valid, one, zero));
    });
    return arith::DivFOp::create(b, l, sum, count);
  });
  n.out(0, y);
  if (isMax && n.wantsOutput(1)) {
    // Indices: the flat position of the first maximum in the whole input tensor,
    // row-major (storage_order 0) or with the spatial axes column-major (1).
    if (storageOrder != 0 && storageOrder != 1) return n.fail("storage_order must be 0 or 1");
    Type i64 = n.b.getI64Type();
    n.out(1, n.indexed({}, {}, outShape, i64, [&](OpBuilder &b, Location l, ValueRange) -> Value {
      Value best = lowest(b, l), at = arith::ConstantIntOp::create(b, l, i64, 0);
      walk(b, l, [&](SmallVector<Value> &c, Value valid, Value) {
        Value v = tensor::ExtractOp::create(b, l, x, c);
        Value take = arith::AndIOp::create(b, l, valid, greater(b, l, v, best));
        best = arith::SelectOp::create(b, l, take, v, best);
        // flat = ((n*C + c) * spatial...) with the spatial part in the chosen order.
        Value flat = arith::AddIOp::create(b, l, arith::MulIOp::create(b, l, c[0], arith::ConstantIndexOp::create(b, l, xs[1])), c[1]);
        std::vector<int64_t> order(r);
        for (int64_t k = 0; k < r; ++k) order[k] = storageOrder ? r - 1 - k : k;
        for (int64_t k : order)
          flat = arith::AddIOp::create(b, l, arith::MulIOp::create(b, l, flat, arith::ConstantIndexOp::create(b, l, xs[k + 2])), c[k + 2]);
        Value flatI = arith::IndexCastOp::create(b, l, i64, flat);
        at = arith::SelectOp::create(b, l, take, flatI, at);
      });
      return at;
    }));
  }
  return success();
}

static LogicalResult pool(NodeImporter &n, bool isMax) {
  auto xs = n.inShape(0);
  if (xs.size() < 3) return n.fail("pooling needs an input of rank 3 or more");
  bool generic = xs.size() != 4 || !isFloat(n.inDType(0)) || (isMax && n.wantsOutput(1)) ||
                 (!isMax && n.attrInt("count_include_pad", 0) && n.attrInt("ceil_mode", 0));
  for (int64_t d : n.attrInts("dilations")) generic |= d != 1;
  if (generic) return poolGeneric(n, isMax);
  auto w = resolveWindow(n, {xs[2], xs[3]}, n.attrInts("kernel_shape"), true);
  if (failed(w)) return failure();
  for (int k = 0; k < 2; ++k)
    if (w->padBegin[k] >= w->kernel[k] || w->padEnd[k] >= w->kernel[k])
      return poolGeneric(n, isMax);
  Value xh = toNHWC(n, n.in(0), *w);
  auto outType = n.tensorType({xs[0], w->out[0], w->out[1], xs[1]}, f32(n));
  SmallVector<NamedAttribute> attrs{n.named("kernel", n.b.getDenseI64ArrayAttr(w->kernel)),
                                    n.named("stride", n.b.getDenseI64ArrayAttr(w->stride))};
  Value y;
  if (isMax) {
    attrs.push_back(n.named("pad", n.b.getDenseI64ArrayAttr(tosaPad(*w))));
    y = n.emit("tosa.max_pool2d", {xh}, outType, attrs);
  } else {
    SmallVector<int64_t> pad = tosaPad(*w);
    if (n.attrInt("count_include_pad", 0)) {
      // TOSA divides by the valid count: pad explicitly with zeros so padding counts.
      auto s = n.shapeOf(xh);
      std::vector<int64_t> padded{s[0], s[1] + pad[0] + pad[1], s[2] + pad[2] + pad[3], s[3]};
      xh = n.emit("tosa.pad", {xh, n.shapeValue({0, 0, pad[0], pad[1], pad[2], pad[3], 0, 0}), n.splat(0, 1, f32(n))},
                  n.tensorType(padded, f32(n)));
      pad = {0, 0, 0, 0};
    }
    attrs.push_back(n.named("pad", n.b.getDenseI64ArrayAttr(pad)));
    attrs.push_back(n.named("acc_type", TypeAttr::get(f32(n))));
    Value zp = n.zeroPoint(f32(n));
    y = n.emit("tosa.avg_pool2d", {xh, zp, zp}, outType, attrs);
  }
  n.out(0, n.transpose(y, {0, 3, 1, 2}));
  return success();
}
LogicalResult importMaxPool(NodeImporter &n) { return pool(n, true); }
LogicalResult importAveragePool(NodeImporter &n) { return pool(n, false); }

static LogicalResult globalPool(NodeImporter &n, bool isMax) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  if (xs.size() < 3) return n.fail("input must have spatial dimensions");
  Value y = n.in(0);
  int64_t count = 1;
  for (size_t k = 2; k < xs.size(); ++k) {
    y = n.reduce(isMax ? "tosa.reduce_max" : "tosa.reduce_sum", y, int64_t(k));
    count *= xs[k];
  }
  if (!isMax) y = n.mul(y, n.splat(1.0 / double(count), int64_t(xs.size()), f32(n)));
  n.out(0, y);
  return success();
}
LogicalResult importGlobalAveragePool(NodeImporter &n) { return globalPool(n, false); }
LogicalResult importGlobalMaxPool(NodeImporter &n) { return globalPool(n, true); }

//===----------------------------------------------------------------------===//
// Gemm / MatMul
//===----------------------------------------------------------------------===//

static Value matmul3d(NodeImporter &n, Value a, Value b) {
  auto as = n.shapeOf(a), bs = n.shapeOf(b);
  Value zp = n.zeroPoint(f32(n));
  return n.emit("tosa.matmul", {a, b, zp, zp}, n.tensorType({as[0], as[1], bs[2]}, f32(n)));
}

LogicalResult importMatMul(NodeImporter &n) {
  if (failed(n.requireF32(0)) || failed(n.requireF32(1))) return failure();
  auto as = n.inShape(0), bs = n.inShape(1);
  if (as.empty() || bs.empty()) return n.fail("MatMul of a scalar");
  bool aVec = as.size() == 1, bVec = bs.size() == 1;
  Value a = n.in(0), b = n.in(1);
  if (aVec) { as = {1, as[0]}; a = n.reshape(a, as); }
  if (bVec) { bs = {bs[0], 1}; b = n.reshape(b, bs); }
  int64_t M = as[as.size() - 2], K = as.back(), N = bs.back();
  if (bs[bs.size() - 2] != K) return n.fail("inner dimensions differ: " + shapeText(as) + " x " + shapeText(bs));
  std::vector<int64_t> batchA(as.begin(), as.end() - 2), batchB(bs.begin(), bs.end() - 2);
  auto batch = broadcastShapes(batchA, batchB);
  if (!batch) return n.fail("batch dimensions do not broadcast: " + shapeText(as) + " x " + shapeText(bs));
  int64_t nb = numElements(*batch);
  Value y;
  if (numElements(batchB) == 1) {
    // Shared weight: fold A's batch into rows.
    Value a3 = n.reshape(a, {1, numElements(batchA) * M, K});
    if (numElements(batchA) != nb) {
      a3 = n.emit("tosa.tile", {n.toRank(a, int64_t(batch->size()) + 2),
                                n.shapeValue([&] { std::vector<int64_t> m(*batch); m.push_back(1); m.push_back(1); return m; }())},
                  n.tensorType([&] { std::vector<int64_t> s(*batch); s.push_back(M); s.push_back(K); return s; }(), f32(n)));
      a3 = n.reshape(a3, {1, nb * M, K});
    }
    y = matmul3d(n, a3, n.reshape(b, {1, K, N}));
  } else {
    auto expand = [&](Value v, std::vector<int64_t> own, int64_t r0, int64_t r1) {
      std::vector<int64_t> full = *batch;
      full.push_back(r0);
      full.push_back(r1);
      v = n.toRank(v, int64_t(full.size()));
      auto vs = n.shapeOf(v);
      std::vector<int64_t> mult(full.size(), 1);
      bool tile = false;
      for (size_t k = 0; k < full.size(); ++k)
        if (vs[k] != full[k]) { mult[k] = full[k]; tile = true; }
      if (tile) v = n.emit("tosa.tile", {v, n.shapeValue(mult)}, n.tensorType(full, f32(n)));
      (void)own;
      return n.reshape(v, {nb, r0, r1});
    };
    y = matmul3d(n, expand(a, as, M, K), expand(b, bs, K, N));
  }
  std::vector<int64_t> outShape = *batch;
  if (!aVec) outShape.push_back(M);
  if (!bVec) outShape.push_back(N);
  n.out(0, n.reshape(y, outShape));
  return success();
}

LogicalResult importGemm(NodeImporter &n) {
  if (failed(n.requireF32(0)) || failed(n.requireF32(1))) return failure();
  auto as = n.inShape(0), bs = n.inShape(1);
  if (as.size() != 2 || bs.size() != 2) return n.fail("Gemm inputs must be 2-D");
  bool tA = n.attrInt("transA", 0), tB = n.attrInt("transB", 0);
  float alpha = n.attrFloat("alpha", 1.f), beta = n.attrFloat("beta", 1.f);
  int64_t M = tA ? as[1] : as[0], K = tA ? as[0] : as[1];
  int64_t Kb = tB ? bs[1] : bs[0], N = tB ? bs[0] : bs[1];
  if (K != Kb) return n.fail("inner dimensions differ: " + shapeText(as) + " x " + shapeText(bs));
  Value a = n.in(0);
  if (tA) a = n.transpose(a, {1, 0});
  Value b;
  if (const HostTensor *bc = n.inConst(1)) {
    HostTensor w = tB ? hostTranspose(*bc, {1, 0}) : *bc;
    if (alpha != 1.f) for (auto &v : w.f) v *= alpha; // fold alpha into the weights
    alpha = 1.f;
    w.shape = {1, K, N};
    b = n.constant(w);
  } else {
    b = n.reshape(tB ? n.transpose(n.in(1), {1, 0}) : n.in(1), {1, K, N});
  }
  Value y = n.reshape(matmul3d(n, n.reshape(a, {1, M, K}), b), {M, N});
  if (alpha != 1.f) y = n.mul(y, n.splat(alpha, 2, f32(n)));
  if (n.hasInput(2) && beta != 0.f) {
    Value c;
    if (const HostTensor *cc = n.inConst(2)) {
      HostTensor t = *cc;
      if (beta != 1.f) for (auto &v : t.f) v *= beta;
      c = n.constant(t);
    } else {
      c = n.in(2);
      if (beta != 1.f) c = n.mul(c, n.splat(beta, n.inRank(2), f32(n)));
    }
    y = n.add(y, c);
  }
  n.out(0, y);
  return success();
}

//===----------------------------------------------------------------------===//
// Normalisation
//===----------------------------------------------------------------------===//

LogicalResult importBatchNormalization(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  if (n.attrInt("training_mode", 0)) return n.fail("training_mode=1 is not supported (inference only)");
  for (size_t k = 1; k < n.numOutputs(); ++k)
    if (n.wantsOutput(k)) return n.fail("running mean/variance outputs are not supported (inference only)");
  auto xs = n.inShape(0);
  if (xs.size() < 2) return n.fail("input must have a channel dimension");
  int64_t C = xs[1];
  float eps = n.attrFloat("epsilon", 1e-5f);
  std::vector<int64_t> pshape(xs.size(), 1);
  pshape[1] = C;
  for (size_t k = 1; k < 5; ++k)
    if (n.inShape(k) != std::vector<int64_t>{C}) return n.fail("parameter " + std::to_string(k) + " must have shape [C]");
  const HostTensor *sc = n.inConst(1), *bc = n.inConst(2), *mc = n.inConst(3), *vc = n.inConst(4);
  Value x = n.in(0);
  if (sc && bc && mc && vc) {
    HostTensor a = HostTensor::make(DType::F32, pshape), b = HostTensor::make(DType::F32, pshape);
    for (int64_t c = 0; c < C; ++c) {
      double s = sc->get(c) / std::sqrt(vc->get(c) + double(eps));
      a.f[c] = float(s);
      b.f[c] = float(bc->get(c) - mc->get(c) * s);
    }
    n.out(0, n.add(n.mul(x, n.constant(a)), n.constant(b)));
    return success();
  }
  auto param = [&](size_t k) { return n.reshape(n.in(k), pshape); };
  Value inv = n.unary("tosa.rsqrt", n.add(param(4), n.splat(eps, int64_t(pshape.size()), f32(n))));
  Value scale = n.mul(param(1), inv);
  n.out(0, n.add(n.mul(n.sub(x, param(3)), scale), param(2)));
  return success();
}

LogicalResult importLayerNormalization(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  auto axis = normalizeAxis(n.attrInt("axis", -1), rank);
  if (!axis) return n.fail("axis out of range");
  float eps = n.attrFloat("epsilon", 1e-5f);
  Value x = n.in(0);
  int64_t count = 1;
  Value sum = x;
  for (int64_t k = *axis; k < rank; ++k) {
    sum = n.reduce("tosa.reduce_sum", sum, k);
    count *= xs[k];
  }
  Value invN = n.splat(1.0 / double(count), rank, f32(n));
  Value mean = n.mul(sum, invN);
  Value d = n.sub(x, mean);
  Value sq = n.mul(d, d);
  for (int64_t k = *axis; k < rank; ++k) sq = n.reduce("tosa.reduce_sum", sq, k);
  Value var = n.mul(sq, invN);
  Value inv = n.unary("tosa.rsqrt", n.add(var, n.splat(eps, rank, f32(n))));
  Value y = n.mul(n.mul(d, inv), n.in(1));
  if (n.hasInput(2)) y = n.add(y, n.in(2));
  n.out(0, y);
  if (n.wantsOutput(1)) n.out(1, mean);
  if (n.wantsOutput(2)) n.out(2, inv);
  return success();
}

/// Softmax and LogSoftmax over one axis (opset >= 13), or over all dims from the axis
/// on as one flattened row (older opsets).
/// The operand of Softmax, LogSoftmax and Hardmax and the axis they work on: the
/// input itself (opset >= 13), or, for older opsets, the input flattened to
/// [outer, rest] at the axis with axis 1.
static FailureOr<std::pair<Value, int64_t>> softmaxOperand(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  auto axis = normalizeAxis(n.attrInt("axis", n.opset < 13 ? 1 : -1), int64_t(xs.size()));
  if (!axis) return n.fail("axis out of range");
  Value x = n.in(0);
  if (n.opset >= 13) return std::make_pair(x, *axis);
  int64_t outer = numElements({xs.begin(), xs.begin() + *axis});
  return std::make_pair(n.reshape(x, {outer, numElements(xs) / std::max<int64_t>(outer, 1)}), int64_t(1));
}

static LogicalResult softmaxFamily(NodeImporter &n, bool log) {
  auto operand = softmaxOperand(n);
  if (failed(operand)) return failure();
  auto [x, ax] = *operand;
  auto xs = n.inShape(0);
  Value shifted = n.sub(x, n.reduce("tosa.reduce_max", x, ax));
  Value e = n.unary("tosa.exp", shifted);
  Value sum = n.reduce("tosa.reduce_sum", e, ax);
  Value y = log ? n.sub(shifted, n.unary("tosa.log", sum)) : n.mul(e, n.unary("tosa.reciprocal", sum));
  n.out(0, n.reshape(y, xs));
  return success();
}

LogicalResult importSoftmax(NodeImporter &n) { return softmaxFamily(n, false); }

//===----------------------------------------------------------------------===//
// Reductions
//===----------------------------------------------------------------------===//

enum class Pre { None, Abs, Square, Exp };
enum class Post { None, Sqrt, Log };

static LogicalResult reduction(NodeImporter &n, llvm::StringRef tosaOp, bool mean, int64_t axesInputOpset,
                               Pre pre = Pre::None, Post post = Post::None) {
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  std::vector<int64_t> axes;
  bool given = false;
  if (n.opset >= axesInputOpset) {
    if (n.hasInput(1)) {
      const HostTensor *c = n.inConst(1);
      if (!c) return n.fail("axes must be known at compile time");
      axes = c->toInts();
      given = true;
    }
  } else if (n.hasAttr("axes")) {
    axes = n.attrInts("axes");
    given = true;
  }
  if (!given || axes.empty()) {
    if (n.attrInt("noop_with_empty_axes", 0)) {
      n.out(0, n.in(0));
      return success();
    }
    axes.clear();
    for (int64_t k = 0; k < rank; ++k) axes.push_back(k);
  }
  bool keep = n.attrInt("keepdims", 1) != 0;
  Value y = n.in(0);
  if (pre != Pre::None && failed(n.requireF32(0))) return failure();
  if (pre == Pre::Abs) y = n.unary("tosa.abs", y);
  if (pre == Pre::Square) y = n.mul(y, y);
  if (pre == Pre::Exp) y = n.unary("tosa.exp", y);
  int64_t count = 1;
  std::vector<bool> reduced(rank, false);
  for (int64_t a : axes) {
    auto ax = normalizeAxis(a, rank);
    if (!ax) return n.fail("axis " + std::to_string(a) + " out of range");
    if (reduced[*ax]) continue;
    reduced[*ax] = true;
    y = n.reduce(tosaOp, y, *ax);
    count *= xs[*ax];
  }
  if (mean) {
    if (!isFloat(n.inDType(0))) return n.fail("ReduceMean of integers is not supported");
    y = n.mul(y, n.splat(1.0 / double(count), rank, f32(n)));
  }
  if (post == Post::Log) y = n.unary("tosa.log", y);
  if (post == Post::Sqrt) y = n.emit("tosa.reciprocal", {n.unary("tosa.rsqrt", y)}, y.getType());
  if (!keep) {
    std::vector<int64_t> out;
    for (int64_t k = 0; k < rank; ++k)
      if (!reduced[k]) out.push_back(xs[k]);
    y = n.reshape(y, out);
  }
  n.out(0, y);
  return success();
}
LogicalResult importReduceMean(NodeImporter &n) { return reduction(n, "tosa.reduce_sum", true, 18); }
LogicalResult importReduceSum(NodeImporter &n) { return reduction(n, "tosa.reduce_sum", false, 13); }
LogicalResult importReduceMax(NodeImporter &n) { return reduction(n, "tosa.reduce_max", false, 18); }
LogicalResult importReduceMin(NodeImporter &n) { return reduction(n, "tosa.reduce_min", false, 18); }
LogicalResult importReduceProd(NodeImporter &n) { return reduction(n, "tosa.reduce_product", false, 18); }
LogicalResult importReduceL1(NodeImporter &n) { return reduction(n, "tosa.reduce_sum", false, 18, Pre::Abs); }
LogicalResult importReduceL2(NodeImporter &n) {
  return reduction(n, "tosa.reduce_sum", false, 18, Pre::Square, Post::Sqrt);
}
LogicalResult importReduceSumSquare(NodeImporter &n) { return reduction(n, "tosa.reduce_sum", false, 18, Pre::Square); }
LogicalResult importReduceLogSum(NodeImporter &n) {
  return reduction(n, "tosa.reduce_sum", false, 18, Pre::None, Post::Log);
}
LogicalResult importReduceLogSumExp(NodeImporter &n) {
  return reduction(n, "tosa.reduce_sum", false, 18, Pre::Exp, Post::Log);
}

static LogicalResult argExtreme(NodeImporter &n, bool isMax) {
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  auto axis = normalizeAxis(n.attrInt("axis", 0), rank);
  if (!axis) return n.fail("axis out of range");
  bool last = n.attrInt("select_last_index", 0) != 0;
  Value x = n.in(0);
  // The last extreme is the first one of the reversed axis.
  if (last)
    x = n.emit("tosa.reverse", {x}, x.getType(), {n.named("axis", n.b.getI32IntegerAttr(int32_t(*axis)))});
  if (!isMax) {
    // argmin(x) = argmax(-x), for floats and signed integers alike.
    Type elem = cast<RankedTensorType>(x.getType()).getElementType();
    x = n.sub(n.splat(0, rank, elem), x);
  }
  std::vector<int64_t> reduced;
  for (int64_t k = 0; k < rank; ++k)
    if (k != *axis) reduced.push_back(xs[k]);
  Value idx = n.emit("tosa.argmax", {x}, n.tensorType(reduced, n.b.getIntegerType(32)),
                     {n.named("axis", n.b.getI32IntegerAttr(int32_t(*axis)))});
  idx = n.emit("tosa.cast", {idx}, n.tensorType(reduced, n.b.getIntegerType(64)));
  if (last) idx = n.sub(n.splat(double(xs[*axis] - 1), int64_t(reduced.size()), n.b.getIntegerType(64)), idx);
  if (n.attrInt("keepdims", 1)) {
    std::vector<int64_t> kept = xs;
    kept[*axis] = 1;
    idx = n.reshape(idx, kept);
  }
  n.out(0, idx);
  return success();
}
LogicalResult importArgMax(NodeImporter &n) { return argExtreme(n, true); }
LogicalResult importArgMin(NodeImporter &n) { return argExtreme(n, false); }

LogicalResult importLogSoftmax(NodeImporter &n) { return softmaxFamily(n, true); }

LogicalResult importInstanceNormalization(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  if (rank < 3) return n.fail("input must have spatial dimensions");
  float eps = n.attrFloat("epsilon", 1e-5f);
  std::vector<int64_t> pshape(rank, 1);
  pshape[1] = xs[1];
  Value x = n.in(0);
  int64_t count = 1;
  Value sum = x;
  for (int64_t k = 2; k < rank; ++k) {
    sum = n.reduce("tosa.reduce_sum", sum, k);
    count *= xs[k];
  }
  Value invN = n.splat(1.0 / double(count), rank, f32(n));
  Value d = n.sub(x, n.mul(sum, invN));
  Value sq = n.mul(d, d);
  for (int64_t k = 2; k < rank; ++k) sq = n.reduce("tosa.reduce_sum", sq, k);
  Value inv = n.unary("tosa.rsqrt", n.add(n.mul(sq, invN), n.splat(eps, rank, f32(n))));
  Value y = n.mul(n.mul(d, inv), n.reshape(n.in(1), pshape));
  n.out(0, n.add(y, n.reshape(n.in(2), pshape)));
  return success();
}

/// (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over `axes` (default N, H, W), as
/// ONNX's function body defines it.
LogicalResult importMeanVarianceNormalization(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  std::vector<int64_t> axes = n.hasAttr("axes") ? n.attrInts("axes") : std::vector<int64_t>{0, 2, 3};
  std::vector<bool> reduced(rank, false);
  int64_t count = 1;
  for (int64_t a : axes) {
    auto ax = normalizeAxis(a, rank);
    if (!ax || reduced[*ax]) return n.fail("axes must be distinct and within the input's rank");
    reduced[*ax] = true;
    count *= xs[*ax];
  }
  if (count == 0) return n.fail("cannot normalise over an empty axis");
  Value x = n.in(0), sum = x, sumSq = n.mul(x, x);
  for (int64_t k = 0; k < rank; ++k)
    if (reduced[k]) {
      sum = n.reduce("tosa.reduce_sum", sum, k);
      sumSq = n.reduce("tosa.reduce_sum", sumSq, k);
    }
  Value invN = n.splat(1.0 / double(count), rank, f32(n));
  Value mean = n.mul(sum, invN);
  Value var = n.sub(n.mul(sumSq, invN), n.mul(mean, mean));
  Value sd = n.add(n.unary("tosa.reciprocal", n.unary("tosa.rsqrt", n.clamp(var, 0.0, 3.4e38))), n.splat(1e-9, rank, f32(n)));
  n.out(0, n.mul(n.sub(x, mean), n.unary("tosa.reciprocal", sd)));
  return success();
}

//===----------------------------------------------------------------------===//
// Losses, through a one-hot mask of the class labels.
//===----------------------------------------------------------------------===//

/// Shared by NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: `logp` is
/// [N, C, d...] log-probabilities, labels [N, d...] class indices.
static LogicalResult nllLoss(NodeImporter &n, Value logp, size_t labelIdx, size_t weightIdx) {
  auto ps = n.shapeOf(logp), ls = n.inShape(labelIdx);
  int64_t rank = int64_t(ps.size());
  if (rank < 2 || int64_t(ls.size()) != rank - 1 || ls[0] != ps[0])
    return n.fail("labels shape does not match the scores");
  for (int64_t k = 2; k < rank; ++k)
    if (ls[k - 1] != ps[k]) return n.fail("labels shape does not match the scores");
  int64_t C = ps[1];
  std::string reduction = n.attrString("reduction", "mean");
  if (reduction != "mean" && reduction != "sum" && reduction != "none")
    return n.fail("unknown reduction '" + reduction + "'");
  Type i64 = n.b.getIntegerType(64), f32t = n.b.getF32Type(), i1 = n.b.getI1Type();
  Value labels = n.in(labelIdx);
  if (cast<RankedTensorType>(labels.getType()).getElementType() != i64)
    labels = n.emit("tosa.cast", {labels}, n.tensorType(ls, i64));
  std::vector<int64_t> lshape = ls;
  lshape.insert(lshape.begin() + 1, 1);
  Value l1 = n.reshape(labels, lshape);
  std::vector<int64_t> cshape(rank, 1);
  cshape[1] = C;
  HostTensor iota = HostTensor::make(DType::I64, cshape);
  for (int64_t c = 0; c < C; ++c) iota.i[c] = c;
  Value onehot = n.binary("tosa.equal", l1, n.constant(iota), i1);
  Value mask = n.emit("tosa.cast", {onehot}, n.tensorType(ps, f32t));
  Value picked = n.reshape(n.reduce("tosa.reduce_sum", n.mul(logp, mask), 1), ls);
  int64_t lr = int64_t(ls.size());
  Value w;
  if (n.hasInput(weightIdx)) {
    Value wc = n.reshape(n.in(weightIdx), cshape);
    w = n.reshape(n.reduce("tosa.reduce_sum", n.mul(mask, wc), 1), ls);
  } else {
    w = n.splat(1.0, lr, f32t);
  }
  if (n.hasAttr("ignore_index")) {
    Value ign = n.splat(double(n.attrInt("ignore_index", 0)), lr, i64);
    Value keep = n.unary("tosa.logical_not", n.binary("tosa.equal", labels, ign, i1));
    w = n.mul(w, n.emit("tosa.cast", {keep}, n.tensorType(ls, f32t)));
  }
  {
    // Broadcast the weights to the labels' shape: the mean divides by their sum.
    HostTensor ones = HostTensor::make(DType::F32, ls);
    std::fill(ones.f.begin(), ones.f.end(), 1.f);
    w = n.mul(w, n.constant(ones));
  }
  Value loss = n.sub(n.splat(0.0, lr, f32t), n.mul(picked, w));
  if (reduction == "none") {
    n.out(0, loss);
    return success();
  }
  auto sumAll = [&](Value v) {
    for (int64_t k = 0; k < lr; ++k) v = n.reduce("tosa.reduce_sum", v, k);
    return n.reshape(v, {});
  };
  Value total = sumAll(loss);
  if (reduction == "mean") {
    Value denom = sumAll(w);
    total = n.generic({total, denom}, f32t, [](OpBuilder &b, Location l, ValueRange v) -> Value {
      return arith::DivFOp::create(b, l, v[0], v[1]);
    });
  }
  n.out(0, total);
  return success();
}

LogicalResult importNegativeLogLikelihoodLoss(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  return nllLoss(n, n.in(0), 1, 2);
}

LogicalResult importSoftmaxCrossEntropyLoss(NodeImporter &n) {
  if (failed(n.requireF32(0))) return failure();
  Value x = n.in(0);
  Value shifted = n.sub(x, n.reduce("tosa.reduce_max", x, 1));
  Value logp = n.sub(shifted, n.unary("tosa.log", n.reduce("tosa.reduce_sum", n.unary("tosa.exp", shifted), 1)));
  if (failed(nllLoss(n, logp, 1, 2))) return failure();
  if (n.wantsOutput(1)) n.out(1, logp);
  return success();
}

LogicalResult importHardmax(NodeImporter &n) {
  auto operand = softmaxOperand(n);
  if (failed(operand)) return failure();
  auto [x, ax] = *operand;
  auto xs = n.inShape(0);
  std::vector<int64_t> shape = n.shapeOf(x);
  int64_t r = int64_t(shape.size());
  std::vector<int64_t> reduced;
  for (int64_t k = 0; k < r; ++k)
    if (k != ax) reduced.push_back(shape[k]);
  Value idx = n.emit("tosa.argmax", {x}, n.tensorType(reduced, n.b.getIntegerType(32)),
                     {n.named("axis", n.b.getI32IntegerAttr(int32_t(ax)))});
  std::vector<int64_t> kept = shape;
  kept[ax] = 1;
  idx = n.reshape(idx, kept);
  std::vector<int64_t> ishape(r, 1);
  ishape[ax] = shape[ax];
  HostTensor iota = HostTensor::make(DType::I32, ishape);
  for (int64_t c = 0; c < shape[ax]; ++c) iota.i[c] = c;
  Value onehot = n.binary("tosa.equal", idx, n.constant(iota), n.b.getI1Type());
  Value y = n.emit("tosa.cast", {onehot}, n.tensorType(shape, f32(n)));
  n.out(0, n.reshape(y, xs));
  return success();
}

} // namespace kiln::onnx_frontend
