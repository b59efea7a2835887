#!/usr/bin/python3
"""SmartDeal figures on real weights: the inputs of kiln-smartdeal-figures, and the accuracy check.

  extract DIR   writes DIR/<layer>.rows.npy (f32 [m][K], K in (kh, kw, c) order) and
                DIR/<layer>.gram.npy (f64 [K][K], X^T X / samples of the layer's inputs) for
                the 3x3 convs and the Gemms of models/fmnist_cnn.onnx; the inputs come from
                --calib training images of Fashion-MNIST run through a NumPy forward pass.
  accuracy DIR  top-1 on the 10000 test images with the weights as given, then with every
                DIR/<layer>.<tag>.rebuilt.npy that kiln-smartdeal-figures wrote, per tag.

Needs onnx and numpy (/usr/bin/python3) and /usr/share/datasets/fashion-mnist.
"""
import argparse
import glob
import gzip
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "models", "fmnist_cnn.onnx")
DATA = "/usr/share/datasets/fashion-mnist"
# layer name -> ONNX initializer, and whether it is a conv (OIHW) or a Gemm (transB: [out][in])
LAYERS = [("conv1", "onnx::Conv_32", "onnx::Conv_33"), ("conv2", "onnx::Conv_35", "onnx::Conv_36"),
          ("fc1", "9.weight", "9.bias"), ("fc2", "11.weight", "11.bias")]


def images(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 1, 28, 28).astype(np.float32) / 255.0


def labels(name):
    with gzip.open(os.path.join(DATA, name)) as f:
        return np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)


def load_params():
    model = onnx.load(MODEL)
    return {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}


def to_rows(w):
    """OIHW conv weights -> rows[o][(kh, kw, c)]; Gemm weights are rows already."""
    if w.ndim == 4:
        return np.ascontiguousarray(w.transpose(0, 2, 3, 1).reshape(w.shape[0], -1))
    return np.ascontiguousarray(w)


def patches(x):
    """NCHW input, 3x3 pad 1 stride 1 -> [N*H*W][(kh, kw, c)] (the layer's reduction order)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))).transpose(0, 2, 3, 1)  # NHWC
    cols = [xp[:, i:i + h, j:j + w, :] for i in range(3) for j in range(3)]
    return np.stack(cols, axis=3).reshape(n * h * w, 9 * c)


def maxpool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).max(axis=(3, 5))


def forward(x, rows, bias, record=None):
    """The CNN with weights given as rows; record[layer] collects each layer's input matrix."""
    def conv(name, x):
        p = patches(x)
        if record is not None:
            record[name] = p
        n, _, h, w = x.shape
        y = p @ rows[name].T + bias[name]
        return y.reshape(n, h, w, -1).transpose(0, 3, 1, 2)

    def gemm(name, x):
        if record is not None:
            record[name] = x
        return x @ rows[name].T + bias[name]

    x = maxpool2(np.maximum(conv("conv1", x), 0))
    x = maxpool2(np.maximum(conv("conv2", x), 0))
    x = x.reshape(x.shape[0], -1)
    x = np.maximum(gemm("fc1", x), 0)
    return gemm("fc2", x)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["extract", "accuracy"])
    ap.add_argument("dir")
    ap.add_argument("--calib", type=int, default=4000, help="training images for the Grams")
    args = ap.parse_args()
    params = load_params()
    rows = {name: to_rows(params[w]) for name, w, _ in LAYERS}
    bias = {name: params[b] for name, _, b in LAYERS}
    os.makedirs(args.dir, exist_ok=True)
    if args.command == "extract":
        calib = images("train-images-idx3-ubyte.gz")[:args.calib]
        grams, counts = {}, {}
        for start in range(0, len(calib), 500):  # in batches: conv2's patches are large
            record = {}
            forward(calib[start:start + 500], rows, bias, record)
            for name, x in record.items():
                x = x.astype(np.float64)
                grams[name] = grams.get(name, 0) + x.T @ x
                counts[name] = counts.get(name, 0) + x.shape[0]
        for name, _, _ in LAYERS:
            np.save(os.path.join(args.dir, name + ".rows.npy"), rows[name])
            np.save(os.path.join(args.dir, name + ".gram.npy"), grams[name] / counts[name])
            print(f"{name}: rows {rows[name].shape}, gram from {counts[name]} input vectors")
        return 0
    x, y = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")

    def accuracy(r):
        hits = sum(int((forward(x[i:i + 1000], r, bias).argmax(axis=1) == y[i:i + 1000]).sum())
                   for i in range(0, len(x), 1000))
        return hits / len(x)

    print(f"dense fp32: top-1 {accuracy(rows):.4f}")
    tags = sorted({os.path.basename(p).split(".")[1] for p in glob.glob(os.path.join(args.dir, "*.*.rebuilt.npy"))})
    for tag in tags:
        r = dict(rows)
        replaced = []
        for name, _, _ in LAYERS:
            path = os.path.join(args.dir, f"{name}.{tag}.rebuilt.npy")
            if os.path.exists(path):
                r[name] = np.load(path)
                replaced.append(name)
        print(f"{tag}: top-1 {accuracy(r):.4f} (SmartDeal weights in {', '.join(replaced)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
