#!/usr/bin/python3
"""Write the QDQ ONNX model of a Kiln quantisation plan, for other runtimes.

Reads MODEL.onnx and the plan `kiln compile --quantize int8` wrote beside the
artifact (<name>.plan.json), and writes the same quantisation in ONNX's QDQ form:

  * each layer planned at 8 bits reads its activation through QuantizeLinear ->
    DequantizeLinear with the plan's scale and zero point (uint8, asymmetric);
  * its weight becomes an int8 initializer, symmetric per output channel (the scales
    Kiln computes: max|w| / 127 per channel, round half to even), read through
    DequantizeLinear with the channel axis;
  * its output (after a Relu/Clip that alone consumes it, which is where Kiln's
    kernel observed it) goes through QuantizeLinear -> DequantizeLinear with the
    plan's output_range, so that a QDQ-fusing runtime (ONNX Runtime) can run the
    layer as one integer operator.

The activation inputs thus carry exactly Kiln's quantisation; the output Q/DQ pairs
are what ONNX Runtime needs to pick its integer kernels, and quantise slightly more
than Kiln does (Kiln keeps layer outputs in float).

Usage:
  /usr/bin/python3 models/export_qdq.py MODEL.onnx PLAN.json -o MODEL_qdq.onnx
"""
import argparse
import json
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper, TensorProto


def act_params(lo, hi):
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = (hi - lo) / 255.0
    if not scale > 0:
        return 1.0, 0
    return float(np.float32(scale)), int(np.clip(np.rint(-lo / scale), 0, 255))


def quantize_weight(w, axis):
    moved = np.moveaxis(w.astype(np.float32), axis, 0)
    rows = moved.reshape(moved.shape[0], -1)
    amax = np.abs(rows).max(axis=1)
    scale = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
    q = np.clip(np.rint(rows / scale[:, None]), -127, 127).astype(np.int8)
    return np.moveaxis(q.reshape(moved.shape), 0, axis), scale


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("plan")
    ap.add_argument("-o", "--output", required=True)
    args = ap.parse_args()

    model = onnx.load(args.model)
    with open(args.plan) as f:
        plan = json.load(f)
    layers = {l["name"]: l for l in plan.get("layers", []) if l.get("bits") == 8}
    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    consumers = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)

    new_nodes, added, count = [], [], 0

    def qdq(value, scale, zp, tag):
        s, z = f"{tag}_scale", f"{tag}_zp"
        added.append(numpy_helper.from_array(np.array(scale, np.float32), s))
        added.append(numpy_helper.from_array(np.array(zp, np.uint8), z))
        q, dq = f"{tag}_q", f"{tag}_dq"
        return [helper.make_node("QuantizeLinear", [value, s, z], [q], name=f"{tag}/Q"),
                helper.make_node("DequantizeLinear", [q, s, z], [dq], name=f"{tag}/DQ")], dq

    rename = {}  # value -> its dequantised replacement, for every consumer
    for node in graph.node:
        layer = layers.get(node.name)
        if layer and node.op_type in ("Conv", "Gemm", "MatMul") and node.input[1] in inits:
            count += 1
            tag = f"kiln_qdq_{count}"
            scale, zp = act_params(*layer["input_range"])
            nodes, x = qdq(node.input[0], scale, zp, tag + "_in")
            new_nodes += nodes
            w = numpy_helper.to_array(inits[node.input[1]])
            if node.op_type == "Conv":
                axis = 0
            elif node.op_type == "Gemm":
                trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
                axis = 0 if trans_b else 1
            else:
                axis = w.ndim - 1
            q, ws = quantize_weight(w, axis)
            wq, wscale, wzp = f"{tag}_w", f"{tag}_w_scale", f"{tag}_w_zp"
            added += [numpy_helper.from_array(q, wq), numpy_helper.from_array(ws, wscale),
                      numpy_helper.from_array(np.zeros(ws.shape, np.int8), wzp)]
            new_nodes.append(helper.make_node("DequantizeLinear", [wq, wscale, wzp], [f"{tag}_w_dq"], axis=axis,
                                              name=f"{tag}_w/DQ"))
            node.input[0] = x
            node.input[1] = f"{tag}_w_dq"
            new_nodes.append(node)
            if "output_range" in layer:
                out = node.output[0]
                users = consumers.get(out, [])
                anchor = users[0] if len(users) == 1 and users[0].op_type in ("Relu", "Clip") else None
                rename[anchor.output[0] if anchor else out] = (act_params(*layer["output_range"]), tag + "_out")
            continue
        new_nodes.append(node)

    # Output Q/DQ pairs go right after the value they quantise; later readers read the DQ.
    final = []
    graph_outputs = {o.name for o in graph.output}
    for node in new_nodes:
        final.append(node)
        for out in node.output:
            if out in rename and out not in graph_outputs:
                (scale, zp), tag = rename[out]
                pair, dq = qdq(out, scale, zp, tag)
                final += pair
                for later in new_nodes:
                    if later is not node:
                        for k, i in enumerate(later.input):
                            if i == out:
                                later.input[k] = dq
    del graph.node[:]
    graph.node.extend(final)
    graph.initializer.extend(added)
    # Unused float weights out; opset >= 13 for per-axis DequantizeLinear.
    used = {i for n in graph.node for i in n.input}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and imp.version < 13:
            imp.version = 13
    onnx.checker.check_model(model)
    onnx.save(model, args.output)
    print(f"wrote {args.output}: {count} layers in QDQ form")


if __name__ == "__main__":
    sys.exit(main())
