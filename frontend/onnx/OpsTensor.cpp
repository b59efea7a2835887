//===- OpsTensor.cpp - Shape, data movement and constant ops ----------------===//
//
// These ops fold on the host whenever their data is known, which is what makes
// exporters' shape subgraphs (Shape -> Gather -> Unsqueeze -> Concat -> Reshape)
// disappear once the input shapes are fixed.
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include <algorithm>
#include <limits>

using namespace mlir;

namespace kiln::onnx_frontend {

/// Reads an int list given either as attribute (older opsets) or constant input.
static std::optional<std::vector<int64_t>> intsFromAttrOrInput(NodeImporter &n, llvm::StringRef attr,
                                                              size_t input, bool &present) {
  present = true;
  if (n.hasAttr(attr)) return n.attrInts(attr);
  if (n.hasInput(input)) {
    if (const HostTensor *c = n.inConst(input)) return c->toInts();
    return std::nullopt;
  }
  present = false;
  return std::vector<int64_t>{};
}

LogicalResult importIdentity(NodeImporter &n) {
  if (const HostTensor *c = n.inConst(0)) n.outConst(0, *c);
  else n.out(0, n.in(0));
  return success();
}

LogicalResult importDropout(NodeImporter &n) {
  // Inference: the identity; the optional mask output is all true.
  if (n.hasInput(2)) {
    const HostTensor *training = n.inConst(2);
    if (!training || training->numel() != 1) return n.fail("training_mode must be a constant");
    if (training->get(0) != 0) return n.fail("training_mode=true (random dropout) is not supported");
  }
  if (failed(importIdentity(n))) return failure();
  if (n.wantsOutput(1)) {
    auto shape = n.inShape(0);
    if (numElements(shape) > (1 << 16)) { // a large mask is a splat, never built on the host
      n.out(1, n.splat(1, shape, n.b.getI1Type()));
      return success();
    }
    HostTensor mask = HostTensor::make(DType::Bool, shape);
    std::fill(mask.i.begin(), mask.i.end(), 1);
    n.outConst(1, std::move(mask));
  }
  return success();
}

LogicalResult importConstant(NodeImporter &n) {
  if (auto *a = n.attr("value")) {
    HostTensor t;
    t.dtype = dtypeFromOnnx(a->t().data_type());
    if (auto err = decodeTensor(a->t(), t)) return n.fail(*err);
    n.outConst(0, std::move(t));
    return success();
  }
  if (auto *a = n.attr("value_float")) {
    HostTensor t = HostTensor::make(DType::F32, {});
    t.f[0] = a->f();
    n.outConst(0, std::move(t));
    return success();
  }
  if (auto *a = n.attr("value_floats")) {
    HostTensor t = HostTensor::make(DType::F32, {int64_t(a->floats_size())});
    for (int k = 0; k < a->floats_size(); ++k) t.f[k] = a->floats(k);
    n.outConst(0, std::move(t));
    return success();
  }
  if (auto *a = n.attr("value_int")) {
    n.outConst(0, HostTensor::scalarInt(a->i()));
    return success();
  }
  if (auto *a = n.attr("value_ints")) {
    n.outConst(0, HostTensor::ints({a->ints().begin(), a->ints().end()}));
    return success();
  }
  return n.fail("only value, value_float(s) and value_int(s) constants are supported");
}

LogicalResult importConstantOfShape(NodeImporter &n) {
  const HostTensor *shape = n.inConst(0);
  if (!shape) return n.fail("the shape input must be known at compile time");
  HostTensor value = HostTensor::make(DType::F32, {1});
  if (auto *a = n.attr("value")) {
    if (auto err = decodeTensor(a->t(), value)) return n.fail(*err);
  }
  if (value.numel() != 1) return n.fail("'value' must hold exactly one element");
  auto dims = shape->toInts();
  for (int64_t d : dims)
    if (d < 0) return n.fail("negative dimension in shape " + shapeText(dims));
  if (auto why = tooLarge(dims)) return n.fail(*why);
  if (numElements(dims) > (1 << 16)) {
    // A large fill is emitted as a splat, never materialised on the host.
    n.out(0, n.splat(value.get(0), dims, n.elementType(value.dtype)));
    return success();
  }
  HostTensor out = HostTensor::make(value.dtype, dims);
  for (int64_t k = 0; k < out.numel(); ++k) out.set(k, value.get(0));
  n.outConst(0, std::move(out));
  return success();
}

LogicalResult importShape(NodeImporter &n) {
  auto shape = n.inShape(0);
  int64_t rank = int64_t(shape.size());
  int64_t start = n.attrInt("start", 0), end = n.attrInt("end", rank);
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  start = std::clamp<int64_t>(start, 0, rank);
  end = std::clamp<int64_t>(end, start, rank);
  n.outConst(0, HostTensor::ints({shape.begin() + start, shape.begin() + end}));
  return success();
}

LogicalResult importCast(NodeImporter &n) {
  DType to = dtypeFromOnnx(int(n.attrInt("to", 0)));
  if (to == DType::Unknown) return n.fail("cast to " + onnxTypeName(int(n.attrInt("to", 0))) + " is not supported");
  return castInput(n, 0, to);
}

LogicalResult castInput(NodeImporter &n, size_t input, DType to) {
  if (const HostTensor *c = n.inConst(input)) {
    n.outConst(0, c->castTo(to));
    return success();
  }
  bool toUnsigned = to == DType::U8;
  if (to == DType::F64 || to == DType::F16) to = DType::F32; // computed in f32
  Value x = n.in(input);
  Type elem = n.elementType(to);
  if (cast<RankedTensorType>(x.getType()).getElementType() == elem) {
    n.out(0, x);
    return success();
  }
  if (n.inDType(input) == DType::U8 && !elem.isInteger(1)) {
    // uint8 is carried in i8 bits: widen with zero extension (tosa.cast is signed).
    n.out(0, n.generic({x}, elem, [elem](OpBuilder &b, Location l, ValueRange v) -> Value {
      if (isa<FloatType>(elem)) return arith::UIToFPOp::create(b, l, elem, v[0]);
      return arith::ExtUIOp::create(b, l, elem, v[0]);
    }));
    return success();
  }
  if (isFloat(n.inDType(input)) && isa<IntegerType>(elem) && !elem.isInteger(1)) {
    // ONNX truncates toward zero; tosa.cast rounds to nearest.
    n.out(0, n.generic({x}, elem, [elem, toUnsigned](OpBuilder &b, Location l, ValueRange v) -> Value {
      if (toUnsigned) return arith::FPToUIOp::create(b, l, elem, v[0]);
      return arith::FPToSIOp::create(b, l, elem, v[0]);
    }));
    return success();
  }
  n.out(0, n.emit("tosa.cast", {x}, n.tensorType(n.inShape(input), elem)));
  return success();
}

static void setTensorOrConst(NodeImporter &n, size_t out, const HostTensor *c,
                             const std::vector<int64_t> &shape) {
  if (c) {
    HostTensor r = *c;
    r.shape = shape;
    n.outConst(out, std::move(r));
  } else {
    n.out(out, n.reshape(n.in(0), shape));
  }
}

LogicalResult importReshape(NodeImporter &n) {
  const HostTensor *target = n.inConst(1);
  if (!target) return n.fail("the target shape must be known at compile time (fix input shapes with --shape)");
  auto in = n.inShape(0);
  auto dims = target->toInts();
  bool allowZero = n.attrInt("allowzero", 0) != 0;
  int64_t inferred = -1, known = 1;
  for (size_t k = 0; k < dims.size(); ++k) {
    if (dims[k] == 0 && !allowZero) {
      if (k >= in.size()) return n.fail("shape " + shapeText(dims) + " copies a dimension the input lacks");
      dims[k] = in[k];
    }
    if (dims[k] == -1) {
      if (inferred >= 0) return n.fail("shape " + shapeText(dims) + " has more than one -1");
      inferred = int64_t(k);
    } else if (dims[k] < 0) {
      return n.fail("invalid dimension in shape " + shapeText(dims));
    } else {
      known *= dims[k];
    }
  }
  int64_t total = numElements(in);
  if (inferred >= 0) {
    if (known == 0 || total % known) return n.fail("cannot reshape " + shapeText(in) + " to " + shapeText(target->toInts()));
    dims[inferred] = total / known;
  }
  if (numElements(dims) != total) return n.fail("cannot reshape " + shapeText(in) + " to " + shapeText(dims));
  setTensorOrConst(n, 0, n.inConst(0), dims);
  return success();
}

LogicalResult importFlatten(NodeImporter &n) {
  auto in = n.inShape(0);
  int64_t rank = int64_t(in.size()), a = n.attrInt("axis", 1);
  // Flatten's axis ranges over [-rank, rank]: rank itself means "all in the outer dim".
  if (a < -rank || a > rank) return n.fail("axis " + std::to_string(a) + " out of range");
  std::optional<int64_t> axis = a < 0 ? a + rank : a;
  int64_t outer = numElements({in.begin(), in.begin() + *axis});
  setTensorOrConst(n, 0, n.inConst(0), {outer, numElements(in) / std::max<int64_t>(outer, 1)});
  return success();
}

LogicalResult importSqueeze(NodeImporter &n) {
  auto in = n.inShape(0);
  bool present;
  auto axes = intsFromAttrOrInput(n, "axes", 1, present);
  if (!axes) return n.fail("axes must be known at compile time");
  std::vector<bool> drop(in.size(), false);
  if (!present || axes->empty()) {
    for (size_t k = 0; k < in.size(); ++k) drop[k] = in[k] == 1;
  } else {
    for (int64_t a : *axes) {
      auto ax = normalizeAxis(a, int64_t(in.size()));
      if (!ax || in[*ax] != 1) return n.fail("cannot squeeze axis " + std::to_string(a) + " of shape " + shapeText(in));
      drop[*ax] = true;
    }
  }
  std::vector<int64_t> out;
  for (size_t k = 0; k < in.size(); ++k)
    if (!drop[k]) out.push_back(in[k]);
  setTensorOrConst(n, 0, n.inConst(0), out);
  return success();
}

LogicalResult importUnsqueeze(NodeImporter &n) {
  auto in = n.inShape(0);
  bool present;
  auto axes = intsFromAttrOrInput(n, "axes", 1, present);
  if (!axes || !present) return n.fail("axes must be known at compile time");
  int64_t outRank = int64_t(in.size() + axes->size());
  std::vector<bool> isNew(outRank, false);
  for (int64_t a : *axes) {
    auto ax = normalizeAxis(a, outRank);
    if (!ax || isNew[*ax]) return n.fail("invalid axes " + shapeText(*axes));
    isNew[*ax] = true;
  }
  std::vector<int64_t> out;
  size_t j = 0;
  for (int64_t k = 0; k < outRank; ++k) out.push_back(isNew[k] ? 1 : in[j++]);
  setTensorOrConst(n, 0, n.inConst(0), out);
  return success();
}

LogicalResult importTranspose(NodeImporter &n) {
  int64_t rank = n.inRank(0);
  std::vector<int64_t> perm = n.attrInts("perm");
  if (perm.empty())
    for (int64_t k = rank - 1; k >= 0; --k) perm.push_back(k);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t k = 0; k < rank; ++k)
    if (int64_t(sorted.size()) != rank || sorted[k] != k) return n.fail("perm " + shapeText(perm) + " is not a permutation");
  if (const HostTensor *c = n.inConst(0)) {
    n.outConst(0, hostTranspose(*c, perm));
    return success();
  }
  n.out(0, n.transpose(n.in(0), perm));
  return success();
}

LogicalResult importConcat(NodeImporter &n) {
  int64_t rank = n.inRank(0);
  auto axis = normalizeAxis(n.attrInt("axis", 0), rank);
  if (!axis) return n.fail("axis out of range");
  bool allConst = true;
  std::vector<const HostTensor *> consts;
  for (size_t k = 0; k < n.numInputs(); ++k) {
    auto s = n.inShape(k), s0 = n.inShape(0);
    if (s.size() != size_t(rank)) return n.fail("inputs have different ranks");
    for (int64_t d = 0; d < rank; ++d)
      if (d != *axis && s[d] != s0[d]) return n.fail("input shapes " + shapeText(s0) + " and " + shapeText(s) + " differ off the axis");
    const HostTensor *c = n.inConst(k);
    allConst &= c != nullptr;
    consts.push_back(c);
  }
  if (allConst) {
    std::vector<const HostTensor *> parts;
    for (auto *c : consts)
      if (c->numel() > 0) parts.push_back(c);
    if (parts.empty()) {
      HostTensor e = *consts[0];
      n.outConst(0, e);
      return success();
    }
    n.outConst(0, hostConcat(parts, *axis));
    return success();
  }
  SmallVector<Value> parts;
  for (size_t k = 0; k < n.numInputs(); ++k)
    if (n.inShape(k)[*axis] > 0) parts.push_back(n.in(k));
  n.out(0, n.concat(parts, *axis));
  return success();
}

/// Clamps ONNX slice parameters for one axis; returns (start, step, count).
static std::tuple<int64_t, int64_t, int64_t> sliceAxis(int64_t dim, int64_t start, int64_t end,
                                                       int64_t step) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    return {start, step, end > start ? (end - start + step - 1) / step : 0};
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  return {start, step, start > end ? (start - end - step - 1) / -step : 0};
}

LogicalResult importSlice(NodeImporter &n) {
  auto in = n.inShape(0);
  int64_t rank = int64_t(in.size());
  std::vector<int64_t> starts, ends, axes, steps;
  if (n.opset < 10) {
    starts = n.attrInts("starts");
    ends = n.attrInts("ends");
    axes = n.attrInts("axes");
  } else {
    for (size_t k = 1; k < 5; ++k) {
      if (!n.hasInput(k)) continue;
      const HostTensor *c = n.inConst(k);
      if (!c) return n.fail("starts/ends/axes/steps must be known at compile time");
      (k == 1 ? starts : k == 2 ? ends : k == 3 ? axes : steps) = c->toInts();
    }
  }
  if (axes.empty())
    for (size_t k = 0; k < starts.size(); ++k) axes.push_back(int64_t(k));
  if (steps.empty()) steps.assign(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    return n.fail("starts, ends, axes and steps have different lengths");
  std::vector<int64_t> offs(rank, 0), strides(rank, 1), size = in;
  for (size_t k = 0; k < starts.size(); ++k) {
    auto ax = normalizeAxis(axes[k], rank);
    if (!ax) return n.fail("axis " + std::to_string(axes[k]) + " out of range");
    if (steps[k] == 0) return n.fail("step 0 is invalid");
    auto [s, st, cnt] = sliceAxis(in[*ax], starts[k], ends[k], steps[k]);
    offs[*ax] = s;
    strides[*ax] = st;
    size[*ax] = cnt;
  }
  if (const HostTensor *c = n.inConst(0)) {
    n.outConst(0, hostSlice(*c, offs, strides, size));
    return success();
  }
  Value x = n.in(0);
  if (std::any_of(strides.begin(), strides.end(), [](int64_t s) { return s < 0; })) {
    // Negative steps walk backwards: out[i] = x[off + i * step] per axis.
    n.out(0, n.indexed({}, {}, size, cast<RankedTensorType>(x.getType()).getElementType(),
                       [&](OpBuilder &b, Location l, ValueRange) -> Value {
                         SmallVector<Value> coords;
                         for (int64_t k = 0; k < rank; ++k) {
                           Value i = linalg::IndexOp::create(b, l, k);
                           Value scaled = arith::MulIOp::create(b, l, i, arith::ConstantIndexOp::create(b, l, strides[k]));
                           coords.push_back(arith::AddIOp::create(b, l, scaled, arith::ConstantIndexOp::create(b, l, offs[k])));
                         }
                         return tensor::ExtractOp::create(b, l, x, coords);
                       }));
    return success();
  }
  bool unit = std::all_of(strides.begin(), strides.end(), [](int64_t s) { return s == 1; });
  if (unit) {
    n.out(0, n.slice(x, offs, size));
    return success();
  }
  auto resultType = n.tensorType(size, cast<RankedTensorType>(x.getType()).getElementType());
  n.out(0, tensor::ExtractSliceOp::create(n.b, n.loc, resultType, x, ValueRange{}, ValueRange{},
                                          ValueRange{}, offs, size, strides));
  return success();
}

LogicalResult importGather(NodeImporter &n) {
  auto data = n.inShape(0);
  int64_t rank = int64_t(data.size());
  auto axis = normalizeAxis(n.attrInt("axis", 0), rank);
  if (!axis) return n.fail("axis out of range");
  int64_t extent = data[*axis];
  const HostTensor *idxC = n.inConst(1);
  if (idxC) {
    HostTensor idx = idxC->castTo(DType::I64);
    for (auto &v : idx.i) {
      if (v < -extent || v >= extent)
        return n.fail("index " + std::to_string(v) + " out of range for axis of size " + std::to_string(extent));
      if (v < 0) v += extent;
    }
    if (const HostTensor *c = n.inConst(0)) {
      n.outConst(0, hostGather(*c, idx, *axis));
      return success();
    }
    std::vector<int64_t> outShape(data.begin(), data.begin() + *axis);
    outShape.insert(outShape.end(), idx.shape.begin(), idx.shape.end());
    outShape.insert(outShape.end(), data.begin() + *axis + 1, data.end());
    // A single index is a slice (e.g. taking the CLS token).
    if (idx.numel() == 1) {
      std::vector<int64_t> start(rank, 0), size = data;
      start[*axis] = idx.i[0];
      size[*axis] = 1;
      n.out(0, n.reshape(n.slice(n.in(0), start, size), outShape));
      return success();
    }
  }
  // General case: move the axis to the front and use tosa.gather on [1, K, C].
  Value x = n.in(0);
  Value indices = n.in(1);
  auto idxShape = n.inShape(1);
  std::vector<int64_t> perm{*axis};
  for (int64_t k = 0; k < rank; ++k)
    if (k != *axis) perm.push_back(k);
  Value xt = n.transpose(x, perm);
  int64_t inner = numElements(data) / std::max<int64_t>(extent, 1);
  Value values = n.reshape(xt, {1, extent, inner});
  int64_t nIdx = numElements(idxShape);
  Type i32 = n.b.getIntegerType(32);
  Value idx = indices;
  if (cast<RankedTensorType>(idx.getType()).getElementType() != i32)
    idx = n.emit("tosa.cast", {idx}, n.tensorType(idxShape, i32));
  {
    // Negative indices count from the end; out-of-range ones are clamped so that a
    // bad index can never read outside the tensor.
    Value neg = n.binary("tosa.greater", n.splat(0, int64_t(idxShape.size()), i32), idx, n.b.getI1Type());
    Value wrapped = n.add(idx, n.splat(double(extent), int64_t(idxShape.size()), i32));
    idx = n.emit("tosa.select", {neg, wrapped, idx}, idx.getType());
    idx = n.clamp(idx, 0, double(extent - 1));
  }
  idx = n.reshape(idx, {1, nIdx});
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  Value g = n.emit("tosa.gather", {values, idx}, n.tensorType({1, nIdx, inner}, elem));
  // Result laid out as [indices..., rest...] then moved back into place.
  std::vector<int64_t> restShape;
  for (int64_t k = 0; k < rank; ++k)
    if (k != *axis) restShape.push_back(data[k]);
  std::vector<int64_t> gShape = idxShape;
  gShape.insert(gShape.end(), restShape.begin(), restShape.end());
  Value r = n.reshape(g, gShape);
  int64_t ir = int64_t(idxShape.size());
  std::vector<int64_t> back;
  for (int64_t k = 0; k < *axis; ++k) back.push_back(ir + k);
  for (int64_t k = 0; k < ir; ++k) back.push_back(k);
  for (int64_t k = *axis; k < rank - 1; ++k) back.push_back(ir + k);
  n.out(0, n.transpose(r, back));
  return success();
}

LogicalResult importSplit(NodeImporter &n) {
  auto in = n.inShape(0);
  auto axis = normalizeAxis(n.attrInt("axis", 0), int64_t(in.size()));
  if (!axis) return n.fail("axis out of range");
  std::vector<int64_t> sizes;
  if (n.opset < 13) sizes = n.attrInts("split");
  else if (n.hasInput(1)) {
    const HostTensor *c = n.inConst(1);
    if (!c) return n.fail("split sizes must be known at compile time");
    sizes = c->toInts();
  }
  int64_t outs = int64_t(n.numOutputs());
  if (sizes.empty()) {
    int64_t chunk = (in[*axis] + outs - 1) / outs;
    for (int64_t k = 0; k < outs; ++k) sizes.push_back(std::min(chunk, in[*axis] - k * chunk));
  }
  if (int64_t(sizes.size()) != outs) return n.fail("split sizes do not match the number of outputs");
  int64_t off = 0;
  for (int64_t k = 0; k < outs; ++k) {
    std::vector<int64_t> start(in.size(), 0), size = in;
    start[*axis] = off;
    size[*axis] = sizes[k];
    off += sizes[k];
    if (const HostTensor *c = n.inConst(0))
      n.outConst(k, hostSlice(*c, start, std::vector<int64_t>(in.size(), 1), size));
    else
      n.out(k, n.slice(n.in(0), start, size));
  }
  if (off != in[*axis]) return n.fail("split sizes do not add up to the axis size");
  return success();
}

LogicalResult importPad(NodeImporter &n) {
  std::string mode = n.attrString("mode", "constant");
  if (mode != "constant" && mode != "edge" && mode != "reflect" && mode != "wrap")
    return n.fail("pad mode '" + mode + "' is not supported");
  auto in = n.inShape(0);
  int64_t rank = int64_t(in.size());
  std::vector<int64_t> pads;
  double value = 0;
  if (n.opset < 11) {
    pads = n.attrInts("pads");
    value = n.attrFloat("value", 0.f);
  } else {
    const HostTensor *p = n.inConst(1);
    if (!p) return n.fail("pads must be known at compile time");
    pads = p->toInts();
    if (n.hasInput(2)) {
      const HostTensor *v = n.inConst(2);
      if (!v) return n.fail("the pad value must be known at compile time");
      if (v->numel() > 0) value = v->get(0);
    }
    if (n.hasInput(3)) {
      const HostTensor *a = n.inConst(3);
      if (!a) return n.fail("axes must be known at compile time");
      auto axes = a->toInts();
      std::vector<int64_t> full(2 * rank, 0);
      for (size_t k = 0; k < axes.size(); ++k) {
        auto ax = normalizeAxis(axes[k], rank);
        if (!ax || pads.size() != 2 * axes.size()) return n.fail("invalid axes");
        full[*ax] = pads[k];
        full[*ax + rank] = pads[k + axes.size()];
      }
      pads = full;
    }
  }
  if (int64_t(pads.size()) != 2 * rank) return n.fail("pads must have 2*rank entries");
  // Negative pads crop: slice first.
  Value x = n.in(0);
  std::vector<int64_t> start(rank, 0), size = in, tosaPads(2 * rank, 0), outShape(rank);
  for (int64_t k = 0; k < rank; ++k) {
    int64_t b = pads[k], e = pads[k + rank];
    if (b < 0) { start[k] = -b; size[k] += b; b = 0; }
    if (e < 0) { size[k] += e; e = 0; }
    if (size[k] < 0) return n.fail("pads crop more than the input holds");
    tosaPads[2 * k] = b;
    tosaPads[2 * k + 1] = e;
    outShape[k] = size[k] + b + e;
  }
  x = n.slice(x, start, size);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  if (std::all_of(tosaPads.begin(), tosaPads.end(), [](int64_t p) { return p == 0; })) {
    n.out(0, x);
    return success();
  }
  if (mode != "constant") {
    // Each output index maps to one input index: clamped (edge), mirrored without
    // repeating the border (reflect) or modulo the extent (wrap).
    for (int64_t k = 0; k < rank; ++k) {
      bool padded = tosaPads[2 * k] > 0 || tosaPads[2 * k + 1] > 0;
      if (padded && size[k] == 0) return n.fail("cannot " + mode + "-pad an empty axis");
      if (mode == "reflect" && padded && (tosaPads[2 * k] >= size[k] || tosaPads[2 * k + 1] >= size[k]))
        return n.fail("reflect pads must be smaller than the axis they pad");
    }
    n.out(0, n.indexed({}, {}, outShape, elem, [&](OpBuilder &b, Location l, ValueRange) -> Value {
      SmallVector<Value> coords;
      for (int64_t k = 0; k < rank; ++k) {
        Value o = linalg::IndexOp::create(b, l, k);
        Value i = arith::SubIOp::create(b, l, o, arith::ConstantIndexOp::create(b, l, tosaPads[2 * k]));
        Value zero = arith::ConstantIndexOp::create(b, l, 0);
        Value last = arith::ConstantIndexOp::create(b, l, size[k] - 1);
        if (mode == "edge") {
          i = arith::MaxSIOp::create(b, l, arith::MinSIOp::create(b, l, i, last), zero);
        } else if (mode == "reflect") {
          Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
          i = arith::SelectOp::create(b, l, neg, arith::SubIOp::create(b, l, zero, i), i);
          Value over = arith::CmpIOp::create(b, l, arith::CmpIPredicate::sgt, i, last);
          Value twoLast = arith::ConstantIndexOp::create(b, l, 2 * (size[k] - 1));
          i = arith::SelectOp::create(b, l, over, arith::SubIOp::create(b, l, twoLast, i), i);
        } else {
          Value ext = arith::ConstantIndexOp::create(b, l, size[k]);
          Value r = arith::RemSIOp::create(b, l, i, ext);
          Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, r, zero);
          i = arith::SelectOp::create(b, l, neg, arith::AddIOp::create(b, l, r, ext), r);
        }
        coords.push_back(i);
      }
      return tensor::ExtractOp::create(b, l, x, coords);
    }));
    return success();
  }
  n.out(0, n.emit("tosa.pad", {x, n.shapeValue(tosaPads), n.splat(value, 1, elem)},
                  n.tensorType(outShape, elem)));
  return success();
}

LogicalResult importExpand(NodeImporter &n) {
  const HostTensor *shapeC = n.inConst(1);
  if (!shapeC) return n.fail("the target shape must be known at compile time");
  auto target = shapeC->toInts();
  auto in = n.inShape(0);
  auto out = broadcastShapes(in, target);
  if (!out) return n.fail("cannot expand " + shapeText(in) + " to " + shapeText(target));
  if (const HostTensor *c = n.inConst(0); c && numElements(*out) <= (1 << 16)) {
    n.outConst(0, hostBroadcastTo(*c, *out));
    return success();
  }
  Value x = n.toRank(n.in(0), int64_t(out->size()));
  auto xs = n.shapeOf(x);
  std::vector<int64_t> multiples(out->size());
  for (size_t k = 0; k < out->size(); ++k) multiples[k] = xs[k] == (*out)[k] ? 1 : (*out)[k];
  n.out(0, n.emit("tosa.tile", {x, n.shapeValue(multiples)},
                  n.tensorType(*out, cast<RankedTensorType>(x.getType()).getElementType())));
  return success();
}

LogicalResult importRange(NodeImporter &n) {
  const HostTensor *s = n.inConst(0), *l = n.inConst(1), *d = n.inConst(2);
  if (!s || !l || !d) return n.fail("start, limit and delta must be known at compile time");
  double start = s->get(0), limit = l->get(0), delta = d->get(0);
  if (delta == 0) return n.fail("delta is 0");
  int64_t count = std::max<int64_t>(int64_t(std::ceil((limit - start) / delta)), 0);
  if (count > (int64_t(1) << 24)) return n.fail("range of " + std::to_string(count) + " elements is too large");
  HostTensor r = HostTensor::make(s->dtype, {count});
  for (int64_t k = 0; k < count; ++k) r.set(k, start + double(k) * delta);
  n.outConst(0, std::move(r));
  return success();
}

LogicalResult importSize(NodeImporter &n) {
  n.outConst(0, HostTensor::scalarInt(numElements(n.inShape(0))));
  return success();
}

LogicalResult importTile(NodeImporter &n) {
  const HostTensor *rep = n.inConst(1);
  if (!rep) return n.fail("repeats must be known at compile time");
  auto repeats = rep->toInts();
  auto in = n.inShape(0);
  if (repeats.size() != in.size()) return n.fail("repeats must have one entry per input dimension");
  std::vector<int64_t> out(in.size());
  for (size_t k = 0; k < in.size(); ++k) {
    if (repeats[k] < 0) return n.fail("negative repeats");
    out[k] = in[k] * repeats[k];
  }
  Value x = n.in(0);
  n.out(0, n.emit("tosa.tile", {x, n.shapeValue(repeats)},
                  n.tensorType(out, cast<RankedTensorType>(x.getType()).getElementType())));
  return success();
}

LogicalResult importTrilu(NodeImporter &n) {
  auto in = n.inShape(0);
  if (in.size() < 2) return n.fail("input must be at least 2-D");
  int64_t k = 0;
  if (n.hasInput(1)) {
    const HostTensor *kc = n.inConst(1);
    if (!kc) return n.fail("k must be known at compile time");
    k = kc->toInts()[0];
  }
  bool upper = n.attrInt("upper", 1) != 0;
  int64_t rows = in[in.size() - 2], cols = in.back();
  if (const HostTensor *c = n.inConst(0); c && c->numel() <= (1 << 16)) {
    HostTensor r = *c;
    for (int64_t e = 0, total = r.numel(); e < total; ++e) {
      int64_t row = (e / cols) % rows, col = e % cols;
      if (upper ? (col - row < k) : (col - row > k)) r.set(e, 0);
    }
    n.outConst(0, std::move(r));
    return success();
  }
  // The kept triangle as a constant mask, broadcast over the batch dimensions.
  HostTensor mask = HostTensor::make(DType::Bool, {rows, cols});
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) mask.i[r * cols + c] = upper ? (c - r >= k) : (c - r <= k);
  Value x = n.in(0);
  Type elem = cast<RankedTensorType>(x.getType()).getElementType();
  int64_t rank = int64_t(in.size());
  Value m = n.toRank(n.constant(mask), rank);
  n.out(0, n.emit("tosa.select", {m, x, n.splat(0, rank, elem)}, x.getType()));
  return success();
}

/// Index value `v` (any integer type) as an index, with negatives counted from `extent`.
static Value wrapIndex(OpBuilder &b, Location l, Value v, int64_t extent) {
  Value i = arith::IndexCastOp::create(b, l, b.getIndexType(), v);
  Value zero = arith::ConstantIndexOp::create(b, l, 0);
  Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
  Value wrapped = arith::AddIOp::create(b, l, i, arith::ConstantIndexOp::create(b, l, extent));
  Value r = arith::SelectOp::create(b, l, neg, wrapped, i);
  // Out-of-range indices are clamped so that a bad index cannot read outside the tensor.
  Value hi = arith::ConstantIndexOp::create(b, l, extent - 1);
  return arith::MinSIOp::create(b, l, arith::MaxSIOp::create(b, l, r, zero), hi);
}

LogicalResult importGatherElements(NodeImporter &n) {
  auto ds = n.inShape(0), is = n.inShape(1);
  int64_t rank = int64_t(ds.size());
  if (int64_t(is.size()) != rank) return n.fail("data and indices must have the same rank");
  auto axis = normalizeAxis(n.attrInt("axis", 0), rank);
  if (!axis) return n.fail("axis out of range");
  Value data = n.in(0), idx = n.in(1);
  int64_t ax = *axis, extent = ds[ax];
  Type elem = cast<RankedTensorType>(data.getType()).getElementType();
  n.out(0, n.indexed({idx}, {n.b.getMultiDimIdentityMap(rank)}, is, elem,
                          [&](OpBuilder &b, Location l, ValueRange v) -> Value {
                            SmallVector<Value> coords;
                            for (int64_t d = 0; d < rank; ++d)
                              coords.push_back(d == ax ? wrapIndex(b, l, v[0], extent)
                                                       : linalg::IndexOp::create(b, l, d).getResult());
                            return tensor::ExtractOp::create(b, l, data, coords);
                          }));
  return success();
}

LogicalResult importOneHot(NodeImporter &n) {
  const HostTensor *depthC = n.inConst(1), *valuesC = n.inConst(2);
  if (!depthC || !valuesC) return n.fail("depth and values must be known at compile time");
  if (valuesC->numel() != 2) return n.fail("values must hold [off, on]");
  int64_t depth = int64_t(depthC->get(0));
  if (depth <= 0) return n.fail("depth must be positive");
  auto is = n.inShape(0);
  int64_t outRank = int64_t(is.size()) + 1;
  auto axis = normalizeAxis(n.attrInt("axis", -1), outRank);
  if (!axis) return n.fail("axis out of range");
  std::vector<int64_t> out = is;
  out.insert(out.begin() + *axis, depth);
  SmallVector<AffineExpr> exprs;
  for (int64_t d = 0; d < outRank; ++d)
    if (d != *axis) exprs.push_back(n.b.getAffineDimExpr(d));
  AffineMap idxMap = AffineMap::get(outRank, 0, exprs, n.b.getContext());
  Type elem = n.elementType(valuesC->dtype);
  double off = valuesC->get(0), on = valuesC->get(1);
  int64_t ax = *axis;
  Value idx = n.in(0);
  bool idxFloat = isFloat(n.inDType(0));
  n.out(0, n.indexed({idx}, {idxMap}, out, elem, [&](OpBuilder &b, Location l, ValueRange v) -> Value {
    Value raw = v[0];
    if (idxFloat) raw = arith::FPToSIOp::create(b, l, b.getIntegerType(64), raw);
    // Out-of-range indices give an all-off row, so compare before clamping.
    Value i = arith::IndexCastOp::create(b, l, b.getIndexType(), raw);
    Value zero = arith::ConstantIndexOp::create(b, l, 0);
    Value neg = arith::CmpIOp::create(b, l, arith::CmpIPredicate::slt, i, zero);
    Value wrapped = arith::SelectOp::create(b, l, neg, arith::AddIOp::create(b, l, i, arith::ConstantIndexOp::create(b, l, depth)), i);
    Value hit = arith::CmpIOp::create(b, l, arith::CmpIPredicate::eq, wrapped, linalg::IndexOp::create(b, l, ax));
    auto cst = [&](double x) -> Value {
      return isa<FloatType>(elem) ? arith::ConstantOp::create(b, l, b.getFloatAttr(elem, x)).getResult()
                                  : arith::ConstantOp::create(b, l, b.getIntegerAttr(elem, int64_t(x))).getResult();
    };
    return arith::SelectOp::create(b, l, hit, cst(on), cst(off));
  }));
  return success();
}

} // namespace kiln::onnx_frontend
