/* Kiln butterfly benchmark: a K x N linear layer as the butterfly kernel against the dense
 * packed kernel (kiln_conv2d_nhwc_f32_packed as a matmul) on the same rows; time, GFLOP/s
 * (butterfly: 3 flops per element per stage, i.e. 3 n log2(n) per row; dense: 2 K N) and
 * speedup. Single thread; best of several repetitions.
 * Run: build/bin/kiln-bench-butterfly [rows K N]... (default: 128 and 1024 rows, 1024^2) */
#define _POSIX_C_SOURCE 200809L
#include "kiln/butterfly.h"
#include "kiln/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Best time over repetitions that together last about `budget` seconds (3 at least). */
#define TIME_BEST(best, budget, stmt)                                   \
  do {                                                                  \
    double start_ = now();                                              \
    (best) = 1e30;                                                      \
    for (int rep_ = 0; rep_ < 3 || now() - start_ < (budget); ++rep_) { \
      double t0_ = now();                                               \
      stmt;                                                             \
      double t_ = now() - t0_;                                          \
      if (t_ < (best)) (best) = t_;                                     \
    }                                                                   \
  } while (0)

static void run(int64_t rows, int64_t k, int64_t nout) {
  int64_t n = 1, stages = 0;
  while (n < k || n < nout) n *= 2, ++stages;
  int64_t panels = (nout + KILN_PANEL - 1) / KILN_PANEL;
  float *x = malloc(sizeof(float) * (size_t)(rows * k));
  float *w = malloc(sizeof(float) * (size_t)(k * nout));
  float *packed = aligned_alloc(64, sizeof(float) * (size_t)(panels * KILN_PANEL * k));
  float *y = aligned_alloc(64, sizeof(float) * (size_t)(rows * nout + 16));
  float *factors = malloc(sizeof(float) * (size_t)(2 * n * (stages > 0 ? stages : 1)));
  float *scratch = malloc(sizeof(float) * (size_t)kiln_butterfly_scratch_floats(rows, n));
  for (int64_t i = 0; i < rows * k; ++i) x[i] = (float)(i % 13) * 0.01f - 0.06f;
  for (int64_t i = 0; i < k * nout; ++i) w[i] = (float)(i % 7) * 0.01f;
  for (int64_t i = 0; i < 2 * n * stages; ++i) factors[i] = 0.7f + (float)(i % 5) * 0.01f;
  kiln_pack_panels_f32(w, packed, nout, k); /* filter[M][K]: any values do for timing */
  kiln_conv_geometry_t g = {1, k, nout, 1, 1, rows, 1, 1, 1, 1, 1, rows * k, k, k, 0, 0, 0, 0};
  double t_dense, t_bfly;
  TIME_BEST(t_dense, 0.5, kiln_conv2d_nhwc_f32_packed(x, packed, y, &g));
  TIME_BEST(t_bfly, 0.5,
            kiln_butterfly_f32(x, rows, k, k, factors, n, NULL, y, nout, nout, scratch, 0, 0.f, 0.f));
  double f_dense = 2.0 * (double)(rows * k * nout), f_bfly = 3.0 * (double)(rows * n * stages);
  printf("%6lld x %5lld x %5lld  %10.1f %8.1f  %10.1f %8.1f  %7.1fx\n", (long long)rows, (long long)k,
         (long long)nout, t_dense * 1e6, f_dense / t_dense / 1e9, t_bfly * 1e6, f_bfly / t_bfly / 1e9,
         t_dense / t_bfly);
  free(x);
  free(w);
  free(packed);
  free(y);
  free(factors);
  free(scratch);
}

int main(int argc, char **argv) {
  printf("%-24s  %10s %8s  %10s %8s  %8s\n", "rows x K x N", "dense us", "GFLOP/s", "bfly us", "GFLOP/s",
         "speedup");
  if (argc >= 4) {
    for (int i = 1; i + 2 < argc; i += 3) run(atoll(argv[i]), atoll(argv[i + 1]), atoll(argv[i + 2]));
    return 0;
  }
  run(128, 1024, 1024);
  run(1024, 1024, 1024);
  run(1024, 64, 192);
  run(1024, 128, 64);
  return 0;
}
