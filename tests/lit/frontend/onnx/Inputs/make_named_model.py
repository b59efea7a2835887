"""Writes small binary .onnx models whose nodes carry names (ONNX's text syntax
cannot name nodes), for node-names.test.

Usage: make_named_model.py good|unsupported OUT.onnx
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

kind, out = sys.argv[1], sys.argv[2]
x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 4, 4])
if kind == "good":
    w = numpy_helper.from_array(np.arange(8, dtype=np.float32).reshape(4, 2, 1, 1), "stem.weight")
    nodes = [
        helper.make_node("Conv", ["x", "stem.weight"], ["c"], name="/stem/conv/Conv"),
        helper.make_node("Relu", ["c"], ["r"], name="/stem/act/Relu"),
        helper.make_node("GlobalAveragePool", ["r"], ["y"]),  # unnamed: GlobalAveragePool_2
    ]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4, 1, 1])
    graph = helper.make_graph(nodes, "named", [x], [y], initializer=[w])
else:
    # Ops with data-dependent output shapes, which an ahead-of-time compiler
    # for static shapes does not import.
    boxes = helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 3, 4])
    scores = helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 3])
    nodes = [
        helper.make_node("Relu", ["x"], ["y"], name="head/relu"),
        helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["sel"], name="head/nms"),
        helper.make_node("Unique", ["y"], ["u"], name="head/unique"),
    ]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 4, 4])
    sel = helper.make_tensor_value_info("sel", TensorProto.INT64, [None, 3])
    u = helper.make_tensor_value_info("u", TensorProto.FLOAT, [None])
    graph = helper.make_graph(nodes, "named", [x, boxes, scores], [y, sel, u])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
model.ir_version = 7
onnx.checker.check_model(model)
onnx.save(model, out)
