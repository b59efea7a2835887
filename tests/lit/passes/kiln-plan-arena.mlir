// RUN: kiln-opt %s -split-input-file -kiln-plan-arena -verify-diagnostics | FileCheck %s
// RUN: kiln-opt %s -split-input-file -kiln-plan-arena="reuse=false" -verify-diagnostics | FileCheck %s --check-prefix=NOREUSE

// Three buffers in a chain: %a dies when %c is made, so %c reuses %a's space.
// CHECK: module attributes {kiln.arena_alignment = 64 : i64, kiln.arena_size = 512 : i64}
// CHECK: func.func @forward(%[[ARENA:.*]]: memref<512xi8> {kiln.role = "arena"}, %[[IN:.*]]: memref<64xf32>, %[[OUT:.*]]: memref<64xf32>)
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: memref.view %[[ARENA]][%[[C0]]][] : memref<512xi8> to memref<64xf32>
// CHECK: %[[C256:.*]] = arith.constant 256 : index
// CHECK: memref.view %[[ARENA]][%[[C256]]][] : memref<512xi8> to memref<64xf32>
// CHECK: %[[C0B:.*]] = arith.constant 0 : index
// CHECK: memref.view %[[ARENA]][%[[C0B]]][] : memref<512xi8> to memref<64xf32>
// CHECK-NOT: memref.alloc
// NOREUSE: kiln.arena_size = 768 : i64
module {
  func.func @forward(%in: memref<64xf32>, %out: memref<64xf32>) {
    %a = memref.alloc() : memref<64xf32>
    memref.copy %in, %a : memref<64xf32> to memref<64xf32>
    %b = memref.alloc() : memref<64xf32>
    memref.copy %a, %b : memref<64xf32> to memref<64xf32>
    %c = memref.alloc() : memref<64xf32>
    memref.copy %b, %c : memref<64xf32> to memref<64xf32>
    memref.copy %c, %out : memref<64xf32> to memref<64xf32>
    return
  }
}

// -----

// A view of a buffer keeps it alive: %a is read through %v after %b is made.
// CHECK: module attributes {kiln.arena_alignment = 64 : i64, kiln.arena_size = 512 : i64}
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: memref.view %{{.*}}[%[[C0]]][] : memref<512xi8> to memref<64xf32>
// CHECK: %[[C256:.*]] = arith.constant 256 : index
// CHECK: memref.view %{{.*}}[%[[C256]]][] : memref<512xi8> to memref<64xf32>
module {
  func.func @forward(%in: memref<64xf32>, %out: memref<8x8xf32>) {
    %a = memref.alloc() : memref<64xf32>
    memref.copy %in, %a : memref<64xf32> to memref<64xf32>
    %v = memref.expand_shape %a [[0, 1]] output_shape [8, 8] : memref<64xf32> into memref<8x8xf32>
    %b = memref.alloc() : memref<64xf32>
    memref.copy %in, %b : memref<64xf32> to memref<64xf32>
    memref.copy %v, %out : memref<8x8xf32> to memref<8x8xf32>
    return
  }
}

// -----

// The arena argument follows the weights argument; dynamic allocations are left alone.
// CHECK: module attributes {kiln.arena_alignment = 64 : i64, kiln.arena_size = 64 : i64}
// CHECK: func.func @forward(%{{.*}}: memref<64xi8> {kiln.role = "weights"}, %{{.*}}: memref<64xi8> {kiln.role = "arena"}, %[[N:.*]]: index)
// CHECK: memref.alloc(%[[N]]) : memref<?xf32>
module {
  func.func @forward(%w: memref<64xi8> {kiln.role = "weights"}, %n: index) {
    %a = memref.alloc() : memref<3xf32>
    %d = memref.alloc(%n) : memref<?xf32>
    return
  }
}
