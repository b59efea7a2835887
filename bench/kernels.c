/* Kiln kernel benchmark: the machine's measured fp32 FMA peak, then the runtime's conv
 * kernel on typical CNN/GEMM shapes as GFLOP/s and as a fraction of that peak; then the
 * int8 (u8 x s8) and int4-weight kernels on the same shapes, in GOP/s (a multiply-add
 * is 2 ops, as for fp32) and as a speedup over the fp32 kernel. Single thread; best
 * of several repetitions. Run: build/bin/kiln-bench-kernels */
#define _POSIX_C_SOURCE 200809L
#include "kiln/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

typedef float vec __attribute__((vector_size(64)));

/* 16 independent FMA chains of 16 floats: enough to cover the latency of two FMA units. */
static double fma_peak_gflops(void) {
  vec acc[16], m = {0}, a = {0};
  for (int i = 0; i < 16; ++i) {
    acc[i] = (vec){0} + (float)i;
    m[i] = 0.999999f;
    a[i] = 1e-7f;
  }
  const long iters = 20 * 1000 * 1000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double t0 = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) acc[i] = acc[i] * m + a;
      __asm__ volatile("" : "+x"(acc[0]), "+x"(acc[8])); /* keep the loop */
    }
    double t = now() - t0, g = 2.0 * 16 * 16 * (double)iters / t / 1e9;
    if (g > best) best = g;
  }
  float sink = 0;
  for (int i = 0; i < 16; ++i) sink += acc[i][0];
  if (sink == 12345.f) printf("!");
  return best;
}

/* The int8 kernel (quantisation of the input included, as in a model); int4 weights
 * when `int4`. */
static double conv_gops_s8(int64_t n, int64_t h, int64_t w, int64_t c, int64_t m, int64_t k, int64_t s, int int4) {
  int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, kk = k * k * c, c4 = (c + 3) / 4 * 4;
  int64_t bytes = (m + KILN_PANEL_S8 - 1) / KILN_PANEL_S8 * KILN_PANEL_S8 * k * k * c4;
  float *in = malloc(sizeof(float) * (size_t)(n * h * w * c));
  int8_t *filter = malloc((size_t)(m * kk));
  int8_t *packed = aligned_alloc(64, (size_t)bytes);
  float *requant = malloc(sizeof(float) * (size_t)(2 * m));
  float *out = aligned_alloc(64, sizeof(float) * (size_t)(n * oh * ow * m + 16));
  for (int64_t i = 0; i < n * h * w * c; ++i) in[i] = (float)(i % 13) * 0.01f;
  for (int64_t i = 0; i < m * kk; ++i) filter[i] = (int8_t)(i % 15 - 7);
  for (int64_t i = 0; i < 2 * m; ++i) requant[i] = 0.01f;
  if (int4)
    kiln_pack_panels_s4(filter, (uint8_t *)packed, m, k * k, c);
  else
    kiln_pack_panels_s8(filter, packed, m, k * k, c);
  kiln_conv_geometry_t g = {n, c, m, k, k, oh, ow, s, s, 1, 1, h * w * c, w * c, c, 0, 0, 0, 0};
  uint8_t *scratch = malloc((size_t)kiln_conv2d_u8s8_scratch_bytes(&g));
  double best = 1e30;
  for (int rep = 0; rep < 7; ++rep) {
    double t0 = now();
    kiln_conv2d_nhwc_u8s8_packed(in, scratch, packed, requant, out, &g, 100.f, 3, int4 ? KILN_S8_INT4 : 0, 0.f, 0.f);
    double t = now() - t0;
    if (t < best) best = t;
  }
  free(in);
  free(filter);
  free(packed);
  free(requant);
  free(out);
  free(scratch);
  return 2.0 * (double)(n * oh * ow * m * kk) / best / 1e9;
}

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
/* 16 independent vpdpbusd chains (64 u8 x s8 multiply-adds each): the int8 peak. */
static double vnni_peak_gops(void) {
  __m512i acc[16], a = _mm512_set1_epi8(1), b = _mm512_set1_epi8(1);
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_epi32(i);
  const long iters = 20 * 1000 * 1000;
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    double t0 = now();
    for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
      for (int i = 0; i < 16; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
      __asm__ volatile("" : "+v"(acc[0]), "+v"(acc[8]));
    }
    double t = now() - t0, g = 2.0 * 64 * 16 * (double)iters / t / 1e9;
    if (g > best) best = g;
  }
  int sink = 0;
  for (int i = 0; i < 16; ++i) sink += _mm512_reduce_add_epi32(acc[i]);
  if (sink == 12345) printf("!");
  return best;
}
#else
static double vnni_peak_gops(void) { return 0; }
#endif

static double conv_gflops(int64_t n, int64_t h, int64_t w, int64_t c, int64_t m, int64_t k, int64_t s) {
  int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, kk = k * k * c;
  int64_t panels = (m + KILN_PANEL - 1) / KILN_PANEL;
  float *in = malloc(sizeof(float) * (size_t)(n * h * w * c));
  float *filter = malloc(sizeof(float) * (size_t)(m * kk));
  float *packed = aligned_alloc(64, sizeof(float) * (size_t)(panels * KILN_PANEL * kk));
  float *out = aligned_alloc(64, sizeof(float) * (size_t)(n * oh * ow * m + 16));
  for (int64_t i = 0; i < n * h * w * c; ++i) in[i] = (float)(i % 13) * 0.01f;
  for (int64_t i = 0; i < m * kk; ++i) filter[i] = (float)(i % 7) * 0.01f;
  kiln_pack_panels_f32(filter, packed, m, kk);
  kiln_conv_geometry_t g = {n, c, m, k, k, oh, ow, s, s, 1, 1, h * w * c, w * c, c, 0, 0, 0, 0};
  double best = 1e30;
  for (int rep = 0; rep < 7; ++rep) {
    double t0 = now();
    kiln_conv2d_nhwc_f32_packed(in, packed, out, &g);
    double t = now() - t0;
    if (t < best) best = t;
  }
  free(in);
  free(filter);
  free(packed);
  free(out);
  return 2.0 * (double)(n * oh * ow * m * kk) / best / 1e9;
}

/* Seconds per call (best of 7) of the N:M sparse kernel: `keep` of every `group` weights. */
static double conv_seconds_nm(int64_t n, int64_t h, int64_t w, int64_t c, int64_t m, int64_t k, int64_t s, int keep,
                              int group) {
  int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1, kk = k * k * c, per = (kk + group - 1) / group * keep;
  float *in = malloc(sizeof(float) * (size_t)(n * h * w * c));
  float *values = malloc(sizeof(float) * (size_t)(m * per));
  uint8_t *indices = malloc((size_t)(m * per));
  float *out = aligned_alloc(64, sizeof(float) * (size_t)(n * oh * ow * m + 16));
  for (int64_t i = 0; i < n * h * w * c; ++i) in[i] = (float)(i % 13) * 0.01f;
  for (int64_t i = 0; i < m * per; ++i) {
    values[i] = (float)(i % 7) * 0.01f;
    /* positions j * (group / keep) + (row-dependent shift): distinct rows, increasing */
    int64_t j = i % keep, row = i / per;
    indices[i] = (uint8_t)(j * (group / keep) + (row + i / keep) % (group / keep));
  }
  kiln_conv_geometry_t g = {n, c, m, k, k, oh, ow, s, s, 1, 1, h * w * c, w * c, c, 0, 0, 0, 0};
  float *scratch = aligned_alloc(64, (size_t)kiln_conv2d_nm_scratch_bytes(&g, group));
  int64_t panels = (m + KILN_PANEL_NM - 1) / KILN_PANEL_NM;
  float *packed = aligned_alloc(64, sizeof(float) * (size_t)(panels * per * KILN_PANEL_NM));
  uint8_t *positions = malloc((size_t)(panels * per * KILN_PANEL_NM));
  kiln_pack_nm_f32(values, indices, m, kk, keep, group, packed, positions);
  double best = 1e30;
  for (int rep = 0; rep < 7; ++rep) {
    double t0 = now();
    kiln_conv2d_nhwc_f32_nm(in, packed, positions, out, &g, keep, group, scratch, NULL, 0, 0.f, 0.f);
    double t = now() - t0;
    if (t < best) best = t;
  }
  free(in);
  free(values);
  free(indices);
  free(out);
  free(scratch);
  free(packed);
  free(positions);
  return best;
}

int main(int argc, char **argv) {
  int only_nm = argc > 1 && strcmp(argv[1], "nm") == 0; /* kiln-bench-kernels nm: fp32 and N:M only */
  double peak = fma_peak_gflops();
  printf("measured fp32 FMA peak (1 thread): %.1f GFLOP/s\n", peak);
  printf("%-34s %10s %8s\n", "kernel shape", "GFLOP/s", "of peak");
  struct { const char *name; int64_t n, h, w, c, m, k, s; } cases[] = {
      {"GEMM 512x512x512", 1, 512, 1, 512, 512, 1, 1},
      {"GEMM 196x256x2304 (conv as GEMM)", 1, 196, 1, 2304, 256, 1, 1},
      {"GEMM 128x768x768 (BERT)", 1, 128, 1, 768, 768, 1, 1},
      {"conv 3x3 56x56x64 -> 64", 1, 58, 58, 64, 64, 3, 1},
      {"conv 3x3 28x28x128 -> 128", 1, 30, 30, 128, 128, 3, 1},
      {"conv 3x3 14x14x256 -> 256", 1, 16, 16, 256, 256, 3, 1},
      {"conv 3x3 7x7x512 -> 512", 1, 9, 9, 512, 512, 3, 1},
      {"conv 7x7/2 224x224x3 -> 64", 1, 229, 229, 3, 64, 7, 2},
      {"conv 1x1 56x56x64 -> 256", 1, 56, 56, 64, 256, 1, 1},
  };
  double fp32[sizeof cases / sizeof cases[0]];
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    double g = conv_gflops(cases[i].n, cases[i].h, cases[i].w, cases[i].c, cases[i].m, cases[i].k, cases[i].s);
    fp32[i] = g;
    printf("%-34s %10.1f %7.0f%%\n", cases[i].name, g, 100.0 * g / peak);
  }
  printf("\nN:M sparse fp32 kernel: time of the dense fp32 kernel / time of the sparse one on the same shape\n");
  printf("%-34s %9s %9s %9s\n", "shape", "2:4", "1:4", "2:8");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    int64_t oh = (cases[i].h - cases[i].k) / cases[i].s + 1, ow = (cases[i].w - cases[i].k) / cases[i].s + 1;
    double dense = 2.0 * (double)(cases[i].n * oh * ow * cases[i].m * cases[i].k * cases[i].k * cases[i].c) / fp32[i] / 1e9;
    printf("%-34s", cases[i].name);
    int pats[3][2] = {{2, 4}, {1, 4}, {2, 8}};
    for (int q = 0; q < 3; ++q)
      printf(" %8.2fx", dense / conv_seconds_nm(cases[i].n, cases[i].h, cases[i].w, cases[i].c, cases[i].m, cases[i].k,
                                                cases[i].s, pats[q][0], pats[q][1]));
    printf("\n");
  }
  if (only_nm) return 0;
  double ipeak = vnni_peak_gops();
  if (ipeak > 0)
    printf("\nmeasured int8 peak (1 thread, vpdpbusd): %.1f GOP/s\n", ipeak);
  else
    printf("\nno AVX-512 VNNI here: the int8 kernels run portable C\n");
  printf("%-34s %10s %8s %9s %10s %9s\n", "int8 / int4-weight kernel shape", "int8 GOP/s", "of peak", "vs fp32",
         "int4 GOP/s", "vs fp32");
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
    double g8 = conv_gops_s8(cases[i].n, cases[i].h, cases[i].w, cases[i].c, cases[i].m, cases[i].k, cases[i].s, 0);
    double g4 = conv_gops_s8(cases[i].n, cases[i].h, cases[i].w, cases[i].c, cases[i].m, cases[i].k, cases[i].s, 1);
    printf("%-34s %10.1f %7.0f%% %8.2fx %10.1f %8.2fx\n", cases[i].name, g8, ipeak > 0 ? 100.0 * g8 / ipeak : 0.0,
           g8 / fp32[i], g4, g4 / fp32[i]);
  }
  return 0;
}
