#!/usr/bin/python3
"""Train Kiln's bundled Fashion-MNIST models and export them to ONNX.

Reads the IDX files shipped by Debian's `dataset-fashion-mnist` package
(/usr/share/datasets/fashion-mnist/, gzipped or plain), trains a small model
on the CPU with fixed seeds, and writes into --out-dir:

  fmnist_<arch>.onnx opset 17, input `input` float32 [N,1,28,28] (x/255),
                     output `logits` float32 [N,10], symbolic batch N
  test_images.npy    float32 [10000,1,28,28], normalised as in training
  test_labels.npy    int64 [10000]

--arch picks the model (all three take the same input and give the same output):
  cnn  (default) conv-BN-ReLU-maxpool x2, linear-ReLU-linear      -> fmnist_cnn.onnx
  vit  a tiny vision transformer: 7x7 patches, class token, 3 pre-LN
       encoder layers (dim 64, 4 heads, MLP 128, GELU), LayerNorm   -> fmnist_vit.onnx
  gru  the 28 image rows as a sequence of 28 steps of 28 features,
       one GRU layer (hidden 128, batch_first), linear head        -> fmnist_gru.onnx

With --export-test-set-only only the two .npy files are written (no torch
needed, no training): the end-to-end accuracy tests use this.

Usage:
  /usr/bin/python3 models/train_fmnist.py --out-dir DIR [--arch cnn|vit|gru] [--epochs E]
  /usr/bin/python3 models/train_fmnist.py --export-test-set-only --out-dir DIR
"""
import argparse
import gzip
import os
import struct
import sys
import time

import numpy as np

DATA_DIR = "/usr/share/datasets/fashion-mnist"
SEED = 20240601


def _open_idx(data_dir, stem):
    """Opens DATA_DIR/stem, accepting a plain or gzipped file."""
    for name, opener in ((stem, open), (stem + ".gz", gzip.open)):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return opener(path, "rb")
    raise FileNotFoundError(
        f"{stem}[.gz] not found in {data_dir} (install Debian's dataset-fashion-mnist)")


def read_idx(data_dir, stem):
    """Reads an IDX file (ubyte payload) into a numpy array."""
    with _open_idx(data_dir, stem) as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{stem}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    arr = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{stem}: expected {dims}, got {arr.size} bytes")
    return arr.reshape(dims)


def normalise(images_u8):
    """uint8 [N,28,28] -> float32 [N,1,28,28] in [0,1] (x/255): the model's input."""
    return (images_u8.astype(np.float32) / np.float32(255.0))[:, None, :, :]


def load_split(split, data_dir=DATA_DIR):
    """Returns (images float32 [N,1,28,28], labels int64 [N]) for 'train' or 't10k'."""
    images = read_idx(data_dir, f"{split}-images-idx3-ubyte")
    labels = read_idx(data_dir, f"{split}-labels-idx1-ubyte")
    return normalise(images), labels.astype(np.int64)


def load_test_set(data_dir=DATA_DIR):
    return load_split("t10k", data_dir)


def export_test_set(out_dir, data_dir=DATA_DIR):
    images, labels = load_test_set(data_dir)
    os.makedirs(out_dir, exist_ok=True)
    np.save(os.path.join(out_dir, "test_images.npy"), images)
    np.save(os.path.join(out_dir, "test_labels.npy"), labels)
    return images, labels


ARCHS = ("cnn", "vit", "gru")

# Per-architecture training defaults: epochs, batch size, Adam learning rate,
# whether the learning rate follows a cosine decay to zero over the run (per
# step), and torch's thread count. The ViT and the GRU train on one thread: on a
# 2-core machine that is shared with other work, two OpenMP threads wait on each
# other at every op and run several times slower, while one thread's speed does
# not depend on what else runs (the CNN keeps 2 so its file stays as committed).
TRAIN_DEFAULTS = {
    "cnn": dict(epochs=2, batch_size=64, lr=1e-3, cosine=False, threads=2),
    "vit": dict(epochs=6, batch_size=128, lr=2e-3, cosine=True, threads=1),
    "gru": dict(epochs=4, batch_size=128, lr=2e-3, cosine=True, threads=1),
}


def build_cnn():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )


def build_vit(patch=7, dim=64, depth=3, heads=4, mlp=128):
    """A tiny ViT in plain torch (no nn.MultiheadAttention: its fused fast path
    does not export). Reshapes use -1 for the batch so the ONNX graph has
    constant shapes except where the class token is broadcast to the batch."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    tokens = (28 // patch) ** 2

    class Linear(nn.Linear):
        """nn.Linear that trains as a 1x1 convolution. Debian's torch links the
        reference BLAS, so nn.Linear's matrix products run at ~2 GFLOP/s; the
        same product as a convolution goes through oneDNN and trains ~5x faster.
        In eval mode (the accuracy printed, the ONNX export) it is plain
        F.linear, so the exported graph has the usual MatMul/Add."""

        def forward(self, x):
            if not self.training:
                return F.linear(x, self.weight, self.bias)
            y = F.conv2d(x.reshape(-1, self.in_features, 1, 1), self.weight[:, :, None, None], self.bias)
            return y.reshape(x.shape[:-1] + (self.out_features,))

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = Linear(dim, 3 * dim)
            self.proj = Linear(dim, dim)
            self.scale = (dim // heads) ** -0.5

        def forward(self, x):                                     # [B, T, dim]
            t = x.shape[1]
            qkv = self.qkv(x).reshape(-1, t, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]                      # [B, heads, T, dh]
            att = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * self.scale, dim=-1)
            y = torch.matmul(att, v).transpose(1, 2).reshape(-1, t, dim)
            return self.proj(y)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn = nn.LayerNorm(dim), Attention()
            self.ln2 = nn.LayerNorm(dim)
            self.mlp = nn.Sequential(Linear(dim, mlp), nn.GELU(), Linear(mlp, dim))

        def forward(self, x):
            x = x + self.attn(self.ln1(x))
            return x + self.mlp(self.ln2(x))

    class ViT(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Conv2d(1, dim, patch, stride=patch)   # patch embedding
            self.cls = nn.Parameter(torch.zeros(1, 1, dim))
            self.pos = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
            self.blocks = nn.Sequential(*[Block() for _ in range(depth)])
            self.norm = nn.LayerNorm(dim)
            self.head = Linear(dim, 10)

        def forward(self, x):                                     # [B, 1, 28, 28]
            x = self.patch(x).flatten(2).transpose(1, 2)          # [B, tokens, dim]
            x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
            x = self.norm(self.blocks(x))
            return self.head(x[:, 0])                             # class token

    return ViT()


def build_gru(hidden=128, layers=1):
    """Reads the image row by row: 28 steps of 28 pixels, then a linear head on
    the last hidden state."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    def matmul_t(x, w, b):
        """x @ w.T + b as a 1x1 convolution (oneDNN): see Linear in build_vit."""
        return F.conv2d(x.reshape(-1, w.shape[1], 1, 1), w[:, :, None, None], b).reshape(
            x.shape[:-1] + (w.shape[0],))

    class GRUClassifier(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(28, hidden, num_layers=layers, batch_first=True)
            self.head = nn.Linear(hidden, 10)

        def train_gru(self, x):
            """nn.GRU's forward written out (gates r, z, n; the reset gate
            multiplies W_hn h + b_hn, ONNX's linear_before_reset=1), with the
            products as convolutions: nn.GRU's per-step products go through the
            reference BLAS and train ~2.5x slower. Same weights, same math."""
            h = None
            for layer in range(layers):
                w_ih, w_hh, b_ih, b_hh = (getattr(self.gru, f"{n}_l{layer}")
                                          for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                gi = matmul_t(x, w_ih, b_ih)                      # [B, T, 3*hidden], all steps
                h = x.new_zeros(x.shape[0], hidden)
                ys = []
                for t in range(x.shape[1]):
                    i_r, i_z, i_n = gi[:, t].chunk(3, 1)
                    h_r, h_z, h_n = matmul_t(h, w_hh, b_hh).chunk(3, 1)
                    r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                    h = (1 - z) * torch.tanh(i_n + r * h_n) + z * h
                    ys.append(h)
                x = torch.stack(ys, 1)
            return h

        def forward(self, x):                                     # [B, 1, 28, 28]
            x = x.reshape(-1, 28, 28)
            if self.training:
                return self.head(self.train_gru(x))
            _, h = self.gru(x)                                    # h: [layers, B, hidden]
            return self.head(h[-1])

    return GRUClassifier()


def build_model(arch="cnn"):
    return {"cnn": build_cnn, "vit": build_vit, "gru": build_gru}[arch]()


def evaluate(model, images, labels, batch=1000):
    import torch
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch])
            correct += int((model(x).argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(images)


def train(out_dir, epochs=None, data_dir=DATA_DIR, target_acc=None, batch_size=None, lr=None,
          arch="cnn", train_limit=None):
    import math
    import torch
    cfg = dict(TRAIN_DEFAULTS[arch])
    epochs = cfg["epochs"] if epochs is None else epochs
    batch_size = cfg["batch_size"] if batch_size is None else batch_size
    lr = cfg["lr"] if lr is None else lr
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(cfg["threads"])

    train_x, train_y = load_split("train", data_dir)
    if train_limit is not None:
        train_x, train_y = train_x[:train_limit], train_y[:train_limit]
    test_x, test_y = export_test_set(out_dir, data_dir)

    model = build_model(arch)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(SEED)
    tx, ty = torch.from_numpy(train_x), torch.from_numpy(train_y)
    steps_per_epoch = (len(train_x) + batch_size - 1) // batch_size
    total_steps, step = epochs * steps_per_epoch, 0

    t0 = time.time()
    acc = 0.0
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(train_x)))
        total, n = 0.0, 0
        for i in range(0, len(perm), batch_size):
            if cfg["cosine"]:
                for g in opt.param_groups:
                    g["lr"] = lr * 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
            step += 1
            idx = perm[i:i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(tx[idx]), ty[idx])
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
            n += len(idx)
        acc = evaluate(model, test_x, test_y)
        print(f"epoch {epoch + 1}/{epochs}: train loss {total / n:.4f}, "
              f"test accuracy {acc:.4f} ({time.time() - t0:.1f} s)", flush=True)
        if target_acc is not None and acc >= target_acc:
            break
    train_s = time.time() - t0

    model.eval()
    onnx_path = os.path.join(out_dir, f"fmnist_{arch}.onnx")
    export_onnx(model, onnx_path)
    print(f"training took {train_s:.1f} s; final test accuracy {acc:.4f}")
    print(f"wrote {onnx_path}, test_images.npy, test_labels.npy in {out_dir}")
    return acc


def export_onnx(model, onnx_path):
    """Opset 17 through the TorchScript exporter, symbolic batch."""
    import inspect
    import torch
    kwargs = dict(input_names=["input"], output_names=["logits"],
                  dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                  opset_version=17, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    torch.onnx.export(model, torch.zeros(1, 1, 28, 28), onnx_path, **kwargs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--arch", choices=ARCHS, default="cnn",
                    help="model to train (default cnn)")
    ap.add_argument("--epochs", type=int, default=None,
                    help="training epochs (default: " +
                    ", ".join(f"{a} {c['epochs']}" for a, c in TRAIN_DEFAULTS.items()) + ")")
    ap.add_argument("--train-limit", type=int, default=None,
                    help="train on only the first N training images")
    ap.add_argument("--target-accuracy", type=float, default=None,
                    help="stop early once test accuracy reaches this")
    ap.add_argument("--export-test-set-only", action="store_true",
                    help="only write test_images.npy / test_labels.npy (no training)")
    args = ap.parse_args(argv)
    if args.export_test_set_only:
        images, labels = export_test_set(args.out_dir, args.data_dir)
        print(f"wrote test_images.npy {images.shape} and test_labels.npy {labels.shape} "
              f"in {args.out_dir}")
        return 0
    train(args.out_dir, args.epochs, args.data_dir, args.target_accuracy,
          arch=args.arch, train_limit=args.train_limit)
    return 0


if __name__ == "__main__":
    sys.exit(main())
