// RUN: kiln-opt %s -split-input-file -kiln-linalg-to-loops | FileCheck %s
// RUN: kiln-opt %s -split-input-file -kiln-linalg-to-loops=parallel-work=64 | FileCheck %s --check-prefix=PAR

// A row sum (softmax/layer-norm form): a loop over the rows, and inside it a loop
// over the row that carries the sum as an iter_arg; the output is read once before
// and written once after the inner loop.
// CHECK-LABEL: func.func @row_sum
// CHECK-NOT: linalg.reduce
// CHECK: scf.for %[[I:.*]] = %{{.*}} to %{{.*}} step
// CHECK: %[[INIT:.*]] = memref.load %[[OUT:.*]][%[[I]]]
// CHECK: %[[SUM:.*]] = scf.for %[[K:.*]] = {{.*}} iter_args(%[[ACC:.*]] = %[[INIT]]) -> (f32)
// CHECK: %[[X:.*]] = memref.load %{{.*}}[%[[I]], %[[K]]]
// CHECK: %[[NEXT:.*]] = arith.addf %[[X]], %[[ACC]]
// CHECK: scf.yield %[[NEXT]]
// CHECK: memref.store %[[SUM]], %[[OUT]][%[[I]]]
func.func @row_sum(%in: memref<4x16xf32>, %out: memref<4xf32>) {
  linalg.reduce ins(%in : memref<4x16xf32>) outs(%out : memref<4xf32>) dimensions = [1]
    (%x: f32, %acc: f32) {
      %s = arith.addf %x, %acc : f32
      linalg.yield %s : f32
    }
  return
}

// -----

// A generic whose body uses linalg.index and reads a broadcast operand; two
// trailing reduction loops nest, each carrying the accumulator.
// CHECK-LABEL: func.func @generic_two_reductions
// CHECK-NOT: linalg.generic
// CHECK: scf.for %[[I:.*]] =
// CHECK: memref.load %{{.*}}[%[[I]]] : memref<2xf32>
// CHECK: scf.for %[[J:.*]] = {{.*}} iter_args
// CHECK: scf.for %[[K:.*]] = {{.*}} iter_args
// CHECK-DAG: memref.load %{{.*}}[%[[I]], %[[J]], %[[K]]]
// CHECK-DAG: memref.load %{{.*}}[%[[K]]] : memref<8xf32>
// CHECK-DAG: arith.index_cast %[[K]]
// CHECK: memref.store
#in = affine_map<(i, j, k) -> (i, j, k)>
#w = affine_map<(i, j, k) -> (k)>
#out = affine_map<(i, j, k) -> (i)>
func.func @generic_two_reductions(%in: memref<2x3x8xf32>, %w: memref<8xf32>, %out: memref<2xf32>) {
  linalg.generic {indexing_maps = [#in, #w, #out], iterator_types = ["parallel", "reduction", "reduction"]}
      ins(%in, %w : memref<2x3x8xf32>, memref<8xf32>) outs(%out : memref<2xf32>) {
  ^bb0(%x: f32, %y: f32, %acc: f32):
    %k = linalg.index 2 : index
    %ki = arith.index_cast %k : index to i32
    %kf = arith.sitofp %ki : i32 to f32
    %p = arith.mulf %x, %y : f32
    %q = arith.mulf %p, %kf : f32
    %s = arith.addf %q, %acc : f32
    linalg.yield %s : f32
  }
  return
}

// -----

// A layer-norm style elementwise op: the row's mean is read once per row, outside
// the loop over the row; the row elements are read inside it.
// CHECK-LABEL: func.func @row_invariant_read
// CHECK-NOT: linalg.generic
// CHECK: scf.for %[[I:.*]] =
// CHECK: %[[MEAN:.*]] = memref.load %{{.*}}[%[[I]]] : memref<4xf32>
// CHECK: scf.for %[[J:.*]] =
// CHECK: %[[X:.*]] = memref.load %{{.*}}[%[[I]], %[[J]]] : memref<4x16xf32>
// CHECK: %[[D:.*]] = arith.subf %[[X]], %[[MEAN]]
// CHECK: memref.store %[[D]], %{{.*}}[%[[I]], %[[J]]]
// With parallel-work=64 (this op has 4 x 16 iterations), the loop over the rows
// becomes a call of kiln_parallel_for with a function that runs a range of rows;
// the three buffers' base pointers are passed in a stack array.
// PAR-LABEL: func.func @row_invariant_read
// PAR: %[[CTX:.*]] = llvm.alloca %{{.*}} x !llvm.array<3 x ptr>
// PAR-COUNT-3: llvm.store
// PAR: %[[FN:.*]] = constant @kiln_parallel_0
// PAR: call @kiln_parallel_for(%{{.*}}, %[[FN]], %[[CTX]])
// PAR: func.func private @kiln_parallel_0(%[[C:.*]]: !llvm.ptr, %[[B:.*]]: i64, %[[E:.*]]: i64)
// PAR-COUNT-3: builtin.unrealized_conversion_cast
// PAR: %[[LO:.*]] = arith.index_cast %[[B]]
// PAR: %[[HI:.*]] = arith.index_cast %[[E]]
// PAR: scf.for %[[I:.*]] = %[[LO]] to %[[HI]]
// PAR: memref.load %{{.*}}[%[[I]]] : memref<4xf32>
// PAR: scf.for
// PAR: arith.subf
func.func @row_invariant_read(%x: memref<4x16xf32>, %mean: memref<4xf32>, %out: memref<4x16xf32>) {
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>, affine_map<(i, j) -> (i, j)>],
                  iterator_types = ["parallel", "parallel"]}
      ins(%x, %mean : memref<4x16xf32>, memref<4xf32>) outs(%out : memref<4x16xf32>) {
  ^bb0(%a: f32, %m: f32, %o: f32):
    %d = arith.subf %a, %m : f32
    linalg.yield %d : f32
  }
  return
}

// -----

// A reduction that is not innermost (pooling over H and W of NHWC) is left to
// convert-linalg-to-loops, and so is a reduction that reads its own output.
// CHECK-LABEL: func.func @left_alone
// CHECK: linalg.reduce
// CHECK: linalg.generic
func.func @left_alone(%in: memref<1x4x4x8xf32>, %out: memref<1x8xf32>, %acc: memref<8x8xf32>) {
  linalg.reduce ins(%in : memref<1x4x4x8xf32>) outs(%out : memref<1x8xf32>) dimensions = [1, 2]
    (%x: f32, %a: f32) {
      %s = arith.addf %x, %a : f32
      linalg.yield %s : f32
    }
  %v = memref.collapse_shape %acc [[0, 1]] : memref<8x8xf32> into memref<64xf32>
  %o = memref.subview %v[0] [8] [1] : memref<64xf32> to memref<8xf32, strided<[1]>>
  linalg.generic {indexing_maps = [affine_map<(i, j) -> (i, j)>, affine_map<(i, j) -> (i)>], iterator_types = ["parallel", "reduction"]}
      ins(%acc : memref<8x8xf32>) outs(%o : memref<8xf32, strided<[1]>>) {
  ^bb0(%x: f32, %a: f32):
    %s = arith.addf %x, %a : f32
    linalg.yield %s : f32
  }
  return
}
