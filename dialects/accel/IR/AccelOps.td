//===- AccelOps.td - The accelerator's instruction set as ops -*- tablegen -*-===//
#ifndef KILN_ACCEL_OPS_TD
#define KILN_ACCEL_OPS_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/SymbolInterfaces.td"

def Accel_Dialect : Dialect {
  let name = "accel";
  let cppNamespace = "::kiln::accel";
  let summary = "The Kiln accelerator's instruction set (docs/ACCELERATOR.md)";
  let description = [{
    A program for Kiln's accelerator as IR: one `accel.layer` per layer of the
    model, each a straight-line list of the instructions that compute it. Each
    instruction op carries every parameter it reads; the serialiser emits the `SET`
    instructions a parameter needs (only where its register changes) and then the
    instruction itself. Device-memory addresses are absolute: `kiln-lower-to-accel`
    plans the memory (programs, weights, activations) when it creates the ops.
    `accel.data` places constant bytes (weights, requantisation parameters) in
    device memory; `accel.input`/`accel.output` say where the model's tensors are
    and how the host converts them.
  }];
}

class Accel_Op<string mnemonic, list<Trait> traits = []> : Op<Accel_Dialect, mnemonic, traits>;

/// An instruction: only inside an accel.layer; every attribute an unsigned 32-bit
/// value unless the op says otherwise.
class Accel_InsnOp<string mnemonic> : Accel_Op<mnemonic, [HasParent<"LayerOp">]> {
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Accel_LayerOp : Accel_Op<"layer", [Symbol, NoTerminator, SingleBlock, IsolatedFromAbove]> {
  let summary = "the instructions of one layer (run as one program)";
  let description = [{
    `macs` is the number of multiply-accumulates the layer needs (its useful work),
    from which `kiln sim` reports PE utilisation; `kind` says what it computes.
  }];
  let arguments = (ins SymbolNameAttr:$sym_name, StrAttr:$kind, I64Attr:$macs);
  let regions = (region SizedRegion<1>:$body);
  let assemblyFormat = "$sym_name attr-dict-with-keyword $body";
}

def Accel_DataOp : Accel_Op<"data", [HasParent<"mlir::ModuleOp">]> {
  let summary = "constant bytes at a device-memory address";
  let arguments = (ins I64Attr:$addr, ElementsAttr:$bytes);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Accel_InputOp : Accel_Op<"input", [HasParent<"mlir::ModuleOp">]> {
  let summary = "a model input: quantised by the host to u8 (scale, zero point) at addr";
  let description = [{
    `dims` is the model's shape; device memory holds it transposed by `perm` (element
    [i0, i1, ...] of the stored tensor is the input's element with index perm[k] = ik).
  }];
  let arguments = (ins StrAttr:$name, I64Attr:$addr, DenseI64ArrayAttr:$dims, F32Attr:$scale,
                       I64Attr:$zero_point, DenseI64ArrayAttr:$perm);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Accel_OutputOp : Accel_Op<"output", [HasParent<"mlir::ModuleOp">]> {
  let summary = "a model output: int32 at addr, y = value x scale of its last dimension";
  let description = [{
    The stored int32 tensor Z, scaled along its last dimension, transposed by `perm`
    (output[o] = Z[z] with z[perm[k]] = o[k]) is the output of shape `dims`.
  }];
  let arguments = (ins StrAttr:$name, I64Attr:$addr, DenseI64ArrayAttr:$dims, DenseF32ArrayAttr:$scales,
                   DenseI64ArrayAttr:$perm);
  let assemblyFormat = "attr-dict";
  let hasVerifier = 1;
}

def Accel_LoadOp : Accel_InsnOp<"load"> {
  let summary = "DMA of len bytes from device memory into a buffer (w, i, p or a)";
  let arguments = (ins StrAttr:$buf, I64Attr:$src, I64Attr:$len, I64Attr:$boff);
}

def Accel_LoadWinOp : Accel_InsnOp<"load_win"> {
  let summary = "im2col gather of up to `cols` output pixels into the activation buffer";
  let arguments = (ins I64Attr:$src, I64Attr:$h, I64Attr:$w, I64Attr:$c, I64Attr:$kh, I64Attr:$kw,
                       I64Attr:$stride, I64Attr:$pad_t, I64Attr:$pad_l, I64Attr:$padval, I64Attr:$ow,
                       I64Attr:$oy0, I64Attr:$ox0, I64Attr:$npix, I64Attr:$aoff);
}

def Accel_GemmOp : Accel_InsnOp<"gemm"> {
  let summary = "PE-array GEMM over k reduction steps; nm_n > 0: N:M mode keeping nm_n per group; w4: int4 weights";
  let arguments = (ins I64Attr:$k, I64Attr:$woff, I64Attr:$aoff, I64Attr:$ioff, I64Attr:$nm_n,
                       BoolAttr:$accumulate, UnitAttr:$w4);
}

def Accel_RebuildOp : Accel_InsnOp<"rebuild"> {
  let summary = "SmartDeal: rebuild a tile's int8 weights (k = 3 x positions) from codes and bases";
  let description = [{
    Reads the per-row shifts and the position records at `ioff` (`len` bytes) and the
    int8 bases at `sdb` in the index buffer, writes the weights at `woff` in the weight
    buffer. `flat`: chunk p is weights 3p..3p+2; else (taps3) p = kh * c + ch holds the 3
    taps along x. `bits`: exponent bits; `group`: channels (taps3) or positions (flat)
    per basis.
  }];
  let arguments = (ins I64Attr:$k, I64Attr:$woff, I64Attr:$ioff, I64Attr:$len, I64Attr:$c, BoolAttr:$flat,
                       I64Attr:$bits, I64Attr:$group, I64Attr:$sdb);
}

def Accel_RequantOp : Accel_InsnOp<"requant"> {
  let summary = "accumulators + bias, scaled, shifted, offset and clamped to u8 (or raw int32)";
  let arguments = (ins I64Attr:$poff, I64Attr:$zp, I64Attr:$lo, I64Attr:$hi, BoolAttr:$raw);
}

def Accel_PoolOp : Accel_InsnOp<"pool"> {
  let summary = "max over win windows gathered by load_win";
  let arguments = (ins I64Attr:$c, I64Attr:$win, I64Attr:$ch0, I64Attr:$aoff);
}

def Accel_StoreOp : Accel_InsnOp<"store"> {
  let summary = "npix columns of nrows results to device memory";
  let arguments = (ins I64Attr:$dst, I64Attr:$dstride, I64Attr:$npix, I64Attr:$nrows, BoolAttr:$raw);
}

#endif
