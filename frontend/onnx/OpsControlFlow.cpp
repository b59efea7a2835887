//===- OpsControlFlow.cpp - If, Loop and Scan -------------------------------===//
//
// Kiln compiles ahead of time with static shapes, so control flow is resolved while
// importing: each subgraph (If branch, Loop or Scan body) is imported inline into
// the enclosing function through NodeImporter::subgraph, in a scope that sees the
// enclosing graphs' names.
//  - If with a condition known at import time imports only the taken branch; with
//    a runtime condition both branches are imported and their outputs selected
//    with tosa.select (both are pure), which needs outputs of one static type.
//  - Loop and Scan are unrolled: the body is imported once per iteration with the
//    iteration number and the carried values bound; scan outputs are stacked.
//    A Loop whose trip count is only known at run time becomes an scf.for with
//    the body in its region, when it has no scan outputs and its condition stays
//    true.
//
//===----------------------------------------------------------------------===//
#include "frontend/onnx/ImportContext.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>

using namespace mlir;

namespace kiln::onnx_frontend {

/// Most iterations a Loop or Scan is unrolled to, and most body nodes one unroll imports.
static constexpr int64_t kMaxIterations = 1024;
static constexpr int64_t kMaxUnrolledNodes = 1 << 16;

static std::string typeText(Type t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  os << t;
  return s;
}

static int64_t countNodes(const onnx::GraphProto &g) {
  int64_t count = g.node_size();
  for (const auto &node : g.node())
    for (const auto &a : node.attribute())
      if (a.has_g()) count += countNodes(a.g());
  return count;
}

/// Fails unless `iterations` unrolled copies of subgraph `attrName` stay within the caps.
static LogicalResult checkUnroll(NodeImporter &n, llvm::StringRef attrName, int64_t iterations) {
  const onnx::AttributeProto *a = n.attr(attrName);
  if (!a || !a->has_g()) return n.fail("attribute '" + attrName + "' is missing or not a graph");
  if (iterations > kMaxIterations)
    return n.fail("its body would be unrolled " + llvm::Twine(iterations) + " times; Kiln unrolls at most " +
                  llvm::Twine(kMaxIterations) + " iterations");
  int64_t nodes = std::max<int64_t>(countNodes(a->g()), 1);
  if (iterations * nodes > kMaxUnrolledNodes)
    return n.fail("unrolling " + llvm::Twine(iterations) + " iterations of a " + llvm::Twine(nodes) +
                  "-node body exceeds Kiln's budget of " + llvm::Twine(kMaxUnrolledNodes) + " nodes");
  return success();
}

static std::vector<int64_t> entryShape(NodeImporter &n, const ValueEntry &e) {
  auto s = n.entryType(e).getShape();
  return {s.begin(), s.end()};
}

static ValueEntry constEntry(HostTensor t) {
  ValueEntry e;
  e.constant = std::move(t);
  return e;
}

static ValueEntry valueEntry(Value v) {
  ValueEntry e;
  e.value = v;
  return e;
}

/// Element `index` of `e` along `axis`, with that axis removed.
static ValueEntry takeIndex(NodeImporter &n, const ValueEntry &e, int64_t axis, int64_t index) {
  std::vector<int64_t> shape = entryShape(n, e), start(shape.size(), 0), size = shape, outShape = shape;
  start[axis] = index;
  size[axis] = 1;
  outShape.erase(outShape.begin() + axis);
  if (e.constant) {
    HostTensor t = hostSlice(*e.constant, start, std::vector<int64_t>(shape.size(), 1), size);
    t.shape = outShape;
    return constEntry(std::move(t));
  }
  return valueEntry(n.reshape(n.slice(n.materialize(e), start, size), outShape));
}

/// Stacks equally shaped entries along a new axis `axis`.
static ValueEntry stack(NodeImporter &n, const std::vector<ValueEntry> &parts, int64_t axis) {
  std::vector<int64_t> shape = entryShape(n, parts[0]);
  shape.insert(shape.begin() + axis, 1);
  if (llvm::all_of(parts, [](const ValueEntry &e) { return e.constant.has_value(); })) {
    std::vector<HostTensor> unit;
    for (const ValueEntry &e : parts) {
      unit.push_back(*e.constant);
      unit.back().shape = shape;
    }
    std::vector<const HostTensor *> ptrs;
    for (const HostTensor &t : unit) ptrs.push_back(&t);
    return constEntry(hostConcat(ptrs, axis));
  }
  SmallVector<Value> values;
  for (const ValueEntry &e : parts) values.push_back(n.reshape(n.materialize(e), shape));
  return valueEntry(n.concat(values, axis));
}

/// Fails unless every entry has the type of the first (they are stacked).
static LogicalResult requireSameType(NodeImporter &n, const std::vector<ValueEntry> &parts, const char *what) {
  for (const ValueEntry &e : parts)
    if (n.entryType(e) != n.entryType(parts[0]))
      return n.fail(llvm::Twine(what) + " changes type between iterations (" + typeText(n.entryType(parts[0])) +
                    " then " + typeText(n.entryType(e)) + ")");
  return success();
}

/// tosa.select(cond, a, b) with a one-element boolean `cond` broadcast to a's shape.
static Value selectOn(NodeImporter &n, Value cond, Value a, Value b) {
  auto type = cast<RankedTensorType>(a.getType());
  Value c = n.reshape(cond, std::vector<int64_t>(type.getRank(), 1));
  return n.emit("tosa.select", {c, a, b}, type);
}

//===----------------------------------------------------------------------===//
// If
//===----------------------------------------------------------------------===//

LogicalResult importIf(NodeImporter &n) {
  if (numElements(n.inShape(0)) != 1) return n.fail("the condition must hold exactly one element");
  auto setOutputs = [&](const std::vector<ValueEntry> &outs) -> LogicalResult {
    if (outs.size() < n.numOutputs())
      return n.fail("the branch has " + llvm::Twine(outs.size()) + " outputs, the node " +
                    llvm::Twine(n.numOutputs()));
    for (size_t k = 0; k < n.numOutputs(); ++k) n.outEntry(k, outs[k]);
    return success();
  };
  // Known condition: only the taken branch exists.
  if (const HostTensor *c = n.inConst(0)) {
    auto outs = n.subgraph(c->get(0) != 0 ? "then_branch" : "else_branch", {});
    if (failed(outs)) return failure();
    return setOutputs(*outs);
  }
  // Runtime condition: both branches, then a select per output.
  auto thenOuts = n.subgraph("then_branch", {});
  auto elseOuts = n.subgraph("else_branch", {});
  if (failed(thenOuts) || failed(elseOuts)) return failure();
  if (thenOuts->size() != elseOuts->size())
    return n.fail("the branches have different numbers of outputs (" + llvm::Twine(thenOuts->size()) + " and " +
                  llvm::Twine(elseOuts->size()) + ")");
  for (size_t k = 0; k < thenOuts->size(); ++k) {
    RankedTensorType t = n.entryType((*thenOuts)[k]), e = n.entryType((*elseOuts)[k]);
    if (t != e)
      return n.fail("output " + llvm::Twine(k) + " is " + typeText(t) + " in then_branch but " + typeText(e) +
                    " in else_branch, so the condition must be known at compile time (freeze the inputs it "
                    "depends on)");
  }
  std::vector<ValueEntry> outs;
  Value cond = n.in(0);
  for (size_t k = 0; k < thenOuts->size(); ++k) {
    const ValueEntry &t = (*thenOuts)[k], &e = (*elseOuts)[k];
    if (t.constant && e.constant && t.constant->f == e.constant->f && t.constant->i == e.constant->i)
      outs.push_back(t);
    else
      outs.push_back(valueEntry(selectOn(n, cond, n.materialize(t), n.materialize(e))));
  }
  return setOutputs(outs);
}

//===----------------------------------------------------------------------===//
// Loop
//===----------------------------------------------------------------------===//

/// Loop with a runtime trip count M and a condition that is true throughout: an
/// scf.for from 0 to M carrying the loop-carried values, the body imported once
/// into its region.
static LogicalResult loopAsFor(NodeImporter &n, size_t numCarried) {
  OpBuilder &b = n.b;
  Location loc = n.loc;
  Value m = n.in(0);
  SmallVector<Value> zeros(cast<RankedTensorType>(m.getType()).getRank(), arith::ConstantIndexOp::create(b, loc, 0));
  Value trips = tensor::ExtractOp::create(b, loc, m, zeros);
  if (!trips.getType().isIndex()) trips = arith::IndexCastOp::create(b, loc, b.getIndexType(), trips);
  SmallVector<Value> inits;
  for (size_t k = 0; k < numCarried; ++k) inits.push_back(n.materialize(n.inEntry(2 + k)));
  auto forOp = scf::ForOp::create(b, loc, arith::ConstantIndexOp::create(b, loc, 0), trips,
                                  arith::ConstantIndexOp::create(b, loc, 1), inits);
  {
    OpBuilder::InsertionGuard guard(b);
    Block *body = forOp.getBody();
    if (!body->empty() && body->back().hasTrait<OpTrait::IsTerminator>()) b.setInsertionPoint(&body->back());
    else b.setInsertionPointToEnd(body);
    Value iv = arith::IndexCastOp::create(b, loc, b.getI64Type(), forOp.getInductionVar());
    Value ivTensor = tensor::FromElementsOp::create(b, loc, RankedTensorType::get({}, b.getI64Type()), iv);
    HostTensor yes = HostTensor::make(DType::Bool, {});
    yes.i[0] = 1;
    std::vector<ValueEntry> inputs{valueEntry(ivTensor), constEntry(std::move(yes))};
    for (Value a : forOp.getRegionIterArgs()) inputs.push_back(valueEntry(a));
    auto outs = n.subgraph("body", inputs, -1, /*region=*/true);
    if (failed(outs)) return failure();
    const ValueEntry &condOut = (*outs)[0];
    if (!condOut.constant || condOut.constant->numel() != 1 || condOut.constant->get(0) == 0)
      return n.fail("with a trip count known only at run time, the body's condition must be true at compile time "
                    "(or the trip count must be known at compile time)");
    SmallVector<Value> yields;
    for (size_t k = 0; k < numCarried; ++k) {
      Value v = n.materialize((*outs)[1 + k]);
      if (v.getType() != inits[k].getType())
        return n.fail("loop-carried value " + llvm::Twine(k) + " changes type (" + typeText(inits[k].getType()) +
                      " to " + typeText(v.getType()) + "), so the trip count must be known at compile time");
      // Written into the carried value's own buffer, so that bufferization keeps
      // one buffer per carried value across iterations.
      yields.push_back(bufferization::MaterializeInDestinationOp::create(b, loc, v, forOp.getRegionIterArgs()[k])
                           .getResult());
    }
    if (numCarried) scf::YieldOp::create(b, loc, yields);
  }
  for (size_t k = 0; k < numCarried; ++k) n.out(k, forOp.getResult(k));
  return success();
}

// Loop(M, cond, v...) runs body(i, cond, v...) -> (cond, v..., scan...) while i < M
// and cond holds. Unrolled with M known: while the condition stays known, only the
// iterations that run are imported; once the body's condition is a runtime value,
// the remaining iterations are imported too and each carried value is selected
// between the new and the previous one under the running condition (this needs
// no scan outputs, whose length would then be dynamic).
LogicalResult importLoop(NodeImporter &n) {
  const onnx::AttributeProto *a = n.attr("body");
  if (!a || !a->has_g()) return n.fail("attribute 'body' is missing or not a graph");
  const onnx::GraphProto &body = a->g();
  size_t numCarried = n.numInputs() < 2 ? 0 : n.numInputs() - 2;
  if (size_t(body.input_size()) != 2 + numCarried || size_t(body.output_size()) < 1 + numCarried)
    return n.fail("the body's inputs and outputs do not match the node's");
  size_t numScan = body.output_size() - 1 - numCarried;

  std::optional<int64_t> trips;
  if (n.hasInput(0)) {
    const HostTensor *m = n.inConst(0);
    if (!m) {
      bool condTrue = !n.hasInput(1) || (n.inConst(1) && n.inConst(1)->numel() == 1 && n.inConst(1)->get(0) != 0);
      if (condTrue && numScan == 0) return loopAsFor(n, numCarried);
      return n.fail("the trip count must be known at compile time (Kiln unrolls Loop) unless the Loop has no "
                    "scan outputs and its condition is true");
    }
    if (m->numel() != 1) return n.fail("the trip count must hold one element");
    trips = std::max<int64_t>(m->toInts()[0], 0);
  }
  ValueEntry cond;
  bool condKnown = true, go = true;
  if (n.hasInput(1)) {
    cond = n.inEntry(1);
    if (numElements(entryShape(n, cond)) != 1) return n.fail("the condition must hold one element");
    if (cond.constant) go = cond.constant->get(0) != 0;
    else condKnown = false;
  }
  if (!trips && !condKnown)
    return n.fail("a Loop without a trip count needs a condition that must be known at compile time");
  if (!condKnown && numScan)
    return n.fail("the condition must be known at compile time when the Loop has scan outputs");
  if (failed(checkUnroll(n, "body", trips ? *trips : 1))) return failure();

  std::vector<ValueEntry> carried;
  for (size_t k = 0; k < numCarried; ++k) carried.push_back(n.inEntry(2 + k));
  std::vector<std::vector<ValueEntry>> scans(numScan);
  Value running = condKnown ? Value() : n.materialize(cond); // the runtime condition so far
  for (int64_t i = 0; go && (!trips || i < *trips); ++i) {
    if (!trips && failed(checkUnroll(n, "body", i + 1))) return failure();
    std::vector<ValueEntry> inputs{constEntry(HostTensor::scalarInt(i))};
    if (condKnown) {
      HostTensor t = HostTensor::make(DType::Bool, {});
      t.i[0] = 1;
      inputs.push_back(constEntry(std::move(t)));
    } else {
      inputs.push_back(valueEntry(running));
    }
    inputs.insert(inputs.end(), carried.begin(), carried.end());
    auto outs = n.subgraph("body", inputs, i);
    if (failed(outs)) return failure();
    const ValueEntry &condOut = (*outs)[0];
    if (numElements(entryShape(n, condOut)) != 1) return n.fail("the body's condition must hold one element");
    if (!condKnown) {
      for (size_t k = 0; k < numCarried; ++k) {
        const ValueEntry &next = (*outs)[1 + k];
        if (n.entryType(next) != n.entryType(carried[k]))
          return n.fail("loop-carried value " + llvm::Twine(k) + " changes type (" +
                        typeText(n.entryType(carried[k])) + " to " + typeText(n.entryType(next)) +
                        ") while the condition is only known at run time");
        carried[k] = valueEntry(selectOn(n, running, n.materialize(next), n.materialize(carried[k])));
      }
      Value c = n.materialize(condOut);
      running = n.emit("tosa.logical_and", {running, n.reshape(c, NodeImporter::shapeOf(running))},
                       running.getType());
      continue;
    }
    carried.assign(outs->begin() + 1, outs->begin() + 1 + numCarried);
    for (size_t s = 0; s < numScan; ++s) scans[s].push_back((*outs)[1 + numCarried + s]);
    if (condOut.constant) {
      go = condOut.constant->get(0) != 0;
    } else {
      if (numScan) return n.fail("the body's condition must be known at compile time when the Loop has scan outputs");
      if (!trips) return n.fail("a Loop without a trip count needs a condition that must be known at compile time");
      condKnown = false;
      running = n.materialize(condOut);
    }
  }

  for (size_t k = 0; k < numCarried; ++k) n.outEntry(k, carried[k]);
  for (size_t s = 0; s < numScan; ++s) {
    if (!n.wantsOutput(numCarried + s)) continue;
    if (scans[s].empty()) return n.fail("the Loop runs no iteration, so its scan outputs would be empty");
    if (failed(requireSameType(n, scans[s], "a scan output"))) return failure();
    n.outEntry(numCarried + s, stack(n, scans[s], 0));
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Scan
//===----------------------------------------------------------------------===//

struct ScanAxes {
  std::vector<int64_t> inAxes, inDirs, outAxes, outDirs;
};

/// Runs the body over the scan inputs (each scanned along inAxes[j]); `states`
/// become the final states, `outs` the stacked scan outputs.
static LogicalResult scanUnrolled(NodeImporter &n, std::vector<ValueEntry> &states,
                                  const std::vector<ValueEntry> &ins, const ScanAxes &ax,
                                  std::vector<ValueEntry> &outs) {
  const onnx::GraphProto &body = n.attr("body")->g();
  size_t numStates = states.size(), numOuts = body.output_size() - numStates;
  int64_t length = -1;
  for (size_t j = 0; j < ins.size(); ++j) {
    auto shape = entryShape(n, ins[j]);
    if (ax.inAxes[j] < 0 || size_t(ax.inAxes[j]) >= shape.size()) // a scalar has no axis to scan
      return n.fail("scan input " + llvm::Twine(j) + " of rank " + llvm::Twine(shape.size()) + " has no axis " +
                    llvm::Twine(ax.inAxes[j]) + " to scan");
    int64_t l = shape[ax.inAxes[j]];
    if (length >= 0 && l != length)
      return n.fail("scan inputs have different lengths (" + llvm::Twine(length) + " and " + llvm::Twine(l) + ")");
    length = l;
  }
  if (length <= 0) return n.fail("the scan inputs are empty");
  if (failed(checkUnroll(n, "body", length))) return failure();
  std::vector<std::vector<ValueEntry>> steps(numOuts);
  for (int64_t t = 0; t < length; ++t) {
    std::vector<ValueEntry> inputs = states;
    for (size_t j = 0; j < ins.size(); ++j)
      inputs.push_back(takeIndex(n, ins[j], ax.inAxes[j], ax.inDirs[j] ? length - 1 - t : t));
    auto res = n.subgraph("body", inputs, t);
    if (failed(res)) return failure();
    states.assign(res->begin(), res->begin() + numStates);
    for (size_t k = 0; k < numOuts; ++k) steps[k].push_back((*res)[numStates + k]);
  }
  outs.clear();
  for (size_t k = 0; k < numOuts; ++k) {
    if (failed(requireSameType(n, steps[k], "a scan output"))) return failure();
    int64_t rank = n.entryType(steps[k][0]).getRank() + 1;
    auto axis = normalizeAxis(ax.outAxes[k], rank);
    if (!axis) return n.fail("scan_output_axes " + llvm::Twine(ax.outAxes[k]) + " is out of range");
    if (ax.outDirs[k]) std::reverse(steps[k].begin(), steps[k].end());
    outs.push_back(stack(n, steps[k], *axis));
  }
  return success();
}

// Scan (opset 9+): states and scan inputs, each scanned along scan_input_axes in
// scan_input_directions; scan outputs are stacked along scan_output_axes, reversed
// where scan_output_directions says so. Opset 8 has a batch axis 0 and scans axis
// 1 (`directions` for the inputs); it is unrolled per batch element as well.
LogicalResult importScan(NodeImporter &n) {
  const onnx::AttributeProto *a = n.attr("body");
  if (!a || !a->has_g()) return n.fail("attribute 'body' is missing or not a graph");
  const onnx::GraphProto &body = a->g();
  int64_t numScanIn = n.attrInt("num_scan_inputs", -1);
  size_t first = n.opset < 9 ? 1 : 0;
  if (numScanIn < 1 || size_t(numScanIn) + first > n.numInputs())
    return n.fail("num_scan_inputs does not match the node's inputs");
  size_t numStates = n.numInputs() - first - numScanIn;
  if (size_t(body.input_size()) != numStates + numScanIn || size_t(body.output_size()) < numStates)
    return n.fail("the body's inputs and outputs do not match the node's");
  size_t numOuts = body.output_size() - numStates;

  std::vector<ValueEntry> states, ins;
  for (size_t k = 0; k < numStates; ++k) states.push_back(n.inEntry(first + k));
  for (int64_t j = 0; j < numScanIn; ++j) ins.push_back(n.inEntry(first + numStates + j));

  auto flags = [&](llvm::StringRef name, size_t count) -> std::optional<std::vector<int64_t>> {
    std::vector<int64_t> v = n.attrInts(name);
    if (!n.hasAttr(name)) v.assign(count, 0);
    if (v.size() != count) return std::nullopt;
    return v;
  };
  ScanAxes ax;
  if (n.opset >= 9) {
    auto inAxes = flags("scan_input_axes", numScanIn), inDirs = flags("scan_input_directions", numScanIn);
    auto outAxes = flags("scan_output_axes", numOuts), outDirs = flags("scan_output_directions", numOuts);
    if (!inAxes || !inDirs || !outAxes || !outDirs)
      return n.fail("scan axes or directions do not match the number of scan inputs or outputs");
    ax = {*inAxes, *inDirs, *outAxes, *outDirs};
    for (int64_t j = 0; j < numScanIn; ++j) {
      auto axis = normalizeAxis(ax.inAxes[j], int64_t(entryShape(n, ins[j]).size()));
      if (!axis) return n.fail("scan_input_axes " + llvm::Twine(ax.inAxes[j]) + " is out of range");
      ax.inAxes[j] = *axis;
    }
    std::vector<ValueEntry> outs;
    if (failed(scanUnrolled(n, states, ins, ax, outs))) return failure();
    for (size_t k = 0; k < numStates; ++k) n.outEntry(k, states[k]);
    for (size_t k = 0; k < numOuts; ++k) n.outEntry(numStates + k, outs[k]);
    return success();
  }

  // Opset 8: [batch, sequence, ...] scan inputs and [batch, ...] states.
  auto dirs = flags("directions", numScanIn);
  if (!dirs) return n.fail("directions does not match the number of scan inputs");
  ax = {std::vector<int64_t>(numScanIn, 0), *dirs, std::vector<int64_t>(numOuts, 0), std::vector<int64_t>(numOuts, 0)};
  int64_t batch = -1;
  for (const ValueEntry &e : ins) {
    auto s = entryShape(n, e);
    if (s.size() < 2) return n.fail("scan inputs must have batch and sequence axes");
    if (batch >= 0 && s[0] != batch) return n.fail("inputs have different batch sizes");
    batch = s[0];
  }
  for (const ValueEntry &e : states) {
    auto s = entryShape(n, e);
    if (s.empty() || s[0] != batch) return n.fail("states must have the scan inputs' batch size");
  }
  if (n.hasInput(0)) {
    const HostTensor *lens = n.inConst(0);
    int64_t length = entryShape(n, ins[0])[1];
    if (!lens || llvm::any_of(lens->toInts(), [&](int64_t l) { return l != length; }))
      return n.fail("sequence_lens must be known at compile time and equal the full sequence length");
  }
  if (failed(checkUnroll(n, "body", batch * entryShape(n, ins[0])[1]))) return failure();
  std::vector<std::vector<ValueEntry>> finalStates(numStates), scanOuts(numOuts);
  for (int64_t b = 0; b < batch; ++b) {
    std::vector<ValueEntry> st, in, outs;
    for (const ValueEntry &e : states) st.push_back(takeIndex(n, e, 0, b));
    for (const ValueEntry &e : ins) in.push_back(takeIndex(n, e, 0, b));
    if (failed(scanUnrolled(n, st, in, ax, outs))) return failure();
    for (size_t k = 0; k < numStates; ++k) finalStates[k].push_back(st[k]);
    for (size_t k = 0; k < numOuts; ++k) scanOuts[k].push_back(outs[k]);
  }
  for (size_t k = 0; k < numStates; ++k) {
    if (failed(requireSameType(n, finalStates[k], "a state"))) return failure();
    n.outEntry(k, stack(n, finalStates[k], 0));
  }
  for (size_t k = 0; k < numOuts; ++k) n.outEntry(numStates + k, stack(n, scanOuts[k], 0));
  return success();
}

} // namespace kiln::onnx_frontend
