// RUN: kiln-opt %s -split-input-file -kiln-gpu-outline-dispatches -verify-diagnostics | FileCheck %s

// A conv with bias and a padded input: each compute op becomes a kernel and its launch.
// Roots (views of the arena, inputs and outputs) are the kernel arguments; the
// subview between a root and the op is cloned into the kernel. One invocation per
// output point, the last dimension fastest; the reduction loops carry the
// accumulator; the launch covers ceil(points / 64) workgroups.
// CHECK: module attributes {gpu.container_module, spirv.target_env
// CHECK-LABEL: func.func @forward
// CHECK: gpu.launch_func @kiln_kernels::@d0_fill blocks in (%c2, %c1, %c1{{.*}}) threads in (%c64
// CHECK-SAME: args(%[[PAD:[a-z0-9_]+]] : memref<1x6x6x2xf32>)
// CHECK: gpu.launch_func @kiln_kernels::@d1_copy
// CHECK-SAME: args(%arg1 : memref<1x4x4x2xf32>, %[[PAD]] : memref<1x6x6x2xf32>)
// CHECK: gpu.launch_func @kiln_kernels::@d2_conv_2d_nhwc_fhwc
// CHECK-SAME: args(%[[PAD]] : memref<1x6x6x2xf32>, %{{.*}} : memref<3x3x3x2xf32>, %arg2 : memref<1x4x4x3xf32>)
// CHECK-NOT: linalg.
// CHECK: gpu.module @kiln_kernels
// CHECK: gpu.func @d0_fill(%{{.*}}: memref<1x6x6x2xf32>) kernel attributes {spirv.entry_point_abi = #spirv.entry_point_abi<workgroup_size = [64, 1, 1]>}
// CHECK: gpu.global_id x
// CHECK: arith.cmpi ult, %{{.*}}, %c72
// CHECK: gpu.func @d1_copy(%[[IN:[a-z0-9_]+]]: memref<1x4x4x2xf32>, %[[OUT:[a-z0-9_]+]]: memref<1x6x6x2xf32>)
// CHECK: %[[SUB:[a-z0-9_]+]] = memref.subview %[[OUT]][0, 1, 1, 0] [1, 4, 4, 2] [1, 1, 1, 1]
// CHECK: memref.load %[[IN]]
// CHECK: memref.store %{{.*}}, %[[SUB]]
// CHECK: gpu.func @d2_conv_2d_nhwc_fhwc
// CHECK: %[[ACC:[0-9]+]] = memref.load %arg2
// CHECK: scf.for {{.*}} iter_args(%{{.*}} = %[[ACC]]) -> (f32)
// CHECK: scf.for
// CHECK: scf.for
// CHECK: arith.mulf
// CHECK: arith.addf
// CHECK: memref.store %{{.*}}, %arg2
module {
  func.func @forward(%arena: memref<1024xi8> {kiln.role = "arena"}, %in: memref<1x4x4x2xf32> {kiln.name = "x"},
                     %out: memref<1x4x4x3xf32> {kiln.name = "y"}) {
    %c0 = arith.constant 0 : index
    %c512 = arith.constant 512 : index
    %zero = arith.constant 0.0 : f32
    %pad = memref.view %arena[%c0][] : memref<1024xi8> to memref<1x6x6x2xf32>
    %w = memref.view %arena[%c512][] : memref<1024xi8> to memref<3x3x3x2xf32>
    linalg.fill ins(%zero : f32) outs(%pad : memref<1x6x6x2xf32>)
    %sub = memref.subview %pad[0, 1, 1, 0] [1, 4, 4, 2] [1, 1, 1, 1]
        : memref<1x6x6x2xf32> to memref<1x4x4x2xf32, strided<[72, 12, 2, 1], offset: 14>>
    memref.copy %in, %sub : memref<1x4x4x2xf32> to memref<1x4x4x2xf32, strided<[72, 12, 2, 1], offset: 14>>
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%pad, %w : memref<1x6x6x2xf32>, memref<3x3x3x2xf32>) outs(%out : memref<1x4x4x3xf32>)
    return
  }
}

// -----

// Booleans are bytes in memory: the kernel reads an i8 view and truncates.
// CHECK-LABEL: func.func @forward
// CHECK: %[[V:[a-z0-9_]+]] = memref.view %arg0[%{{.*}}][] : memref<256xi8> to memref<8xi8>
// CHECK: gpu.launch_func @kiln_kernels::@d0_generic {{.*}} args(%[[V]] : memref<8xi8>, %arg1 : memref<8xf32>)
// CHECK: gpu.func @d0_generic(%{{.*}}: memref<8xi8>, %{{.*}}: memref<8xf32>)
// CHECK: arith.trunci %{{.*}} : i8 to i1
// CHECK: arith.select
module {
  func.func @forward(%arena: memref<256xi8> {kiln.role = "arena"}, %out: memref<8xf32> {kiln.name = "y"}) {
    %c0 = arith.constant 0 : index
    %b = memref.view %arena[%c0][] : memref<256xi8> to memref<8xi1>
    %one = arith.constant 1.0 : f32
    %two = arith.constant 2.0 : f32
    linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
        ins(%b : memref<8xi1>) outs(%out : memref<8xf32>) {
    ^bb0(%x: i1, %y: f32):
      %s = arith.select %x, %one, %two : f32
      linalg.yield %s : f32
    }
    return
  }
}

// -----

// What a kernel cannot take is an error naming the op.
module {
  func.func @forward(%out: memref<8xf32> {kiln.name = "y"}) {
    // expected-error @+1 {{'memref.alloc' is not supported by the vulkan target}}
    %a = memref.alloc() : memref<8xf32>
    // expected-error @+1 {{operand produced by 'memref.alloc' cannot be passed to a vulkan kernel}}
    linalg.generic {indexing_maps = [affine_map<(d0) -> (d0)>, affine_map<(d0) -> (d0)>], iterator_types = ["parallel"]}
        ins(%a : memref<8xf32>) outs(%out : memref<8xf32>) {
    ^bb0(%x: f32, %y: f32):
      linalg.yield %x : f32
    }
    return
  }
}

// -----

module {
  // expected-error @+1 {{has control flow; the vulkan target compiles straight-line models only}}
  func.func @forward(%c: i1, %out: memref<8xf32> {kiln.name = "y"}) {
    cf.cond_br %c, ^a, ^b
  ^a:
    return
  ^b:
    return
  }
}
