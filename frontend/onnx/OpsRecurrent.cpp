//===- OpsRecurrent.cpp - LSTM, GRU and RNN ----------------------------------===//
//
// ONNX's recurrent ops with their full semantics: forward, reverse and
// bidirectional; optional bias, initial state, peepholes and sequence_lens;
// explicit activations with activation_alpha/beta; clip; input_forget (LSTM);
// linear_before_reset (GRU); layout 0 ([seq, batch, ...]) and 1 ([batch, seq, ...]).
//
// Shapes are static, so the time loop is unrolled at import time. For each
// direction the input projection of all time steps is one tosa.matmul up front
// (X * W^T plus the biases that are plain additions); each step then adds
// H_{t-1} * R^T (one tosa.matmul), slices the gates and applies the activations
// with TOSA ops. Constant weights are transposed and biases summed on the host.
//
// sequence_lens masks per batch row: at time t a row is active iff t < len.
// An inactive row keeps its state and writes zeros to Y. A reverse pass walks t
// from seq-1 down to 0, so each row holds its initial state until t = len-1 and
// then runs over its own sequence reversed, as ONNX Runtime does. A row of
// length 0 has zero final state (ONNX Runtime's choice; the spec is silent).
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "llvm/ADT/StringExtras.h"

#include <cmath>
#include <limits>

using namespace mlir;

namespace kiln::onnx_frontend {

namespace {

enum class Cell { RNN, GRU, LSTM };

/// One activation function of the cell (ONNX's names, alpha/beta resolved).
struct Activation {
  std::string name; // lower case
  float alpha = 0.f, beta = 0.f;
};

/// What every part of the unrolled loop needs to know about the node.
struct Recurrence {
  Cell cell;
  int64_t gates;            // 1 (RNN), 3 (GRU: z r h), 4 (LSTM: i o f c)
  int64_t T, B, I, H, D;    // seq length, batch, input size, hidden size, directions
  bool batchFirst;          // layout = 1
  bool reverseOnly;         // direction = reverse
  std::optional<float> clip;
  bool inputForget = false; // LSTM
  bool linearBeforeReset = false; // GRU
  std::vector<Activation> acts;   // per direction: f[, g[, h]]
  std::vector<Value> masks;       // per time step: [B,1] i1, or null when all rows are active
};

} // namespace

static Type f32(NodeImporter &n) { return n.b.getF32Type(); }

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

/// Resolves `activations` / `activation_alpha` / `activation_beta`. Alphas and betas
/// are consumed in list order by the activations that take them (as ONNX Runtime
/// does); a missing one takes the default of the ONNX op of that name.
static LogicalResult parseActivations(NodeImporter &n, Recurrence &r) {
  int64_t per = r.cell == Cell::LSTM ? 3 : r.cell == Cell::GRU ? 2 : 1;
  std::vector<std::string> names;
  if (const onnx::AttributeProto *a = n.attr("activations"))
    names.assign(a->strings().begin(), a->strings().end());
  if (names.empty()) {
    const char *defaults[] = {"sigmoid", "tanh", "tanh"};
    for (int64_t d = 0; d < r.D; ++d)
      for (int64_t k = 0; k < per; ++k)
        names.push_back(r.cell == Cell::RNN ? "tanh" : defaults[k]);
  }
  // RNN's opset-1 default was [Tanh, Tanh]; a forward RNN listing two uses the first.
  if (r.cell == Cell::RNN && r.D == 1 && names.size() == 2) names.resize(1);
  if (int64_t(names.size()) != per * r.D)
    return n.fail("activations lists " + std::to_string(names.size()) + " functions; " +
                  std::to_string(per * r.D) + " are needed (" + std::to_string(per) + " per direction)");
  std::vector<float> alphas = n.attrFloats("activation_alpha"), betas = n.attrFloats("activation_beta");
  size_t ai = 0, bi = 0;
  for (const std::string &orig : names) {
    Activation act{llvm::StringRef(orig).lower()};
    const std::string &s = act.name;
    bool usesAlpha = s == "affine" || s == "leakyrelu" || s == "thresholdedrelu" || s == "scaledtanh" ||
                     s == "hardsigmoid" || s == "elu";
    bool usesBeta = s == "affine" || s == "scaledtanh" || s == "hardsigmoid";
    bool plain = s == "relu" || s == "tanh" || s == "sigmoid" || s == "softsign" || s == "softplus";
    if (!usesAlpha && !plain)
      return n.fail("activation '" + orig + "' is not supported (Kiln supports Relu, Tanh, Sigmoid, Affine, "
                    "LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus)");
    float defAlpha = s == "leakyrelu" ? 0.01f : s == "hardsigmoid" ? 0.2f : 1.f;
    float defBeta = s == "hardsigmoid" ? 0.5f : 0.f;
    bool haveAlpha = usesAlpha && ai < alphas.size(), haveBeta = usesBeta && bi < betas.size();
    if (s == "scaledtanh" && (!haveAlpha || !haveBeta))
      return n.fail("activation ScaledTanh needs activation_alpha and activation_beta values");
    if (usesAlpha) act.alpha = haveAlpha ? alphas[ai++] : defAlpha;
    if (usesBeta) act.beta = haveBeta ? betas[bi++] : defBeta;
    r.acts.push_back(act);
  }
  return success();
}

/// Applies `a` elementwise to the rank-2 value x.
static Value activate(NodeImporter &n, const Activation &a, Value x) {
  auto c = [&](double v) { return n.splat(v, 2, f32(n)); };
  auto select = [&](Value cond, Value t, Value f) { return n.emit("tosa.select", {cond, t, f}, x.getType()); };
  auto gt = [&](Value p, Value q) { return n.binary("tosa.greater", p, q, n.b.getI1Type()); };
  const std::string &s = a.name;
  if (s == "sigmoid") return n.unary("tosa.sigmoid", x);
  if (s == "tanh") return n.unary("tosa.tanh", x);
  if (s == "relu") return n.clamp(x, 0.0, std::numeric_limits<double>::infinity());
  if (s == "affine") return n.add(n.mul(x, c(a.alpha)), c(a.beta));
  if (s == "leakyrelu") return select(gt(c(0), x), n.mul(x, c(a.alpha)), x);
  if (s == "thresholdedrelu") return select(gt(x, c(a.alpha)), x, c(0));
  if (s == "scaledtanh") return n.mul(c(a.alpha), n.unary("tosa.tanh", n.mul(x, c(a.beta))));
  if (s == "hardsigmoid") return n.clamp(n.add(n.mul(x, c(a.alpha)), c(a.beta)), 0.0, 1.0);
  if (s == "elu")
    return select(gt(c(0), x), n.mul(c(a.alpha), n.sub(n.unary("tosa.exp", x), c(1))), x);
  if (s == "softsign")
    return n.mul(x, n.unary("tosa.reciprocal", n.add(n.unary("tosa.abs", x), c(1))));
  // softplus: max(x, 0) + log(1 + exp(-|x|)), which does not overflow.
  Value e = n.unary("tosa.exp", n.sub(c(0), n.unary("tosa.abs", x)));
  return n.add(n.binary("tosa.maximum", x, c(0)), n.unary("tosa.log", n.add(e, c(1))));
}

/// Activation `k` of direction d, on its input clipped to [-clip, clip] if asked.
static Value gate(NodeImporter &n, const Recurrence &r, int64_t d, int64_t k, Value x) {
  int64_t per = int64_t(r.acts.size()) / r.D;
  if (r.clip) x = n.clamp(x, -double(*r.clip), double(*r.clip));
  return activate(n, r.acts[d * per + k], x);
}

//===----------------------------------------------------------------------===//
// Weights, biases and states of one direction
//===----------------------------------------------------------------------===//

/// Rows [row, row+rows) of direction d of the weight input `input` ([D, G*H, K]),
/// transposed to [1, K, rows] for tosa.matmul (on the host if the weight is constant).
static Value weightT(NodeImporter &n, size_t input, int64_t d, int64_t row, int64_t rows) {
  int64_t K = n.inShape(input)[2];
  if (const HostTensor *w = n.inConst(input)) {
    HostTensor part = hostSlice(*w, {d, row, 0}, {1, 1, 1}, {1, rows, K});
    return n.constant(hostTranspose(part, {0, 2, 1}).castTo(DType::F32));
  }
  return n.transpose(n.slice(n.in(input), {d, row, 0}, {1, rows, K}), {0, 2, 1});
}

/// Columns [col, col+len) of direction d of the 2-D input `input` ([D, X]) as [1, len].
static Value rowPart(NodeImporter &n, size_t input, int64_t d, int64_t col, int64_t len) {
  if (const HostTensor *t = n.inConst(input))
    return n.constant(hostSlice(*t, {d, col}, {1, 1}, {1, len}).castTo(DType::F32));
  return n.slice(n.in(input), {d, col}, {1, len});
}

/// The bias added to the input projection of direction d ([1, G*H]): Wb + Rb, except
/// that GRU with linear_before_reset keeps Rb of the h gate for inside the reset product.
static Value inputBias(NodeImporter &n, const Recurrence &r, int64_t d) {
  int64_t GH = r.gates * r.H;
  bool splitH = r.cell == Cell::GRU && r.linearBeforeReset;
  if (const HostTensor *b = n.inConst(3)) {
    HostTensor t = HostTensor::make(DType::F32, {1, GH});
    for (int64_t k = 0; k < GH; ++k) {
      double v = b->get(d * 2 * GH + k);
      if (!splitH || k < 2 * r.H) v += b->get(d * 2 * GH + GH + k);
      t.f[k] = float(v);
    }
    return n.constant(t);
  }
  if (!splitH) return n.add(rowPart(n, 3, d, 0, GH), rowPart(n, 3, d, GH, GH));
  Value zr = n.add(rowPart(n, 3, d, 0, 2 * r.H), rowPart(n, 3, d, GH, 2 * r.H));
  return n.concat({zr, rowPart(n, 3, d, 2 * r.H, r.H)}, 1);
}

/// Direction d of a state input ([D, B, H], or [B, D, H] with layout 1) as [B, H];
/// zeros when the input is absent.
static Value initialState(NodeImporter &n, const Recurrence &r, size_t input, int64_t d) {
  if (!n.hasInput(input))
    return n.constF32({r.B, r.H}, std::vector<float>(size_t(r.B * r.H), 0.f));
  Value s = n.in(input);
  s = r.batchFirst ? n.slice(s, {0, d, 0}, {r.B, 1, r.H}) : n.slice(s, {d, 0, 0}, {1, r.B, r.H});
  return n.reshape(s, {r.B, r.H});
}

/// a [B, K] times wT [1, K, N] -> [B, N].
static Value matmul(NodeImporter &n, Value a, Value wT) {
  auto as = n.shapeOf(a), ws = n.shapeOf(wT);
  Value zp = n.zeroPoint(f32(n));
  Value y = n.emit("tosa.matmul", {n.reshape(a, {1, as[0], as[1]}), wT, zp, zp},
                   n.tensorType({1, as[0], ws[2]}, f32(n)));
  return n.reshape(y, {as[0], ws[2]});
}

/// Columns [col, col+len) of a [B, X] value.
static Value cols(NodeImporter &n, Value v, int64_t col, int64_t len) {
  return n.slice(v, {0, col}, {n.shapeOf(v)[0], len});
}

//===----------------------------------------------------------------------===//
// sequence_lens
//===----------------------------------------------------------------------===//

/// Fills r.masks: per time step a [B,1] i1 "row is active" mask, or null when
/// every row is (always the case without sequence_lens).
static LogicalResult buildMasks(NodeImporter &n, Recurrence &r) {
  r.masks.assign(size_t(r.T), Value());
  if (!n.hasInput(4)) return success();
  if (n.inShape(4) != std::vector<int64_t>{r.B})
    return n.fail("sequence_lens must have shape [" + std::to_string(r.B) + "], got " + shapeText(n.inShape(4)));
  DType lt = n.inDType(4);
  if (lt != DType::I32) return n.fail("sequence_lens must be int32");
  if (const HostTensor *c = n.inConst(4)) {
    std::vector<int64_t> lens = c->toInts();
    for (int64_t v : lens)
      if (v < 0 || v > r.T)
        return n.fail("sequence_lens value " + std::to_string(v) + " is outside [0, " + std::to_string(r.T) + "]");
    for (int64_t t = 0; t < r.T; ++t) {
      HostTensor m = HostTensor::make(DType::Bool, {r.B, 1});
      bool all = true;
      for (int64_t b = 0; b < r.B; ++b) {
        m.i[b] = t < lens[b];
        all &= t < lens[b];
      }
      if (!all) r.masks[t] = n.constant(m);
    }
    return success();
  }
  // Runtime lengths: one comparison of [1,B,1] lengths against [T,1,1] step indices.
  HostTensor steps = HostTensor::make(lt, {r.T, 1, 1});
  for (int64_t t = 0; t < r.T; ++t) steps.i[t] = t;
  Value active = n.binary("tosa.greater", n.reshape(n.in(4), {1, r.B, 1}), n.constant(steps), n.b.getI1Type());
  for (int64_t t = 0; t < r.T; ++t)
    r.masks[t] = n.reshape(n.slice(active, {t, 0, 0}, {1, r.B, 1}), {r.B, 1});
  return success();
}

//===----------------------------------------------------------------------===//
// The unrolled loop
//===----------------------------------------------------------------------===//

namespace {
/// The outputs of one direction: Y per time step (in time order), final H and C.
struct DirectionResult {
  std::vector<Value> ys;
  Value h, c;
};
} // namespace

static DirectionResult runDirection(NodeImporter &n, const Recurrence &r, int64_t d, bool reverse) {
  int64_t H = r.H, GH = r.gates * H;
  // Input projection of every step at once: [T*B, I] x [I, G*H] (+ bias).
  auto xs = n.shapeOf(n.in(0));
  Value xw = matmul(n, n.reshape(n.in(0), {xs[0] * xs[1], r.I}), weightT(n, 1, d, 0, GH));
  if (n.hasInput(3)) xw = n.add(xw, inputBias(n, r, d));
  xw = n.reshape(xw, {xs[0], xs[1], GH});
  auto xwAt = [&](int64_t t) {
    Value s = r.batchFirst ? n.slice(xw, {0, t, 0}, {r.B, 1, GH}) : n.slice(xw, {t, 0, 0}, {1, r.B, GH});
    return n.reshape(s, {r.B, GH});
  };

  // Recurrent weights: GRU without linear_before_reset multiplies the h gate's
  // weights with r * H, so they are split off.
  bool gruSplit = r.cell == Cell::GRU && !r.linearBeforeReset;
  Value rT = weightT(n, 2, d, 0, gruSplit ? 2 * H : GH);
  Value rhT = gruSplit ? weightT(n, 2, d, 2 * H, H) : Value();
  Value rbh; // GRU linear_before_reset: Rb of the h gate
  if (r.cell == Cell::GRU && r.linearBeforeReset && n.hasInput(3)) rbh = rowPart(n, 3, d, 5 * H, H);
  Value pi, po, pf;
  if (r.cell == Cell::LSTM && n.hasInput(7)) {
    pi = rowPart(n, 7, d, 0, H);
    po = rowPart(n, 7, d, H, H);
    pf = rowPart(n, 7, d, 2 * H, H);
  }

  DirectionResult res;
  res.ys.assign(size_t(r.T), Value());
  Value h = initialState(n, r, 5, d);
  Value c = r.cell == Cell::LSTM ? initialState(n, r, 6, d) : Value();
  Value zeroY = n.splat(0.0, 2, f32(n));
  auto one = [&] { return n.splat(1.0, 2, f32(n)); };
  for (int64_t s = 0; s < r.T; ++s) {
    int64_t t = reverse ? r.T - 1 - s : s;
    Value x = xwAt(t), hNew, cNew;
    switch (r.cell) {
    case Cell::RNN:
      hNew = gate(n, r, d, 0, n.add(x, matmul(n, h, rT)));
      break;
    case Cell::GRU: {
      Value hr = matmul(n, h, rT);
      Value z = gate(n, r, d, 0, n.add(cols(n, x, 0, H), cols(n, hr, 0, H)));
      Value rg = gate(n, r, d, 0, n.add(cols(n, x, H, H), cols(n, hr, H, H)));
      Value pre;
      if (gruSplit) {
        pre = n.add(cols(n, x, 2 * H, H), matmul(n, n.mul(rg, h), rhT));
      } else {
        Value hh = cols(n, hr, 2 * H, H);
        if (rbh) hh = n.add(hh, rbh);
        pre = n.add(cols(n, x, 2 * H, H), n.mul(rg, hh));
      }
      Value ht = gate(n, r, d, 1, pre);
      hNew = n.add(ht, n.mul(z, n.sub(h, ht))); // (1 - z) * ht + z * h
      break;
    }
    case Cell::LSTM: {
      Value g = n.add(x, matmul(n, h, rT));
      Value gi = cols(n, g, 0, H), go = cols(n, g, H, H), gf = cols(n, g, 2 * H, H), gc = cols(n, g, 3 * H, H);
      if (pi) {
        gi = n.add(gi, n.mul(pi, c));
        gf = n.add(gf, n.mul(pf, c));
      }
      Value i = gate(n, r, d, 0, gi);
      Value f = r.inputForget ? n.sub(one(), i) : gate(n, r, d, 0, gf);
      cNew = n.add(n.mul(f, c), n.mul(i, gate(n, r, d, 1, gc)));
      if (po) go = n.add(go, n.mul(po, cNew));
      Value o = gate(n, r, d, 0, go);
      int64_t per = int64_t(r.acts.size()) / r.D;
      hNew = n.mul(o, activate(n, r.acts[d * per + 2], cNew));
      break;
    }
    }
    if (Value m = r.masks[t]) {
      res.ys[t] = n.emit("tosa.select", {m, hNew, zeroY}, hNew.getType());
      h = n.emit("tosa.select", {m, hNew, h}, hNew.getType());
      if (c) c = n.emit("tosa.select", {m, cNew, c}, cNew.getType());
    } else {
      res.ys[t] = h = hNew;
      c = cNew;
    }
  }
  // A row of length 0 ends with zero state, as in ONNX Runtime (the spec is silent);
  // masks[0] is exactly "length > 0".
  if (Value m = r.masks[0]) {
    h = n.emit("tosa.select", {m, h, zeroY}, h.getType());
    if (c) c = n.emit("tosa.select", {m, c, zeroY}, c.getType());
  }
  res.h = h;
  res.c = c;
  return res;
}

static LogicalResult importRecurrent(NodeImporter &n, Cell cell) {
  Recurrence r;
  r.cell = cell;
  r.gates = cell == Cell::LSTM ? 4 : cell == Cell::GRU ? 3 : 1;
  size_t lastInput = cell == Cell::LSTM ? 7 : 5;
  for (size_t k = 0; k <= lastInput && k < n.numInputs(); ++k)
    if (k != 4 && n.hasInput(k) && !isFloat(n.inDType(k)))
      return n.fail("input " + std::to_string(k) + " has element type " + dtypeName(n.inDType(k)) +
                    "; only floats are supported");
  int64_t layout = n.attrInt("layout", 0);
  if (layout != 0 && layout != 1) return n.fail("layout must be 0 or 1");
  r.batchFirst = layout == 1;
  std::string dir = n.attrString("direction", "forward");
  if (dir != "forward" && dir != "reverse" && dir != "bidirectional")
    return n.fail("unknown direction '" + dir + "'");
  r.D = dir == "bidirectional" ? 2 : 1;
  r.reverseOnly = dir == "reverse";

  auto xs = n.inShape(0), ws = n.inShape(1), rs = n.inShape(2);
  if (xs.size() != 3) return n.fail("X must be 3-D, got " + shapeText(xs));
  r.T = r.batchFirst ? xs[1] : xs[0];
  r.B = r.batchFirst ? xs[0] : xs[1];
  r.I = xs[2];
  if (rs.size() != 3) return n.fail("R must be 3-D, got " + shapeText(rs));
  r.H = n.attrInt("hidden_size", rs[2]);
  int64_t GH = r.gates * r.H;
  if (r.H <= 0) return n.fail("hidden_size must be positive");
  if (ws != std::vector<int64_t>{r.D, GH, r.I})
    return n.fail("W must have shape " + shapeText({r.D, GH, r.I}) + ", got " + shapeText(ws));
  if (rs != std::vector<int64_t>{r.D, GH, r.H})
    return n.fail("R must have shape " + shapeText({r.D, GH, r.H}) + ", got " + shapeText(rs));
  if (n.hasInput(3) && n.inShape(3) != std::vector<int64_t>{r.D, 2 * GH})
    return n.fail("B must have shape " + shapeText({r.D, 2 * GH}) + ", got " + shapeText(n.inShape(3)));
  std::vector<int64_t> stateShape = r.batchFirst ? std::vector<int64_t>{r.B, r.D, r.H}
                                                 : std::vector<int64_t>{r.D, r.B, r.H};
  for (size_t k : {size_t(5), size_t(6)})
    if ((k == 5 || cell == Cell::LSTM) && n.hasInput(k) && n.inShape(k) != stateShape)
      return n.fail(std::string(k == 5 ? "initial_h" : "initial_c") + " must have shape " + shapeText(stateShape) +
                    ", got " + shapeText(n.inShape(k)));
  if (cell == Cell::LSTM && n.hasInput(7) && n.inShape(7) != std::vector<int64_t>{r.D, 3 * r.H})
    return n.fail("P must have shape " + shapeText({r.D, 3 * r.H}) + ", got " + shapeText(n.inShape(7)));
  if (r.T <= 0 || r.B <= 0 || r.I <= 0) return n.fail("empty sequences are not supported");

  if (n.hasAttr("clip")) {
    r.clip = n.attrFloat("clip", 0.f);
    if (!(*r.clip > 0.f)) return n.fail("clip must be positive");
  }
  r.inputForget = cell == Cell::LSTM && n.attrInt("input_forget", 0) != 0;
  r.linearBeforeReset = cell == Cell::GRU && n.attrInt("linear_before_reset", 0) != 0;
  if (failed(parseActivations(n, r)) || failed(buildMasks(n, r))) return failure();

  std::vector<DirectionResult> dirs;
  for (int64_t d = 0; d < r.D; ++d) dirs.push_back(runDirection(n, r, d, r.reverseOnly || d == 1));

  // Y: [T, D, B, H], or [B, T, D, H] with layout 1; Y_h / Y_c: [D, B, H] or [B, D, H].
  if (n.wantsOutput(0)) {
    std::vector<Value> perDir;
    for (auto &dr : dirs) {
      std::vector<Value> steps;
      for (Value y : dr.ys)
        steps.push_back(r.batchFirst ? n.reshape(y, {r.B, 1, 1, r.H}) : n.reshape(y, {1, 1, r.B, r.H}));
      perDir.push_back(n.concat(steps, r.batchFirst ? 1 : 0));
    }
    n.out(0, n.concat(perDir, r.batchFirst ? 2 : 1));
  }
  auto finalState = [&](bool cellState) {
    std::vector<Value> parts;
    for (auto &dr : dirs) {
      Value v = cellState ? dr.c : dr.h;
      parts.push_back(r.batchFirst ? n.reshape(v, {r.B, 1, r.H}) : n.reshape(v, {1, r.B, r.H}));
    }
    return n.concat(parts, r.batchFirst ? 1 : 0);
  };
  if (n.wantsOutput(1)) n.out(1, finalState(false));
  if (cell == Cell::LSTM && n.wantsOutput(2)) n.out(2, finalState(true));
  return success();
}

LogicalResult importLSTM(NodeImporter &n) { return importRecurrent(n, Cell::LSTM); }
LogicalResult importGRU(NodeImporter &n) { return importRecurrent(n, Cell::GRU); }
LogicalResult importRNN(NodeImporter &n) { return importRecurrent(n, Cell::RNN); }

} // namespace kiln::onnx_frontend
