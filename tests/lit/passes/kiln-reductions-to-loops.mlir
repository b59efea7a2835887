// RUN: kiln-opt %s -split-input-file -kiln-reductions-to-loops | FileCheck %s

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

// Reductions that are not innermost (pooling over H and W of NHWC) and purely
// parallel ops are left to convert-linalg-to-loops.
// CHECK-LABEL: func.func @not_trailing
// CHECK: linalg.reduce
// CHECK: linalg.generic
func.func @not_trailing(%in: memref<1x4x4x8xf32>, %out: memref<1x8xf32>, %o2: memref<1x8xf32>) {
  linalg.reduce ins(%in : memref<1x4x4x8xf32>) outs(%out : memref<1x8xf32>) dimensions = [1, 2]
    (%x: f32, %acc: f32) {
      %s = arith.addf %x, %acc : f32
      linalg.yield %s : f32
    }
  linalg.generic {indexing_maps = [affine_map<(a, b) -> (a, b)>, affine_map<(a, b) -> (a, b)>], iterator_types = ["parallel", "parallel"]}
      ins(%out : memref<1x8xf32>) outs(%o2 : memref<1x8xf32>) {
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  }
  return
}
