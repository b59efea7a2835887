//===- LowerToKernels.cpp - Convolutions and matmuls to runtime kernels -----===//
#include "passes/Passes.h"
#include "passes/cpu/KernelMatch.h"
#include "dialects/kiln/IR/KilnDialect.h"
#include "runtime/include/kiln/butterfly.h"
#include "runtime/include/kiln/kernels.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/MemRef/Utils/MemRefUtils.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/xxhash.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <limits>
#include <unordered_map>

namespace kiln {
#define GEN_PASS_DEF_KILNLOWERTOKERNELS
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln::kernels {

bool isDenseF32(Value v) {
  auto t = dyn_cast<MemRefType>(v.getType());
  if (!t || !t.getElementType().isF32() || !memref::isStaticShapeAndContiguousRowMajor(t)) return false;
  SmallVector<int64_t> strides;
  int64_t offset;
  return succeeded(t.getStridesAndOffset(strides, offset)) && offset == 0;
}

std::optional<std::pair<SmallVector<int64_t>, int64_t>> unitStrided(Value v) {
  auto t = dyn_cast<MemRefType>(v.getType());
  if (!t || !t.getElementType().isF32() || !t.hasStaticShape()) return std::nullopt;
  SmallVector<int64_t> strides;
  int64_t offset;
  if (failed(t.getStridesAndOffset(strides, offset)) || ShapedType::isDynamic(offset) || strides.empty() ||
      strides.back() != 1 || llvm::any_of(strides, ShapedType::isDynamic))
    return std::nullopt;
  return std::make_pair(strides, offset);
}

/// The float data of a constant global read by `v`, if `v` is such a read.
std::optional<std::vector<float>> constantData(Value v, SymbolTable &symbols) {
  // Reshapes of a dense constant keep its data order.
  while (Operation *def = v.getDefiningOp()) {
    if (auto e = dyn_cast<memref::ExpandShapeOp>(def)) v = e.getSrc();
    else if (auto c = dyn_cast<memref::CollapseShapeOp>(def)) v = c.getSrc();
    else break;
  }
  auto get = v.getDefiningOp<memref::GetGlobalOp>();
  if (!get) return std::nullopt;
  auto global = symbols.lookup<memref::GlobalOp>(get.getName());
  if (!global || !global.getConstant() || !global.getInitialValue()) return std::nullopt;
  Attribute init = *global.getInitialValue();
  int64_t n = global.getType().getNumElements();
  if (auto r = dyn_cast<DenseResourceElementsAttr>(init)) {
    AsmResourceBlob *blob = r.getRawHandle().getBlob();
    if (!blob || blob->getData().size() != size_t(n) * 4) return std::nullopt;
    std::vector<float> out(n);
    std::memcpy(out.data(), blob->getData().data(), size_t(n) * 4);
    return out;
  }
  if (auto d = dyn_cast<DenseElementsAttr>(init)) {
    if (!d.getElementType().isF32()) return std::nullopt;
    auto vals = d.getValues<float>();
    return std::vector<float>(vals.begin(), vals.end());
  }
  return std::nullopt;
}


static std::vector<int64_t> ints(DenseIntElementsAttr a) {
  std::vector<int64_t> v;
  for (const APInt &x : a.getValues<APInt>()) v.push_back(x.getSExtValue());
  return v;
}

/// The N:M weights `v` is, when it is a kiln.nm_weights of constants: decoded rows too.
static std::optional<NMWeights> nmWeights(Value v, SymbolTable &symbols, std::vector<float> &rows) {
  auto nm = v.getDefiningOp<NMWeightsOp>();
  if (!nm) return std::nullopt;
  auto values = constantData(nm.getValues(), symbols);
  if (!values) return std::nullopt;
  auto indices = constantArray<uint8_t>(nm, nm.getIndices(), int64_t(values->size()));
  if (indices.empty()) return std::nullopt;
  int64_t r = nm.getRows(), k = nm.getReduction();
  rows.assign(size_t(r * k), 0.f);
  kiln_nm_decode_f32(values->data(), indices.data(), rows.data(), r, k, int32_t(nm.getN()), int32_t(nm.getM()), 0);
  return NMWeights{int64_t(nm.getN()), int64_t(nm.getM()), std::move(*values), std::move(indices), nm};
}

kiln_smartdeal_t smartDealFields(Operation *op) {
  auto sd = cast<SmartDealWeightsOp>(op);
  auto [kh, kw, c] = sd.getTaps();
  kiln_smartdeal_t h{};
  h.m = sd.getRows();
  h.kh = kh;
  h.kw = kw;
  h.c = c;
  h.layout = sd.isFlat() ? KILN_SMARTDEAL_FLAT : KILN_SMARTDEAL_TAPS3;
  h.exponent_bits = int32_t(sd.getExponentBits());
  h.exponent_offset = int32_t(sd.getExponentOffset());
  h.group = int64_t(sd.getGroup());
  return h;
}

/// The SmartDeal weights `v` is, when it is a kiln.smartdeal_weights of constants:
/// decoded rows[m][K] too (rows_last or not), so kiln-quantize and the int8 kernel see
/// the rebuilt weights.
std::unique_ptr<SmartDealArrays> smartDealArrays(Operation *op) {
  auto sd = cast<SmartDealWeightsOp>(op);
  int64_t m = sd.getRows(), positions = sd.getPositions(), groups = sd.getGroups();
  auto a = std::make_unique<SmartDealArrays>();
  a->mask = constantArray<uint64_t>(sd, sd.getMask(), (m * positions + 63) / 64);
  a->rowStart = constantArray<uint32_t>(sd, sd.getRowStart(), m + 1);
  a->codes = constantArray<uint8_t>(sd, sd.getCodes(), cast<MemRefType>(sd.getCodes().getType()).getShape()[0]);
  a->bases = constantArray<uint16_t>(sd, sd.getBases(), groups * 9);
  if (a->mask.empty() || a->rowStart.empty() || a->codes.empty() || a->bases.empty()) return nullptr;
  a->view = smartDealFields(sd);
  a->view.mask = a->mask.data();
  a->view.row_start = a->rowStart.data();
  a->view.codes = a->codes.data();
  a->view.bases = a->bases.data();
  return a;
}

static std::optional<SmartDealWeights> smartDealWeights(Value v, bool rowsLast, std::vector<float> &rows) {
  auto sd = v.getDefiningOp<SmartDealWeightsOp>();
  if (!sd || sd.getRowsLast() != rowsLast) return std::nullopt;
  auto arrays = smartDealArrays(sd);
  if (!arrays) return std::nullopt;
  rows.assign(size_t(sd.getRows() * sd.getReduction()), 0.f);
  kiln_smartdeal_decode(&arrays->view, rows.data());
  return SmartDealWeights{smartDealFields(sd), kiln_smartdeal_bytes(&arrays->view), sd};
}

/// The butterfly weights `v` is, when it is a kiln.butterfly_weights (rows last) of
/// constant factors: decoded rows [N][K] too.
static std::optional<ButterflyWeights> butterflyWeights(Value v, SymbolTable &symbols, std::vector<float> &rows) {
  auto bf = v.getDefiningOp<ButterflyWeightsOp>();
  if (!bf || !bf.getRowsLast()) return std::nullopt;
  auto factors = constantData(bf.getFactors(), symbols);
  if (!factors) return std::nullopt;
  int64_t n = bf.getSize(), k = bf.getReduction(), outputs = bf.getOutputs();
  rows.assign(size_t(outputs * k), 0.f);
  kiln_butterfly_decode_f32(factors->data(), n, k, outputs, 0, rows.data());
  return ButterflyWeights{n, std::move(*factors), bf};
}

Value weightOperand(Operation *op) {
  if (auto conv = dyn_cast<linalg::Conv2DNhwcFhwcOp>(op)) return conv.getDpsInputs()[1];
  if (auto mm = dyn_cast<linalg::BatchMatmulOp>(op)) return mm.getDpsInputs()[1];
  return {};
}

std::string LayerNamer::operator()(Operation *op) {
  std::string name = locationName(op->getLoc());
  if (name.empty()) name = "layer";
  if (int n = seen[name]++) name += "#" + std::to_string(n);
  return name;
}

std::optional<PackedLayer> matchPackedLayer(Operation *op, SymbolTable &symbols) {
  if (auto conv = dyn_cast<linalg::Conv2DNhwcFhwcOp>(op)) {
    Value in = conv.getDpsInputs()[0], filter = conv.getDpsInputs()[1], out = conv.getDpsInits()[0];
    if (!unitStrided(in) || !isDenseF32(filter) || !isDenseF32(out)) return std::nullopt;
    auto fs = cast<MemRefType>(filter.getType()).getShape();
    if (fs[1] * fs[2] * fs[3] == 0) return std::nullopt; // an empty reduction: nothing to call
    std::vector<float> rows;
    if (auto nm = nmWeights(filter, symbols, rows))
      return PackedLayer{"conv", fs[0], fs[1] * fs[2], fs[3], std::move(rows), std::move(nm)};
    if (auto sd = smartDealWeights(filter, /*rowsLast=*/false, rows))
      return PackedLayer{"conv", fs[0], fs[1] * fs[2], fs[3], std::move(rows), std::nullopt, std::move(sd)};
    auto data = constantData(filter, symbols);
    if (!data) return std::nullopt;
    return PackedLayer{"conv", fs[0], fs[1] * fs[2], fs[3], std::move(*data), std::nullopt};
  }
  if (auto mm = dyn_cast<linalg::BatchMatmulOp>(op)) {
    Value a = mm.getDpsInputs()[0], w = mm.getDpsInputs()[1], out = mm.getDpsInits()[0];
    // The left operand may be a view with unit inner stride (e.g. one token picked
    // out of each sequence): the kernels read rows through strides.
    if (mm.getIndexingMaps().empty() || mm.hasUserDefinedMaps() || !unitStrided(a) || !isDenseF32(w) ||
        !isDenseF32(out))
      return std::nullopt;
    auto ws = cast<MemRefType>(w.getType()).getShape();
    if (ws[0] != 1) return std::nullopt;
    std::vector<float> decoded;
    if (auto nm = nmWeights(w, symbols, decoded)) // rows last: decoded [N][K] already
      return PackedLayer{"matmul", ws[2], 1, ws[1], std::move(decoded), std::move(nm)};
    if (auto sd = smartDealWeights(w, /*rowsLast=*/true, decoded))
      return PackedLayer{"matmul", ws[2], 1, ws[1], std::move(decoded), std::nullopt, std::move(sd)};
    if (auto bf = butterflyWeights(w, symbols, decoded))
      return PackedLayer{"matmul", ws[2], 1, ws[1], std::move(decoded), std::nullopt, std::nullopt, std::move(bf)};
    auto data = constantData(w, symbols);
    if (!data) return std::nullopt;
    int64_t K = ws[1], N = ws[2];
    std::vector<float> rows(size_t(N * K)); // W^T: row n holds column n of W
    for (int64_t k = 0; k < K; ++k)
      for (int64_t n = 0; n < N; ++n) rows[n * K + k] = (*data)[k * N + n];
    return PackedLayer{"matmul", N, 1, K, std::move(rows), std::nullopt};
  }
  return std::nullopt;
}

void quantizeRows(const std::vector<float> &rows, int64_t m, int64_t k, int bits, std::vector<int8_t> &q,
                  std::vector<float> &scale) {
  const float qmax = float((1 << (bits - 1)) - 1);
  q.assign(size_t(m * k), 0);
  scale.assign(size_t(m), 1.f);
  for (int64_t r = 0; r < m; ++r) {
    const float *w = rows.data() + r * k;
    float amax = 0;
    for (int64_t i = 0; i < k; ++i) amax = std::max(amax, std::fabs(w[i]));
    float s = amax > 0 ? amax / qmax : 1.f;
    // Below 8 bits the range is clipped where that lowers the row's squared error
    // (clip = amax x 1.00, 0.98, ..., 0.50): a few outliers otherwise cost every other
    // weight its resolution.
    if (bits < 8 && amax > 0) {
      double best = -1;
      for (int step = 0; step <= 25; ++step) {
        float cand = amax * (1.f - 0.02f * float(step)) / qmax;
        double err = 0;
        for (int64_t i = 0; i < k; ++i) {
          double d = w[i] - std::clamp(std::nearbyint(w[i] / cand), -qmax, qmax) * cand;
          err += d * d;
        }
        if (best < 0 || err < best) {
          best = err;
          s = cand;
        }
      }
    }
    scale[r] = s;
    for (int64_t i = 0; i < k; ++i) q[r * k + i] = int8_t(std::clamp(std::nearbyint(w[i] / s), -qmax, qmax));
  }
}

double quantizationSqnrDb(const std::vector<float> &rows, int64_t m, int64_t k, int bits) {
  std::vector<int8_t> q;
  std::vector<float> s;
  quantizeRows(rows, m, k, bits, q, s);
  double signal = 0, noise = 0;
  for (int64_t r = 0; r < m; ++r)
    for (int64_t i = 0; i < k; ++i) {
      double w = rows[r * k + i], d = w - double(q[r * k + i]) * s[r];
      signal += w * w;
      noise += d * d;
    }
  return noise > 0 ? 10 * std::log10(signal / noise) : 999.0;
}

std::string locationName(Location loc) {
  std::string found;
  loc->walk([&](Location l) {
    if (auto n = dyn_cast<NameLoc>(l)) {
      found = n.getName().str();
      return WalkResult::interrupt();
    }
    return WalkResult::advance();
  });
  return found;
}

} // namespace kiln::kernels

namespace kiln::kernels {

/// The bias `prev` broadcasts into `out` along its last dimension (the way
/// tosa.conv2d's lowering initialises the output), or null.
Value biasFill(Operation *prev, Value out) {
  auto g = dyn_cast_or_null<linalg::GenericOp>(prev);
  if (!g || g.getNumDpsInputs() != 1 || g.getNumDpsInits() != 1 || g.getDpsInits()[0] != out) return {};
  Value bias = g.getDpsInputs()[0];
  auto bt = dyn_cast<MemRefType>(bias.getType());
  if (!bt || bt.getRank() != 1 || !isDenseF32(bias)) return {};
  auto maps = g.getIndexingMapsArray();
  unsigned rank = maps[1].getNumDims();
  if (!maps[1].isIdentity() || maps[0].getNumResults() != 1 ||
      maps[0].getResult(0) != getAffineDimExpr(rank - 1, g.getContext()))
    return {};
  Block &body = g.getRegion().front();
  auto yield = dyn_cast<linalg::YieldOp>(body.front());
  if (!yield || yield.getNumOperands() != 1 || yield.getOperand(0) != body.getArgument(0)) return {};
  return bias;
}

/// A chain of min/max with constants applied to `cur`, from `ops` to the terminator of
/// `body` that must yield its end: the clamp [lo, hi] (ReLU, ReLU6, Clip). `count` says
/// how many ops the chain had (it may be 0: no clamp, [-inf, inf]). Null if the ops are
/// anything else, or min > max (Clip's degenerate case depends on the order of the two).
template <typename Range>
static std::optional<std::pair<float, float>> clampChain(Block &body, Range ops, Value cur, int &count) {
  float lo = -std::numeric_limits<float>::infinity(), hi = std::numeric_limits<float>::infinity();
  count = 0;
  for (Operation &op : ops) {
    if (op.getNumOperands() != 2 || op.getOperand(0) != cur) return std::nullopt;
    auto c = op.getOperand(1).getDefiningOp<arith::ConstantOp>();
    auto attr = c ? dyn_cast<FloatAttr>(c.getValue()) : FloatAttr();
    if (!attr) return std::nullopt;
    float v = float(attr.getValueAsDouble());
    if (isa<arith::MinimumFOp>(op)) hi = std::min(hi, v);
    else if (isa<arith::MaximumFOp>(op)) lo = std::max(lo, v);
    else return std::nullopt;
    cur = op.getResult(0);
    ++count;
  }
  auto yield = dyn_cast<linalg::YieldOp>(body.getTerminator());
  if (!yield || yield.getOperand(0) != cur || lo > hi) return std::nullopt;
  return std::make_pair(lo, hi);
}

std::optional<std::pair<float, float>> clampTail(Block &body, Operation *first, int &count) {
  auto ops = body.without_terminator();
  return clampChain(body, llvm::make_range(std::next(first->getIterator()), ops.end()), first->getResult(0), count);
}

/// [lo, hi] when `next` clamps `out` in place with constant bounds (ReLU, ReLU6, Clip).
std::optional<std::pair<float, float>> clampAfter(Operation *next, Value out) {
  auto g = dyn_cast_or_null<linalg::GenericOp>(next);
  if (!g || g.getNumDpsInputs() != 1 || g.getNumDpsInits() != 1 || g.getDpsInputs()[0] != out ||
      g.getDpsInits()[0] != out)
    return std::nullopt;
  for (AffineMap m : g.getIndexingMapsArray())
    if (!m.isIdentity()) return std::nullopt;
  Block &body = g.getRegion().front();
  int count;
  auto clamp = clampChain(body, body.without_terminator(), body.getArgument(0), count);
  return count ? clamp : std::nullopt;
}

/// The buffer a memref value views (through subviews, reshapes and casts).
Value rootBuffer(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (auto vi = dyn_cast<ViewLikeOpInterface>(def)) v = vi.getViewSource();
    else break;
  }
  return v;
}

/// True if `op` only fills `buf` with +0.0 (linalg.fill, or a linalg.map of no input).
bool isZeroFill(Operation *op, Value buf) {
  auto isZero = [](Value v) {
    auto c = v.getDefiningOp<arith::ConstantOp>();
    auto f = c ? dyn_cast<FloatAttr>(c.getValue()) : FloatAttr();
    return f && f.getValue().isPosZero();
  };
  if (auto fill = dyn_cast<linalg::FillOp>(op))
    return fill.getDpsInits()[0] == buf && isZero(fill.getDpsInputs()[0]);
  if (auto map = dyn_cast<linalg::MapOp>(op)) {
    if (map.getDpsInputs().size() != 0 || map.getInit() != buf) return false;
    auto yield = dyn_cast<linalg::YieldOp>(map.getMapper().front().getTerminator());
    return yield && yield.getNumOperands() == 1 && isZero(yield.getOperand(0));
  }
  // A generic of no input writing +0 everywhere (a zero bias broadcast).
  if (auto g = dyn_cast<linalg::GenericOp>(op)) {
    if (g.getNumDpsInputs() != 0 || g.getNumDpsInits() != 1 || g.getDpsInits()[0] != buf ||
        !g.getIndexingMapsArray()[0].isIdentity() || g.getNumLoops() != g.getNumParallelLoops())
      return false;
    auto yield = dyn_cast<linalg::YieldOp>(g.getRegion().front().getTerminator());
    return yield && &g.getRegion().front().front() == yield.getOperation() && yield.getNumOperands() == 1 &&
           isZero(yield.getOperand(0));
  }
  return false;
}

std::optional<ImplicitPad> implicitPad(Value in, Operation *consumer, Operation *ownInit) {
  auto alloc = in.getDefiningOp<memref::AllocOp>();
  if (!alloc || alloc->getBlock() != consumer->getBlock()) return std::nullopt;
  Operation *fill = nullptr;
  memref::SubViewOp sv;
  for (Operation *user : alloc->getUsers()) {
    if (user == consumer) continue;
    if (auto s = dyn_cast<memref::SubViewOp>(user); s && !sv) sv = s;
    else if (!fill && isZeroFill(user, alloc)) fill = user;
    else return std::nullopt;
  }
  if (!fill || !sv || !sv->hasOneUse()) return std::nullopt;
  auto copy = dyn_cast<memref::CopyOp>(*sv->getUsers().begin());
  if (!copy || copy.getTarget() != sv.getResult() || copy->getBlock() != consumer->getBlock() ||
      fill->getBlock() != consumer->getBlock() || !fill->isBeforeInBlock(copy) || !copy->isBeforeInBlock(consumer))
    return std::nullopt;
  // The interior: offsets [0, top, left, 0], full batch and channels, unit steps.
  auto offs = sv.getStaticOffsets(), sizes = sv.getStaticSizes(), steps = sv.getStaticStrides();
  auto padShape = alloc.getType().getShape();
  if (offs.size() != 4 || llvm::any_of(offs, ShapedType::isDynamic) || llvm::any_of(sizes, ShapedType::isDynamic) ||
      llvm::any_of(steps, [](int64_t x) { return x != 1; }) || offs[0] != 0 || offs[3] != 0 ||
      sizes[0] != padShape[0] || sizes[3] != padShape[3])
    return std::nullopt;
  Value src = copy.getSource();
  auto layout = unitStrided(src);
  if (!layout) return std::nullopt;
  // Nothing between the copy and the convolution may touch the source.
  Value root = rootBuffer(src);
  for (Operation *op = copy->getNextNode(); op && op != consumer; op = op->getNextNode()) {
    if (op == ownInit) continue;
    bool touches = false;
    op->walk([&](Operation *inner) {
      for (Value v : inner->getOperands())
        if (isa<MemRefType>(v.getType()) && rootBuffer(v) == root) touches = true;
    });
    if (touches) return std::nullopt;
  }
  ImplicitPad p{src, offs[1], offs[2], sizes[1], sizes[2], layout->second, layout->first, {}};
  p.dead = {copy, sv, fill, alloc};
  return p;
}

} // namespace kiln::kernels

namespace kiln {
namespace {
using namespace kiln::kernels;

/// What follows a depthwise convolution in TOSA's lowering: its 5-D output collapsed to
/// NHWC, then y = clamp(bias[c] + x) into a new buffer. The kernel can write y itself.
struct DepthwiseEpilogue {
  Value bias, result;
  std::optional<std::pair<float, float>> clamp;
  SmallVector<Operation *> dead; ///< erasable after the convolution, in this order
};

static std::optional<DepthwiseEpilogue> depthwiseEpilogue(linalg::DepthwiseConv2DNhwcHwcmOp dw) {
  Value out = dw.getDpsInits()[0];
  auto alloc = out.getDefiningOp<memref::AllocOp>();
  if (!alloc) return std::nullopt;
  Operation *fill = nullptr;
  memref::CollapseShapeOp collapse;
  for (Operation *user : alloc->getUsers()) {
    if (user == dw.getOperation()) continue;
    if (auto f = dyn_cast<linalg::FillOp>(user); f && !fill && f.getDpsInits()[0] == out) {
      auto c = f.getDpsInputs()[0].getDefiningOp<arith::ConstantOp>();
      auto v = c ? dyn_cast<FloatAttr>(c.getValue()) : FloatAttr();
      if (!v || !v.getValue().isZero() || !f->isBeforeInBlock(dw)) return std::nullopt;
      fill = f;
    } else if (auto cs = dyn_cast<memref::CollapseShapeOp>(user); cs && !collapse) {
      collapse = cs;
    } else {
      return std::nullopt;
    }
  }
  if (!fill || !collapse || !collapse->hasOneUse()) return std::nullopt;
  auto g = dyn_cast<linalg::GenericOp>(*collapse->getUsers().begin());
  if (!g || g->getBlock() != dw->getBlock() || !dw->isBeforeInBlock(g) || g.getNumDpsInputs() != 2 ||
      g.getNumDpsInits() != 1 || g.getDpsInputs()[1] != collapse.getResult() || !isDenseF32(g.getDpsInits()[0]) ||
      cast<MemRefType>(g.getDpsInits()[0].getType()).getShape() != collapse.getType().getShape())
    return std::nullopt;
  Value bias = g.getDpsInputs()[0];
  auto bt = dyn_cast<MemRefType>(bias.getType());
  auto maps = g.getIndexingMapsArray();
  if (!bt || bt.getRank() != 1 || !isDenseF32(bias) || !maps[1].isIdentity() || !maps[2].isIdentity() ||
      maps[0].getNumResults() != 1 || maps[0].getResult(0) != getAffineDimExpr(3, g.getContext()))
    return std::nullopt;
  // Nothing between the convolution and the generic may touch the output or the bias.
  for (Operation *op = dw->getNextNode(); op && op != g.getOperation(); op = op->getNextNode())
    if (op != collapse.getOperation())
      for (Value v : op->getOperands())
        if (isa<MemRefType>(v.getType()) && (rootBuffer(v) == rootBuffer(g.getDpsInits()[0]) || rootBuffer(v) == rootBuffer(bias)))
          return std::nullopt;
  // The kernel writes the result, reading the bias, where the convolution stands: a
  // buffer allocated (or a constant read) after it moves up, as such ops have no
  // operands; anything else defined later: no.
  for (Value v : {g.getDpsInits()[0], bias})
    if (Operation *def = v.getDefiningOp(); def && def->getBlock() == dw->getBlock() && dw->isBeforeInBlock(def) &&
                                            (!isa<memref::AllocOp, memref::GetGlobalOp>(def) || def->getNumOperands()))
      return std::nullopt;
  Block &body = g.getRegion().front();
  auto ops = body.without_terminator();
  auto it = ops.begin();
  if (it == ops.end()) return std::nullopt;
  auto add = dyn_cast<arith::AddFOp>(*it);
  if (!add || !((add.getLhs() == body.getArgument(0) && add.getRhs() == body.getArgument(1)) ||
                (add.getLhs() == body.getArgument(1) && add.getRhs() == body.getArgument(0))))
    return std::nullopt;
  int count;
  auto clamp = clampChain(body, llvm::make_range(std::next(it), ops.end()), add.getResult(), count);
  if (!clamp) return std::nullopt;
  DepthwiseEpilogue e{bias, g.getDpsInits()[0], std::nullopt, {}};
  if (count) e.clamp = clamp;
  e.dead = {g, collapse, fill, alloc};
  return e;
}

struct LowerToKernelsPass : impl::KilnLowerToKernelsBase<LowerToKernelsPass> {
  using Base::Base;

  ModuleOp module;
  unsigned packedCount = 0, geometryCount = 0;

  /// Address of element 0 of `memref` (`offset` elements past its aligned base).
  Value pointer(OpBuilder &b, Location loc, Value memref, int64_t offset = 0) {
    Value idx = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, b.getIndexType(), memref);
    Value i64 = arith::IndexCastOp::create(b, loc, b.getI64Type(), idx);
    if (offset) {
      unsigned bytes = cast<MemRefType>(memref.getType()).getElementTypeBitWidth() / 8;
      i64 = arith::AddIOp::create(b, loc, i64, arith::ConstantIntOp::create(b, loc, b.getI64Type(), offset * bytes));
    }
    return LLVM::IntToPtrOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()), ValueRange{i64});
  }

  /// The address of `memref`, or a null pointer when there is none (an optional bias).
  Value pointerOrNull(OpBuilder &b, Location loc, Value memref) {
    if (memref) return pointer(b, loc, memref);
    return LLVM::ZeroOp::create(b, loc, LLVM::LLVMPointerType::get(b.getContext()));
  }

  /// A kiln_conv_geometry_t as a constant global kept in the object; returns its address.
  Value geometry(OpBuilder &b, Location loc, ArrayRef<int64_t> given) {
    // kiln_conv_geometry_t: 14 fields of shape and strides, then 4 of implicit padding.
    SmallVector<int64_t> fields(given.begin(), given.end());
    fields.resize(sizeof(kiln_conv_geometry_t) / sizeof(int64_t), 0);
    std::string name = "kiln_geometry_" + std::to_string(geometryCount++);
    auto type = MemRefType::get({int64_t(fields.size())}, b.getI64Type());
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto init = DenseElementsAttr::get(RankedTensorType::get({int64_t(fields.size())}, b.getI64Type()),
                                         ArrayRef<int64_t>(fields));
      auto g = memref::GlobalOp::create(b, loc, b.getStringAttr(name), b.getStringAttr("private"),
                                        TypeAttr::get(type), init, b.getUnitAttr(), b.getI64IntegerAttr(8));
      g->setAttr(kKeepInCodeAttr, b.getUnitAttr());
    }
    return pointer(b, loc, memref::GetGlobalOp::create(b, loc, type, name));
  }

  void call(OpBuilder &b, Location loc, StringRef callee, ArrayRef<Value> ptrs) {
    SmallVector<Value> args(ptrs.begin(), ptrs.end());
    SmallVector<Type> types;
    for (Value a : args) types.push_back(a.getType());
    if (!module.lookupSymbol<func::FuncOp>(callee)) {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto fn = func::FuncOp::create(b, loc, callee, b.getFunctionType(types, {}));
      fn.setPrivate();
    }
    func::CallOp::create(b, loc, callee, TypeRange{}, args);
  }

  /// Packed constants by content: a weight shared by several layers is stored once.
  std::unordered_map<uint64_t, std::vector<std::pair<std::string, std::vector<uint8_t>>>> packedByHash;

  /// A constant global holding `values` (f32 or i8), read where `b` stands.
  template <typename T> Value readGlobal(OpBuilder &b, Location loc, const std::vector<T> &values) {
    static_assert(std::is_same_v<T, float> || sizeof(T) == 1, "f32 or byte constants");
    Type elem = std::is_same_v<T, float> ? Type(b.getF32Type()) : Type(b.getIntegerType(8));
    auto type = MemRefType::get({int64_t(values.size())}, elem);
    const uint8_t *raw = reinterpret_cast<const uint8_t *>(values.data());
    std::vector<uint8_t> bytes(raw, raw + values.size() * sizeof(T));
    uint64_t hash = llvm::xxh3_64bits(ArrayRef<uint8_t>(bytes)) ^ sizeof(T);
    for (auto &[existing, data] : packedByHash[hash])
      if (data == bytes) return memref::GetGlobalOp::create(b, loc, type, existing);
    std::string name = "kiln_packed_" + std::to_string(packedCount++);
    packedByHash[hash].push_back({name, bytes});
    {
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPointToStart(module.getBody());
      auto tensorType = RankedTensorType::get({int64_t(values.size())}, elem);
      auto blob = HeapAsmResourceBlob::allocateAndCopyInferAlign<T>(values);
      auto init = DenseResourceElementsAttr::get(tensorType, name, std::move(blob));
      memref::GlobalOp::create(b, loc, b.getStringAttr(name), b.getStringAttr("private"), TypeAttr::get(type),
                               init, b.getUnitAttr(), b.getI64IntegerAttr(64));
    }
    return memref::GetGlobalOp::create(b, loc, type, name);
  }

  Value i32(OpBuilder &b, Location loc, int64_t v) { return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v); }
  Value f32(OpBuilder &b, Location loc, float v) {
    return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
  }

  /// The bf16 form of a packed layer (kiln.quant with bits = 16): weights rounded and
  /// packed in pairs, the bias passed as is (or accumulated onto a fill), a scratch
  /// buffer for the rounded input from the arena.
  void lowerBf16(OpBuilder &b, Location loc, const PackedLayer &layer, Value inPtr, Value outPtr, Value g,
                 const std::vector<int64_t> &geom, Value bias, std::optional<std::pair<float, float>> clamp) {
    int64_t c2 = (layer.c + 1) / 2 * 2;
    std::vector<uint16_t> packed(
        size_t((layer.m + KILN_PANEL_BF16 - 1) / KILN_PANEL_BF16 * KILN_PANEL_BF16 * layer.taps * c2));
    kiln_pack_panels_bf16(layer.rows.data(), packed.data(), layer.m, layer.taps, layer.c);
    std::vector<uint8_t> bytes(packed.size() * 2);
    std::memcpy(bytes.data(), packed.data(), bytes.size());
    kiln_conv_geometry_t gg{};
    std::memcpy(&gg, geom.data(), std::min(sizeof gg, geom.size() * sizeof(int64_t)));
    auto scratchType = MemRefType::get({kiln_conv2d_bf16_scratch_bytes(&gg)}, b.getIntegerType(8));
    Value scratch = memref::AllocOp::create(b, loc, scratchType, b.getI64IntegerAttr(64));
    Value biasPtr = pointerOrNull(b, loc, bias);
    int32_t flags = (bias ? 0 : KILN_S8_ACCUMULATE) | (clamp ? KILN_S8_CLAMP : 0);
    call(b, loc, "kiln_conv2d_nhwc_bf16_packed",
         {inPtr, pointer(b, loc, scratch), pointer(b, loc, readGlobal(b, loc, bytes)), biasPtr, outPtr, g,
          i32(b, loc, flags), f32(b, loc, clamp ? clamp->first : 0.f), f32(b, loc, clamp ? clamp->second : 0.f)});
  }

  /// The int8 form of a packed layer (kiln.quant on `op`): quantises and packs the
  /// weights, folds bias and zero point into the requantisation constants, and calls
  /// kiln_conv2d_nhwc_u8s8_packed with a scratch buffer from the arena.
  void lowerInt8(OpBuilder &b, Location loc, DictionaryAttr quant, const PackedLayer &layer, Value inPtr,
                 Value outPtr, Value g, const std::vector<int64_t> &geom, std::optional<std::vector<float>> bias,
                 std::optional<std::pair<float, float>> clamp) {
    float scale = float(cast<FloatAttr>(quant.get("scale")).getValueAsDouble());
    int32_t zp = int32_t(cast<IntegerAttr>(quant.get("zero_point")).getInt());
    int64_t k = layer.taps * layer.c;
    int bits = int(cast<IntegerAttr>(quant.get("bits")).getInt());
    std::vector<int8_t> q;
    std::vector<float> wscale;
    quantizeRows(layer.rows, layer.m, k, bits, q, wscale);
    int64_t c4 = (layer.c + 3) / 4 * 4;
    size_t s8bytes = size_t((layer.m + KILN_PANEL_S8 - 1) / KILN_PANEL_S8 * KILN_PANEL_S8 * layer.taps * c4);
    Value packedValue;
    if (bits == 4) {
      std::vector<uint8_t> packed(s8bytes / 2);
      kiln_pack_panels_s4(q.data(), packed.data(), layer.m, layer.taps, layer.c);
      packedValue = readGlobal(b, loc, packed);
    } else {
      std::vector<int8_t> packed(s8bytes);
      kiln_pack_panels_s8(q.data(), packed.data(), layer.m, layer.taps, layer.c);
      packedValue = readGlobal(b, loc, packed);
    }
    std::vector<float> requant(size_t(2 * layer.m));
    for (int64_t r = 0; r < layer.m; ++r) {
      int64_t wsum = 0;
      for (int64_t i = 0; i < k; ++i) wsum += q[r * k + i];
      requant[r] = scale * wscale[r];
      requant[layer.m + r] = (bias ? (*bias)[r] : 0.f) - requant[r] * float(zp) * float(wsum);
    }
    kiln_conv_geometry_t gg{};
    std::memcpy(&gg, geom.data(), std::min(sizeof gg, geom.size() * sizeof(int64_t)));
    auto scratchType = MemRefType::get({kiln_conv2d_u8s8_scratch_bytes(&gg)}, b.getIntegerType(8));
    Value scratch = memref::AllocOp::create(b, loc, scratchType, b.getI64IntegerAttr(64));
    int32_t flags = (bias ? 0 : KILN_S8_ACCUMULATE) | (clamp ? KILN_S8_CLAMP : 0) | (bits == 4 ? KILN_S8_INT4 : 0);
    call(b, loc, "kiln_conv2d_nhwc_u8s8_packed",
         {inPtr, pointer(b, loc, scratch), pointer(b, loc, packedValue),
          pointer(b, loc, readGlobal(b, loc, requant)), outPtr, g, f32(b, loc, 1.f / scale), i32(b, loc, zp),
          i32(b, loc, flags), f32(b, loc, clamp ? clamp->first : 0.f), f32(b, loc, clamp ? clamp->second : 0.f)});
  }

  /// The N:M form of a packed layer (kiln.nm_weights, no quantisation): the kept weights
  /// packed per panel with their positions, the N:M kernel with bias and clamp fused.
  void lowerNM(OpBuilder &b, Location loc, const PackedLayer &layer, Value inPtr, Value outPtr, Value g,
               const std::vector<int64_t> &geom, Value bias, std::optional<std::pair<float, float>> clamp) {
    const NMWeights &nm = *layer.nm;
    int64_t k = layer.taps * layer.c, per = (k + nm.m - 1) / nm.m * nm.n;
    int64_t panels = (layer.m + KILN_PANEL_NM - 1) / KILN_PANEL_NM;
    std::vector<float> packed(size_t(panels * per * KILN_PANEL_NM));
    std::vector<uint8_t> positions(packed.size());
    kiln_pack_nm_f32(nm.values.data(), nm.indices.data(), layer.m, k, int32_t(nm.n), int32_t(nm.m), packed.data(),
                     positions.data());
    kiln_conv_geometry_t gg{};
    std::memcpy(&gg, geom.data(), std::min(sizeof gg, geom.size() * sizeof(int64_t)));
    auto scratchType = MemRefType::get({kiln_conv2d_nm_scratch_bytes(&gg, int32_t(nm.m))}, b.getIntegerType(8));
    Value scratch = memref::AllocOp::create(b, loc, scratchType, b.getI64IntegerAttr(64));
    Value biasPtr = pointerOrNull(b, loc, bias);
    int32_t flags = (bias ? 0 : KILN_S8_ACCUMULATE) | (clamp ? KILN_S8_CLAMP : 0);
    call(b, loc, "kiln_conv2d_nhwc_f32_nm",
         {inPtr, pointer(b, loc, readGlobal(b, loc, packed)), pointer(b, loc, readGlobal(b, loc, positions)), outPtr, g,
          i32(b, loc, nm.n), i32(b, loc, nm.m), pointer(b, loc, scratch), biasPtr, i32(b, loc, flags),
          f32(b, loc, clamp ? clamp->first : 0.f), f32(b, loc, clamp ? clamp->second : 0.f)});
  }

  /// A kiln_smartdeal_t on the stack where `b` stands: the scalar fields of `h`, then
  /// the addresses of `op`'s arrays (constants the weights file carries compressed).
  Value smartDealHeader(OpBuilder &b, Location loc, SmartDealWeightsOp op, const kiln_smartdeal_t &h) {
    static_assert(sizeof(kiln_smartdeal_t) == 11 * 8 && offsetof(kiln_smartdeal_t, layout) == 4 * 8 &&
                      offsetof(kiln_smartdeal_t, group) == 6 * 8 && offsetof(kiln_smartdeal_t, mask) == 7 * 8,
                  "kiln_smartdeal_t: 4 i64, 4 i32, group, 4 pointers");
    Value hdr = memref::AllocaOp::create(b, loc, MemRefType::get({11}, b.getI64Type()), b.getI64IntegerAttr(8));
    int64_t words[7] = {h.m, h.kh, h.kw, h.c, int64_t(uint32_t(h.layout) | uint64_t(uint32_t(h.exponent_bits)) << 32),
                        int64_t(uint32_t(h.exponent_offset)), h.group};
    auto store = [&](Value v, int64_t at) {
      memref::StoreOp::create(b, loc, v, hdr, ValueRange{arith::ConstantIndexOp::create(b, loc, at)});
    };
    for (int64_t i = 0; i < 7; ++i) store(arith::ConstantIntOp::create(b, loc, b.getI64Type(), words[i]), i);
    Value arrays[4] = {op.getMask(), op.getRowStart(), op.getCodes(), op.getBases()};
    for (int64_t i = 0; i < 4; ++i) {
      Value idx = memref::ExtractAlignedPointerAsIndexOp::create(b, loc, b.getIndexType(), arrays[i]);
      store(arith::IndexCastOp::create(b, loc, b.getI64Type(), idx), 7 + i);
    }
    return pointer(b, loc, hdr);
  }

  /// The SmartDeal form of a packed layer (kiln.smartdeal_weights, no quantisation): the
  /// kernel rebuilds each reduction slice of the weights into a scratch buffer from the
  /// arena and runs the fp32 tiles on it, bias and clamp fused. It has no implicit
  /// padding: a padded input stays a copy.
  void lowerSmartDeal(OpBuilder &b, Location loc, const PackedLayer &layer, Value inPtr, Value outPtr, Value g,
                      Value bias, std::optional<std::pair<float, float>> clamp) {
    const SmartDealWeights &sd = *layer.smartdeal;
    Value header = smartDealHeader(b, loc, cast<SmartDealWeightsOp>(sd.op), sd.header);
    auto scratchType = MemRefType::get({kiln_conv2d_smartdeal_scratch_bytes(&sd.header)}, b.getIntegerType(8));
    Value scratch = memref::AllocOp::create(b, loc, scratchType, b.getI64IntegerAttr(64));
    Value biasPtr = pointerOrNull(b, loc, bias);
    call(b, loc, "kiln_conv2d_nhwc_smartdeal_f32",
         {inPtr, header, pointer(b, loc, scratch), outPtr, g, biasPtr, i32(b, loc, clamp ? 1 : 0),
          f32(b, loc, clamp ? clamp->first : 0.f), f32(b, loc, clamp ? clamp->second : 0.f)});
  }

  /// SmartDeal weights no kernel took (another consumer, or a layer matchPackedLayer
  /// does not run): decoded at run time, where `b` stands, into a new dense buffer of
  /// the op's type, which it returns.
  Value decodeSmartDeal(OpBuilder &b, SmartDealWeightsOp sd) {
    Location loc = sd.getLoc();
    Value header = smartDealHeader(b, loc, sd, smartDealFields(sd));
    Value dense = memref::AllocOp::create(b, loc, sd.getType(), b.getI64IntegerAttr(64));
    if (!sd.getRowsLast()) {
      call(b, loc, "kiln_smartdeal_decode", {header, pointer(b, loc, dense)});
      return dense;
    }
    // The decoder writes rows[R][K]: transpose into [..., R].
    int64_t r = sd.getRows(), k = sd.getReduction();
    Value rows = memref::AllocOp::create(b, loc, MemRefType::get({r, k}, b.getF32Type()), b.getI64IntegerAttr(64));
    call(b, loc, "kiln_smartdeal_decode", {header, pointer(b, loc, rows)});
    int64_t rank = sd.getType().getRank();
    SmallVector<ReassociationIndices> assoc{ReassociationIndices{}, ReassociationIndices{rank - 1}};
    for (int64_t i = 0; i + 1 < rank; ++i) assoc[0].push_back(i);
    Value kr = memref::CollapseShapeOp::create(b, loc, dense, assoc);
    linalg::TransposeOp::create(b, loc, rows, kr, ArrayRef<int64_t>{1, 0});
    return dense;
  }

  /// The butterfly form of a matmul (kiln.butterfly_weights, no quantisation): the
  /// factors as they are, the rows of the left operand (batch x M, through its strides),
  /// bias and clamp fused.
  void lowerButterfly(OpBuilder &b, Location loc, const PackedLayer &layer, Value in, Value out, Value bias,
                      std::optional<std::pair<float, float>> clamp) {
    const ButterflyWeights &bf = *layer.butterfly;
    auto as = cast<MemRefType>(in.getType()).getShape();
    auto [strides, offset] = *unitStrided(in);
    int64_t batches = as[0], m = as[1], k = layer.c, n = layer.m;
    // One call over batch x M rows when the batches follow each other at the row
    // stride (or M = 1); one per batch otherwise.
    int64_t rows = batches * m, xStride = m == 1 ? strides[0] : strides[1], calls = 1;
    if (m > 1 && batches > 1 && strides[0] != m * strides[1]) {
      rows = m;
      calls = batches;
    }
    auto scratchType = MemRefType::get({kiln_butterfly_scratch_floats(rows, bf.n)}, b.getF32Type());
    Value scratch = memref::AllocOp::create(b, loc, scratchType, b.getI64IntegerAttr(64));
    Value factors = readGlobal(b, loc, bf.factors);
    auto i64 = [&](int64_t v) { return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v).getResult(); };
    int32_t flags = (bias ? 0 : KILN_BUTTERFLY_ACCUMULATE) | (clamp ? KILN_BUTTERFLY_CLAMP : 0);
    for (int64_t c = 0; c < calls; ++c)
      call(b, loc, "kiln_butterfly_f32",
           {pointer(b, loc, in, offset + c * strides[0]), i64(rows), i64(xStride), i64(k), pointer(b, loc, factors),
            i64(bf.n), pointerOrNull(b, loc, bias),
            pointer(b, loc, out, c * m * n), i64(n), i64(n), pointer(b, loc, scratch), i32(b, loc, flags),
            f32(b, loc, clamp ? clamp->first : 0.f), f32(b, loc, clamp ? clamp->second : 0.f)});
  }

  static std::vector<float> pack(const std::vector<float> &rows, int64_t m, int64_t k) {
    std::vector<float> out(size_t((m + KILN_PANEL - 1) / KILN_PANEL * KILN_PANEL * k));
    kiln_pack_panels_f32(rows.data(), out.data(), m, k);
    return out;
  }

  void runOnOperation() override {
    module = getOperation();
    packedByHash.clear();
    packedCount = geometryCount = 0;
    auto func = lookupEntry(module, entryName);
    if (!func) return signalPassFailure();
    SymbolTable symbols(module);
    OpBuilder b(module.getContext());
    SmallVector<Operation *> done, deadPadding;
    func.walk([&](Operation *op) {
      Location loc = op->getLoc();
      if (auto layer = matchPackedLayer(op, symbols)) {
        // A convolution, or a matmul by a constant: one geometry for both.
        Value in = op->getOperand(0), out = op->getOperand(2);
        std::vector<int64_t> geom;
        int64_t inOffset = 0;
        std::optional<ImplicitPad> implicit;
        if (auto conv = dyn_cast<linalg::Conv2DNhwcFhwcOp>(op)) {
          auto is = cast<MemRefType>(in.getType()).getShape(), os = cast<MemRefType>(out.getType()).getShape();
          auto fs = cast<MemRefType>(conv.getDpsInputs()[1].getType()).getShape();
          auto st = ints(conv.getStrides()), dl = ints(conv.getDilations());
          auto [strides, offset] = *unitStrided(in);
          SmallVector<int64_t> pad(4, 0);
          // The int8 kernel quantises its input into a scratch buffer anyway: it writes
          // the padding there, so a zero-padded copy of the input is not needed.
          // So does the N:M kernel, which gathers its input rows.
          bool copiesInput = (op->hasAttr(kQuantAttr) && !op->hasAttr(kCompareAttr)) ||
                             (layer->nm && !op->hasAttr(kQuantAttr));
          if (copiesInput && (implicit = implicitPad(in, op))) {
            in = implicit->src;
            strides = implicit->strides;
            offset = implicit->offset;
            pad = {implicit->padH, implicit->padW, implicit->h, implicit->w};
          }
          geom = {is[0], is[3], fs[0], fs[1], fs[2], os[1], os[2], st[0], st[1], dl[0], dl[1],
                  strides[0], strides[1], strides[2], pad[0], pad[1], pad[2], pad[3]};
          inOffset = offset;
        } else {
          auto as = cast<MemRefType>(in.getType()).getShape();
          auto [strides, offset] = *unitStrided(in);
          int64_t K = layer->c, N = layer->m;
          geom = {as[0], K, N, 1, 1, as[1], 1, 1, 1, 1, 1, strides[0], strides[1], strides[1]};
          inOffset = offset;
        }
        // The bias fill before and a clamp after become the kernel's prologue/epilogue
        // (looked up before anything is inserted next to the op).
        Operation *prev = op->getPrevNode(), *next = op->getNextNode();
        Value bias = biasFill(prev, out);
        auto clamp = clampAfter(next, out);
        b.setInsertionPoint(op);
        Value inPtr = pointer(b, loc, in, inOffset), outPtr = pointer(b, loc, out);
        Value g = geometry(b, loc, geom);
        if (auto id = op->getAttrOfType<IntegerAttr>(kObserveAttr))
          call(b, loc, "kiln_observe_f32", {i32(b, loc, id.getInt()), inPtr, g});
        if (auto id = op->getAttrOfType<IntegerAttr>(kObserveGramAttr))
          call(b, loc, "kiln_observe_gram", {i32(b, loc, id.getInt()), inPtr, g});
        if (auto quant = op->getAttrOfType<DictionaryAttr>(kQuantAttr)) {
          // A bias that is not a constant stays a fill the kernel accumulates onto.
          std::optional<std::vector<float>> biasData = bias ? constantData(bias, symbols) : std::nullopt;
          Value shadow;
          if (auto id = op->getAttrOfType<IntegerAttr>(kCompareAttr)) {
            // Diagnostic build: the fp32 kernel on the same input into a buffer of its
            // own, to measure what quantising this one layer costs at its output.
            auto outType = cast<MemRefType>(out.getType());
            shadow = memref::AllocOp::create(b, loc, MemRefType::get(outType.getShape(), outType.getElementType()),
                                             b.getI64IntegerAttr(64));
            Value packed = readGlobal(b, loc, pack(layer->rows, layer->m, layer->taps * layer->c));
            Value biasPtr = pointerOrNull(b, loc, biasData ? bias : Value());
            if (!biasData) memref::CopyOp::create(b, loc, out, shadow); // both accumulate onto out's values
            call(b, loc, "kiln_conv2d_nhwc_f32_packed_fused",
                 {inPtr, pointer(b, loc, packed), pointer(b, loc, shadow), g, biasPtr, i32(b, loc, clamp ? 1 : 0),
                  f32(b, loc, clamp ? clamp->first : 0.f), f32(b, loc, clamp ? clamp->second : 0.f)});
          }
          if (cast<IntegerAttr>(quant.get("bits")).getInt() == 16)
            lowerBf16(b, loc, *layer, inPtr, outPtr, g, geom, biasData ? bias : Value(), clamp);
          else
            lowerInt8(b, loc, quant, *layer, inPtr, outPtr, g, geom, biasData, clamp);
          if (auto id = op->getAttrOfType<IntegerAttr>(kCompareAttr))
            call(b, loc, "kiln_observe_error",
                 {i32(b, loc, id.getInt()), pointer(b, loc, shadow), outPtr,
                  arith::ConstantIntOp::create(b, loc, b.getI64Type(),
                                               cast<MemRefType>(out.getType()).getNumElements())});
          if (implicit) deadPadding.append(implicit->dead);
          if (biasData) done.push_back(prev);
          if (clamp) done.push_back(next);
        } else if (layer->nm) {
          lowerNM(b, loc, *layer, inPtr, outPtr, g, geom, bias, clamp);
          if (implicit) deadPadding.append(implicit->dead);
          if (bias) done.push_back(prev);
          if (clamp) done.push_back(next);
        } else if (layer->smartdeal) {
          lowerSmartDeal(b, loc, *layer, inPtr, outPtr, g, bias, clamp);
          if (bias) done.push_back(prev);
          if (clamp) done.push_back(next);
        } else if (layer->butterfly) {
          lowerButterfly(b, loc, *layer, op->getOperand(0), out, bias, clamp);
          if (bias) done.push_back(prev);
          if (clamp) done.push_back(next);
        } else if (bias || clamp) {
          Value packed = readGlobal(b, loc, pack(layer->rows, layer->m, layer->taps * layer->c));
          Value biasPtr = pointerOrNull(b, loc, bias);
          call(b, loc, "kiln_conv2d_nhwc_f32_packed_fused",
               {inPtr, pointer(b, loc, packed), outPtr, g, biasPtr, i32(b, loc, clamp ? 1 : 0),
                f32(b, loc, clamp ? clamp->first : 0.f), f32(b, loc, clamp ? clamp->second : 0.f)});
          if (bias) done.push_back(prev);
          if (clamp) done.push_back(next);
        } else {
          Value packed = readGlobal(b, loc, pack(layer->rows, layer->m, layer->taps * layer->c));
          call(b, loc, "kiln_conv2d_nhwc_f32_packed", {inPtr, pointer(b, loc, packed), outPtr, g});
        }
        if (auto id = op->getAttrOfType<IntegerAttr>(kObserveAttr)) {
          // The output too (after the fused bias and clamp), under index + KILN_OBSERVE_OUTPUT.
          int64_t n = geom[0], m = geom[2], oh = geom[5], ow = geom[6];
          Value og = geometry(b, loc, {n, m, m, 1, 1, oh, ow, 1, 1, 1, 1, oh * ow * m, ow * m, m});
          call(b, loc, "kiln_observe_f32", {i32(b, loc, id.getInt() + KILN_OBSERVE_OUTPUT), outPtr, og});
        }
        done.push_back(op);
      } else if (auto mm = dyn_cast<linalg::BatchMatmulOp>(op)) {
        // Activation x activation (attention): the unpacked kernel.
        Value a = mm.getDpsInputs()[0], w = mm.getDpsInputs()[1], out = mm.getDpsInits()[0];
        if (mm.getIndexingMaps().empty() || mm.hasUserDefinedMaps() || !isDenseF32(a) || !isDenseF32(w) ||
            !isDenseF32(out))
          return;
        auto ws = cast<MemRefType>(w.getType()).getShape(), as = cast<MemRefType>(a.getType()).getShape();
        if (ws[0] != as[0]) return;
        b.setInsertionPoint(op);
        SmallVector<Value> args{pointer(b, loc, a), pointer(b, loc, w), pointer(b, loc, out)};
        for (int64_t v : {as[0], as[1], ws[2], as[2]})
          args.push_back(arith::ConstantIntOp::create(b, loc, b.getI64Type(), v));
        call(b, loc, "kiln_batch_matmul_f32", args);
        done.push_back(op);
      } else if (auto dw = dyn_cast<linalg::DepthwiseConv2DNhwcHwcmOp>(op)) {
        Value in = dw.getDpsInputs()[0], filter = dw.getDpsInputs()[1], out = dw.getDpsInits()[0];
        auto inLayout = unitStrided(in);
        if (!inLayout || !isDenseF32(filter) || !isDenseF32(out)) return;
        auto is = cast<MemRefType>(in.getType()).getShape(), fs = cast<MemRefType>(filter.getType()).getShape(),
             os = cast<MemRefType>(out.getType()).getShape();
        if (fs[3] != 1) return;
        auto st = ints(dw.getStrides()), dl = ints(dw.getDilations());
        auto [strides, offset] = *inLayout;
        SmallVector<int64_t> pad(4, 0);
        Value src = in;
        auto implicit = implicitPad(in, op);
        auto epilogue = depthwiseEpilogue(dw);
        // The kernel must not write the buffer it reads (bufferization may have put the
        // epilogue's result in the padded copy's source): then the copy stays.
        if (epilogue && rootBuffer(epilogue->result) == rootBuffer(in)) epilogue.reset();
        if (implicit && epilogue && rootBuffer(epilogue->result) == rootBuffer(implicit->src)) implicit.reset();
        if (implicit) { // read the unpadded source; the kernel skips taps in the padding
          src = implicit->src;
          strides = implicit->strides;
          offset = implicit->offset;
          pad = {implicit->padH, implicit->padW, implicit->h, implicit->w};
        }
        b.setInsertionPoint(op);
        Value g = geometry(b, loc, {is[0], is[3], is[3], fs[0], fs[1], os[1], os[2], st[0], st[1], dl[0], dl[1],
                                    strides[0], strides[1], strides[2], pad[0], pad[1], pad[2], pad[3]});
        if (epilogue) { // y = clamp(bias + conv), written by the kernel into y's buffer
          for (Value v : {epilogue->result, epilogue->bias})
            if (Operation *def = v.getDefiningOp(); def && def->getBlock() == op->getBlock() && op->isBeforeInBlock(def))
              def->moveBefore(op);
          auto clamp = epilogue->clamp;
          call(b, loc, "kiln_dwconv2d_nhwc_f32_fused",
               {pointer(b, loc, src, offset), pointer(b, loc, filter), pointer(b, loc, epilogue->result), g,
                pointer(b, loc, epilogue->bias), i32(b, loc, clamp ? 1 : 0), f32(b, loc, clamp ? clamp->first : 0.f),
                f32(b, loc, clamp ? clamp->second : 0.f)});
        } else {
          call(b, loc, "kiln_dwconv2d_nhwc_f32",
               {pointer(b, loc, src, offset), pointer(b, loc, filter), pointer(b, loc, out), g});
        }
        done.push_back(op);
        if (epilogue) deadPadding.append(epilogue->dead);
        if (implicit) deadPadding.append(implicit->dead);
      }
    });
    for (Operation *op : done) op->erase();
    for (Operation *op : deadPadding) op->erase();
    // Compressed weights that a kernel did not take (another consumer, a quantised
    // layer) are decoded into a dense buffer where they stand.
    // decode(w) writes w's dense form into a new buffer where w stands and returns it.
    auto decodeLeftovers = [&](auto kind, auto decode) {
      SmallVector<decltype(kind)> ops;
      func.walk([&](decltype(kind) w) { ops.push_back(w); });
      for (auto w : ops) {
        if (!w->use_empty()) {
          b.setInsertionPoint(w);
          w.getResult().replaceAllUsesWith(decode(w, w.getLoc()));
        }
        w->erase();
      }
    };
    auto i64 = [&](Location loc, int64_t v) {
      return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v).getResult();
    };
    auto denseBuffer = [&](Location loc, MemRefType type) -> Value {
      return memref::AllocOp::create(b, loc, type, b.getI64IntegerAttr(64));
    };
    decodeLeftovers(NMWeightsOp(), [&](NMWeightsOp nm, Location loc) {
      Value dense = denseBuffer(loc, nm.getType());
      call(b, loc, "kiln_nm_decode_f32",
           {pointer(b, loc, nm.getValues()), pointer(b, loc, nm.getIndices()), pointer(b, loc, dense),
            i64(loc, nm.getRows()), i64(loc, nm.getReduction()), i32(b, loc, nm.getN()), i32(b, loc, nm.getM()),
            i32(b, loc, nm.getRowsLast() ? 1 : 0)});
      return dense;
    });
    // Butterfly factors stay in the weights file; the dense form is built at run time.
    decodeLeftovers(ButterflyWeightsOp(), [&](ButterflyWeightsOp bf, Location loc) {
      Value dense = denseBuffer(loc, bf.getType());
      call(b, loc, "kiln_butterfly_decode_f32",
           {pointer(b, loc, bf.getFactors()), i64(loc, bf.getSize()), i64(loc, bf.getReduction()),
            i64(loc, bf.getOutputs()), i32(b, loc, bf.getRowsLast() ? 1 : 0), pointer(b, loc, dense)});
      return dense;
    });
    decodeLeftovers(SmartDealWeightsOp(), [&](SmartDealWeightsOp sd, Location) { return decodeSmartDeal(b, sd); });
    // Filters now read in packed form leave their original constants unused: drop
    // them, or the weights file would carry every filter twice.
    bool erased = true;
    while (erased) {
      erased = false;
      SmallVector<Operation *> dead;
      func.walk([&](Operation *op) {
        if (isa<memref::GetGlobalOp, memref::ExpandShapeOp, memref::CollapseShapeOp>(op) && op->use_empty())
          dead.push_back(op);
      });
      for (Operation *op : dead) op->erase();
      erased = !dead.empty();
    }
    for (auto global : llvm::make_early_inc_range(module.getOps<memref::GlobalOp>()))
      if (global.isPrivate() && SymbolTable::symbolKnownUseEmpty(global, module)) global->erase();
  }
};

} // namespace
} // namespace kiln
