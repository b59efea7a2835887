// RUN: kiln-opt %s -split-input-file -kiln-gpu-outline-dispatches -verify-diagnostics | FileCheck %s

// A conv with bias and a padded input: each compute op becomes a kernel and its launch.
// Roots (views of the arena, inputs and outputs) are the kernel arguments; the
// subview between a root and the op is cloned into the kernel. One invocation per
// output point, the last dimension fastest; the reduction loops carry the
// accumulators; an invocation of the conv computes 4 neighbouring rows (register
// blocking along its longest parallel dimension but the fastest), so 48 points take
// 12 invocations.
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
// CHECK: arith.cmpi ult, %{{.*}}, %c12
// CHECK-COUNT-4: memref.load %arg2
// CHECK: scf.for {{.*}} -> (f32, f32, f32, f32)
// CHECK: scf.for
// CHECK: scf.for
// CHECK-COUNT-4: arith.mulf
// CHECK-COUNT-4: memref.store %{{.*}}, %arg2
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

// -----

// Fusion: the bias broadcast becomes the accumulator's initial value, the clamp (ReLU)
// runs on the result in a register, one store; one kernel, one launch.
// CHECK-LABEL: func.func @forward(%arg0: memref<4x8xf32>
// CHECK: gpu.launch_func @kiln_kernels::@d0_matmul
// CHECK-SAME: args(%arg0 : memref<4x8xf32>, %arg1 : memref<8x16xf32>, %arg2 : memref<16xf32>, %arg3 : memref<4x16xf32>)
// CHECK-NOT: gpu.launch_func
// CHECK: gpu.func @d0_matmul
// CHECK: %[[BIAS:[0-9]+]] = memref.load %arg2
// CHECK: %[[SUM:[0-9]+]]:4 = scf.for {{.*}} iter_args(%{{.*}} = %[[BIAS]],
// CHECK: %[[R:[0-9]+]] = arith.maximumf %[[SUM]]#0
// CHECK: memref.store %[[R]], %arg3
// CHECK-COUNT-3: memref.store
// CHECK-NOT: memref.store
// CHECK: gpu.return
#bias = affine_map<(d0, d1) -> (d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
module {
  func.func @forward(%x: memref<4x8xf32> {kiln.name = "x"}, %w: memref<8x16xf32> {kiln.name = "w"},
                     %b: memref<16xf32> {kiln.name = "b"}, %y: memref<4x16xf32> {kiln.name = "y"}) {
    %zero = arith.constant 0.0 : f32
    linalg.generic {indexing_maps = [#bias, #id], iterator_types = ["parallel", "parallel"]}
        ins(%b : memref<16xf32>) outs(%y : memref<4x16xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    }
    linalg.matmul ins(%x, %w : memref<4x8xf32>, memref<8x16xf32>) outs(%y : memref<4x16xf32>)
    linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
        ins(%y : memref<4x16xf32>) outs(%y : memref<4x16xf32>) {
    ^bb0(%in: f32, %out: f32):
      %r = arith.maximumf %in, %zero : f32
      linalg.yield %r : f32
    }
    return
  }
}

// -----

// Fusion only where it keeps what each op reads: the fill cannot initialise the add's
// accumulator (the add reads that buffer as an input), but the add runs on the fill's
// value as an epilogue; the last op reads another row of the buffer it writes, so it
// stays a kernel of its own.
// CHECK-LABEL: func.func @forward(%arg0: memref<4x16xf32>
// CHECK: gpu.launch_func @kiln_kernels::@d0_fill {{.*}} args(%arg0 : memref<4x16xf32>, %arg1 : memref<4x16xf32>)
// CHECK: gpu.launch_func @kiln_kernels::@d1_generic
// CHECK-NOT: gpu.launch_func
#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0, 0)>
module {
  func.func @forward(%x: memref<4x16xf32> {kiln.name = "x"}, %y: memref<4x16xf32> {kiln.name = "y"},
                     %z: memref<4x16xf32> {kiln.name = "z"}) {
    %one = arith.constant 1.0 : f32
    linalg.fill ins(%one : f32) outs(%y : memref<4x16xf32>)
    linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
        ins(%x, %y : memref<4x16xf32>, memref<4x16xf32>) outs(%y : memref<4x16xf32>) {
    ^bb0(%a: f32, %c: f32, %out: f32):
      %s = arith.addf %a, %c : f32
      linalg.yield %s : f32
    }
    linalg.generic {indexing_maps = [#id, #row, #id], iterator_types = ["parallel", "parallel"]}
        ins(%y, %z : memref<4x16xf32>, memref<4x16xf32>) outs(%z : memref<4x16xf32>) {
    ^bb0(%a: f32, %c: f32, %out: f32):
      %s = arith.addf %a, %c : f32
      linalg.yield %s : f32
    }
    return
  }
}
