//===- LowerToAccel.cpp - Quantised model -> accelerator instruction stream -===//
//
// kiln-lower-to-accel (Passes.td has the contract). Three steps:
//  1. read the entry function into a list of layers (GEMM, max pool, transpose) over
//     u8 tensors in device memory, recognising the forms the TOSA lowering produces
//     (zero-padded copies, bias fills, in-place clamps, bias+clamp epilogues, reshapes);
//  2. give every tensor the quantisation of the GEMM that reads it (through pools and
//     transposes, which commute with a monotone requantisation);
//  3. plan device memory and emit each layer's tiled program as accel ops.
//
//===----------------------------------------------------------------------===//
#include "hw_gen/HwGen.h"
#include "passes/Passes.h"
#include "passes/accel/SmartDealEncode.h"
#include "passes/cpu/KernelMatch.h"
#include "dialects/kiln/IR/KilnDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/SmallPtrSet.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <cmath>
#include <numeric>
#include <optional>

namespace kiln {
#define GEN_PASS_DEF_KILNLOWERTOACCEL
#include "passes/Passes.h.inc"
} // namespace kiln

using namespace mlir;

namespace kiln {
namespace {
using namespace kiln::kernels;
using kiln::accel::SmartDealTiles;
using kiln::accel::encodeSmartDeal;

/// A u8 activation tensor in device memory (row-major, as its root buffer).
struct Tensor {
  int64_t bytes = 0;   ///< elements (u8), or 4x for a raw int32 output
  int64_t addr = -1;
  double scale = 0;    ///< quantisation: real = scale * (q - zp)
  int64_t zp = -1;
  bool quantised = false;
  Operation *quantFrom = nullptr; ///< the layer that fixed the quantisation
};

struct Layer {
  enum Kind { Gemm, Pool, Transpose } kind;
  Layer(Kind kind, std::string name, Operation *op) : kind(kind), name(std::move(name)), op(op) {}
  std::string name;
  Operation *op;
  int in = -1, out = -1;
  // Geometry of the gather (input H x W x C, kernel, stride, top/left padding) and the
  // output (OH x OW pixels, M channels).
  int64_t h = 1, w = 1, c = 1, kh = 1, kw = 1, stride = 1, padT = 0, padL = 0, oh = 1, ow = 1, m = 1;
  // Gemm only.
  std::optional<PackedLayer> packed;
  std::vector<float> bias;
  float lo = -INFINITY, hi = INFINITY;
  double inScale = 0;
  int64_t inZp = 0;
  int wbits = 8; ///< weight bits: 8, or 4 (GEMM W4 mode)
};

/// The source of `v` through reshapes only (no subviews): the same bytes in the same
/// order, so a consumer may read them with its own shape.
static Value reshapeRoot(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (isa<memref::CollapseShapeOp, memref::ExpandShapeOp, memref::CastOp>(def)) v = def->getOperand(0);
    else break;
  }
  return v;
}

static int64_t alignUp(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

static SmallVector<int64_t> permOrIdentity(llvm::ArrayRef<int64_t> perm, size_t rank) {
  if (!perm.empty()) return SmallVector<int64_t>(perm.begin(), perm.end());
  SmallVector<int64_t> id(rank);
  std::iota(id.begin(), id.end(), 0);
  return id;
}


/// The SmartDeal weights of `op` (a kiln.smartdeal_weights of constants) re-encoded for
/// REBUILD; null with `why` when they cannot be.
static std::optional<SmartDealTiles> encodeSmartDealOp(Operation *op, int64_t rowsPerTile, std::string &why) {
  auto arrays = smartDealArrays(op);
  if (!arrays) {
    why = "its arrays are not constants";
    return std::nullopt;
  }
  return encodeSmartDeal(arrays->view, rowsPerTile, why);
}

struct LowerToAccelPass : impl::KilnLowerToAccelBase<LowerToAccelPass> {
  using Base::Base;

  kiln_accel_config_t cfg{};
  std::vector<Tensor> tensors;
  llvm::DenseMap<Value, int> tensorOf; ///< root buffer -> tensor
  std::vector<Layer> layers;
  llvm::SmallPtrSet<Operation *, 32> covered; ///< ops a layer accounts for
  int inputTensor = -1, outputTensor = -1;
  /// Layout changes the host makes: the model input transposed by inputPerm before it
  /// is written, the output tensor transposed by outputPerm after it is read.
  SmallVector<int64_t> inputPerm, outputPerm;
  LayerNamer namer;
  func::FuncOp func;

  /// The tensor `root` holds now; with `create`, a new tensor that a layer writes there
  /// (it has its own device memory, so a buffer the host reuses, e.g. a convolution's
  /// output in its input's buffer, is two tensors on the device).
  int tensorFor(Value root, bool create) {
    auto it = tensorOf.find(root);
    if (!create) return it != tensorOf.end() ? it->second : -1;
    auto t = cast<MemRefType>(root.getType());
    Tensor x;
    x.bytes = t.getNumElements();
    tensors.push_back(x);
    tensorOf[root] = int(tensors.size() - 1);
    return int(tensors.size() - 1);
  }

  /// The tensor `v` reads: a reshape of the model input or of a buffer a layer wrote.
  int readTensor(Value v, Operation *user) {
    Value root = reshapeRoot(v);
    int t = tensorFor(root, false);
    if (t < 0) user->emitError("the accelerator cannot read this operand: it is not the model input or a layer's output");
    return t;
  }

  LogicalResult readGemm(Operation *op) {
    SymbolTable symbols(getOperation());
    auto quant = op->getAttrOfType<DictionaryAttr>(kQuantAttr);
    auto bits = quant ? quant.getAs<IntegerAttr>("bits") : IntegerAttr();
    if (!bits || (bits.getInt() != 8 && bits.getInt() != 4))
      return op->emitError("the accelerator runs int8 layers (int4 weights too): quantise the model (--quantize "
                           "int8|int4|mixed --calib DATA)");
    auto packed = matchPackedLayer(op, symbols);
    if (!packed) return op->emitError("the accelerator cannot run this layer (weights are not a constant matrix)");
    Layer L(Layer::Gemm, namer(op), op);
    L.packed = std::move(packed);
    L.inScale = quant.getAs<FloatAttr>("scale").getValueAsDouble();
    L.inZp = quant.getAs<IntegerAttr>("zero_point").getInt();
    L.wbits = int(bits.getInt());
    Value out;
    if (auto conv = dyn_cast<linalg::Conv2DNhwcFhwcOp>(op)) {
      for (int64_t d : conv.getDilations().getValues<int64_t>())
        if (d != 1) return op->emitError("the accelerator runs undilated convolutions only");
      auto strides = llvm::to_vector(conv.getStrides().getValues<int64_t>());
      if (strides[0] != strides[1]) return op->emitError("the accelerator needs equal strides in y and x");
      L.stride = strides[0];
      Value in = conv.getDpsInputs()[0];
      out = conv.getDpsInits()[0];
      // The output starts as the bias (or zero): the GEMM's bias.
      Operation *prev = op->getPrevNode();
      Value biasValue = prev ? biasFill(prev, out) : Value();
      Operation *biasOp = biasValue || (prev && isZeroFill(prev, out)) ? prev : nullptr;
      if (auto pad = implicitPad(in, op, biasOp)) {
        L.padT = pad->padH;
        L.padL = pad->padW;
        for (Operation *d : pad->dead) covered.insert(d);
        in = pad->src;
      }
      auto is = cast<MemRefType>(in.getType()).getShape();
      auto fs = cast<MemRefType>(conv.getDpsInputs()[1].getType()).getShape();
      auto os = cast<MemRefType>(out.getType()).getShape();
      if (is[0] != 1) return op->emitError("the accelerator runs batch 1");
      L.h = is[1], L.w = is[2], L.c = is[3], L.kh = fs[1], L.kw = fs[2], L.oh = os[1], L.ow = os[2], L.m = os[3];
      L.in = readTensor(in, op);
      if (biasValue) {
        auto data = constantData(biasValue, symbols);
        if (!data) return op->emitError("bias is not a constant");
        L.bias = *data;
      }
      if (biasOp) covered.insert(prev); // a zero fill: zero bias
      if (auto clamp = clampAfter(op->getNextNode(), out)) {
        L.lo = clamp->first, L.hi = clamp->second;
        covered.insert(op->getNextNode());
      }
    } else {
      auto mm = cast<linalg::BatchMatmulOp>(op);
      Value a = mm.getDpsInputs()[0];
      auto as = cast<MemRefType>(a.getType()).getShape();
      if (as[0] != 1) return op->emitError("the accelerator runs batch 1");
      if (reshapeRoot(a) != rootBuffer(a)) return op->emitError("the accelerator reads matmul inputs that are whole buffers");
      L.h = 1, L.w = as[1], L.c = as[2], L.oh = 1, L.ow = as[1], L.m = L.packed->m;
      L.in = readTensor(a, op);
      out = mm.getDpsInits()[0];
      // The output starts at zero; a following generic adds the bias (and clamps) into
      // a new buffer, which becomes the layer's output.
      Operation *fill = op->getPrevNode();
      if (!fill || !isZeroFill(fill, out)) return op->emitError("the accelerator needs the matmul's output zero-initialised");
      covered.insert(fill);
      for (Operation *n = op->getNextNode(); n; n = n->getNextNode()) {
        auto g = dyn_cast<linalg::GenericOp>(n);
        if (!g) continue;
        if (llvm::none_of(g.getDpsInputs(), [&](Value v) { return rootBuffer(v) == rootBuffer(out); })) continue;
        if (g.getNumDpsInputs() != 2 || g.getNumDpsInits() != 1) break;
        Block &body = g.getRegion().front();
        auto add = dyn_cast<arith::AddFOp>(body.front());
        if (!add) break;
        int which = rootBuffer(g.getDpsInputs()[0]) == rootBuffer(out) ? 1 : 0;
        auto data = constantData(g.getDpsInputs()[which], symbols);
        int count;
        auto clamp = clampTail(body, add, count);
        if (!data || int64_t(data->size()) != L.m || !clamp) break;
        L.bias = *data;
        if (count) L.lo = clamp->first, L.hi = clamp->second;
        covered.insert(g);
        out = g.getDpsInits()[0];
        break;
      }
    }
    if (L.in < 0) return failure();
    // A copy of the whole result into another buffer (the function's output): the
    // layer writes there directly.
    for (Operation *n = op->getNextNode(); n; n = n->getNextNode())
      if (auto copy = dyn_cast<memref::CopyOp>(n); copy && reshapeRoot(copy.getSource()) == rootBuffer(out) &&
                                                     rootBuffer(copy.getSource()) == rootBuffer(out) &&
                                                     reshapeRoot(copy.getTarget()) == rootBuffer(copy.getTarget())) {
        covered.insert(copy);
        out = copy.getTarget();
        break;
      }
    Value root = rootBuffer(out);
    if (reshapeRoot(out) != root) return op->emitError("the accelerator writes whole buffers");
    L.out = tensorFor(root, true);
    layers.push_back(std::move(L));
    return success();
  }

  LogicalResult readPool(linalg::PoolingNhwcMaxOp pool) {
    Layer L(Layer::Pool, locationName(pool.getLoc()), pool);
    for (int64_t d : pool.getDilations().getValues<int64_t>())
      if (d != 1) return pool.emitError("the accelerator runs undilated pooling only");
    auto strides = llvm::to_vector(pool.getStrides().getValues<int64_t>());
    if (strides[0] != strides[1]) return pool.emitError("the accelerator needs equal pooling strides");
    Value in = pool.getDpsInputs()[0], out = pool.getDpsInits()[0];
    auto is = cast<MemRefType>(in.getType()).getShape();
    auto ks = cast<MemRefType>(pool.getDpsInputs()[1].getType()).getShape();
    auto os = cast<MemRefType>(out.getType()).getShape();
    L.stride = strides[0], L.h = is[1], L.w = is[2], L.c = is[3], L.kh = ks[0], L.kw = ks[1], L.oh = os[1],
    L.ow = os[2], L.m = os[3];
    L.in = readTensor(in, pool);
    if (L.in < 0) return failure();
    // The output starts as -inf (a fill before the pool, with nothing else writing it).
    Operation *init = nullptr;
    for (Operation *p = pool->getPrevNode(); p && !init; p = p->getPrevNode())
      if (auto f = dyn_cast<linalg::FillOp>(p); f && f.getDpsInits()[0] == out) init = p;
    if (!init) return pool.emitError("the accelerator needs the pool's output initialised by a fill");
    covered.insert(init);
    if (reshapeRoot(out) != rootBuffer(out)) return pool.emitError("the accelerator writes whole buffers");
    L.out = tensorFor(rootBuffer(out), true);
    layers.push_back(std::move(L));
    return success();
  }

  LogicalResult readTranspose(linalg::TransposeOp t) {
    auto perm = t.getPermutation();
    Value in = t.getInput(), out = t.getInit();
    auto is = cast<MemRefType>(in.getType()).getShape();
    // NCHW -> NHWC of the model input, and NHWC -> NCHW into the model output: the host
    // does these while it converts the tensors.
    if (perm.size() == 4 && rootBuffer(in) == func.getArgument(0) && reshapeRoot(in) == rootBuffer(in) && perm[0] == 0 &&
        perm[1] == 2 && perm[2] == 3 && perm[3] == 1 && inputPerm.empty()) {
      inputPerm.assign(perm.begin(), perm.end());
      inputTensor = tensorFor(rootBuffer(out), true);
      covered.insert(t);
      return success();
    }
    if (perm.size() == 4 && rootBuffer(out) == func.getArgument(1) && reshapeRoot(out) == rootBuffer(out) &&
        perm[0] == 0 && perm[1] == 3 && perm[2] == 1 && perm[3] == 2) {
      outputPerm.assign(perm.begin(), perm.end());
      outputTensor = readTensor(in, t);
      covered.insert(t);
      return outputTensor < 0 ? failure() : success();
    }
    if (perm.size() != 4 || perm[0] != 0 || perm[1] != 3 || perm[2] != 1 || perm[3] != 2 || is[0] != 1)
      return t.emitError("the accelerator runs only the NHWC -> NCHW transpose of one image");
    Layer L(Layer::Transpose, locationName(t.getLoc()) + ".transpose", t);
    L.h = is[1], L.w = is[2], L.c = is[3];
    L.in = readTensor(in, t);
    if (L.in < 0) return failure();
    L.out = tensorFor(rootBuffer(out), true);
    layers.push_back(std::move(L));
    return success();
  }

  LogicalResult readFunction() {
    Block &body = func.getBody().front();
    if (func.getNumArguments() != 2) return func.emitError("the accelerator runs models with one input and one output");
    inputTensor = tensorFor(func.getArgument(0), true);
    for (Operation &op : body.without_terminator()) {
      if (covered.contains(&op)) continue;
      if (op.hasAttr(kQuantAttr) || isa<linalg::Conv2DNhwcFhwcOp, linalg::BatchMatmulOp>(op)) {
        if (failed(readGemm(&op))) return failure();
      } else if (auto p = dyn_cast<linalg::PoolingNhwcMaxOp>(op)) {
        if (failed(readPool(p))) return failure();
      } else if (auto t = dyn_cast<linalg::TransposeOp>(op)) {
        if (failed(readTranspose(t))) return failure();
      }
      // Anything else is a value, a view, a weight form, or a fill or copy a later
      // layer accounts for (padding): checked below.
    }
    // Anything with effects that no layer accounted for is computation the
    // accelerator would silently skip.
    for (Operation &op : body.without_terminator()) {
      if (covered.contains(&op) || llvm::any_of(layers, [&](const Layer &l) { return l.op == &op; })) continue;
      if (isa<linalg::LinalgOp, memref::CopyOp>(op))
        return op.emitError("the accelerator cannot run this op (") << op.getName() << ", node '"
                                                                    << locationName(op.getLoc()) << "')";
    }
    if (outputPerm.empty()) outputTensor = tensorFor(func.getArgument(1), false);
    if (outputTensor < 0 || layers.empty() || layers.back().out != outputTensor || layers.back().kind != Layer::Gemm)
      return func.emitError("the accelerator needs the model output written by its last convolution or matmul");
    return success();
  }

  /// Every tensor a GEMM reads takes that GEMM's input quantisation; pools and
  /// transposes pass it back to their input.
  LogicalResult assignQuantisation() {
    auto fix = [&](int t, double scale, int64_t zp, Operation *by) -> LogicalResult {
      Tensor &x = tensors[t];
      if (x.quantised && (x.scale != scale || x.zp != zp))
        return by->emitError("the accelerator needs one quantisation per tensor: this layer reads its input at another "
                             "scale than an earlier reader");
      x.scale = scale, x.zp = zp, x.quantised = true, x.quantFrom = by;
      return success();
    };
    for (auto it = layers.rbegin(); it != layers.rend(); ++it) {
      if (it->kind == Layer::Gemm) {
        if (failed(fix(it->in, it->inScale, it->inZp, it->op))) return failure();
        continue;
      }
      const Tensor &o = tensors[it->out];
      if (!o.quantised) return it->op->emitError("the accelerator needs this op's output to feed a convolution or matmul");
      if (failed(fix(it->in, o.scale, o.zp, it->op))) return failure();
    }
    for (const Layer &l : layers)
      if (l.kind == Layer::Gemm && l.out != outputTensor && !tensors[l.out].quantised)
        return l.op->emitError("the accelerator needs this layer's output to feed another layer or the model output");
    return success();
  }

  // ---- emission -------------------------------------------------------------------

  ModuleOp module;
  int64_t memNext = 0;
  int64_t place(int64_t bytes) {
    int64_t a = alignUp(memNext, 64);
    memNext = a + bytes;
    return a;
  }
  int64_t addData(OpBuilder &b, std::vector<int8_t> bytes) {
    int64_t addr = place(int64_t(bytes.size()));
    auto type = RankedTensorType::get({int64_t(bytes.size())}, b.getIntegerType(8));
    accel::DataOp::create(b, module.getLoc(), b.getI64IntegerAttr(addr),
                          DenseElementsAttr::get(type, llvm::ArrayRef<int8_t>(bytes)));
    return addr;
  }

  /// Fixed-point multiplier and shift with mult * 2^-shift ~ real (0 < real < 2^30).
  static std::optional<std::pair<int32_t, int32_t>> fixedPoint(double real) {
    if (!(real > 0) || real >= double(1 << 30)) return std::nullopt;
    int e;
    double f = std::frexp(real, &e); // real = f * 2^e, f in [0.5, 1)
    int64_t mult = std::llround(f * double(int64_t(1) << 31));
    if (mult == (int64_t(1) << 31)) mult /= 2, ++e;
    int64_t shift = 31 - e;
    if (shift > 63) {
      mult >>= std::min<int64_t>(shift - 63, 62);
      shift = 63;
    }
    return std::make_pair(int32_t(mult), int32_t(shift));
  }

  static void put32(std::vector<int8_t> &v, size_t at, uint32_t x) {
    for (int i = 0; i < 4; ++i) v[at + i] = int8_t(uint8_t(x >> (8 * i)));
  }

  LogicalResult emitGemm(OpBuilder &top, Layer &L) {
    const int64_t R = cfg.rows, COLS = cfg.cols, BUS = cfg.bus_bytes, IB = kiln_accel_idx_bits(&cfg);
    PackedLayer &P = *L.packed;
    const int64_t K = P.taps * P.c, M = L.m, pixels = L.oh * L.ow;
    if (P.taps != L.kh * L.kw || P.c != L.c || P.m != M) return L.op->emitError("weights and geometry disagree");
    const bool nm = P.nm && P.nm->m == int64_t(cfg.nm_m) && P.nm->n <= P.nm->m;
    if (P.nm && !nm)
      L.op->emitRemark() << "N:M " << P.nm->n << ":" << P.nm->m << " runs dense: the accelerator's lanes are N:"
                         << cfg.nm_m;
    const int64_t n = nm ? P.nm->n : 0, groups = nm ? (K + cfg.nm_m - 1) / cfg.nm_m : 0;
    const int64_t kPad = nm ? groups * cfg.nm_m : K, steps = nm ? groups * n : K;
    if (kPad * COLS > int64_t(cfg.abuf_bytes))
      return L.op->emitError() << "the reduction (" << kPad << ") is too long for the accelerator's activation buffer ("
                               << cfg.abuf_bytes << " bytes, " << COLS << " columns)";
    // SmartDeal weights travel compressed and are rebuilt by the REBUILD unit.
    std::optional<SmartDealTiles> sdt;
    if (P.smartdeal) {
      std::string why;
      sdt = encodeSmartDealOp(P.smartdeal->op, R, why);
      if (!sdt) L.op->emitRemark() << "SmartDeal weights run dense on the accelerator: " << why;
    }
    std::vector<int8_t> q;
    std::vector<float> sw;
    const int64_t kRebuilt = sdt ? 3 * sdt->positions : 0;
    if (sdt) {
      q.assign(size_t(M * K), 0);
      for (int64_t r = 0; r < M; ++r)
        for (int64_t k = 0; k < K; ++k) q[size_t(r * K + k)] = sdt->w8[size_t(r * kRebuilt + k)];
      sw = sdt->scale;
    } else {
      quantizeRows(P.rows, M, K, L.wbits, q, sw);
    }
    // int4 weights (W4 mode: two per byte); SmartDeal layers are rebuilt as int8.
    const bool w4 = L.wbits == 4 && !sdt;
    if (L.wbits == 4 && sdt) L.op->emitRemark("int4 SmartDeal weights are rebuilt as int8 on the accelerator");
    const int64_t tiles = (M + R - 1) / R, slotBytes = R * IB / 8;
    const int64_t wAlign = std::lcm(BUS, R), iAlign = slotBytes ? std::lcm(BUS, slotBytes) : BUS;
    const int64_t wTile = alignUp((sdt ? kRebuilt : steps) * (w4 ? R / 2 : R), wAlign), iTile = nm ? alignUp(steps * slotBytes, iAlign) : 0,
                  pTile = alignUp(12 * R, BUS);
    int64_t sTile = 0, basesBytes = 0;
    if (sdt) {
      for (auto &st : sdt->streams) sTile = std::max(sTile, alignUp(int64_t(st.size()), BUS));
      basesBytes = alignUp(int64_t(sdt->bases.size()), BUS);
      if (sTile + basesBytes > int64_t(cfg.ibuf_bytes))
        return L.op->emitError() << "one tile of this layer's SmartDeal weights (" << sTile << " bytes, bases "
                                 << basesBytes << ") does not fit the accelerator's index buffer";
    }
    if (wTile > int64_t(cfg.wbuf_bytes) || iTile > int64_t(cfg.ibuf_bytes))
      return L.op->emitError() << "one tile of this layer's weights (" << wTile << " bytes) does not fit the accelerator's "
                               << "weight buffers";
    // Weight, index and parameter tiles, in device memory one after another per kind.
    std::vector<int8_t> wb(size_t(wTile * tiles), 0), ib(size_t(iTile * tiles), 0), pb(size_t(pTile * tiles), 0);
    const Tensor &out = tensors[L.out];
    const bool raw = L.out == outputTensor;
    std::vector<float> outScales(static_cast<size_t>(M));
    for (int64_t r = 0; r < M; ++r) {
      const int64_t t = r / R, rr = r % R;
      int64_t sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += q[r * K + k];
      for (int64_t s = 0; s < steps; ++s) {
        int8_t v;
        if (nm) {
          int64_t g = s / n, j = s % n, pos = P.nm->indices[size_t(r * groups * n + g * n + j)], k = g * cfg.nm_m + pos;
          v = k < K ? q[r * K + k] : 0;
          for (int64_t b = 0; b < IB; ++b)
            if ((pos >> b) & 1) {
              int64_t bit = rr * IB + b;
              ib[size_t(t * iTile + s * slotBytes + bit / 8)] |= int8_t(1 << (bit % 8));
            }
        } else {
          v = q[r * K + s];
        }
        if (w4) wb[size_t(t * wTile + s * (R / 2) + rr / 2)] |= int8_t((uint8_t(v) & 15) << (4 * (rr & 1)));
        else wb[size_t(t * wTile + s * R + rr)] = v;
      }
      const double accScale = L.inScale * sw[r];
      const double b = L.bias.empty() ? 0.0 : L.bias[r];
      const double bias32 = std::nearbyint(b / accScale) - double(L.inZp) * double(sum);
      if (std::fabs(bias32) >= 2147483648.0) return L.op->emitError("bias too large for the int32 accumulator");
      int32_t mult = 0, shift = 0;
      if (raw) {
        outScales[r] = float(accScale);
      } else {
        auto fp = fixedPoint(accScale / out.scale);
        if (!fp) return L.op->emitError("requantisation scale out of the accelerator's range");
        mult = fp->first, shift = fp->second;
      }
      put32(pb, size_t(t * pTile + 12 * rr), uint32_t(int32_t(bias32)));
      put32(pb, size_t(t * pTile + 12 * rr + 4), uint32_t(mult));
      put32(pb, size_t(t * pTile + 12 * rr + 8), uint32_t(shift));
    }
    if (raw && (std::fabs(L.lo) < 1e30f || std::fabs(L.hi) < 1e30f))
      return L.op->emitError("the accelerator's model output cannot be clamped (raw int32 output)");
    // The clamp in the quantised domain (bounds past u8 saturate; +-FLT_MAX is no bound).
    auto bound = [&](float f, int64_t none) -> int64_t {
      double v = double(out.zp) + double(f) / out.scale;
      return !(std::fabs(f) < 1e30f) ? none : v <= 0 ? 0 : v >= 255 ? 255 : std::llround(v);
    };
    int64_t zp = 0, lo = 0, hi = 255;
    if (!raw) zp = out.zp, lo = bound(L.lo, 0), hi = bound(L.hi, 255);
    const int64_t wAddr = sdt ? 0 : addData(top, wb), pAddr = addData(top, pb), iAddr = nm ? addData(top, ib) : 0;
    int64_t sAddr = 0, bAddr = 0;
    if (sdt) {
      std::vector<int8_t> streams(size_t(sTile * tiles), 0), bases(size_t(basesBytes), 0);
      for (int64_t t = 0; t < tiles; ++t)
        std::copy(sdt->streams[size_t(t)].begin(), sdt->streams[size_t(t)].end(), streams.begin() + t * sTile);
      std::copy(sdt->bases.begin(), sdt->bases.end(), bases.begin());
      sAddr = addData(top, streams);
      bAddr = addData(top, bases);
    }
    if (raw) {
      auto fn = func;
      auto outShape = cast<MemRefType>(fn.getArgument(1).getType()).getShape();
      accel::OutputOp::create(top, fn.getLoc(), top.getStringAttr("output"), top.getI64IntegerAttr(0),
                              top.getDenseI64ArrayAttr(outShape), top.getDenseF32ArrayAttr(outScales),
                              top.getDenseI64ArrayAttr(permOrIdentity(outputPerm, outShape.size())));
    }

    auto layer = accel::LayerOp::create(top, L.op->getLoc(), top.getStringAttr(L.name), top.getStringAttr(
                                            (nm    ? "gemm n:m " + std::to_string(n) + ":" + std::to_string(cfg.nm_m)
                                             : sdt ? std::string("gemm smartdeal")
                                                   : std::string("gemm")) +
                                                (w4 ? " w4" : "")),
                                        top.getI64IntegerAttr(pixels * M * (nm ? groups * n : K)));
    OpBuilder b = OpBuilder::atBlockBegin(&layer.getBody().emplaceBlock());
    Location loc = L.op->getLoc();
    auto I = [&](int64_t v) { return b.getI64IntegerAttr(v); };
    const Tensor &in = tensors[L.in];
    const int64_t esz = raw ? 4 : 1, pTiles = (pixels + COLS - 1) / COLS;
    // The layer as a sequence of steps (pixel tile, weight tile): one GEMM, REQUANT and
    // STORE each, after the gather and the weight tile it needs. Weights stay resident
    // when every tile fits the buffers; otherwise they are reloaded for every pixel tile,
    // or the pixels gathered again for every weight tile, whichever moves fewer bytes.
    // (With one pixel tile residency saves nothing: streaming the tiles through two
    // slots overlaps their loads with the GEMMs.)
    const bool canDouble = !sdt && 2 * wTile <= int64_t(cfg.wbuf_bytes) && 2 * iTile <= int64_t(cfg.ibuf_bytes) &&
                           2 * pTile <= int64_t(cfg.pbuf_bytes);
    const bool resident = tiles * wTile <= int64_t(cfg.wbuf_bytes) && (sdt || tiles * iTile <= int64_t(cfg.ibuf_bytes)) &&
                          tiles * pTile <= int64_t(cfg.pbuf_bytes) && !(pTiles == 1 && tiles > 1 && canDouble);
    struct Step {
      int64_t p0, t;
    };
    std::vector<Step> order;
    const bool weightsOuter = !resident && (sdt || tiles * pixels * K + tiles * (wTile + iTile + pTile) <=
                                                       pixels * K + pTiles * tiles * (wTile + iTile + pTile));
    if (weightsOuter) {
      for (int64_t t = 0; t < tiles; ++t)
        for (int64_t p = 0; p < pTiles; ++p) order.push_back({p * COLS, t});
    } else {
      for (int64_t p = 0; p < pTiles; ++p)
        for (int64_t t = 0; t < tiles; ++t) order.push_back({p * COLS, t});
    }
    // Two slots of the activation buffer (and, for streamed weights, of the weight,
    // index and parameter buffers) where they fit: the next step's loads then run on the
    // DMA while this step's GEMM runs (the controller's interlock orders the rest).
    const int64_t aBytes = kPad * COLS;
    const bool aDouble = 2 * aBytes <= int64_t(cfg.abuf_bytes);
    const bool wDouble = !resident && canDouble;
    std::vector<int64_t> aSlot(order.size()), wSlot(order.size());
    std::vector<bool> newGather(order.size()), newWeights(order.size());
    for (size_t i = 0; i < order.size(); ++i) {
      newGather[i] = i == 0 || order[i].p0 != order[i - 1].p0;
      newWeights[i] = !resident && (i == 0 || order[i].t != order[i - 1].t);
      aSlot[i] = i == 0 ? 0 : newGather[i] && aDouble ? 1 - aSlot[i - 1] : aSlot[i - 1];
      wSlot[i] = resident ? order[i].t : i == 0 ? 0 : newWeights[i] && wDouble ? 1 - wSlot[i - 1] : wSlot[i - 1];
    }
    auto loadTiles = [&](int64_t t0, int64_t count, int64_t slot) {
      accel::LoadOp::create(b, loc, b.getStringAttr("p"), I(pAddr + t0 * pTile), I(count * pTile), I(slot * pTile));
      if (sdt) {
        // Each tile's stream into the index buffer, rebuilt into its weight slot.
        for (int64_t t = t0; t < t0 + count; ++t) {
          const int64_t len = int64_t(sdt->streams[size_t(t)].size());
          accel::LoadOp::create(b, loc, b.getStringAttr("i"), I(sAddr + t * sTile), I(len), I(0));
          accel::RebuildOp::create(b, loc, I(kRebuilt), I((slot + t - t0) * wTile), I(0), I(len), I(L.c),
                                   b.getBoolAttr(sdt->flat), I(sdt->bits), I(sdt->group), I(sTile));
        }
        return;
      }
      accel::LoadOp::create(b, loc, b.getStringAttr("w"), I(wAddr + t0 * wTile), I(count * wTile), I(slot * wTile));
      if (nm)
        accel::LoadOp::create(b, loc, b.getStringAttr("i"), I(iAddr + t0 * iTile), I(count * iTile), I(slot * iTile));
    };
    auto gather = [&](size_t i) {
      const int64_t p0 = order[i].p0;
      accel::LoadWinOp::create(b, loc, I(in.addr), I(L.h), I(L.w), I(L.c), I(L.kh), I(L.kw), I(L.stride), I(L.padT),
                               I(L.padL), I(in.zp), I(L.ow), I(p0 / L.ow), I(p0 % L.ow),
                               I(std::min(COLS, pixels - p0)), I(aSlot[i] * aBytes));
    };
    auto store = [&](size_t i) {
      const int64_t p0 = order[i].p0, m0 = order[i].t * R;
      accel::StoreOp::create(b, loc, I(out.addr + (p0 * M + m0) * esz), I(M * esz), I(std::min(COLS, pixels - p0)),
                             I(std::min(R, M - m0)), b.getBoolAttr(raw));
    };
    if (sdt) accel::LoadOp::create(b, loc, b.getStringAttr("i"), I(bAddr), I(basesBytes), I(sTile));
    if (resident) loadTiles(0, tiles, 0);
    // Step i: GEMM(i), STORE(i-1) (the DMA writes it out while the PE array works), the
    // loads of the next step that needs a new gather or weight tile into the other slot,
    // REQUANT(i). The other slot is free once the steps loaded before (`aLast`, `wLast`)
    // have begun: the loads come at the first step of a tile, so they overlap all of its
    // GEMMs. Without two slots they come after the REQUANT of the step before them.
    size_t aNext = 1, wNext = 1, aLast = 0, wLast = 0; // next step to load for; last loaded
    auto advance = [&](size_t &k, const std::vector<bool> &isNew) {
      while (k < order.size() && !isNew[k]) ++k;
    };
    advance(aNext, newGather);
    advance(wNext, newWeights);
    for (size_t i = 0; i < order.size(); ++i) {
      if (i == 0) {
        if (newWeights[0]) loadTiles(order[0].t, 1, 0);
        gather(0);
      }
      accel::GemmOp::create(b, loc, I(kPad), I(wSlot[i] * wTile), I(aSlot[i] * aBytes), I(wSlot[i] * iTile), I(n),
                            b.getBoolAttr(false), w4 ? b.getUnitAttr() : UnitAttr());
      if (i > 0) store(i - 1);
      const bool wNow = wNext < order.size() && (wDouble ? wLast <= i : wNext == i + 1),
                 aNow = aNext < order.size() && (aDouble ? aLast <= i : aNext == i + 1);
      if (wNow && wDouble) loadTiles(order[wNext].t, 1, wSlot[wNext]);
      if (aNow && aDouble) gather(aNext);
      accel::RequantOp::create(b, loc, I(wSlot[i] * pTile), I(zp), I(lo), I(hi), b.getBoolAttr(raw));
      if (wNow && !wDouble) loadTiles(order[wNext].t, 1, wSlot[wNext]);
      if (aNow && !aDouble) gather(aNext);
      if (wNow) wLast = wNext, advance(++wNext, newWeights);
      if (aNow) aLast = aNext, advance(++aNext, newGather);
    }
    store(order.size() - 1);
    return success();
  }

  LogicalResult emitPool(OpBuilder &top, Layer &L) {
    const int64_t COLS = cfg.cols, R = cfg.rows, pixels = L.oh * L.ow;
    if (L.kh * L.kw * L.c * COLS > int64_t(cfg.abuf_bytes))
      return L.op->emitError("the pooling window is too large for the accelerator's activation buffer");
    const Tensor &in = tensors[L.in], &out = tensors[L.out];
    auto layer = accel::LayerOp::create(top, L.op->getLoc(), top.getStringAttr(L.name), top.getStringAttr("max pool"),
                                        top.getI64IntegerAttr(0));
    OpBuilder b = OpBuilder::atBlockBegin(&layer.getBody().emplaceBlock());
    Location loc = L.op->getLoc();
    auto I = [&](int64_t v) { return b.getI64IntegerAttr(v); };
    // Two activation slots where they fit: the next pixel tile's gather runs on the DMA
    // while the pool unit works on this one.
    const int64_t aBytes = L.kh * L.kw * L.c * COLS;
    const bool aDouble = 2 * aBytes <= int64_t(cfg.abuf_bytes);
    auto slotOf = [&](int64_t p0) { return aDouble ? (p0 / COLS % 2) * aBytes : 0; };
    auto gather = [&](int64_t p0) {
      accel::LoadWinOp::create(b, loc, I(in.addr), I(L.h), I(L.w), I(L.c), I(L.kh), I(L.kw), I(L.stride), I(0), I(0),
                               I(0), I(L.ow), I(p0 / L.ow), I(p0 % L.ow), I(std::min(COLS, pixels - p0)),
                               I(slotOf(p0)));
    };
    gather(0);
    for (int64_t p0 = 0; p0 < pixels; p0 += COLS) {
      const int64_t np = std::min(COLS, pixels - p0), next = p0 + COLS;
      for (int64_t c0 = 0; c0 < L.c; c0 += R) {
        accel::PoolOp::create(b, loc, I(L.c), I(L.kh * L.kw), I(c0), I(slotOf(p0)));
        if (c0 == 0 && aDouble && next < pixels) gather(next);
        accel::StoreOp::create(b, loc, I(out.addr + p0 * L.c + c0), I(L.c), I(np), I(std::min(R, L.c - c0)),
                               b.getBoolAttr(false));
      }
      if (!aDouble && next < pixels) gather(next);
    }
    return success();
  }

  /// [P][C] -> [C][P] (P = H*W): gather each channel's column of pixels, multiply by
  /// the identity (rows = pixels), requantise by exactly 1, store channel-major.
  LogicalResult emitTranspose(OpBuilder &top, Layer &L) {
    const int64_t COLS = cfg.cols, R = cfg.rows, P = L.h * L.w, C = L.c;
    if ((alignUp(P, R) + R) * COLS > int64_t(cfg.abuf_bytes))
      return L.op->emitError("the transpose is too large for the accelerator's activation buffer");
    std::vector<int8_t> eye(size_t(alignUp(R * R, cfg.bus_bytes)), 0), par(size_t(alignUp(12 * R, cfg.bus_bytes)), 0);
    for (int64_t r = 0; r < R; ++r) {
      eye[size_t(r * R + r)] = 1;
      put32(par, size_t(12 * r + 4), uint32_t(1) << 30);
      put32(par, size_t(12 * r + 8), 30);
    }
    const int64_t eAddr = addData(top, eye), pAddr = addData(top, par);
    const Tensor &in = tensors[L.in], &out = tensors[L.out];
    auto layer = accel::LayerOp::create(top, L.op->getLoc(), top.getStringAttr(L.name),
                                        top.getStringAttr("transpose"), top.getI64IntegerAttr(0));
    OpBuilder b = OpBuilder::atBlockBegin(&layer.getBody().emplaceBlock());
    Location loc = L.op->getLoc();
    auto I = [&](int64_t v) { return b.getI64IntegerAttr(v); };
    accel::LoadOp::create(b, loc, b.getStringAttr("w"), I(eAddr), I(int64_t(eye.size())), I(0));
    accel::LoadOp::create(b, loc, b.getStringAttr("p"), I(pAddr), I(int64_t(par.size())), I(0));
    for (int64_t c0 = 0; c0 < C; c0 += COLS) {
      const int64_t nc = std::min(COLS, C - c0);
      // Column j = channel c0 + j; reduction row k = pixel k (an "image" of P rows of C).
      accel::LoadWinOp::create(b, loc, I(in.addr), I(P), I(C), I(1), I(P), I(1), I(1), I(0), I(0), I(0), I(C), I(0),
                               I(c0), I(nc), I(0));
      // GEMM(i), STORE(i-1) (written out while the PE array works), REQUANT(i).
      auto store = [&](int64_t p0) {
        accel::StoreOp::create(b, loc, I(out.addr + c0 * P + p0), I(P), I(nc), I(std::min(R, P - p0)),
                               b.getBoolAttr(false));
      };
      for (int64_t p0 = 0; p0 < P; p0 += R) {
        accel::GemmOp::create(b, loc, I(R), I(0), I(p0 * COLS), I(0), I(0), b.getBoolAttr(false), UnitAttr());
        if (p0 > 0) store(p0 - R);
        accel::RequantOp::create(b, loc, I(0), I(0), I(0), I(255), b.getBoolAttr(false));
      }
      store((P - 1) / R * R);
    }
    return success();
  }

  void runOnOperation() override {
    module = getOperation();
    std::string error;
    if (config.empty()) cfg = hw::defaultConfig();
    else if (!hw::loadConfig(config, cfg, error)) {
      module.emitError() << "accelerator description: " << error;
      return signalPassFailure();
    }
    func = lookupEntry(module, entryName);
    if (!func || failed(readFunction()) || failed(assignQuantisation())) return signalPassFailure();

    OpBuilder top = OpBuilder::atBlockEnd(module.getBody());
    // Activations first (their addresses go into the programs), then constants.
    for (size_t t = 0; t < tensors.size(); ++t)
      tensors[t].addr = place(int(t) == outputTensor ? tensors[t].bytes * 4 : tensors[t].bytes);
    const Tensor &in = tensors[inputTensor];
    if (!in.quantised) {
      func.emitError("the model input does not feed a convolution or matmul");
      return signalPassFailure();
    }
    auto inShape = cast<MemRefType>(func.getArgument(0).getType()).getShape();
    accel::InputOp::create(top, func.getLoc(), top.getStringAttr("input"), top.getI64IntegerAttr(in.addr),
                           top.getDenseI64ArrayAttr(inShape), top.getF32FloatAttr(float(in.scale)),
                           top.getI64IntegerAttr(in.zp), top.getDenseI64ArrayAttr(permOrIdentity(inputPerm, inShape.size())));
    std::map<std::string, int> seen;
    for (Layer &L : layers) {
      if (int k = seen[L.name]++) L.name += "#" + std::to_string(k);
      LogicalResult r = L.kind == Layer::Gemm ? emitGemm(top, L) : L.kind == Layer::Pool ? emitPool(top, L)
                                                                                         : emitTranspose(top, L);
      if (failed(r)) return signalPassFailure();
    }
    // The output's address: fill it in now that the tensor is placed.
    module.walk([&](accel::OutputOp o) { o.setAddr(tensors[outputTensor].addr); });
    module->setAttr("accel.config_id", top.getI64IntegerAttr(cfg.config_id));
    module->setAttr("accel.memory_end", top.getI64IntegerAttr(alignUp(memNext, 64)));
    // The function and its constants are now the accel ops.
    func.erase();
    for (Operation &op : llvm::make_early_inc_range(module.getBody()->getOperations()))
      if (isa<memref::GlobalOp>(op) && SymbolTable::symbolKnownUseEmpty(&op, module)) op.erase();
  }
};

} // namespace
} // namespace kiln
