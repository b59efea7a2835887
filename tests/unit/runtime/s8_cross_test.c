/* The int8 kernel against its reference, bit for bit, in plain C: built for aarch64
 * with the dot-product extension (the SDOT path) and run under qemu by ctest, where
 * gtest is not available. Exits non-zero on the first mismatch. */
#include "kiln/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint32_t state = 12345;
static float uniform(float lo, float hi) {
  state = state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (float)(state >> 8) / (float)(1u << 24);
}

static int check(int64_t n, int64_t h, int64_t w, int64_t c, int64_t m, int64_t k, int64_t s, int64_t pad,
                 int32_t flags) {
  int64_t hp = h + 2 * pad, wp = w + 2 * pad;
  int64_t oh = (hp - k) / s + 1, ow = (wp - k) / s + 1, kk = k * k * c, c4 = (c + 3) / 4 * 4;
  int int4 = (flags & KILN_S8_INT4) != 0;
  int64_t s8bytes = (m + KILN_PANEL_S8 - 1) / KILN_PANEL_S8 * KILN_PANEL_S8 * k * k * c4;
  float *in = malloc(sizeof(float) * (size_t)(n * h * w * c));
  int8_t *q = malloc((size_t)(m * kk));
  int8_t *packed = malloc((size_t)s8bytes);
  float *requant = malloc(sizeof(float) * (size_t)(2 * m));
  float *got = malloc(sizeof(float) * (size_t)(n * oh * ow * m)), *want = malloc(sizeof(float) * (size_t)(n * oh * ow * m));
  for (int64_t i = 0; i < n * h * w * c; ++i) in[i] = uniform(-0.7f, 2.3f);
  for (int64_t i = 0; i < m * kk; ++i) q[i] = (int8_t)(int4 ? (int)uniform(-8.f, 7.99f) : (int)uniform(-127.f, 127.99f));
  for (int64_t i = 0; i < m; ++i) {
    requant[i] = uniform(1e-4f, 1e-3f);
    requant[m + i] = uniform(-0.5f, 0.5f);
  }
  for (int64_t i = 0; i < n * oh * ow * m; ++i) got[i] = want[i] = uniform(-1.f, 1.f);
  if (int4)
    kiln_pack_panels_s4(q, (uint8_t *)packed, m, k * k, c);
  else
    kiln_pack_panels_s8(q, packed, m, k * k, c);
  kiln_conv_geometry_t g = {n, c, m, k, k, oh, ow, s, s, 1, 1, h * w * c, w * c, c, pad, pad, h, w};
  if (pad == 0) g.in_h = g.in_w = 0;
  uint8_t *scratch = malloc((size_t)kiln_conv2d_u8s8_scratch_bytes(&g));
  kiln_conv2d_nhwc_u8s8_packed(in, scratch, packed, requant, got, &g, 85.f, 60, flags, -0.25f, 0.75f);
  kiln_ref_conv2d_nhwc_u8s8_packed(in, scratch, packed, requant, want, &g, 85.f, 60, flags, -0.25f, 0.75f);
  int bad = memcmp(got, want, sizeof(float) * (size_t)(n * oh * ow * m)) != 0;
  if (bad)
    fprintf(stderr, "mismatch: n=%lld h=%lld w=%lld c=%lld m=%lld k=%lld s=%lld pad=%lld flags=%d\n", (long long)n,
            (long long)h, (long long)w, (long long)c, (long long)m, (long long)k, (long long)s, (long long)pad, flags);
  free(in);
  free(q);
  free(packed);
  free(requant);
  free(got);
  free(want);
  free(scratch);
  return bad;
}

int main(void) {
  int bad = 0;
  for (int32_t flags = 0; flags < 8; ++flags) {
    bad |= check(1, 6, 6, 1, 16, 3, 1, 1, flags);
    bad |= check(1, 6, 6, 5, 7, 3, 1, 0, flags);
    bad |= check(2, 7, 5, 16, 45, 1, 1, 0, flags);
    bad |= check(1, 11, 11, 3, 24, 7, 2, 3, flags);
    bad |= check(1, 4, 4, 300, 40, 1, 1, 0, flags);
    bad |= check(1, 9, 9, 12, 70, 3, 2, 1, flags);
  }
#if defined(__ARM_FEATURE_DOTPROD)
  const char *path = "SDOT";
#elif defined(__AVX512VNNI__)
  const char *path = "AVX-512 VNNI";
#else
  const char *path = "portable C";
#endif
  printf("int8 kernel (%s) vs reference: %s\n", path, bad ? "MISMATCH" : "48 cases bit-exact");
  return bad;
}
