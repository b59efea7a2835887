// RUN: kiln-opt %s -split-input-file -kiln-outline-weights -verify-diagnostics | FileCheck %s

// A large constant is read through a view of the new weights argument and its
// global disappears; a small one stays in the object.
// CHECK: module attributes {kiln.weights = dense_resource<kiln_weights> : tensor<64xi8>, kiln.weights_size = 64 : i64}
// CHECK-NOT: memref.global "private" constant @big
// CHECK: memref.global "private" constant @small
// CHECK: func.func @forward(%[[W:.*]]: memref<64xi8> {kiln.role = "weights"}, %[[IN:.*]]: memref<4x4xf32>, %[[OUT:.*]]: memref<4x4xf32>)
// CHECK: %[[OFF:.*]] = arith.constant 0 : index
// CHECK: memref.view %[[W]][%[[OFF]]][] : memref<64xi8> to memref<4x4xf32>
// CHECK: memref.get_global @small
module {
  memref.global "private" constant @big : memref<4x4xf32> = dense<[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [9.0, 10.0, 11.0, 12.0], [13.0, 14.0, 15.0, 16.0]]>
  memref.global "private" constant @small : memref<2xf32> = dense<[1.0, 2.0]>
  func.func @forward(%in: memref<4x4xf32>, %out: memref<4x4xf32>) {
    %b = memref.get_global @big : memref<4x4xf32>
    %s = memref.get_global @small : memref<2xf32>
    memref.copy %b, %out : memref<4x4xf32> to memref<4x4xf32>
    return
  }
}

// -----

// Each weight starts on a 64-byte boundary and one global read twice is stored once.
// CHECK: module attributes {kiln.weights = dense_resource<kiln_weights> : tensor<192xi8>, kiln.weights_size = 192 : i64}
// CHECK: func.func @forward(%[[W:.*]]: memref<192xi8> {kiln.role = "weights"}
// CHECK: %[[C0:.*]] = arith.constant 0 : index
// CHECK: memref.view %[[W]][%[[C0]]][] : memref<192xi8> to memref<20xf32>
// CHECK: %[[C128:.*]] = arith.constant 128 : index
// CHECK: memref.view %[[W]][%[[C128]]][] : memref<192xi8> to memref<16xf32>
// CHECK: %[[C0B:.*]] = arith.constant 0 : index
// CHECK: memref.view %[[W]][%[[C0B]]][] : memref<192xi8> to memref<20xf32>
module {
  memref.global "private" constant @a : memref<20xf32> = dense<1.5>
  memref.global "private" constant @b : memref<16xf32> = dense<[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0]>
  func.func @forward(%out: memref<20xf32>) {
    %x = memref.get_global @a : memref<20xf32>
    %y = memref.get_global @b : memref<16xf32>
    %z = memref.get_global @a : memref<20xf32>
    return
  }
}

// -----

// A module without large constants gets no weights argument.
// CHECK: module attributes {kiln.weights_size = 0 : i64}
// CHECK: func.func @forward(%{{.*}}: memref<2xf32>)
module {
  func.func @forward(%out: memref<2xf32>) {
    return
  }
}

// -----

// expected-error @+1 {{no entry function 'forward'}}
module {
  func.func @other() {
    return
  }
}
