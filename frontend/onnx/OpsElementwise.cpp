//===- OpsElementwise.cpp - Activations and broadcasting arithmetic ---------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Math/IR/Math.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::onnx_frontend {

// Constants up to this many elements are folded on the host.
static constexpr int64_t kFoldLimit = 1 << 16;

static bool allConst(NodeImporter &n) {
  for (size_t k = 0; k < n.numInputs(); ++k)
    if (n.hasInput(k) && !n.inConst(k)) return false;
  return true;
}

static bool foldableBinary(NodeImporter &n) {
  if (!allConst(n)) return false;
  auto shape = broadcastShapes(n.inConst(0)->shape, n.inConst(1)->shape);
  return shape && numElements(*shape) <= kFoldLimit;
}

static LogicalResult foldBinary(NodeImporter &n, DType outType,
                                const std::function<double(double, double)> &fn) {
  auto r = hostBinary(*n.inConst(0), *n.inConst(1), outType, fn);
  if (!r) return n.fail("operand shapes do not broadcast");
  n.outConst(0, std::move(*r));
  return success();
}

static bool isFloatValue(NodeImporter &n, size_t i) { return isFloat(n.inDType(i)); }

/// uint8 is carried in i8 bits; ops whose result depends on signedness (division,
/// remainder, ordering) zero-extend it to i32 first and truncate the result back.
static bool unsignedByte(NodeImporter &n) {
  for (size_t k = 0; k < n.numInputs(); ++k)
    if (n.hasInput(k) && n.inDType(k) == DType::U8) return true;
  return false;
}
static Value inI32(NodeImporter &n, size_t i) {
  Value x = n.in(i);
  Type i32 = n.b.getI32Type();
  return n.generic({x}, i32, [i32](OpBuilder &b, Location l, ValueRange v) -> Value {
    return arith::ExtUIOp::create(b, l, i32, v[0]);
  });
}
static Value toByte(NodeImporter &n, Value x) {
  Type i8 = n.b.getI8Type();
  return n.generic({x}, i8, [i8](OpBuilder &b, Location l, ValueRange v) -> Value {
    return arith::TruncIOp::create(b, l, i8, v[0]);
  });
}

static LogicalResult requireFloat(NodeImporter &n) {
  if (!isFloatValue(n, 0))
    return n.fail(std::string("element type ") + dtypeName(n.inDType(0)) + " is not supported for this op");
  return success();
}

//===----------------------------------------------------------------------===//
// Binary arithmetic
//===----------------------------------------------------------------------===//

LogicalResult importAdd(NodeImporter &n) {
  if (foldableBinary(n))
    return foldBinary(n, n.inDType(0), [](double a, double b) { return a + b; });
  n.out(0, n.add(n.in(0), n.in(1)));
  return success();
}

LogicalResult importSub(NodeImporter &n) {
  if (foldableBinary(n))
    return foldBinary(n, n.inDType(0), [](double a, double b) { return a - b; });
  n.out(0, n.sub(n.in(0), n.in(1)));
  return success();
}

LogicalResult importMul(NodeImporter &n) {
  if (foldableBinary(n))
    return foldBinary(n, n.inDType(0), [](double a, double b) { return a * b; });
  n.out(0, n.mul(n.in(0), n.in(1)));
  return success();
}

LogicalResult importDiv(NodeImporter &n) {
  bool fp = isFloatValue(n, 0);
  if (foldableBinary(n))
    return foldBinary(n, n.inDType(0), [fp](double a, double b) {
      if (fp) return a / b;
      return b == 0 ? 0.0 : std::trunc(a / b);
    });
  bool u8 = !fp && unsignedByte(n);
  Value a = u8 ? inI32(n, 0) : n.in(0), c = u8 ? inI32(n, 1) : n.in(1);
  Type elem = cast<RankedTensorType>(a.getType()).getElementType();
  Value q = n.generic({a, c}, elem, [fp](OpBuilder &b, Location l, ValueRange v) -> Value {
    if (fp) return arith::DivFOp::create(b, l, v[0], v[1]);
    return arith::DivSIOp::create(b, l, v[0], v[1]);
  });
  n.out(0, u8 ? toByte(n, q) : q);
  return success();
}

LogicalResult importPow(NodeImporter &n) {
  if (foldableBinary(n))
    return foldBinary(n, n.inDType(0), [](double a, double b) { return std::pow(a, b); });
  Value x = n.in(0);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  bool fpBase = isFloatValue(n, 0), fpExp = isFloatValue(n, 1);
  if (n.inDType(0) == DType::U8 || n.inDType(0) == DType::Bool || n.inDType(1) == DType::Bool ||
      n.inDType(1) == DType::U8)
    return n.fail("Pow of uint8 or bool tensors is not supported");
  // Exporters write x^2 (variance) and x^0.5; keep those exact and cheap.
  if (const HostTensor *e = n.inConst(1); fpBase && e && e->numel() == 1) {
    double p = e->get(0);
    if (p == 1.0) { n.out(0, x); return success(); }
    if (p == 2.0) { n.out(0, n.mul(x, x)); return success(); }
    if (p == 3.0) { n.out(0, n.mul(n.mul(x, x), x)); return success(); }
    if (p == 0.5) {
      n.out(0, n.generic({x}, elem, [](OpBuilder &b, Location l, ValueRange v) -> Value {
        return math::SqrtOp::create(b, l, v[0]);
      }));
      return success();
    }
  }
  Value e = n.in(1);
  if (fpBase && fpExp) {
    int64_t rank = std::max(n.inRank(0), n.inRank(1));
    n.out(0, n.binary("tosa.pow", n.toRank(x, rank), n.toRank(e, rank)));
    return success();
  }
  // Mixed or integer operands: the result has the base's type. Integer bases are
  // computed in f64, exact for results below 2^53.
  n.out(0, n.generic({x, e}, elem, [fpBase, fpExp, elem](OpBuilder &b, Location l, ValueRange v) -> Value {
    Type ft = fpBase ? elem : Type(b.getF64Type());
    auto toF = [&](Value s, bool isFp) -> Value {
      if (isFp) return s.getType() == ft ? s : arith::ExtFOp::create(b, l, ft, s).getResult();
      return arith::SIToFPOp::create(b, l, ft, s);
    };
    Value r = math::PowFOp::create(b, l, toF(v[0], fpBase), toF(v[1], fpExp));
    if (fpBase) return r;
    return arith::FPToSIOp::create(b, l, elem, r);
  }));
  return success();
}

static LogicalResult minMax(NodeImporter &n, bool isMax) {
  if (n.numInputs() == 0) return n.fail("needs at least one input");
  if (allConst(n)) {
    HostTensor acc = *n.inConst(0);
    for (size_t k = 1; k < n.numInputs(); ++k) {
      auto r = hostBinary(acc, *n.inConst(k), acc.dtype, [isMax](double a, double b) {
        return isMax ? std::max(a, b) : std::min(a, b);
      });
      if (!r) return n.fail("operand shapes do not broadcast");
      acc = std::move(*r);
    }
    n.outConst(0, std::move(acc));
    return success();
  }
  bool u8 = unsignedByte(n);
  Value acc = u8 ? inI32(n, 0) : n.in(0);
  for (size_t k = 1; k < n.numInputs(); ++k)
    acc = n.binary(isMax ? "tosa.maximum" : "tosa.minimum", acc, u8 ? inI32(n, k) : n.in(k));
  n.out(0, u8 ? toByte(n, acc) : acc);
  return success();
}
LogicalResult importMax(NodeImporter &n) { return minMax(n, true); }
LogicalResult importMin(NodeImporter &n) { return minMax(n, false); }

//===----------------------------------------------------------------------===//
// Comparisons and selection
//===----------------------------------------------------------------------===//

static LogicalResult compare(NodeImporter &n, llvm::StringRef tosaOp, bool swap,
                             const std::function<double(double, double)> &fn) {
  if (foldableBinary(n)) return foldBinary(n, DType::Bool, fn);
  bool u8 = unsignedByte(n);
  Value a = u8 ? inI32(n, 0) : n.in(0), c = u8 ? inI32(n, 1) : n.in(1);
  if (swap) std::swap(a, c);
  n.out(0, n.binary(tosaOp, a, c, n.b.getI1Type()));
  return success();
}
LogicalResult importEqual(NodeImporter &n) {
  return compare(n, "tosa.equal", false, [](double a, double b) { return a == b; });
}
LogicalResult importGreater(NodeImporter &n) {
  return compare(n, "tosa.greater", false, [](double a, double b) { return a > b; });
}
LogicalResult importLess(NodeImporter &n) {
  return compare(n, "tosa.greater", true, [](double a, double b) { return a < b; });
}

LogicalResult importNot(NodeImporter &n) {
  if (const HostTensor *c = n.inConst(0)) {
    HostTensor r = *c;
    for (auto &v : r.i) v = !v;
    n.outConst(0, std::move(r));
    return success();
  }
  n.out(0, n.unary("tosa.logical_not", n.in(0)));
  return success();
}

LogicalResult importWhere(NodeImporter &n) {
  if (allConst(n)) {
    auto shape = broadcastShapes(n.inConst(0)->shape, n.inConst(1)->shape);
    if (shape) shape = broadcastShapes(*shape, n.inConst(2)->shape);
    if (!shape) return n.fail("operand shapes do not broadcast");
    if (numElements(*shape) <= kFoldLimit) {
      HostTensor c = hostBroadcastTo(*n.inConst(0), *shape);
      HostTensor x = hostBroadcastTo(*n.inConst(1), *shape);
      HostTensor y = hostBroadcastTo(*n.inConst(2), *shape);
      for (int64_t k = 0; k < x.numel(); ++k)
        if (!c.i[k]) x.set(k, y.get(k));
      n.outConst(0, std::move(x));
      return success();
    }
  }
  Value c = n.in(0), x = n.in(1), y = n.in(2);
  int64_t rank = std::max({n.inRank(0), n.inRank(1), n.inRank(2)});
  c = n.toRank(c, rank);
  x = n.toRank(x, rank);
  y = n.toRank(y, rank);
  auto shape = broadcastShapes(n.shapeOf(c), n.shapeOf(x));
  if (shape) shape = broadcastShapes(*shape, n.shapeOf(y));
  if (!shape) return n.fail("operand shapes do not broadcast");
  n.out(0, n.emit("tosa.select", {c, x, y},
                  n.tensorType(*shape, cast<RankedTensorType>(x.getType()).getElementType())));
  return success();
}

//===----------------------------------------------------------------------===//
// Unary math and activations
//===----------------------------------------------------------------------===//

static LogicalResult unaryFloat(NodeImporter &n, llvm::StringRef tosaOp, double (*host)(double)) {
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit && c->floating()) {
    HostTensor r = *c;
    for (auto &v : r.f) v = float(host(v));
    n.outConst(0, std::move(r));
    return success();
  }
  if (failed(requireFloat(n))) return failure();
  n.out(0, n.unary(tosaOp, n.in(0)));
  return success();
}

LogicalResult importSigmoid(NodeImporter &n) {
  return unaryFloat(n, "tosa.sigmoid", [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
}
LogicalResult importTanh(NodeImporter &n) {
  return unaryFloat(n, "tosa.tanh", [](double x) { return std::tanh(x); });
}
LogicalResult importErf(NodeImporter &n) {
  return unaryFloat(n, "tosa.erf", [](double x) { return std::erf(x); });
}
LogicalResult importExp(NodeImporter &n) {
  return unaryFloat(n, "tosa.exp", [](double x) { return std::exp(x); });
}
LogicalResult importLog(NodeImporter &n) {
  return unaryFloat(n, "tosa.log", [](double x) { return std::log(x); });
}
LogicalResult importReciprocal(NodeImporter &n) {
  return unaryFloat(n, "tosa.reciprocal", [](double x) { return 1.0 / x; });
}

LogicalResult importAbs(NodeImporter &n) {
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit) {
    HostTensor r = *c;
    for (int64_t k = 0; k < r.numel(); ++k) r.set(k, std::fabs(r.get(k)));
    n.outConst(0, std::move(r));
    return success();
  }
  n.out(0, n.unary("tosa.abs", n.in(0)));
  return success();
}

LogicalResult importNeg(NodeImporter &n) {
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit) {
    HostTensor r = *c;
    for (int64_t k = 0; k < r.numel(); ++k) r.set(k, -r.get(k));
    n.outConst(0, std::move(r));
    return success();
  }
  Value x = n.in(0);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  n.out(0, n.sub(n.splat(0, n.inRank(0), elem), x));
  return success();
}

LogicalResult importSqrt(NodeImporter &n) {
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit && c->floating()) {
    HostTensor r = *c;
    for (auto &v : r.f) v = std::sqrt(v);
    n.outConst(0, std::move(r));
    return success();
  }
  if (failed(requireFloat(n))) return failure();
  Value x = n.in(0);
  n.out(0, n.generic({x}, cast<RankedTensorType>(x.getType()).getElementType(),
                     [](OpBuilder &b, Location l, ValueRange v) -> Value {
                       return math::SqrtOp::create(b, l, v[0]);
                     }));
  return success();
}

LogicalResult importRelu(NodeImporter &n) {
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit) {
    HostTensor r = *c; // folded (range computations of Range's expansion)
    for (int64_t k = 0; k < r.numel(); ++k) r.set(k, std::max(r.get(k), 0.0));
    n.outConst(0, std::move(r));
    return success();
  }
  if (failed(requireFloat(n))) return failure();
  n.out(0, n.clamp(n.in(0), 0.0, std::numeric_limits<double>::infinity()));
  return success();
}

LogicalResult importClip(NodeImporter &n) {
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
  if (n.opset < 11) {
    lo = n.attrFloat("min", -std::numeric_limits<float>::max());
    hi = n.attrFloat("max", std::numeric_limits<float>::max());
  } else {
    for (size_t k : {size_t(1), size_t(2)}) {
      if (!n.hasInput(k)) continue;
      const HostTensor *c = n.inConst(k);
      if (!c || c->numel() != 1) return n.fail("min/max must be constant scalars");
      (k == 1 ? lo : hi) = c->get(0);
    }
  }
  n.out(0, n.clamp(n.in(0), lo, hi));
  return success();
}

LogicalResult importHardSigmoid(NodeImporter &n) {
  if (failed(requireFloat(n))) return failure();
  float alpha = n.attrFloat("alpha", 0.2f), beta = n.attrFloat("beta", 0.5f);
  Value x = n.in(0);
  int64_t r = n.inRank(0);
  Type f32 = n.b.getF32Type();
  Value y = n.add(n.mul(x, n.splat(alpha, r, f32)), n.splat(beta, r, f32));
  n.out(0, n.clamp(y, 0.0, 1.0));
  return success();
}

LogicalResult importHardSwish(NodeImporter &n) {
  if (failed(requireFloat(n))) return failure();
  Value x = n.in(0);
  int64_t r = n.inRank(0);
  Type f32 = n.b.getF32Type();
  Value hs = n.clamp(n.add(n.mul(x, n.splat(1.0 / 6.0, r, f32)), n.splat(0.5, r, f32)), 0.0, 1.0);
  n.out(0, n.mul(x, hs));
  return success();
}

LogicalResult importLeakyRelu(NodeImporter &n) {
  if (failed(requireFloat(n))) return failure();
  float alpha = n.attrFloat("alpha", 0.01f);
  Value x = n.in(0);
  int64_t r = n.inRank(0);
  Type f32 = n.b.getF32Type();
  Value ge = n.binary("tosa.greater_equal", x, n.splat(0.0, r, f32), n.b.getI1Type());
  Value scaled = n.mul(x, n.splat(alpha, r, f32));
  n.out(0, n.emit("tosa.select", {ge, x, scaled}, x.getType()));
  return success();
}

} // namespace kiln::onnx_frontend

//===----------------------------------------------------------------------===//
// More unary math: TOSA where it has the op, linalg.generic + math otherwise.
//===----------------------------------------------------------------------===//

namespace kiln::onnx_frontend {

using BodyFn = std::function<Value(OpBuilder &, Location, Value)>;

/// Elementwise float op from a math/arith body; folds small constants with `host`.
static LogicalResult mathUnary(NodeImporter &n, double (*host)(double), const BodyFn &body) {
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit && c->floating() && host) {
    HostTensor r = *c;
    for (auto &v : r.f) v = float(host(v));
    n.outConst(0, std::move(r));
    return success();
  }
  if (failed(requireFloat(n))) return failure();
  Value x = n.in(0);
  n.out(0, n.generic({x}, cast<RankedTensorType>(x.getType()).getElementType(),
                     [&](OpBuilder &b, Location l, ValueRange v) { return body(b, l, v[0]); }));
  return success();
}

static Value fconst(OpBuilder &b, Location l, double v) {
  return arith::ConstantOp::create(b, l, b.getF32FloatAttr(float(v)));
}

LogicalResult importFloor(NodeImporter &n) {
  return unaryFloat(n, "tosa.floor", [](double x) { return std::floor(x); });
}
LogicalResult importCeil(NodeImporter &n) {
  return unaryFloat(n, "tosa.ceil", [](double x) { return std::ceil(x); });
}
LogicalResult importSin(NodeImporter &n) {
  return unaryFloat(n, "tosa.sin", [](double x) { return std::sin(x); });
}
LogicalResult importCos(NodeImporter &n) {
  return unaryFloat(n, "tosa.cos", [](double x) { return std::cos(x); });
}

#define KILN_MATH_UNARY(Name, MathOp, host)                                                        \
  LogicalResult import##Name(NodeImporter &n) {                                                    \
    return mathUnary(n, host, [](OpBuilder &b, Location l, Value x) -> Value {                     \
      return math::MathOp::create(b, l, x);                                                        \
    });                                                                                            \
  }
KILN_MATH_UNARY(Tan, TanOp, [](double x) { return std::tan(x); })
KILN_MATH_UNARY(Asin, AsinOp, [](double x) { return std::asin(x); })
KILN_MATH_UNARY(Acos, AcosOp, [](double x) { return std::acos(x); })
KILN_MATH_UNARY(Atan, AtanOp, [](double x) { return std::atan(x); })
KILN_MATH_UNARY(Sinh, SinhOp, [](double x) { return std::sinh(x); })
KILN_MATH_UNARY(Cosh, CoshOp, [](double x) { return std::cosh(x); })
KILN_MATH_UNARY(Asinh, AsinhOp, [](double x) { return std::asinh(x); })
KILN_MATH_UNARY(Acosh, AcoshOp, [](double x) { return std::acosh(x); })
KILN_MATH_UNARY(Atanh, AtanhOp, [](double x) { return std::atanh(x); })
KILN_MATH_UNARY(Round, RoundEvenOp, [](double x) { return std::nearbyint(x); })
#undef KILN_MATH_UNARY

LogicalResult importSign(NodeImporter &n) {
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit) {
    HostTensor r = *c;
    for (int64_t k = 0; k < r.numel(); ++k) r.set(k, (r.get(k) > 0) - (r.get(k) < 0));
    n.outConst(0, std::move(r));
    return success();
  }
  Value x = n.in(0);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  n.out(0, n.generic({x}, elem, [elem](OpBuilder &b, Location l, ValueRange v) -> Value {
    if (isa<FloatType>(elem)) {
      Value zero = fconst(b, l, 0.0), one = fconst(b, l, 1.0), neg = fconst(b, l, -1.0);
      Value gt = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, v[0], zero);
      Value lt = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, v[0], zero);
      return arith::SelectOp::create(b, l, gt, one, arith::SelectOp::create(b, l, lt, neg, zero));
    }
    Value zero = arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, 0));
    Value one = arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, 1));
    Value neg = arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, -1));
    Value gt = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sgt, v[0], zero);
    Value lt = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, v[0], zero);
    return arith::SelectOp::create(b, l, gt, one, arith::SelectOp::create(b, l, lt, neg, zero));
  }));
  return success();
}

LogicalResult importSoftplus(NodeImporter &n) {
  return mathUnary(n, [](double x) { return std::log1p(std::exp(x)); },
                   [](OpBuilder &b, Location l, Value x) -> Value {
                     // log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|)).
                     Value ax = math::AbsFOp::create(b, l, x);
                     Value e = math::ExpOp::create(b, l, arith::NegFOp::create(b, l, ax));
                     Value lp = math::Log1pOp::create(b, l, e);
                     return arith::AddFOp::create(b, l, arith::MaximumFOp::create(b, l, x, fconst(b, l, 0)), lp);
                   });
}

LogicalResult importSoftsign(NodeImporter &n) {
  return mathUnary(n, [](double x) { return x / (1 + std::fabs(x)); },
                   [](OpBuilder &b, Location l, Value x) -> Value {
                     Value d = arith::AddFOp::create(b, l, fconst(b, l, 1), math::AbsFOp::create(b, l, x));
                     return arith::DivFOp::create(b, l, x, d);
                   });
}

/// alpha * (exp(x) - 1) for x < 0, scaled by gamma (Elu: gamma 1; Selu).
static LogicalResult eluLike(NodeImporter &n, double alpha, double gamma) {
  return mathUnary(n, nullptr, [alpha, gamma](OpBuilder &b, Location l, Value x) -> Value {
    Value zero = fconst(b, l, 0);
    Value neg = arith::MulFOp::create(b, l, fconst(b, l, alpha),
                                      math::ExpM1Op::create(b, l, x));
    Value lt = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, x, zero);
    Value y = arith::SelectOp::create(b, l, lt, neg, x);
    return gamma == 1.0 ? y : arith::MulFOp::create(b, l, fconst(b, l, gamma), y).getResult();
  });
}
LogicalResult importElu(NodeImporter &n) { return eluLike(n, n.attrFloat("alpha", 1.f), 1.0); }
LogicalResult importSelu(NodeImporter &n) {
  return eluLike(n, n.attrFloat("alpha", 1.67326319217681884765625f), n.attrFloat("gamma", 1.05070102214813232421875f));
}

LogicalResult importCelu(NodeImporter &n) {
  double alpha = n.attrFloat("alpha", 1.f);
  return mathUnary(n, nullptr, [alpha](OpBuilder &b, Location l, Value x) -> Value {
    // max(0, x) + min(0, alpha * (exp(x / alpha) - 1))
    Value zero = fconst(b, l, 0);
    Value e = math::ExpM1Op::create(b, l, arith::DivFOp::create(b, l, x, fconst(b, l, alpha)));
    Value neg = arith::MinimumFOp::create(b, l, zero, arith::MulFOp::create(b, l, fconst(b, l, alpha), e));
    return arith::AddFOp::create(b, l, arith::MaximumFOp::create(b, l, zero, x), neg);
  });
}

LogicalResult importThresholdedRelu(NodeImporter &n) {
  double alpha = n.attrFloat("alpha", 1.f);
  return mathUnary(n, nullptr, [alpha](OpBuilder &b, Location l, Value x) -> Value {
    Value gt = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, x, fconst(b, l, alpha));
    return arith::SelectOp::create(b, l, gt, x, fconst(b, l, 0));
  });
}

LogicalResult importMish(NodeImporter &n) {
  return mathUnary(n, nullptr, [](OpBuilder &b, Location l, Value x) -> Value {
    Value ax = math::AbsFOp::create(b, l, x);
    Value sp = arith::AddFOp::create(
        b, l, arith::MaximumFOp::create(b, l, x, fconst(b, l, 0)),
        math::Log1pOp::create(b, l, math::ExpOp::create(b, l, arith::NegFOp::create(b, l, ax))));
    return arith::MulFOp::create(b, l, x, math::TanhOp::create(b, l, sp));
  });
}

LogicalResult importPRelu(NodeImporter &n) {
  if (failed(requireFloat(n))) return failure();
  Value x = n.in(0), slope = n.in(1);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  n.out(0, n.generic({x, slope}, elem, [](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value lt = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, v[0], fconst(b, l, 0));
    return arith::SelectOp::create(b, l, lt, arith::MulFOp::create(b, l, v[0], v[1]), v[0]);
  }));
  return success();
}

static LogicalResult logical(NodeImporter &n, llvm::StringRef tosaOp, bool (*host)(bool, bool)) {
  if (foldableBinary(n)) return foldBinary(n, DType::Bool, [host](double a, double b) { return host(a != 0, b != 0); });
  n.out(0, n.binary(tosaOp, n.in(0), n.in(1), n.b.getI1Type()));
  return success();
}
LogicalResult importAnd(NodeImporter &n) { return logical(n, "tosa.logical_and", [](bool a, bool b) { return a && b; }); }
LogicalResult importOr(NodeImporter &n) { return logical(n, "tosa.logical_or", [](bool a, bool b) { return a || b; }); }
LogicalResult importXor(NodeImporter &n) { return logical(n, "tosa.logical_xor", [](bool a, bool b) { return a != b; }); }

LogicalResult importGreaterOrEqual(NodeImporter &n) {
  return compare(n, "tosa.greater_equal", false, [](double a, double b) { return a >= b; });
}
LogicalResult importLessOrEqual(NodeImporter &n) {
  return compare(n, "tosa.greater_equal", true, [](double a, double b) { return a <= b; });
}

LogicalResult importMod(NodeImporter &n) {
  bool fmod = n.attrInt("fmod", 0) != 0;
  bool fp = isFloatValue(n, 0);
  if (fp && !fmod) return n.fail("float Mod requires fmod=1");
  if (foldableBinary(n))
    return foldBinary(n, n.inDType(0), [fmod](double a, double b) {
      if (b == 0) return 0.0;
      double r = std::fmod(a, b);
      if (!fmod && r != 0 && ((r < 0) != (b < 0))) r += b; // sign of the divisor
      return r;
    });
  bool u8 = !fp && unsignedByte(n);
  Value a = u8 ? inI32(n, 0) : n.in(0), c = u8 ? inI32(n, 1) : n.in(1);
  Type elem = cast<RankedTensorType>(a.getType()).getElementType();
  Value r = n.generic({a, c}, elem, [fp, fmod, elem](OpBuilder &b, Location l, ValueRange v) -> Value {
    if (fp) return arith::RemFOp::create(b, l, v[0], v[1]);
    Value r = arith::RemSIOp::create(b, l, v[0], v[1]);
    if (fmod) return r;
    // Python-style: the result takes the divisor's sign.
    Value zero = arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, 0));
    Value rNeg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, r, zero);
    Value dNeg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, v[1], zero);
    Value nz = arith::CmpIOp::create(b, l, arith::CmpIPredicate::ne, r, zero);
    Value fix = arith::AndIOp::create(b, l, nz, arith::XOrIOp::create(b, l, rNeg, dNeg));
    return arith::SelectOp::create(b, l, fix, arith::AddIOp::create(b, l, r, v[1]), r);
  });
  n.out(0, u8 ? toByte(n, r) : r);
  return success();
}

static Value sumInputs(NodeImporter &n) {
  Value acc = n.in(0);
  for (size_t k = 1; k < n.numInputs(); ++k) acc = n.add(acc, n.in(k));
  return acc;
}

LogicalResult importSum(NodeImporter &n) {
  n.out(0, sumInputs(n));
  return success();
}

LogicalResult importMean(NodeImporter &n) {
  Value s = sumInputs(n);
  Type elem = cast<RankedTensorType>(s.getType()).getElementType();
  n.out(0, n.mul(s, n.splat(1.0 / double(n.numInputs()), int64_t(n.shapeOf(s).size()), elem)));
  return success();
}

LogicalResult importIsNaN(NodeImporter &n) {
  if (failed(requireFloat(n))) return failure();
  Value x = n.in(0);
  n.out(0, n.generic({x}, n.b.getI1Type(), [](OpBuilder &b, Location l, ValueRange v) -> Value {
    return arith::CmpFOp::create(b, l, arith::CmpFPredicate::UNO, v[0], v[0]);
  }));
  return success();
}

LogicalResult importIsInf(NodeImporter &n) {
  if (failed(requireFloat(n))) return failure();
  bool pos = n.attrInt("detect_positive", 1), neg = n.attrInt("detect_negative", 1);
  Value x = n.in(0);
  n.out(0, n.generic({x}, n.b.getI1Type(), [pos, neg](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value inf = fconst(b, l, std::numeric_limits<double>::infinity());
    Value isPos = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, v[0], inf);
    Value isNeg = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, v[0], arith::NegFOp::create(b, l, inf));
    Value f = arith::ConstantOp::create(b, l, b.getBoolAttr(false));
    return arith::OrIOp::create(b, l, pos ? isPos : f, neg ? isNeg : f);
  }));
  return success();
}

//===----------------------------------------------------------------------===//
// Bit shifts (unsigned types only)
//===----------------------------------------------------------------------===//

LogicalResult importBitShift(NodeImporter &n) {
  std::string dir = n.attrString("direction", "");
  if (dir != "LEFT" && dir != "RIGHT") return n.fail("direction must be LEFT or RIGHT");
  DType dt = n.inDType(0);
  unsigned bits = dt == DType::U8 ? 8 : dt == DType::U16 ? 16 : dt == DType::U32 ? 32 : 0;
  if (!bits) return n.fail(std::string("BitShift of ") + dtypeName(dt) + " tensors is not supported");
  bool left = dir == "LEFT";
  if (foldableBinary(n))
    return foldBinary(n, dt, [left, bits](double a, double s) {
      if (s >= bits) return 0.0;
      uint64_t v = uint64_t(a), mask = (uint64_t(1) << bits) - 1;
      return double((left ? v << uint64_t(s) : v >> uint64_t(s)) & mask);
    });
  // uint16/uint32 are computed in a wider type: mask a left shift back to the ONNX
  // width. Shifting by the width or more gives 0 (the value's bits are all gone).
  Value a = n.in(0), c = n.in(1);
  Type elem = cast<RankedTensorType>(a.getType()).getElementType();
  n.out(0, n.generic({a, c}, elem, [left, bits, elem](OpBuilder &b, Location l, ValueRange v) -> Value {
    unsigned w = elem.getIntOrFloatBitWidth();
    auto cst = [&](uint64_t x) -> Value { return arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, x)); };
    Value r = left ? Value(arith::ShLIOp::create(b, l, v[0], v[1])) : Value(arith::ShRUIOp::create(b, l, v[0], v[1]));
    if (left && bits < w) r = arith::AndIOp::create(b, l, r, cst((uint64_t(1) << bits) - 1));
    Value tooFar = arith::CmpIOp::create(b, l, arith::CmpIPredicate::uge, v[1], cst(bits));
    return arith::SelectOp::create(b, l, tooFar, cst(0), r);
  }));
  return success();
}

} // namespace kiln::onnx_frontend
