"""Writes binary .onnx models whose initializers claim far more data than the file
holds, for errors-absurd-data.test.

Usage: make_absurd_data.py OUTDIR
"""
import os
import sys

from onnx import TensorProto, helper

out = sys.argv[1]


def model(w):
    nodes = [helper.make_node("ReduceSum", ["w"], ["s"], keepdims=0), helper.make_node("Add", ["x", "s"], ["y"])]
    graph = helper.make_graph(nodes, "absurd", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], initializer=[w])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m.SerializeToString()


def tensor(name, dims):
    t = TensorProto()
    t.name = name
    t.data_type = TensorProto.FLOAT
    t.dims.extend(dims)
    return t


# 2*10^9 floats (8 GB) declared, 4 bytes of raw_data held.
raw = tensor("w", [2000000000])
raw.raw_data = b"\0\0\0\0"
open(os.path.join(out, "raw.onnx"), "wb").write(model(raw))

# 2*10^9 floats declared, one float_data value held.
typed = tensor("w", [2000000000])
typed.float_data.append(1.0)
open(os.path.join(out, "typed.onnx"), "wb").write(model(typed))

# raw_data whose protobuf length prefix claims 10 GB in a file of about 100 bytes.
small = tensor("w", [1])
small.raw_data = b"\xab\xcd\xef\x01"
data = model(small)
field = b"\x4a\x04\xab\xcd\xef\x01"  # raw_data (field 9, length-delimited), 4 bytes
assert data.count(field) == 1
n, varint = 10 * 1000**3, b""
while n >= 0x80:
    varint += bytes([n & 0x7F | 0x80])
    n >>= 7
varint += bytes([n])
open(os.path.join(out, "claim.onnx"), "wb").write(data.replace(field, b"\x4a" + varint + field[2:]))
