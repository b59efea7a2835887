// RUN: kiln-opt %s -kiln-split-fills | FileCheck %s

// One zero fill used as the initial value of two matmuls becomes two fills, each
// next to its matmul, so that bufferization fills each output in place instead of
// copying one filled buffer into both.
// CHECK-LABEL: func.func @two_matmuls
// CHECK: %[[E:.*]] = tensor.empty
// CHECK: %[[F1:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E]]
// CHECK: %[[F2:.*]] = linalg.fill ins(%{{.*}} : f32) outs(%[[E]]
// CHECK-DAG: linalg.matmul {{.*}} outs(%[[F1]]
// CHECK-DAG: linalg.matmul {{.*}} outs(%[[F2]]
func.func @two_matmuls(%a: tensor<4x8xf32>, %b: tensor<8x4xf32>, %c: tensor<8x4xf32>) -> (tensor<4x4xf32>, tensor<4x4xf32>) {
  %zero = arith.constant 0.0 : f32
  %e = tensor.empty() : tensor<4x4xf32>
  %f = linalg.fill ins(%zero : f32) outs(%e : tensor<4x4xf32>) -> tensor<4x4xf32>
  %m1 = linalg.matmul ins(%a, %b : tensor<4x8xf32>, tensor<8x4xf32>) outs(%f : tensor<4x4xf32>) -> tensor<4x4xf32>
  %m2 = linalg.matmul ins(%a, %c : tensor<4x8xf32>, tensor<8x4xf32>) outs(%f : tensor<4x4xf32>) -> tensor<4x4xf32>
  return %m1, %m2 : tensor<4x4xf32>, tensor<4x4xf32>
}
