//===- OpsIndexing.cpp - GatherND, scatters, CumSum, TopK, Einsum, ... -------===//
//
// Indexing ops that TOSA has no op for are linalg.generics whose bodies read
// the data and indices with tensor.extract. Scatters and CumSum iterate over the
// output plus one reduction dimension (the scattered positions, or the summed
// axis), folding each candidate into the output element in order, so that
// duplicates are applied in index order as ONNX's reference does.
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

using namespace mlir;

namespace kiln::onnx_frontend {

static constexpr int64_t kFoldLimit = 1 << 16;

static Type elemOf(Value v) { return cast<RankedTensorType>(v.getType()).getElementType(); }

/// A zero of `elem` as an arith constant.
static Value zeroOf(OpBuilder &b, Location l, Type elem) {
  if (isa<FloatType>(elem)) return arith::ConstantOp::create(b, l, b.getFloatAttr(elem, 0.0));
  return arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, 0));
}

/// tensor.empty filled with zeros.
static Value zeros(NodeImporter &n, llvm::ArrayRef<int64_t> shape, Type elem) {
  Value init = tensor::EmptyOp::create(n.b, n.loc, shape, elem);
  Value z = zeroOf(n.b, n.loc, elem);
  return linalg::FillOp::create(n.b, n.loc, ValueRange{z}, ValueRange{init}).getResult(0);
}

/// A fresh copy of `v`, so that an op updating it in place never writes into
/// its operand (a function argument or a constant).
static Value copyOf(NodeImporter &n, Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  Value init = tensor::EmptyOp::create(n.b, n.loc, t.getShape(), t.getElementType());
  return linalg::CopyOp::create(n.b, n.loc, ValueRange{v}, ValueRange{init}).getResult(0);
}

/// A linalg.generic over `rank` parallel dims plus one trailing reduction dim of
/// extent `extent`, accumulating into `inits` (one per result). The body gets
/// the input elements then the accumulators, and returns the new accumulators.
/// A splat constant of shape [extent] is added as an input so that every loop
/// has an operand dimension that gives its size.
static SmallVector<Value> reductionGeneric(
    NodeImporter &n, ValueRange ins, ArrayRef<AffineMap> inMaps, ValueRange inits, int64_t rank, int64_t extent,
    const std::function<SmallVector<Value>(OpBuilder &, Location, ValueRange)> &body) {
  SmallVector<Value> allIns(ins.begin(), ins.end());
  SmallVector<AffineMap> maps(inMaps.begin(), inMaps.end());
  HostTensor span = HostTensor::make(DType::I8, {extent});
  allIns.push_back(n.constant(span));
  maps.push_back(AffineMap::get(rank + 1, 0, {n.b.getAffineDimExpr(rank)}, n.b.getContext()));
  SmallVector<AffineExpr> outExprs;
  for (int64_t d = 0; d < rank; ++d) outExprs.push_back(n.b.getAffineDimExpr(d));
  for (size_t k = 0; k < inits.size(); ++k) maps.push_back(AffineMap::get(rank + 1, 0, outExprs, n.b.getContext()));
  SmallVector<utils::IteratorType> iters(rank, utils::IteratorType::parallel);
  iters.push_back(utils::IteratorType::reduction);
  SmallVector<Type> types;
  for (Value v : inits) types.push_back(v.getType());
  size_t nIns = ins.size();
  auto op = linalg::GenericOp::create(n.b, n.loc, types, allIns, inits, maps, iters,
                                      [&](OpBuilder &b, Location l, ValueRange args) {
                                        SmallVector<Value> a(args.begin(), args.begin() + nIns);
                                        a.append(args.begin() + nIns + 1, args.end());
                                        linalg::YieldOp::create(b, l, body(b, l, a));
                                      });
  return SmallVector<Value>(op.getResults().begin(), op.getResults().end());
}

static Value idx(OpBuilder &b, Location l, int64_t d) { return linalg::IndexOp::create(b, l, d); }
static Value cidx(OpBuilder &b, Location l, int64_t v) { return arith::ConstantIndexOp::create(b, l, v); }

/// An integer index value as `index`, negatives counted from `extent`, clamped into range.
static Value wrapClamp(OpBuilder &b, Location l, Value v, int64_t extent) {
  Value i = arith::IndexCastOp::create(b, l, b.getIndexType(), v);
  Value zero = cidx(b, l, 0);
  Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
  Value r = arith::SelectOp::create(b, l, neg, arith::AddIOp::create(b, l, i, cidx(b, l, extent)), i);
  return arith::MinSIOp::create(b, l, arith::MaxSIOp::create(b, l, r, zero), cidx(b, l, std::max<int64_t>(extent - 1, 0)));
}

/// An integer index value as `index`, negatives counted from `extent` (not clamped).
static Value wrap(OpBuilder &b, Location l, Value v, int64_t extent) {
  Value i = arith::IndexCastOp::create(b, l, b.getIndexType(), v);
  Value zero = cidx(b, l, 0);
  Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
  return arith::SelectOp::create(b, l, neg, arith::AddIOp::create(b, l, i, cidx(b, l, extent)), i);
}

static Value andAll(OpBuilder &b, Location l, Value a, Value c) {
  return a ? arith::AndIOp::create(b, l, a, c).getResult() : c;
}

//===----------------------------------------------------------------------===//
// GatherND
//===----------------------------------------------------------------------===//

LogicalResult importGatherND(NodeImporter &n) {
  auto ds = n.inShape(0), is = n.inShape(1);
  int64_t r = int64_t(ds.size()), q = int64_t(is.size());
  int64_t bd = n.attrInt("batch_dims", 0);
  if (q < 1 || r < 1) return n.fail("data and indices must have rank >= 1");
  if (bd < 0 || bd >= std::min(q, r)) return n.fail("batch_dims " + std::to_string(bd) + " out of range");
  int64_t m = is.back();
  if (m < 1 || m > r - bd)
    return n.fail("indices' last dimension " + std::to_string(m) + " does not fit data of rank " + std::to_string(r));
  for (int64_t d = 0; d < bd; ++d)
    if (is[d] != ds[d]) return n.fail("batch dimensions of data " + shapeText(ds) + " and indices " + shapeText(is) + " differ");
  if (isFloat(n.inDType(1))) return n.fail("indices must be integers");
  for (int64_t j = 0; j < m; ++j)
    if (ds[bd + j] == 0 && numElements(is) > 0) return n.fail("indexing an empty dimension of data " + shapeText(ds));
  std::vector<int64_t> out(is.begin(), is.end() - 1);
  out.insert(out.end(), ds.begin() + bd + m, ds.end());
  int64_t outRank = int64_t(out.size());

  const HostTensor *dc = n.inConst(0), *ic = n.inConst(1);
  if (dc && ic && numElements(out) <= kFoldLimit) {
    HostTensor res = HostTensor::make(dc->dtype, out);
    auto dstr = stridesOf(ds), ostr = stridesOf(out);
    int64_t inner = numElements({ds.begin() + bd + m, ds.end()});
    int64_t tuples = numElements({is.begin(), is.end() - 1});
    int64_t perBatch = bd ? tuples / std::max<int64_t>(numElements({is.begin(), is.begin() + bd}), 1) : tuples;
    for (int64_t t = 0; t < tuples; ++t) {
      int64_t batch = perBatch ? t / perBatch : 0;
      // Batch coordinates address data's leading dims.
      int64_t off = 0, rem = batch;
      for (int64_t d = bd - 1; d >= 0; --d) {
        off += (rem % ds[d]) * dstr[d];
        rem /= ds[d];
      }
      for (int64_t j = 0; j < m; ++j) {
        int64_t v = ic->i[t * m + j], ext = ds[bd + j];
        if (v < -ext || v >= ext) return n.fail("index " + std::to_string(v) + " out of range");
        if (v < 0) v += ext;
        off += v * dstr[bd + j];
      }
      for (int64_t e = 0; e < inner; ++e) res.set(t * inner + e, dc->get(off + e));
    }
    n.outConst(0, std::move(res));
    return success();
  }

  Value data = n.in(0), indices = n.in(1);
  Type elem = elemOf(data);
  int64_t idxLead = q - 1; // output dims [0, q-1) walk the index tuples
  n.out(0, n.indexed({}, {}, out, elem, [&](OpBuilder &b, Location l, ValueRange) -> Value {
    SmallVector<Value> coords;
    for (int64_t d = 0; d < bd; ++d) coords.push_back(idx(b, l, d));
    SmallVector<Value> icoords;
    for (int64_t d = 0; d < idxLead; ++d) icoords.push_back(idx(b, l, d));
    icoords.push_back(Value());
    for (int64_t j = 0; j < m; ++j) {
      icoords.back() = cidx(b, l, j);
      Value v = tensor::ExtractOp::create(b, l, indices, icoords);
      coords.push_back(wrapClamp(b, l, v, ds[bd + j]));
    }
    for (int64_t d = idxLead; d < outRank; ++d) coords.push_back(idx(b, l, d));
    return tensor::ExtractOp::create(b, l, data, coords);
  }));
  return success();
}

//===----------------------------------------------------------------------===//
// ScatterElements / ScatterND
//===----------------------------------------------------------------------===//

/// Combines the current output element with an update under `reduction`.
static FailureOr<std::function<Value(OpBuilder &, Location, Value, Value)>> combiner(NodeImporter &n, Type elem) {
  std::string red = n.attrString("reduction", "none");
  bool fp = isa<FloatType>(elem);
  if (elem.isInteger(1) && red != "none") return n.fail("reduction '" + red + "' on bool tensors is not supported");
  if (red == "none")
    return std::function<Value(OpBuilder &, Location, Value, Value)>([](OpBuilder &, Location, Value, Value u) { return u; });
  if (red == "add")
    return std::function<Value(OpBuilder &, Location, Value, Value)>([fp](OpBuilder &b, Location l, Value a, Value u) -> Value {
      return fp ? arith::AddFOp::create(b, l, a, u).getResult() : arith::AddIOp::create(b, l, a, u).getResult();
    });
  if (red == "mul")
    return std::function<Value(OpBuilder &, Location, Value, Value)>([fp](OpBuilder &b, Location l, Value a, Value u) -> Value {
      return fp ? arith::MulFOp::create(b, l, a, u).getResult() : arith::MulIOp::create(b, l, a, u).getResult();
    });
  if (red == "max")
    return std::function<Value(OpBuilder &, Location, Value, Value)>([fp](OpBuilder &b, Location l, Value a, Value u) -> Value {
      return fp ? arith::MaximumFOp::create(b, l, a, u).getResult() : arith::MaxSIOp::create(b, l, a, u).getResult();
    });
  if (red == "min")
    return std::function<Value(OpBuilder &, Location, Value, Value)>([fp](OpBuilder &b, Location l, Value a, Value u) -> Value {
      return fp ? arith::MinimumFOp::create(b, l, a, u).getResult() : arith::MinSIOp::create(b, l, a, u).getResult();
    });
  return n.fail("unknown reduction '" + red + "'");
}

LogicalResult importScatterElements(NodeImporter &n) {
  auto ds = n.inShape(0), is = n.inShape(1), us = n.inShape(2);
  int64_t r = int64_t(ds.size());
  if (r < 1) return n.fail("data must have rank >= 1");
  if (int64_t(is.size()) != r || is != us)
    return n.fail("indices " + shapeText(is) + " and updates " + shapeText(us) + " must have the same shape and data's rank");
  auto axisOpt = normalizeAxis(n.attrInt("axis", 0), r);
  if (!axisOpt) return n.fail("axis out of range");
  int64_t axis = *axisOpt;
  for (int64_t d = 0; d < r; ++d)
    if (d != axis && is[d] > ds[d]) return n.fail("indices " + shapeText(is) + " exceed data " + shapeText(ds) + " off the axis");
  if (isFloat(n.inDType(1))) return n.fail("indices must be integers");
  Value data = n.in(0);
  Type elem = elemOf(data);
  if (n.inDType(2) != n.inDType(0)) return n.fail("updates must have data's element type");
  auto comb = combiner(n, elem);
  if (failed(comb)) return failure();
  if (numElements(is) == 0) {
    n.out(0, data);
    return success();
  }
  Value indices = n.in(1), updates = n.in(2);
  auto fn = *comb;
  int64_t extent = ds[axis];
  auto res = reductionGeneric(n, {}, {}, {copyOf(n, data)}, r, is[axis], [&](OpBuilder &b, Location l, ValueRange args) -> SmallVector<Value> {
    Value acc = args[0];
    Value valid;
    SmallVector<Value> uc;
    for (int64_t d = 0; d < r; ++d) {
      if (d == axis) {
        uc.push_back(idx(b, l, r));
        continue;
      }
      Value p = idx(b, l, d);
      if (is[d] < ds[d]) {
        valid = andAll(b, l, valid, arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, p, cidx(b, l, is[d])));
        p = arith::MinSIOp::create(b, l, p, cidx(b, l, is[d] - 1));
      }
      uc.push_back(p);
    }
    Value target = wrap(b, l, tensor::ExtractOp::create(b, l, indices, uc), extent);
    Value match = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, target, idx(b, l, axis));
    match = andAll(b, l, valid, match);
    Value u = tensor::ExtractOp::create(b, l, updates, uc);
    return {arith::SelectOp::create(b, l, match, fn(b, l, acc, u), acc)};
  });
  n.out(0, res[0]);
  return success();
}

LogicalResult importScatterND(NodeImporter &n) {
  auto ds = n.inShape(0), is = n.inShape(1), us = n.inShape(2);
  int64_t r = int64_t(ds.size()), q = int64_t(is.size());
  if (r < 1 || q < 1) return n.fail("data and indices must have rank >= 1");
  int64_t k = is.back();
  if (k < 1 || k > r) return n.fail("indices' last dimension " + std::to_string(k) + " does not fit data " + shapeText(ds));
  std::vector<int64_t> want(is.begin(), is.end() - 1);
  want.insert(want.end(), ds.begin() + k, ds.end());
  if (us != want) return n.fail("updates shape " + shapeText(us) + " must be " + shapeText(want));
  if (isFloat(n.inDType(1))) return n.fail("indices must be integers");
  if (n.inDType(2) != n.inDType(0)) return n.fail("updates must have data's element type");
  Value data = n.in(0);
  Type elem = elemOf(data);
  auto comb = combiner(n, elem);
  if (failed(comb)) return failure();
  int64_t J = numElements({is.begin(), is.end() - 1});
  if (J == 0) {
    n.out(0, data);
    return success();
  }
  std::vector<int64_t> rest(ds.begin() + k, ds.end());
  std::vector<int64_t> flatU{J};
  flatU.insert(flatU.end(), rest.begin(), rest.end());
  Value indices = n.reshape(n.in(1), {J, k});
  Value updates = n.reshape(n.in(2), flatU);
  auto fn = *comb;
  auto res = reductionGeneric(n, {}, {}, {copyOf(n, data)}, r, J, [&](OpBuilder &b, Location l, ValueRange args) -> SmallVector<Value> {
    Value acc = args[0];
    Value u = idx(b, l, r);
    Value match;
    for (int64_t t = 0; t < k; ++t) {
      Value v = tensor::ExtractOp::create(b, l, indices, ValueRange{u, cidx(b, l, t)});
      Value target = wrap(b, l, v, ds[t]);
      match = andAll(b, l, match, arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, target, idx(b, l, t)));
    }
    SmallVector<Value> uc{u};
    for (int64_t d = k; d < r; ++d) uc.push_back(idx(b, l, d));
    Value upd = tensor::ExtractOp::create(b, l, updates, uc);
    return {arith::SelectOp::create(b, l, match, fn(b, l, acc, upd), acc)};
  });
  n.out(0, res[0]);
  return success();
}

//===----------------------------------------------------------------------===//
// CumSum
//===----------------------------------------------------------------------===//

LogicalResult importCumSum(NodeImporter &n) {
  auto xs = n.inShape(0);
  int64_t r = int64_t(xs.size());
  if (r < 1) return n.fail("input must have rank >= 1");
  const HostTensor *ac = n.inConst(1);
  if (!ac) return n.fail("axis must be known at compile time");
  if (ac->numel() != 1) return n.fail("axis must be a scalar");
  auto axisOpt = normalizeAxis(ac->toInts()[0], r);
  if (!axisOpt) return n.fail("axis " + std::to_string(ac->toInts()[0]) + " out of range");
  int64_t axis = *axisOpt;
  bool exclusive = n.attrInt("exclusive", 0) != 0, reverse = n.attrInt("reverse", 0) != 0;
  if (n.inDType(0) == DType::Bool) return n.fail("CumSum of bool tensors is not supported");
  int64_t L = xs[axis];
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit) {
    HostTensor res = *c;
    auto st = stridesOf(xs);
    int64_t stride = st[axis];
    for (int64_t base = 0; base < c->numel(); ++base) {
      if ((base / stride) % L != 0) continue; // start of each line along the axis
      double run = 0;
      for (int64_t s = 0; s < L; ++s) {
        int64_t pos = reverse ? L - 1 - s : s;
        int64_t at = base + pos * stride;
        if (exclusive) { res.set(at, run); run += c->get(at); }
        else { run += c->get(at); res.set(at, run); }
      }
    }
    n.outConst(0, std::move(res));
    return success();
  }
  Value x = n.in(0);
  Type elem = elemOf(x);
  if (L == 0) {
    n.out(0, x);
    return success();
  }
  bool fp = isa<FloatType>(elem);
  SmallVector<AffineExpr> xe;
  for (int64_t d = 0; d < r; ++d) xe.push_back(n.b.getAffineDimExpr(d == axis ? r : d));
  AffineMap xMap = AffineMap::get(r + 1, 0, xe, n.b.getContext());
  auto res = reductionGeneric(n, {x}, {xMap}, {zeros(n, xs, elem)}, r, L,
                              [&](OpBuilder &b, Location l, ValueRange a) -> SmallVector<Value> {
                                Value j = idx(b, l, r), i = idx(b, l, axis);
                                auto pred = reverse ? (exclusive ? arith::CmpIPredicate::sgt : arith::CmpIPredicate::sge)
                                                    : (exclusive ? arith::CmpIPredicate::slt : arith::CmpIPredicate::sle);
                                Value take = arith::CmpIOp::create(b, l, pred, j, i);
                                Value sum = fp ? arith::AddFOp::create(b, l, a[1], a[0]).getResult()
                                               : arith::AddIOp::create(b, l, a[1], a[0]).getResult();
                                return {arith::SelectOp::create(b, l, take, sum, a[1])};
                              });
  n.out(0, res[0]);
  return success();
}

//===----------------------------------------------------------------------===//
// EyeLike, Shrink, CastLike
//===----------------------------------------------------------------------===//

LogicalResult importEyeLike(NodeImporter &n) {
  auto xs = n.inShape(0);
  if (xs.size() != 2) return n.fail("input must be 2-D, got " + shapeText(xs));
  DType dt = n.inDType(0);
  if (n.hasAttr("dtype")) {
    dt = dtypeFromOnnx(int(n.attrInt("dtype", 0)));
    if (dt == DType::Unknown) return n.fail("dtype " + std::to_string(n.attrInt("dtype", 0)) + " is not supported");
  }
  if (dt == DType::Unknown) return n.fail("unsupported element type");
  int64_t k = n.attrInt("k", 0);
  HostTensor t = HostTensor::make(dt, xs);
  for (int64_t i = 0; i < xs[0]; ++i) {
    int64_t j = i + k;
    if (j >= 0 && j < xs[1]) t.set(i * xs[1] + j, 1);
  }
  if (t.numel() > kFoldLimit) n.out(0, n.constant(t));
  else n.outConst(0, std::move(t));
  return success();
}

LogicalResult importShrink(NodeImporter &n) {
  double lambd = n.attrFloat("lambd", 0.5f), bias = n.attrFloat("bias", 0.f);
  auto shrink = [&](double v) { return v < -lambd ? v + bias : v > lambd ? v - bias : 0.0; };
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= kFoldLimit) {
    HostTensor r = *c;
    for (int64_t k = 0; k < r.numel(); ++k) r.set(k, shrink(r.get(k)));
    n.outConst(0, std::move(r));
    return success();
  }
  Value x = n.in(0);
  Type elem = elemOf(x);
  if (elem.isInteger(1)) return n.fail("Shrink of bool tensors is not supported");
  bool isUnsigned = n.inDType(0) == DType::U8;
  n.out(0, n.generic({x}, elem, [&](OpBuilder &b, Location l, ValueRange v) -> Value {
    Type f = b.getF32Type();
    Value xf = v[0];
    if (!isa<FloatType>(elem))
      xf = isUnsigned ? arith::UIToFPOp::create(b, l, f, xf).getResult() : arith::SIToFPOp::create(b, l, f, xf).getResult();
    auto c = [&](double d) { return arith::ConstantOp::create(b, l, b.getF32FloatAttr(float(d))).getResult(); };
    Value lo = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OLT, xf, c(-lambd));
    Value hi = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OGT, xf, c(lambd));
    Value r = arith::SelectOp::create(b, l, hi, arith::SubFOp::create(b, l, xf, c(bias)), c(0));
    r = arith::SelectOp::create(b, l, lo, arith::AddFOp::create(b, l, xf, c(bias)), r);
    if (!isa<FloatType>(elem))
      r = isUnsigned ? arith::FPToUIOp::create(b, l, elem, r).getResult() : arith::FPToSIOp::create(b, l, elem, r).getResult();
    return r;
  }));
  return success();
}

LogicalResult importCastLike(NodeImporter &n) {
  DType to = n.inDType(1);
  if (to == DType::Unknown) return n.fail("the target element type is not supported");
  return castInput(n, 0, to);
}

//===----------------------------------------------------------------------===//
// TopK
//===----------------------------------------------------------------------===//

LogicalResult importTopK(NodeImporter &n) {
  auto xs = n.inShape(0);
  int64_t r = int64_t(xs.size());
  if (r < 1) return n.fail("input must have rank >= 1");
  auto axisOpt = normalizeAxis(n.attrInt("axis", -1), r);
  if (!axisOpt) return n.fail("axis out of range");
  int64_t axis = *axisOpt;
  int64_t k;
  if (n.opset < 10) {
    if (!n.hasAttr("k")) return n.fail("attribute k is missing");
    k = n.attrInt("k", 0);
  } else {
    const HostTensor *kc = n.inConst(1);
    if (!kc) return n.fail("k must be known at compile time");
    if (kc->numel() != 1) return n.fail("k must hold one value");
    k = kc->toInts()[0];
  }
  int64_t L = xs[axis];
  if (k < 0 || k > L) return n.fail("k = " + std::to_string(k) + " is out of range for an axis of " + std::to_string(L));
  bool largest = n.attrInt("largest", 1) != 0;
  Value x = n.in(0);
  Type elem = elemOf(x);
  if (elem.isInteger(1)) return n.fail("TopK of bool tensors is not supported");
  bool fp = isa<FloatType>(elem), isUnsigned = n.inDType(0) == DType::U8;
  std::vector<int64_t> outShape = xs;
  outShape[axis] = k;
  Type i64 = n.b.getIntegerType(64), i32 = n.b.getIntegerType(32);
  if (k == 0 || numElements(xs) == 0) {
    n.out(0, zeros(n, outShape, elem));
    n.out(1, zeros(n, outShape, i64));
    return success();
  }
  // Rank of each element along the axis: the number of elements that come
  // before it (greater, or equal with a lower index, for largest).
  SmallVector<AffineExpr> id, sw;
  for (int64_t d = 0; d < r; ++d) {
    id.push_back(n.b.getAffineDimExpr(d));
    sw.push_back(n.b.getAffineDimExpr(d == axis ? r : d));
  }
  AffineMap idMap = AffineMap::get(r + 1, 0, id, n.b.getContext());
  AffineMap swMap = AffineMap::get(r + 1, 0, sw, n.b.getContext());
  auto ranks = reductionGeneric(n, {x, x}, {idMap, swMap}, {zeros(n, xs, i32)}, r, L,
                                [&](OpBuilder &b, Location l, ValueRange a) -> SmallVector<Value> {
                                  Value xi = a[0], xj = a[1], acc = a[2];
                                  Value better, same;
                                  if (fp) {
                                    better = arith::CmpFOp::create(b, l, largest ? arith::CmpFPredicate::OGT : arith::CmpFPredicate::OLT, xj, xi);
                                    same = arith::CmpFOp::create(b, l, arith::CmpFPredicate::OEQ, xj, xi);
                                  } else {
                                    auto gt = isUnsigned ? arith::CmpIPredicate::ugt : arith::CmpIPredicate::sgt;
                                    auto lt = isUnsigned ? arith::CmpIPredicate::ult : arith::CmpIPredicate::slt;
                                    better = arith::CmpIOp::create(b, l, largest ? gt : lt, xj, xi);
                                    same = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, xj, xi);
                                  }
                                  Value earlier = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, idx(b, l, r), idx(b, l, axis));
                                  Value before = arith::OrIOp::create(b, l, better, arith::AndIOp::create(b, l, same, earlier));
                                  Value one = arith::ExtUIOp::create(b, l, i32, before);
                                  return {arith::AddIOp::create(b, l, acc, one)};
                                });
  // Output position p takes the element whose rank is p.
  auto sel = reductionGeneric(n, {x, ranks[0]}, {swMap, swMap}, {zeros(n, outShape, elem), zeros(n, outShape, i64)}, r, L,
                              [&](OpBuilder &b, Location l, ValueRange a) -> SmallVector<Value> {
                                Value rk = arith::IndexCastOp::create(b, l, b.getIndexType(), a[1]);
                                Value hit = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, rk, idx(b, l, axis));
                                Value j = arith::IndexCastOp::create(b, l, i64, idx(b, l, r));
                                return {arith::SelectOp::create(b, l, hit, a[0], a[2]),
                                        arith::SelectOp::create(b, l, hit, j, a[3])};
                              });
  n.out(0, sel[0]);
  n.out(1, sel[1]);
  return success();
}

//===----------------------------------------------------------------------===//
// Einsum
//===----------------------------------------------------------------------===//

namespace {
/// One einsum term: a label per dimension (letters 0..51, ellipsis dims 100+).
using Term = std::vector<int>;
} // namespace

static int letterLabel(char c) {
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= 'A' && c <= 'Z') return c - 'A';
  return -1;
}

/// Parses one term; `ellipsisRank` is the number of dims "..." stands for.
static std::optional<Term> parseTerm(const std::string &t, int64_t rank, bool isOutput, int64_t outEllipsis,
                                     bool &hasEllipsis, std::string &err) {
  Term labels;
  hasEllipsis = false;
  int letters = 0;
  for (size_t i = 0; i < t.size(); ++i)
    if (letterLabel(t[i]) >= 0) ++letters;
  for (size_t i = 0; i < t.size();) {
    if (t.compare(i, 3, "...") == 0) {
      if (hasEllipsis) { err = "more than one ellipsis in a term"; return std::nullopt; }
      hasEllipsis = true;
      int64_t e = isOutput ? outEllipsis : rank - letters;
      if (e < 0) { err = "term '" + t + "' has more labels than its input has dimensions"; return std::nullopt; }
      // Ellipsis dims are right-aligned over all operands.
      for (int64_t k = 0; k < e; ++k) labels.push_back(int(100 + (outEllipsis - e) + k));
      i += 3;
      continue;
    }
    int lab = letterLabel(t[i]);
    if (lab < 0) { err = std::string("invalid character '") + t[i] + "' in the equation"; return std::nullopt; }
    labels.push_back(lab);
    ++i;
  }
  if (!isOutput && int64_t(labels.size()) != rank) {
    err = "term '" + t + "' has " + std::to_string(labels.size()) + " labels for an input of rank " + std::to_string(rank);
    return std::nullopt;
  }
  return labels;
}

/// Two-operand f32 einsum without diagonals or broadcasting as one batched
/// tosa.matmul: labels only in one input are summed first, then the inputs are
/// laid out as [batch, M, K] and [batch, K, N]. Fails (emitting nothing) when
/// the equation does not have that form.
static LogicalResult einsumAsMatmul(NodeImporter &n, const Term &a, const Term &b, const Term &o,
                                    std::map<int, int64_t> &size) {
  auto has = [](const Term &t, int lab) { return std::find(t.begin(), t.end(), lab) != t.end(); };
  auto unique = [](const Term &t) {
    Term s = t;
    std::sort(s.begin(), s.end());
    return std::adjacent_find(s.begin(), s.end()) == s.end();
  };
  if (!unique(a) || !unique(b)) return failure();
  for (size_t k = 0; k < 2; ++k) {
    auto s = n.inShape(k);
    const Term &t = k ? b : a;
    for (size_t d = 0; d < t.size(); ++d)
      if (s[d] != size[t[d]] || s[d] == 0) return failure();
  }
  Term batch, M, N, K, SA, SB;
  for (int lab : o) {
    if (has(a, lab) && has(b, lab)) batch.push_back(lab);
    else if (has(a, lab)) M.push_back(lab);
    else N.push_back(lab);
  }
  for (int lab : a) {
    if (has(o, lab)) continue;
    (has(b, lab) ? K : SA).push_back(lab);
  }
  for (int lab : b)
    if (!has(o, lab) && !has(a, lab)) SB.push_back(lab);
  auto prod = [&](const Term &t) {
    int64_t p = 1;
    for (int lab : t) p *= size[lab];
    return p;
  };
  // Sums the labels in `drop`, then lays the rest out in `order` as [d0, d1, d2].
  auto layout = [&](Value v, const Term &t, const Term &drop, const std::vector<Term> &order) {
    for (int lab : drop) v = n.reduce("tosa.reduce_sum", v, int64_t(std::find(t.begin(), t.end(), lab) - t.begin()));
    std::vector<int64_t> perm;
    for (const Term &g : order)
      for (int lab : g) perm.push_back(int64_t(std::find(t.begin(), t.end(), lab) - t.begin()));
    for (int lab : drop) perm.push_back(int64_t(std::find(t.begin(), t.end(), lab) - t.begin()));
    v = n.transpose(v, perm);
    return n.reshape(v, {prod(order[0]), prod(order[1]), prod(order[2])});
  };
  Value av = layout(n.in(0), a, SA, {batch, M, K});
  Value bv = layout(n.in(1), b, SB, {batch, K, N});
  Value zp = n.zeroPoint(n.b.getF32Type());
  Value mm = n.emit("tosa.matmul", {av, bv, zp, zp}, n.tensorType({prod(batch), prod(M), prod(N)}, n.b.getF32Type()));
  Term cur = batch;
  cur.insert(cur.end(), M.begin(), M.end());
  cur.insert(cur.end(), N.begin(), N.end());
  std::vector<int64_t> curShape, perm;
  for (int lab : cur) curShape.push_back(size[lab]);
  for (int lab : o) perm.push_back(int64_t(std::find(cur.begin(), cur.end(), lab) - cur.begin()));
  n.out(0, n.transpose(n.reshape(mm, curShape), perm));
  return success();
}

LogicalResult importEinsum(NodeImporter &n) {
  std::string eq;
  for (char c : n.attrString("equation", "")) if (c != ' ') eq += c;
  size_t arrow = eq.find("->");
  std::string lhs = arrow == std::string::npos ? eq : eq.substr(0, arrow);
  std::vector<std::string> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(lhs.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  size_t nIn = n.numInputs();
  if (terms.size() != nIn) return n.fail("equation '" + eq + "' has " + std::to_string(terms.size()) + " terms for " + std::to_string(nIn) + " inputs");
  if (nIn == 0) return n.fail("Einsum needs at least one input");
  DType dt = n.inDType(0);
  for (size_t k = 0; k < nIn; ++k)
    if (n.inDType(k) != dt) return n.fail("inputs have different element types");
  if (dt == DType::Bool) return n.fail("Einsum of bool tensors is not supported");
  // Ellipsis rank: the largest over the inputs.
  int64_t ell = 0;
  for (size_t k = 0; k < nIn; ++k) {
    int letters = 0;
    for (char c : terms[k]) if (letterLabel(c) >= 0) ++letters;
    if (terms[k].find("...") != std::string::npos) ell = std::max<int64_t>(ell, n.inRank(k) - letters);
  }
  std::vector<Term> ins;
  std::map<int, int64_t> size;
  std::map<int, int> count;
  bool anyEllipsis = false;
  std::string err;
  for (size_t k = 0; k < nIn; ++k) {
    bool he;
    auto t = parseTerm(terms[k], n.inRank(k), false, ell, he, err);
    if (!t) return n.fail(err);
    anyEllipsis |= he;
    auto s = n.inShape(k);
    for (size_t d = 0; d < t->size(); ++d) {
      int lab = (*t)[d];
      ++count[lab];
      auto it = size.find(lab);
      if (it == size.end() || it->second == 1) size[lab] = s[d];
      else if (s[d] != 1 && s[d] != it->second)
        return n.fail("label sizes disagree in '" + eq + "': " + std::to_string(it->second) + " vs " + std::to_string(s[d]));
    }
    ins.push_back(*t);
  }
  Term outT;
  if (arrow != std::string::npos) {
    bool he;
    auto t = parseTerm(eq.substr(arrow + 2), 0, true, ell, he, err);
    if (!t) return n.fail(err);
    if (!he && anyEllipsis && ell > 0) return n.fail("the output of '" + eq + "' drops the ellipsis dimensions");
    outT = *t;
  } else {
    for (int64_t k = 0; k < ell; ++k) outT.push_back(int(100 + k));
    for (auto &kv : count)
      if (kv.first < 100 && kv.second == 1) outT.push_back(kv.first);
  }
  {
    std::vector<int> seen;
    for (int lab : outT) {
      if (!size.count(lab)) return n.fail("output label of '" + eq + "' appears in no input");
      if (std::find(seen.begin(), seen.end(), lab) != seen.end()) return n.fail("repeated output label in '" + eq + "'");
      seen.push_back(lab);
    }
  }
  // Loop dims: the output labels, then the summed ones.
  std::vector<int> loops = outT;
  for (auto &kv : size)
    if (std::find(loops.begin(), loops.end(), kv.first) == loops.end()) loops.push_back(kv.first);
  auto loopOf = [&](int lab) { return int64_t(std::find(loops.begin(), loops.end(), lab) - loops.begin()); };
  int64_t nLoops = int64_t(loops.size()), outRank = int64_t(outT.size());
  std::vector<int64_t> outShape;
  for (int lab : outT) outShape.push_back(size[lab]);

  if (nIn == 2 && dt == DType::F32 && succeeded(einsumAsMatmul(n, ins[0], ins[1], outT, size)))
    return success();

  SmallVector<Value> vals;
  SmallVector<AffineMap> maps;
  for (size_t k = 0; k < nIn; ++k) {
    vals.push_back(n.in(k));
    auto s = n.inShape(k);
    SmallVector<AffineExpr> ex;
    for (size_t d = 0; d < ins[k].size(); ++d) {
      int lab = ins[k][d];
      ex.push_back(s[d] == 1 && size[lab] != 1 ? n.b.getAffineConstantExpr(0) : n.b.getAffineDimExpr(loopOf(lab)));
    }
    maps.push_back(AffineMap::get(nLoops, 0, ex, n.b.getContext()));
  }
  // A loop no operand dimension spans (a label only ever broadcast) cannot happen:
  // its size would be 1, which maps as a plain dim.
  SmallVector<AffineExpr> oex;
  for (int64_t d = 0; d < outRank; ++d) oex.push_back(n.b.getAffineDimExpr(d));
  maps.push_back(AffineMap::get(nLoops, 0, oex, n.b.getContext()));
  Type elem = elemOf(vals[0]);
  bool fp = isa<FloatType>(elem);
  SmallVector<utils::IteratorType> iters;
  for (int64_t d = 0; d < nLoops; ++d)
    iters.push_back(d < outRank ? utils::IteratorType::parallel : utils::IteratorType::reduction);
  Value init = zeros(n, outShape, elem);
  auto op = linalg::GenericOp::create(n.b, n.loc, TypeRange{init.getType()}, vals, ValueRange{init}, maps, iters,
                                      [&](OpBuilder &b, Location l, ValueRange a) {
                                        Value p = a[0];
                                        for (size_t k = 1; k < nIn; ++k)
                                          p = fp ? arith::MulFOp::create(b, l, p, a[k]).getResult()
                                                 : arith::MulIOp::create(b, l, p, a[k]).getResult();
                                        Value acc = a[nIn];
                                        Value s = fp ? arith::AddFOp::create(b, l, acc, p).getResult()
                                                     : arith::AddIOp::create(b, l, acc, p).getResult();
                                        linalg::YieldOp::create(b, l, s);
                                      });
  n.out(0, op.getResult(0));
  return success();
}

//===----------------------------------------------------------------------===//
// ReverseSequence, Compress, NonZero
//===----------------------------------------------------------------------===//

/// Reverses the first sequence_lens[b] steps of each batch entry along time_axis.
LogicalResult importReverseSequence(NodeImporter &n) {
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  int64_t tAxis = n.attrInt("time_axis", 0), bAxis = n.attrInt("batch_axis", 1);
  if (rank < 2 || !((tAxis == 0 && bAxis == 1) || (tAxis == 1 && bAxis == 0)))
    return n.fail("time_axis and batch_axis must be 0 and 1 (in either order) of an input of rank >= 2");
  auto ls = n.inShape(1);
  if (ls.size() != 1 || ls[0] != xs[bAxis]) return n.fail("sequence_lens must be [batch]");
  if (isFloat(n.inDType(1))) return n.fail("sequence_lens must be integers");
  if (const HostTensor *c = n.inConst(1))
    for (int64_t v : c->toInts())
      if (v < 0 || v > xs[tAxis]) return n.fail("sequence length " + std::to_string(v) + " is out of range");
  Value x = n.in(0), lens = n.in(1);
  int64_t steps = xs[tAxis];
  n.out(0, n.indexed({}, {}, xs, elemOf(x), [&](OpBuilder &b, Location l, ValueRange) -> Value {
    SmallVector<Value> coords;
    for (int64_t d = 0; d < rank; ++d) coords.push_back(idx(b, l, d));
    Value t = coords[tAxis];
    Value len = arith::IndexCastOp::create(b, l, b.getIndexType(), tensor::ExtractOp::create(b, l, lens, ValueRange{coords[bAxis]}));
    // A runtime length outside [0, steps] is clamped so that no read leaves the tensor.
    len = arith::MinSIOp::create(b, l, arith::MaxSIOp::create(b, l, len, cidx(b, l, 0)), cidx(b, l, steps));
    Value inSeq = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, t, len);
    Value rev = arith::SubIOp::create(b, l, arith::SubIOp::create(b, l, len, cidx(b, l, 1)), t);
    coords[tAxis] = arith::SelectOp::create(b, l, inSeq, rev, t);
    return tensor::ExtractOp::create(b, l, x, coords);
  }));
  return success();
}

/// Keeps the slices along `axis` (or of the flattened input) whose condition is
/// true. The condition decides the output's shape, so it must be a constant.
LogicalResult importCompress(NodeImporter &n) {
  const HostTensor *cond = n.inConst(1);
  if (!cond) return n.fail("the condition must be known at compile time (it decides the output shape)");
  auto xs = n.inShape(0);
  int64_t rank = int64_t(xs.size());
  bool flatten = !n.hasAttr("axis");
  int64_t axis = 0;
  if (!flatten) {
    auto ax = normalizeAxis(n.attrInt("axis", 0), rank);
    if (!ax) return n.fail("axis out of range");
    axis = *ax;
  }
  std::vector<int64_t> shape = flatten ? std::vector<int64_t>{numElements(xs)} : xs;
  if (cond->numel() > shape[axis]) return n.fail("the condition is longer than the axis it selects on");
  std::vector<int64_t> keep;
  for (int64_t k = 0; k < cond->numel(); ++k)
    if (cond->get(k) != 0) keep.push_back(k);
  if (keep.empty()) return n.fail("the condition selects nothing (empty outputs are not supported)");
  HostTensor indices = HostTensor::ints(keep);
  if (const HostTensor *c = n.inConst(0)) {
    HostTensor data = *c;
    data.shape = shape;
    n.outConst(0, hostGather(data, indices, axis));
    return success();
  }
  Value x = n.in(0);
  if (flatten) x = n.reshape(x, shape);
  Value table = n.constant(indices);
  std::vector<int64_t> out = shape;
  out[axis] = int64_t(keep.size());
  n.out(0, n.indexed({}, {}, out, elemOf(x), [&](OpBuilder &b, Location l, ValueRange) -> Value {
    SmallVector<Value> coords;
    for (int64_t d = 0; d < int64_t(out.size()); ++d) coords.push_back(idx(b, l, d));
    Value at = tensor::ExtractOp::create(b, l, table, ValueRange{coords[axis]});
    coords[axis] = arith::IndexCastOp::create(b, l, b.getIndexType(), at);
    return tensor::ExtractOp::create(b, l, x, coords);
  }));
  return success();
}

/// Indices [rank, count] of the non-zero elements, in row-major order. The count
/// decides the output's shape, so the input must be a constant.
LogicalResult importNonZero(NodeImporter &n) {
  const HostTensor *c = n.inConst(0);
  if (!c) return n.fail("the input must be known at compile time (its non-zero count decides the output shape)");
  int64_t rank = int64_t(c->shape.size());
  if (rank == 0) return n.fail("NonZero of a scalar is not supported");
  std::vector<int64_t> hits;
  for (int64_t k = 0; k < c->numel(); ++k)
    if (c->get(k) != 0) hits.push_back(k);
  if (hits.empty()) return n.fail("the input has no non-zero element (empty outputs are not supported)");
  auto strides = stridesOf(c->shape);
  HostTensor out = HostTensor::make(DType::I64, {rank, int64_t(hits.size())});
  for (size_t j = 0; j < hits.size(); ++j)
    for (int64_t d = 0; d < rank; ++d) out.i[d * int64_t(hits.size()) + int64_t(j)] = (hits[j] / strides[d]) % c->shape[d];
  n.outConst(0, std::move(out));
  return success();
}

} // namespace kiln::onnx_frontend
