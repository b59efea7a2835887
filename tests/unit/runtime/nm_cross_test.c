/* The N:M sparse kernel against its reference, in plain C: built for aarch64 (the
 * portable path) and run under qemu by ctest, where gtest is not available. Exits
 * non-zero on the first mismatch beyond rounding. */
#include "kiln/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static uint32_t state = 4242;
static float uniform(float lo, float hi) {
  state = state * 1664525u + 1013904223u;
  return lo + (hi - lo) * (float)(state >> 8) / (float)(1u << 24);
}

static int check(int64_t h, int64_t w, int64_t c, int64_t m, int64_t k, int64_t s, int64_t pad, int32_t keep,
                 int32_t group, int32_t flags) {
  int64_t hp = h + 2 * pad, wp = w + 2 * pad, oh = (hp - k) / s + 1, ow = (wp - k) / s + 1, kk = k * k * c;
  int64_t per = (kk + group - 1) / group * keep, panels = (m + KILN_PANEL_NM - 1) / KILN_PANEL_NM;
  float *in = malloc(sizeof(float) * (size_t)(h * w * c)), *values = malloc(sizeof(float) * (size_t)(m * per));
  uint8_t *indices = malloc((size_t)(m * per)), *positions = malloc((size_t)(panels * per * KILN_PANEL_NM));
  float *packed = malloc(sizeof(float) * (size_t)(panels * per * KILN_PANEL_NM)), *bias = malloc(sizeof(float) * (size_t)m);
  float *got = malloc(sizeof(float) * (size_t)(oh * ow * m)), *want = malloc(sizeof(float) * (size_t)(oh * ow * m));
  for (int64_t i = 0; i < h * w * c; ++i) in[i] = uniform(-1.f, 1.f);
  for (int64_t i = 0; i < m; ++i) bias[i] = uniform(-0.5f, 0.5f);
  /* keep the first `keep` positions shifted by the row: increasing inside each group */
  for (int64_t o = 0; o < m; ++o)
    for (int64_t e = 0; e < per; ++e) {
      int64_t j = e % keep, g = e / keep, at = (o + g) % (group - keep + 1) + j;
      indices[o * per + e] = (uint8_t)at;
      values[o * per + e] = g * group + at < kk ? uniform(-1.f, 1.f) : 0.f;
    }
  for (int64_t i = 0; i < oh * ow * m; ++i) got[i] = want[i] = uniform(-1.f, 1.f);
  kiln_pack_nm_f32(values, indices, m, kk, keep, group, packed, positions);
  kiln_conv_geometry_t g = {1, c, m, k, k, oh, ow, s, s, 1, 1, h * w * c, w * c, c, pad, pad, pad ? h : 0, pad ? w : 0};
  float *scratch = malloc((size_t)kiln_conv2d_nm_scratch_bytes(&g, group));
  kiln_conv2d_nhwc_f32_nm(in, packed, positions, got, &g, keep, group, scratch, bias, flags, -0.25f, 0.5f);
  kiln_ref_conv2d_nhwc_f32_nm(in, values, indices, want, &g, keep, group, bias, flags, -0.25f, 0.5f);
  int bad = 0;
  for (int64_t i = 0; i < oh * ow * m && !bad; ++i)
    if (fabsf(got[i] - want[i]) > 1e-4f * (1.f + fabsf(want[i]))) {
      fprintf(stderr, "mismatch at %lld: %g vs %g (c=%lld m=%lld k=%lld %d:%d flags=%d)\n", (long long)i, got[i],
              want[i], (long long)c, (long long)m, (long long)k, keep, group, flags);
      bad = 1;
    }
  free(in);
  free(values);
  free(indices);
  free(positions);
  free(packed);
  free(bias);
  free(got);
  free(want);
  free(scratch);
  return bad;
}

int main(void) {
  int bad = check(9, 9, 16, 32, 3, 1, 0, 2, 4, 0) | check(7, 6, 5, 13, 3, 1, 1, 2, 4, KILN_S8_CLAMP) |
            check(10, 11, 8, 17, 3, 2, 1, 1, 4, KILN_S8_ACCUMULATE) | check(5, 5, 40, 24, 1, 1, 0, 2, 8, 0) |
            check(3, 3, 33, 8, 1, 1, 0, 3, 16, KILN_S8_CLAMP);
  if (!bad) puts("N:M kernel matches its reference");
  return bad;
}
