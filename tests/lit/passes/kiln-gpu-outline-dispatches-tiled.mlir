// RUN: kiln-opt %s -kiln-gpu-outline-dispatches="tile=true" | FileCheck %s

// With tile=true a matmul runs as 16x16 output tiles: workgroups (ceil(N/16),
// ceil(M/16), batch) of 16x16 invocations; per 16-deep step of k every invocation
// stages one element of A and of B in workgroup memory (zero past the end of k),
// a barrier, 16 multiply-adds out of workgroup memory, a barrier. The bias (the
// folded init) and the ReLU (the epilogue) stay in registers; only invocations inside
// the 20x40 output store. A 1x1 convolution is rewritten as the same contraction; a
// 3x3 one runs as an implicit GEMM (rows n*h*w, columns f, depth kh*kw*c = 54, the
// depth index split back into kh, kw, c for the image and the filter loads).
// CHECK-LABEL: func.func @forward
// CHECK: gpu.launch_func @kiln_kernels::@d0_matmul blocks in (%c3, %c2, %c1) threads in (%c16, %c16{{.*}}, %c1{{.*}})
// CHECK: gpu.launch_func @kiln_kernels::@d1_generic blocks in (%c1{{.*}}, %c2{{.*}}, %c1{{.*}}) threads in (%c16
// CHECK: gpu.launch_func @kiln_kernels::@d2_conv_2d_nhwc_fhwc blocks in (%c1{{.*}}, %c2{{.*}}, %c1{{.*}}) threads in (%c16
// CHECK: gpu.func @d0_matmul
// CHECK-SAME: workgroup_size = [16, 16, 1]
// CHECK-DAG: memref.alloc() : memref<16x16xf32, #spirv.storage_class<Workgroup>>
// CHECK-DAG: gpu.thread_id x
// CHECK-DAG: gpu.block_id y
// CHECK: memref.load %arg2
// CHECK: scf.for
// CHECK: arith.select
// CHECK: memref.store {{.*}} : memref<16x16xf32, #spirv.storage_class<Workgroup>>
// CHECK: gpu.barrier
// CHECK: scf.for
// CHECK: memref.load {{.*}} : memref<16x16xf32, #spirv.storage_class<Workgroup>>
// CHECK: arith.mulf
// CHECK: gpu.barrier
// CHECK: scf.if
// CHECK: arith.maximumf
// CHECK: memref.store {{.*}} %arg3
// CHECK: gpu.func @d1_generic
// CHECK: gpu.barrier
// CHECK: gpu.func @d2_conv_2d_nhwc_fhwc
// CHECK: arith.remui %{{.*}}, %c6
// CHECK: gpu.barrier
#bias = affine_map<(d0, d1) -> (d1)>
#id = affine_map<(d0, d1) -> (d0, d1)>
module {
  func.func @forward(%x: memref<20x24xf32> {kiln.name = "x"}, %w: memref<24x40xf32> {kiln.name = "w"},
                     %b: memref<40xf32> {kiln.name = "b"}, %y: memref<20x40xf32> {kiln.name = "y"},
                     %img: memref<1x4x5x24xf32> {kiln.name = "img"}, %f: memref<8x1x1x24xf32> {kiln.name = "f"},
                     %o: memref<1x4x5x8xf32> {kiln.name = "o"}, %pimg: memref<1x6x7x6xf32> {kiln.name = "p"},
                     %f3: memref<12x3x3x6xf32> {kiln.name = "f3"}, %o3: memref<1x4x5x12xf32> {kiln.name = "o3"}) {
    %zero = arith.constant 0.0 : f32
    linalg.generic {indexing_maps = [#bias, #id], iterator_types = ["parallel", "parallel"]}
        ins(%b : memref<40xf32>) outs(%y : memref<20x40xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    }
    linalg.matmul ins(%x, %w : memref<20x24xf32>, memref<24x40xf32>) outs(%y : memref<20x40xf32>)
    linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
        ins(%y : memref<20x40xf32>) outs(%y : memref<20x40xf32>) {
    ^bb0(%in: f32, %out: f32):
      %r = arith.maximumf %in, %zero : f32
      linalg.yield %r : f32
    }
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%img, %f : memref<1x4x5x24xf32>, memref<8x1x1x24xf32>) outs(%o : memref<1x4x5x8xf32>)
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%pimg, %f3 : memref<1x6x7x6xf32>, memref<12x3x3x6xf32>) outs(%o3 : memref<1x4x5x12xf32>)
    return
  }
}
