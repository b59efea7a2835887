// RUN: kiln-opt %s -split-input-file -kiln-lower-to-kernels | FileCheck %s
// RUN: kiln-opt %s -split-input-file -kiln-lower-to-kernels | FileCheck %s --check-prefix=GONE
// GONE-NOT: @filter

// A convolution with a constant filter, preceded by the bias broadcast and followed
// by a ReLU6 clamp on its output, becomes one call of the fused kernel: the filter is
// packed into a new constant, the two generics disappear, the original filter too.
// CHECK-LABEL: module
// CHECK-DAG: func.func private @kiln_conv2d_nhwc_f32_packed_fused(!llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, !llvm.ptr, i32, f32, f32)
// CHECK-DAG: memref.global "private" constant @kiln_packed_0 : memref<96xf32>
// CHECK-DAG: memref.global "private" constant @kiln_geometry_0 : memref<18xi64> = dense<[1, 3, 2, 1, 1, 4, 4, 1, 1, 1, 1, 48, 12, 3, 0, 0, 0, 0]>
// CHECK-LABEL: func.func @forward
// CHECK-NOT: linalg.generic
// CHECK-NOT: linalg.conv_2d_nhwc_fhwc
// CHECK: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK: %[[LO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK: %[[HI:.*]] = arith.constant 6.000000e+00 : f32
// CHECK: call @kiln_conv2d_nhwc_f32_packed_fused({{.*}}, %[[ONE]], %[[LO]], %[[HI]])
// CHECK-NOT: linalg.generic
#bias = affine_map<(d0, d1, d2, d3) -> (d3)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
module {
  memref.global "private" constant @filter : memref<2x1x1x3xf32> = dense<[[[[1.0, 2.0, 3.0]]], [[[4.0, 5.0, 6.0]]]]>
  memref.global "private" constant @bias : memref<2xf32> = dense<[0.5, -0.5]>
  func.func @forward(%in: memref<1x4x4x3xf32>, %out: memref<1x4x4x2xf32>) {
    %lo = arith.constant 0.0 : f32
    %hi = arith.constant 6.0 : f32
    %f = memref.get_global @filter : memref<2x1x1x3xf32>
    %b = memref.get_global @bias : memref<2xf32>
    linalg.generic {indexing_maps = [#bias, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%b : memref<2xf32>) outs(%out : memref<1x4x4x2xf32>) {
    ^bb0(%x: f32, %y: f32):
      linalg.yield %x : f32
    }
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x4x4x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x4x4x2xf32>)
    linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%out : memref<1x4x4x2xf32>) outs(%out : memref<1x4x4x2xf32>) {
    ^bb0(%x: f32, %y: f32):
      %0 = arith.minimumf %x, %hi : f32
      %1 = arith.maximumf %0, %lo : f32
      linalg.yield %1 : f32
    }
    return
  }
}

// -----

// A filter that is not a constant (here a function argument) is left to the loops.
// CHECK-LABEL: func.func @forward
// CHECK: linalg.conv_2d_nhwc_fhwc
// CHECK-NOT: call @kiln_conv2d
module {
  func.func @forward(%in: memref<1x4x4x3xf32>, %f: memref<2x1x1x3xf32>, %out: memref<1x4x4x2xf32>) {
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x4x4x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x4x4x2xf32>)
    return
  }
}

// -----

// A matmul of two activations calls the unpacked kernel with batch, M, N, K.
// CHECK-LABEL: func.func @forward
// CHECK-DAG: %[[B:.*]] = arith.constant 4 : i64
// CHECK-DAG: %[[M:.*]] = arith.constant 8 : i64
// CHECK-DAG: %[[N:.*]] = arith.constant 16 : i64
// CHECK-DAG: %[[K:.*]] = arith.constant 32 : i64
// CHECK: call @kiln_batch_matmul_f32({{.*}}, %[[B]], %[[M]], %[[N]], %[[K]])
// CHECK-NOT: linalg.batch_matmul
module {
  func.func @forward(%a: memref<4x8x32xf32>, %b: memref<4x32x16xf32>, %c: memref<4x8x16xf32>) {
    linalg.batch_matmul ins(%a, %b : memref<4x8x32xf32>, memref<4x32x16xf32>) outs(%c : memref<4x8x16xf32>)
    return
  }
}

// -----

// A depthwise convolution whose input is only a zero-padded copy (alloc, zero fill,
// copy into the interior) reads the unpadded source with implicit padding: the
// geometry's last four fields are pad_h, pad_w, in_h, in_w; the padded buffer, its
// fill and the copy are gone.
// CHECK-LABEL: module
// CHECK-DAG: memref.global "private" constant @kiln_geometry_0 : memref<18xi64> = dense<[1, 8, 8, 3, 3, 4, 4, 1, 1, 1, 1, 128, 32, 8, 1, 1, 4, 4]>
// CHECK-LABEL: func.func @forward
// CHECK-NOT: memref.copy
// CHECK-NOT: linalg.map
// CHECK: memref.extract_aligned_pointer_as_index %arg0
// CHECK: call @kiln_dwconv2d_nhwc_f32
// CHECK-NOT: memref.alloc
module {
  memref.global "private" constant @dw : memref<3x3x8x1xf32> = dense<0.5>
  func.func @forward(%src: memref<1x4x4x8xf32>, %out: memref<1x4x4x8x1xf32>) {
    %zero = arith.constant 0.0 : f32
    %pad = memref.alloc() {alignment = 64 : i64} : memref<1x6x6x8xf32>
    linalg.map outs(%pad : memref<1x6x6x8xf32>)
      (%init: f32) {
        linalg.yield %zero : f32
      }
    %sv = memref.subview %pad[0, 1, 1, 0] [1, 4, 4, 8] [1, 1, 1, 1] : memref<1x6x6x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    memref.copy %src, %sv : memref<1x4x4x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    %f = memref.get_global @dw : memref<3x3x8x1xf32>
    linalg.depthwise_conv_2d_nhwc_hwcm {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%pad, %f : memref<1x6x6x8xf32>, memref<3x3x8x1xf32>) outs(%out : memref<1x4x4x8x1xf32>)
    return
  }
}

// -----

// Padding with a value other than +0.0 (here -inf, as for max pooling) stays a copy.
// CHECK-LABEL: func.func @forward
// CHECK: linalg.map
// CHECK: memref.copy
// CHECK: call @kiln_dwconv2d_nhwc_f32
module {
  memref.global "private" constant @dw : memref<3x3x8x1xf32> = dense<0.5>
  func.func @forward(%src: memref<1x4x4x8xf32>, %out: memref<1x4x4x8x1xf32>) {
    %ninf = arith.constant 0xFF800000 : f32
    %pad = memref.alloc() {alignment = 64 : i64} : memref<1x6x6x8xf32>
    linalg.map outs(%pad : memref<1x6x6x8xf32>)
      (%init: f32) {
        linalg.yield %ninf : f32
      }
    %sv = memref.subview %pad[0, 1, 1, 0] [1, 4, 4, 8] [1, 1, 1, 1] : memref<1x6x6x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    memref.copy %src, %sv : memref<1x4x4x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    %f = memref.get_global @dw : memref<3x3x8x1xf32>
    linalg.depthwise_conv_2d_nhwc_hwcm {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%pad, %f : memref<1x6x6x8xf32>, memref<3x3x8x1xf32>) outs(%out : memref<1x4x4x8x1xf32>)
    return
  }
}

// -----

// The source written between the copy and the convolution: the padded copy must stay.
// CHECK-LABEL: func.func @forward
// CHECK: memref.copy
// CHECK: linalg.fill
// CHECK: call @kiln_dwconv2d_nhwc_f32
module {
  memref.global "private" constant @dw : memref<3x3x8x1xf32> = dense<0.5>
  func.func @forward(%src: memref<1x4x4x8xf32>, %out: memref<1x4x4x8x1xf32>) {
    %zero = arith.constant 0.0 : f32
    %one = arith.constant 1.0 : f32
    %pad = memref.alloc() {alignment = 64 : i64} : memref<1x6x6x8xf32>
    linalg.fill ins(%zero : f32) outs(%pad : memref<1x6x6x8xf32>)
    %sv = memref.subview %pad[0, 1, 1, 0] [1, 4, 4, 8] [1, 1, 1, 1] : memref<1x6x6x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    memref.copy %src, %sv : memref<1x4x4x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    linalg.fill ins(%one : f32) outs(%src : memref<1x4x4x8xf32>)
    %f = memref.get_global @dw : memref<3x3x8x1xf32>
    linalg.depthwise_conv_2d_nhwc_hwcm {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%pad, %f : memref<1x6x6x8xf32>, memref<3x3x8x1xf32>) outs(%out : memref<1x4x4x8x1xf32>)
    return
  }
}

// -----

// A depthwise convolution's epilogue as TOSA lowers it (zero-filled 5-D output,
// collapsed, then y = clamp(bias + x) into another buffer, here allocated later): one
// call of the fused kernel writing y, with the bias and the ReLU6 bounds; the fill, the
// 5-D buffer, the collapse and the generic are gone, y's allocation moved up.
// CHECK-LABEL: func.func @forward
// CHECK-NOT: linalg.fill
// CHECK: %[[Y:.*]] = memref.alloc() {{.*}} : memref<1x4x4x8xf32>
// CHECK: memref.extract_aligned_pointer_as_index %[[Y]]
// CHECK-DAG: %[[ONE:.*]] = arith.constant 1 : i32
// CHECK-DAG: %[[LO:.*]] = arith.constant 0.000000e+00 : f32
// CHECK-DAG: %[[HI:.*]] = arith.constant 6.000000e+00 : f32
// CHECK: call @kiln_dwconv2d_nhwc_f32_fused({{.*}}, %[[ONE]], %[[LO]], %[[HI]])
// CHECK-NOT: linalg.generic
// CHECK-NOT: memref.collapse_shape
// CHECK: return %[[Y]]
#bias = affine_map<(d0, d1, d2, d3) -> (d3)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
module {
  memref.global "private" constant @dw : memref<3x3x8x1xf32> = dense<0.5>
  memref.global "private" constant @b : memref<8xf32> = dense<0.25>
  func.func @forward(%in: memref<1x6x6x8xf32>) -> memref<1x4x4x8xf32> {
    %zero = arith.constant 0.0 : f32
    %six = arith.constant 6.0 : f32
    %out = memref.alloc() {alignment = 64 : i64} : memref<1x4x4x8x1xf32>
    linalg.fill ins(%zero : f32) outs(%out : memref<1x4x4x8x1xf32>)
    %f = memref.get_global @dw : memref<3x3x8x1xf32>
    linalg.depthwise_conv_2d_nhwc_hwcm {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x6x6x8xf32>, memref<3x3x8x1xf32>) outs(%out : memref<1x4x4x8x1xf32>)
    %c = memref.collapse_shape %out [[0], [1], [2], [3, 4]] : memref<1x4x4x8x1xf32> into memref<1x4x4x8xf32>
    %bias = memref.get_global @b : memref<8xf32>
    %y = memref.alloc() {alignment = 64 : i64} : memref<1x4x4x8xf32>
    linalg.generic {indexing_maps = [#bias, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%bias, %c : memref<8xf32>, memref<1x4x4x8xf32>) outs(%y : memref<1x4x4x8xf32>) {
    ^bb0(%x: f32, %v: f32, %o: f32):
      %0 = arith.addf %x, %v : f32
      %1 = arith.minimumf %0, %six : f32
      %2 = arith.maximumf %1, %zero : f32
      linalg.yield %2 : f32
    }
    return %y : memref<1x4x4x8xf32>
  }
}

// -----

// The epilogue's result is the buffer the padded copy was made from (bufferization
// reuses it): the kernel must not read the image it writes, so the padded copy stays.
// CHECK-LABEL: func.func @forward
// CHECK: linalg.map
// CHECK: memref.copy
// CHECK: call @kiln_dwconv2d_nhwc_f32_fused
#bias = affine_map<(d0, d1, d2, d3) -> (d3)>
#id = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2, d3)>
module {
  memref.global "private" constant @dw : memref<3x3x8x1xf32> = dense<0.5>
  memref.global "private" constant @b : memref<8xf32> = dense<0.25>
  func.func @forward(%src: memref<1x4x4x8xf32>) {
    %zero = arith.constant 0.0 : f32
    %pad = memref.alloc() {alignment = 64 : i64} : memref<1x6x6x8xf32>
    linalg.map outs(%pad : memref<1x6x6x8xf32>)
      (%init: f32) {
        linalg.yield %zero : f32
      }
    %sv = memref.subview %pad[0, 1, 1, 0] [1, 4, 4, 8] [1, 1, 1, 1] : memref<1x6x6x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    memref.copy %src, %sv : memref<1x4x4x8xf32> to memref<1x4x4x8xf32, strided<[288, 48, 8, 1], offset: 56>>
    %out = memref.alloc() {alignment = 64 : i64} : memref<1x4x4x8x1xf32>
    linalg.fill ins(%zero : f32) outs(%out : memref<1x4x4x8x1xf32>)
    %f = memref.get_global @dw : memref<3x3x8x1xf32>
    linalg.depthwise_conv_2d_nhwc_hwcm {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%pad, %f : memref<1x6x6x8xf32>, memref<3x3x8x1xf32>) outs(%out : memref<1x4x4x8x1xf32>)
    %c = memref.collapse_shape %out [[0], [1], [2], [3, 4]] : memref<1x4x4x8x1xf32> into memref<1x4x4x8xf32>
    %bias = memref.get_global @b : memref<8xf32>
    linalg.generic {indexing_maps = [#bias, #id, #id], iterator_types = ["parallel", "parallel", "parallel", "parallel"]}
        ins(%bias, %c : memref<8xf32>, memref<1x4x4x8xf32>) outs(%src : memref<1x4x4x8xf32>) {
    ^bb0(%x: f32, %v: f32, %o: f32):
      %0 = arith.addf %x, %v : f32
      linalg.yield %0 : f32
    }
    return
  }
}
