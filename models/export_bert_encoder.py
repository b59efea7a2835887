#!/usr/bin/python3
"""Export a BERT-shaped encoder built on torch.nn.TransformerEncoder (random seeded weights) to ONNX.

The model: token embedding (vocab 1000) + learned position embedding (max 512
positions), then torch.nn.TransformerEncoder with 4 post-LN layers (d_model
256, 4 heads of 64, FFN 256->1024->256 with exact erf GELU, dropout 0,
batch_first). `attention_mask` (1 = keep, 0 = pad) becomes the encoder's
src_key_padding_mask, so padded keys get -inf attention scores; padded query
positions are still computed (they attend to the unpadded keys). No embedding
LayerNorm, no token-type embeddings, no final norm.

ONNX: opset 17, inputs `input_ids` int64 [batch, seq] and `attention_mask`
int64 [batch, seq], output `last_hidden_state` float32 [batch, seq, 256], with
symbolic batch and seq (seq <= MAX_POS).

Usage:
  /usr/bin/python3 models/export_bert_encoder.py -o path.onnx [--seed 0]
"""
import argparse
import contextlib
import inspect
import os
import sys

import torch
import torch.nn as nn

VOCAB = 1000
HIDDEN = 256
HEADS = 4
FFN = 1024
LAYERS = 4
MAX_POS = 512
SEED = 0


@contextlib.contextmanager
def fastpath_disabled():
    """Makes TransformerEncoderLayer and MultiheadAttention run their ordinary code.

    In eval mode without grad both take a "fast path": one fused
    aten::_transformer_encoder_layer_fwd / aten::_native_multi_head_attention
    call, which has no ONNX export. Both skip it when grad is enabled and a
    weight requires grad (the case here: the parameters are never frozen), so
    the export traces with grad on: the traced graph is the same math (Linear,
    MatMul, Softmax, LayerNorm...), and nothing is ever backpropagated.
    torch >= 2.1 also has an explicit switch, turned off too where present.
    """
    mha = getattr(torch.backends, "mha", None)
    switch = mha is not None and hasattr(mha, "set_fastpath_enabled")
    if switch:
        old = mha.get_fastpath_enabled()
        mha.set_fastpath_enabled(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        if switch:
            mha.set_fastpath_enabled(old)


class BertEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = nn.Embedding(VOCAB, HIDDEN)
        self.pos = nn.Embedding(MAX_POS, HIDDEN)
        layer = nn.TransformerEncoderLayer(
            HIDDEN, HEADS, dim_feedforward=FFN, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=False)
        # enable_nested_tensor=False: no nested-tensor conversion of the padded
        # batch (which would also zero the padded positions' outputs).
        self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)

    def forward(self, input_ids, attention_mask):
        seq = input_ids.shape[1]
        pos_ids = torch.arange(seq, dtype=torch.int64, device=input_ids.device).unsqueeze(0)
        x = self.tok(input_ids) + self.pos(pos_ids)
        pad = attention_mask == 0  # bool [batch, seq], True = ignore this key
        return self.encoder(x, src_key_padding_mask=pad)


def build(seed=SEED):
    torch.manual_seed(seed)
    model = BertEncoder()
    # torch's default init (N(0, 1) embeddings, Xavier/Kaiming projections)
    # gives attention scores of O(1), so the softmax (and the mask) matter.
    # Biases and LayerNorm affine parameters, which start at 0 and 1, are
    # randomised so that no add or scale is a no-op.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") and "norm" not in name:
                p.normal_(std=0.02)
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                nn.init.normal_(m.weight, mean=1.0, std=0.1)
                nn.init.normal_(m.bias, std=0.1)
    return model.eval()


def check_standard_ops(path):
    """Fails if the export contains anything but default-domain ONNX ops (e.g. an ATen fallback)."""
    import onnx
    bad = sorted({f"{n.domain}::{n.op_type}" for n in onnx.load(path).graph.node
                  if n.domain not in ("", "ai.onnx")})
    if bad:
        raise RuntimeError(f"{path}: non-standard ops in the export: {', '.join(bad)}")


def export(path, seed=SEED, opset=17):
    model = build(seed)
    dummy_ids = torch.randint(0, VOCAB, (2, 16), dtype=torch.int64)
    dummy_mask = torch.ones(2, 16, dtype=torch.int64)
    dummy_mask[1, 12:] = 0
    axes = {0: "batch", 1: "seq"}
    kwargs = dict(
        input_names=["input_ids", "attention_mask"], output_names=["last_hidden_state"],
        dynamic_axes={"input_ids": axes, "attention_mask": axes, "last_hidden_state": axes},
        opset_version=opset, do_constant_folding=True)
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    path = os.path.abspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}.onnx"
    try:
        with fastpath_disabled():
            torch.onnx.export(model, (dummy_ids, dummy_mask), tmp, **kwargs)
        check_standard_ops(tmp)
        os.replace(tmp, path)  # atomic: a failed export leaves no half file
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True, help="where to write the .onnx file")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    export(args.output, args.seed)
    print(f"wrote {args.output} (bert_encoder: vocab {VOCAB}, d_model {HIDDEN}, {LAYERS} layers, "
          f"{HEADS} heads, ffn {FFN}, max seq {MAX_POS}; seed {args.seed}, opset 17)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
