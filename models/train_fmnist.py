#!/usr/bin/python3
"""Train Kiln's bundled Fashion-MNIST CNN and export it to ONNX.

Reads the IDX files shipped by Debian's `dataset-fashion-mnist` package
(/usr/share/datasets/fashion-mnist/, gzipped or plain), trains a small CNN on
the CPU with fixed seeds, and writes into --out-dir:

  fmnist_cnn.onnx    opset 17, input `input` float32 [N,1,28,28] (x/255),
                     output `logits` float32 [N,10], symbolic batch N
  test_images.npy    float32 [10000,1,28,28], normalised as in training
  test_labels.npy    int64 [10000]

With --export-test-set-only only the two .npy files are written (no torch
needed, no training): the end-to-end accuracy test uses this.

Usage:
  /usr/bin/python3 models/train_fmnist.py --out-dir DIR [--epochs 2]
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


def build_model():
    import torch.nn as nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 64), nn.ReLU(),
        nn.Linear(64, 10),
    )


def evaluate(model, images, labels, batch=1000):
    import torch
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(images), batch):
            x = torch.from_numpy(images[i:i + batch])
            correct += int((model(x).argmax(1).numpy() == labels[i:i + batch]).sum())
    return correct / len(images)


def train(out_dir, epochs, data_dir=DATA_DIR, target_acc=None, batch_size=64, lr=1e-3):
    import torch
    torch.manual_seed(SEED)
    np.random.seed(SEED)
    torch.set_num_threads(2)

    train_x, train_y = load_split("train", data_dir)
    test_x, test_y = export_test_set(out_dir, data_dir)

    model = build_model()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    rng = np.random.default_rng(SEED)
    tx, ty = torch.from_numpy(train_x), torch.from_numpy(train_y)

    t0 = time.time()
    acc = 0.0
    for epoch in range(epochs):
        model.train()
        perm = torch.from_numpy(rng.permutation(len(train_x)))
        total, n = 0.0, 0
        for i in range(0, len(perm), batch_size):
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
    onnx_path = os.path.join(out_dir, "fmnist_cnn.onnx")
    torch.onnx.export(
        model, torch.zeros(1, 1, 28, 28), onnx_path,
        input_names=["input"], output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=17, do_constant_folding=True)
    print(f"training took {train_s:.1f} s; final test accuracy {acc:.4f}")
    print(f"wrote {onnx_path}, test_images.npy, test_labels.npy in {out_dir}")
    return acc


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--data-dir", default=DATA_DIR)
    ap.add_argument("--epochs", type=int, default=2)
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
    train(args.out_dir, args.epochs, args.data_dir, args.target_accuracy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
