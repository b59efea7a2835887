// RUN: kiln-opt %s -kiln-approximate-math | FileCheck %s

// erf and exp become arithmetic (vectorisable) instead of libm calls; other math
// functions are left alone.
// CHECK-LABEL: func.func @gelu_softmax
// CHECK-NOT: math.erf
// CHECK-NOT: math.exp
// CHECK: math.tanh
// CHECK-NOT: math.erf
// CHECK-NOT: math.exp
func.func @gelu_softmax(%x: f32) -> (f32, f32, f32) {
  %e = math.erf %x : f32
  %x2 = math.exp %x : f32
  %t = math.tanh %x : f32
  return %e, %x2, %t : f32, f32, f32
}
