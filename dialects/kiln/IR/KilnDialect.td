//===- KilnDialect.td - The kiln dialect ---------------------*- tablegen -*-===//
#ifndef KILN_DIALECT_TD
#define KILN_DIALECT_TD

include "mlir/IR/OpBase.td"

def Kiln_Dialect : Dialect {
  let name = "kiln";
  let cppNamespace = "::kiln";
  let summary = "Kiln's compressed weight formats";
  let description = [{
    Compressed forms of a layer's constant weights, as values the layer's
    convolution or matmul reads. Each op's result is the dense weight tensor it
    stands for, so any consumer stays correct; `kiln-lower-to-kernels` calls the
    runtime's kernel for the format where the consumer is a convolution or a
    matmul it knows, and decodes the weights into a dense buffer otherwise.

    The dialect also verifies Kiln's discardable attributes on other ops
    (`kiln.quant`).
  }];
  let hasOperationAttrVerify = 1;
}

class Kiln_Op<string mnemonic, list<Trait> traits = []> : Op<Kiln_Dialect, mnemonic, traits>;

#endif
