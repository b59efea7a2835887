// RUN: kiln-opt %s -kiln-gpu-pack-weights | FileCheck %s

// A constant FHWC filter is stored transposed to HWCF at compile time (the output
// channel innermost), and the convolution reads it as conv_2d_nhwc_hwcf; the old global
// goes when nothing else reads it. Filter [2,1,1,3] = f*3 + c becomes [1,1,3,2] = c*2 + f
// in memory order: 0 3 1 4 2 5.
// CHECK-NOT: memref.global "private" constant @w :
// CHECK: memref.global "private" constant @w_hwcf : memref<1x1x3x2xf32> = dense<{{\[\[\[\[}}0.000000e+00, 3.000000e+00], [1.000000e+00, 4.000000e+00], [2.000000e+00, 5.000000e+00]]]]>
// CHECK: memref.global "private" constant @shared : memref<2x1x1x3xf32>
// CHECK-LABEL: func.func @forward
// CHECK: %[[W:.*]] = memref.get_global @w_hwcf : memref<1x1x3x2xf32>
// CHECK: linalg.conv_2d_nhwc_hwcf {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>} ins(%arg0, %[[W]] :
// A filter that is not a constant, or that something else also reads, keeps its global.
// CHECK: linalg.conv_2d_nhwc_fhwc {{.*}} ins(%arg0, %arg2 :
// CHECK: memref.get_global @shared
module {
  memref.global "private" constant @w : memref<2x1x1x3xf32> = dense<[[[[0.0, 1.0, 2.0]]], [[[3.0, 4.0, 5.0]]]]>
  memref.global "private" constant @shared : memref<2x1x1x3xf32> = dense<1.0>
  func.func @forward(%in: memref<1x2x2x3xf32>, %out: memref<1x2x2x2xf32>, %f: memref<2x1x1x3xf32>,
                     %s: memref<2x1x1x3xf32>) {
    %w = memref.get_global @w : memref<2x1x1x3xf32>
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %w : memref<1x2x2x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x2x2x2xf32>)
    linalg.conv_2d_nhwc_fhwc {dilations = dense<1> : tensor<2xi64>, strides = dense<1> : tensor<2xi64>}
        ins(%in, %f : memref<1x2x2x3xf32>, memref<2x1x1x3xf32>) outs(%out : memref<1x2x2x2xf32>)
    %g = memref.get_global @shared : memref<2x1x1x3xf32>
    memref.copy %g, %s : memref<2x1x1x3xf32> to memref<2x1x1x3xf32>
    return
  }
}
