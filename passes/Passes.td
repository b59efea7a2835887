//===- Passes.td - Kiln pass declarations -----------------------*- tablegen -*-===//
#ifndef KILN_PASSES_TD
#define KILN_PASSES_TD

include "mlir/Pass/PassBase.td"

def KilnOutlineWeights : Pass<"kiln-outline-weights", "mlir::ModuleOp"> {
  let summary = "Move constant weights out of the code into the weights blob";
  let description = [{
    Runs on bufferized IR. Every constant `memref.global` read by the entry
    function and at least `min-bytes` large is copied into one 64-byte-aligned
    blob, stored on the module as `kiln.weights` (a dense_resource of i8), and
    its `memref.get_global` is replaced by a `memref.view` of a new first
    argument of the entry function (`kiln.role = "weights"`). The compiled code
    then reads weights from the memory-mapped weights file instead of carrying
    them in the object.

    Example: `%w = memref.get_global @c : memref<16x3xf32>` becomes
    `%w = memref.view %weights[%c128][] : memref<N x i8> to memref<16x3xf32>`.
  }];
  let options = [
    Option<"minBytes", "min-bytes", "int64_t", /*default=*/"64",
           "Constants smaller than this stay in the object">,
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["mlir::memref::MemRefDialect", "mlir::arith::ArithDialect"];
}

def KilnPlanArena : Pass<"kiln-plan-arena", "mlir::ModuleOp"> {
  let summary = "Place intermediate buffers in one caller-provided arena";
  let description = [{
    Runs on bufferized IR before deallocation is inserted. Every statically
    shaped `memref.alloc` in the entry function's top-level block gets a byte
    offset in one arena, reusing space between buffers whose live ranges do not
    overlap (first fit in program order; a buffer lives from its allocation to
    the last use of it or of any view of it). Allocations become `memref.view`s
    of a new argument (`kiln.role = "arena"`) inserted after the weights
    argument, and the arena size is recorded as `kiln.arena_size` on the module.
    Allocations the pass cannot place (dynamic shapes, inside loops) are left for
    the deallocation pipeline.
  }];
  let options = [
    Option<"alignment", "alignment", "int64_t", /*default=*/"64",
           "Byte alignment of every buffer in the arena">,
    Option<"reuse", "reuse", "bool", /*default=*/"true",
           "Share arena space between buffers that are not live together">,
    Option<"entryName", "entry", "std::string", /*default=*/"\"forward\"",
           "Name of the entry function">,
  ];
  let dependentDialects = ["mlir::memref::MemRefDialect", "mlir::arith::ArithDialect"];
}

#endif // KILN_PASSES_TD
