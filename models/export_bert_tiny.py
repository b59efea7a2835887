#!/usr/bin/python3
"""Export a tiny BERT-style encoder (plain torch, random seeded weights) to ONNX.

The model: token + learned position embeddings, embedding LayerNorm, then 2
post-LN encoder layers (hidden 64, 4 heads of 16, softmax attention, FFN
64->128->64 with exact erf GELU), each with residuals and LayerNorm. No
attention mask and no token-type embeddings. It exercises Gather, MatMul,
Reshape/Transpose, Softmax, LayerNormalization, Erf and friends.

ONNX: opset 17, input `input_ids` int64 [batch, seq], output `output`
float32 [batch, seq, 64], with symbolic batch and seq (seq <= MAX_POS).

Usage:
  /usr/bin/python3 models/export_bert_tiny.py -o path.onnx
"""
import argparse
import inspect
import math
import os
import sys

import torch
import torch.nn as nn

VOCAB = 1000
HIDDEN = 64
HEADS = 4
FFN = 128
LAYERS = 2
MAX_POS = 128
SEED = 0


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads):
        super().__init__()
        self.heads = heads
        self.head_dim = hidden // heads
        self.q = nn.Linear(hidden, hidden)
        self.k = nn.Linear(hidden, hidden)
        self.v = nn.Linear(hidden, hidden)
        self.o = nn.Linear(hidden, hidden)

    def _split(self, x):  # [B,S,H] -> [B,heads,S,head_dim]
        b, s, _ = x.shape
        return x.reshape(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x):
        b, s, h = x.shape
        q, k, v = self._split(self.q(x)), self._split(self.k(x)), self._split(self.v(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        probs = torch.softmax(scores, dim=-1)
        ctx = torch.matmul(probs, v).transpose(1, 2).reshape(b, s, h)
        return self.o(ctx)


class EncoderLayer(nn.Module):
    def __init__(self, hidden, heads, ffn):
        super().__init__()
        self.attn = SelfAttention(hidden, heads)
        self.ln1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ff1 = nn.Linear(hidden, ffn)
        self.ff2 = nn.Linear(ffn, hidden)
        self.ln2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x):
        x = self.ln1(x + self.attn(x))
        h = nn.functional.gelu(self.ff1(x))  # approximate='none': the erf form
        return self.ln2(x + self.ff2(h))


class BertTiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, HIDDEN)
        self.pos = nn.Embedding(MAX_POS, HIDDEN)
        self.ln = nn.LayerNorm(HIDDEN, eps=1e-12)
        self.layers = nn.ModuleList(EncoderLayer(HIDDEN, HEADS, FFN) for _ in range(LAYERS))

    def forward(self, input_ids):
        seq = input_ids.shape[1]
        pos_ids = torch.arange(seq, dtype=torch.int64, device=input_ids.device).unsqueeze(0)
        x = self.ln(self.tok(input_ids) + self.pos(pos_ids))
        for layer in self.layers:
            x = layer(x)
        return x


def build(seed=SEED):
    torch.manual_seed(seed)
    model = BertTiny()
    # BERT-style init: N(0, 0.02) weights keep activations in a sane range.
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.bias, std=0.02)
        if isinstance(m, nn.LayerNorm):
            nn.init.normal_(m.weight, mean=1.0, std=0.1)
            nn.init.normal_(m.bias, std=0.1)
    return model.eval()


def export(path, seed=SEED, opset=17):
    model = build(seed)
    dummy = torch.randint(0, VOCAB, (2, 16), dtype=torch.int64)
    kwargs = dict(
        input_names=["input_ids"], output_names=["output"],
        dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "output": {0: "batch", 1: "seq"}},
        opset_version=opset, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(model, (dummy,), path, **kwargs)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="where to write the .onnx file")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    export(args.output, args.seed)
    print(f"wrote {args.output} (bert_tiny: vocab {VOCAB}, hidden {HIDDEN}, {LAYERS} layers, "
          f"{HEADS} heads, ffn {FFN}, max seq {MAX_POS}; seed {args.seed}, opset 17)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
