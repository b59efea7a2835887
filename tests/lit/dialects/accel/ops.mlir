// RUN: kiln-opt %s | kiln-opt | FileCheck %s

// A one-layer program: every instruction op round-trips.
// CHECK: accel.input {addr = 0 : i64, dims = array<i64: 1, 1, 4, 4>, name = "input", perm = array<i64: 0, 2, 3, 1>, scale = 5.000000e-01 : f32, zero_point = 3 : i64}
// CHECK: accel.data {addr = 64 : i64, bytes = dense<[1, -1, 2, -2]> : tensor<4xi8>}
// CHECK: accel.layer @conv attributes {kind = "gemm", macs = 144 : i64}
// CHECK: accel.load {boff = 0 : i64, buf = "w", len = 16 : i64, src = 64 : i64}
// CHECK: accel.load_win
// CHECK-SAME: pad_l = 1 : i64, pad_t = 1 : i64
// CHECK: accel.gemm {accumulate = false, aoff = 0 : i64, ioff = 0 : i64, k = 12 : i64, nm_n = 2 : i64, woff = 0 : i64}
// CHECK: accel.requant {hi = 255 : i64, lo = 3 : i64, poff = 0 : i64, raw = false, zp = 3 : i64}
// CHECK: accel.pool {aoff = 0 : i64, c = 16 : i64, ch0 = 0 : i64, win = 4 : i64}
// CHECK: accel.store {dst = 128 : i64, dstride = 16 : i64, npix = 16 : i64, nrows = 16 : i64, raw = true}
// CHECK: accel.rebuild {bits = 3 : i64, c = 16 : i64, flat = false, group = 4 : i64, ioff = 0 : i64, k = 144 : i64, len = 200 : i64, sdb = 256 : i64, woff = 0 : i64}
// CHECK: accel.output {addr = 128 : i64, dims = array<i64: 1, 2>, name = "output", perm = array<i64: 0, 1>, scales = array<f32: 1.000000e+00, 2.000000e+00>}
module {
  accel.input {name = "input", addr = 0, dims = array<i64: 1, 1, 4, 4>, scale = 0.5 : f32, zero_point = 3, perm = array<i64: 0, 2, 3, 1>}
  accel.data {addr = 64, bytes = dense<[1, -1, 2, -2]> : tensor<4xi8>}
  accel.layer @conv attributes {kind = "gemm", macs = 144} {
    accel.load {buf = "w", src = 64, len = 16, boff = 0}
    accel.load_win {src = 0, h = 4, w = 4, c = 1, kh = 3, kw = 3, stride = 1, pad_t = 1, pad_l = 1, padval = 3,
                    ow = 4, oy0 = 0, ox0 = 0, npix = 16, aoff = 0}
    accel.gemm {k = 12, woff = 0, aoff = 0, ioff = 0, nm_n = 2, accumulate = false}
    accel.requant {poff = 0, zp = 3, lo = 3, hi = 255, raw = false}
    accel.pool {c = 16, win = 4, ch0 = 0, aoff = 0}
    accel.store {dst = 128, dstride = 16, npix = 16, nrows = 16, raw = true}
    accel.rebuild {k = 144, woff = 0, ioff = 0, len = 200, c = 16, flat = false, bits = 3, group = 4, sdb = 256}
  }
  accel.output {name = "output", addr = 128, dims = array<i64: 1, 2>, scales = array<f32: 1.0, 2.0>, perm = array<i64: 0, 1>}
}
