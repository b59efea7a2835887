// RUN: kiln-opt %s -split-input-file -verify-diagnostics

module {
  accel.layer @l attributes {kind = "gemm", macs = 0} {
    // expected-error @+1 {{buf must be w, i, p or a}}
    accel.load {buf = "x", src = 0, len = 16, boff = 0}
  }
}

// -----

module {
  accel.layer @l attributes {kind = "gemm", macs = 0} {
    // expected-error @+1 {{'src' = 4294967296 does not fit a unsigned 32-bit register}}
    accel.load {buf = "w", src = 4294967296, len = 16, boff = 0}
  }
}

// -----

module {
  accel.layer @l attributes {kind = "gemm", macs = 0} {
    // expected-error @+1 {{'zp' = -2147483649 does not fit a signed 32-bit register}}
    accel.requant {poff = 0, zp = -2147483649, lo = 0, hi = 0, raw = false}
  }
}

// -----

module {
  accel.layer @l attributes {kind = "gemm", macs = 0} {
    // expected-error @+1 {{lo must not exceed hi}}
    accel.requant {poff = 0, zp = 0, lo = 9, hi = 3, raw = false}
  }
}

// -----

module {
  accel.layer @l attributes {kind = "gemm", macs = 0} {
    // expected-error @+1 {{ox0 must be below ow}}
    accel.load_win {src = 0, h = 4, w = 4, c = 1, kh = 3, kw = 3, stride = 1, pad_t = 1, pad_l = 1, padval = 0,
                    ow = 4, oy0 = 0, ox0 = 4, npix = 16, aoff = 0}
  }
}

// -----

module {
  accel.layer @l attributes {kind = "pool", macs = 0} {
    // expected-error @+1 {{win must be positive}}
    accel.pool {c = 16, win = 0, ch0 = 0, aoff = 0}
  }
}

// -----

// Instructions live inside a layer.
module {
  // expected-error @+1 {{expects parent op 'accel.layer'}}
  accel.gemm {k = 12, woff = 0, aoff = 0, ioff = 0, nm_n = 0, accumulate = false}
}

// -----

module {
  // expected-error @+1 {{bytes must be a 1-D i8 array}}
  accel.data {addr = 0, bytes = dense<[1, 2]> : tensor<2xi32>}
}

// -----

module {
  // expected-error @+1 {{needs one scale per element of the stored tensor's last dimension}}
  accel.output {name = "output", addr = 0, dims = array<i64: 1, 3>, scales = array<f32: 1.0>, perm = array<i64: 0, 1>}
}

// -----

module {
  // expected-error @+1 {{needs a finite scale > 0 and a zero point in [0, 255]}}
  accel.input {name = "input", addr = 0, dims = array<i64: 1, 4>, scale = 0.0 : f32, zero_point = 0, perm = array<i64: 0, 1>}
}

// -----

module {
  // expected-error @+1 {{perm must be a permutation}}
  accel.input {name = "input", addr = 0, dims = array<i64: 1, 4>, scale = 1.0 : f32, zero_point = 0, perm = array<i64: 1, 1>}
}

// -----

module {
  accel.layer @l attributes {kind = "gemm smartdeal", macs = 0} {
    // expected-error @+1 {{bits must be 1..4}}
    accel.rebuild {k = 144, woff = 0, ioff = 0, len = 200, c = 16, flat = false, bits = 5, group = 4, sdb = 256}
  }
}

// -----

module {
  accel.layer @l attributes {kind = "gemm smartdeal", macs = 0} {
    // expected-error @+1 {{k must be a positive multiple of 3}}
    accel.rebuild {k = 100, woff = 0, ioff = 0, len = 200, c = 16, flat = true, bits = 3, group = 4, sdb = 256}
  }
}
