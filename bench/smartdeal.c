/* SmartDeal kernel benchmark: kiln_conv2d_nhwc_smartdeal_f32 (weights rebuilt slice by
 * slice from the compressed format) against the dense kiln_conv2d_nhwc_f32_packed on the
 * same shapes, single thread, best of several runs; each run once with the caches warm
 * and once after evicting them (the weights then come from memory, the case SmartDeal is
 * for). Prints both times, the ratio, and the weight bytes each kernel reads. The format
 * is synthetic (random codes at the given density, 4-bit codes): the kernel's speed does
 * not depend on the values. Run: build/bin/kiln-bench-smartdeal */
#define _POSIX_C_SOURCE 200809L
#include "kiln/kernels.h"
#include "kiln/smartdeal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define EVICT_BYTES (64u << 20)
static unsigned char *evict_mem;

static void evict_caches(void) {
  volatile unsigned char *v = evict_mem; /* the stores must happen */
  for (size_t i = 0; i < EVICT_BYTES; i += 64) v[i] += 1;
}

static uint32_t rng_state = 12345;
static uint32_t rng(void) {
  rng_state = rng_state * 1664525u + 1013904223u;
  return rng_state >> 8;
}

/* Arrays of a synthetic format (caller frees); layout TAPS3 for 3-wide kernels. */
struct format {
  kiln_smartdeal_t w;
  uint64_t *mask;
  uint32_t *row_start;
  uint8_t *codes;
  uint16_t *bases;
};

static void make_format(struct format *f, int64_t m, int64_t kh, int64_t kw, int64_t c, double density, int64_t group) {
  kiln_smartdeal_t *w = &f->w;
  memset(w, 0, sizeof *w);
  w->m = m, w->kh = kh, w->kw = kw, w->c = c;
  w->layout = kw == 3 ? KILN_SMARTDEAL_TAPS3 : KILN_SMARTDEAL_FLAT;
  w->exponent_bits = 3;
  w->group = group;
  int64_t positions = kiln_smartdeal_positions(w), chunks = m * positions, groups = kiln_smartdeal_groups(w);
  f->mask = calloc((size_t)((chunks + 63) / 64), 8);
  f->row_start = calloc((size_t)(m + 1), 4);
  f->codes = calloc((size_t)(chunks * 12 / 8 + 16), 1);
  f->bases = malloc((size_t)(groups * 9) * 2);
  uint64_t kept = 0;
  for (int64_t o = 0; o < m; ++o) {
    f->row_start[o] = (uint32_t)kept;
    for (int64_t p = 0; p < positions; ++p) {
      if ((double)(rng() % 1000) >= density * 1000) continue;
      int64_t bit = o * positions + p;
      f->mask[bit / 64] |= UINT64_C(1) << (bit % 64);
      for (int i = 0; i < 3; ++i) { /* one nibble per code, 3 per chunk */
        uint64_t pos = (kept * 3 + (uint64_t)i) * 4;
        f->codes[pos / 8] |= (uint8_t)((rng() % 16) << (pos % 8));
      }
      ++kept;
    }
  }
  f->row_start[m] = (uint32_t)kept;
  for (int64_t i = 0; i < groups * 9; ++i) f->bases[i] = (uint16_t)(0x3c00 + rng() % 0x200); /* bf16 ~ 0.01 */
  w->mask = f->mask, w->row_start = f->row_start, w->codes = f->codes, w->bases = f->bases;
}

/* Best time of `reps` runs; evicting the caches before each when `cold`. */
static double time_dense(const float *in, const float *packed, float *out, const kiln_conv_geometry_t *g, int cold,
                         int reps) {
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    if (cold) evict_caches();
    double t0 = now();
    kiln_conv2d_nhwc_f32_packed(in, packed, out, g);
    double t = now() - t0;
    if (t < best) best = t;
  }
  return best;
}

static double time_smartdeal(const float *in, const kiln_smartdeal_t *w, float *scratch, float *out,
                             const kiln_conv_geometry_t *g, int cold, int reps) {
  double best = 1e30;
  for (int rep = 0; rep < reps; ++rep) {
    if (cold) evict_caches();
    double t0 = now();
    kiln_conv2d_nhwc_smartdeal_f32(in, w, scratch, out, g, NULL, 0, 0.f, 0.f);
    double t = now() - t0;
    if (t < best) best = t;
  }
  return best;
}

int main(void) {
  evict_mem = malloc(EVICT_BYTES);
  memset(evict_mem, 1, EVICT_BYTES);
  struct {
    const char *name;
    int64_t n, h, w, c, m, k;
    double density;
  } cases[] = {
      {"3x3 64->64 @56x56", 1, 58, 58, 64, 64, 3, 0.5},
      {"3x3 256->256 @14x14", 1, 16, 16, 256, 256, 3, 0.5},
      {"1x1 256->64 @56x56", 1, 56, 56, 256, 64, 1, 0.5},
      {"FC 1568->64, 256 rows", 1, 256, 1, 1568, 64, 1, 0.5},
      {"FC 1568->64, 16 rows", 1, 16, 1, 1568, 64, 1, 0.5},
      {"FC 4096->1024, 64 rows", 1, 64, 1, 4096, 1024, 1, 0.5},
  };
  printf("single thread; density 0.5, 4-bit codes; times in ms (best of runs)\n");
  printf("%-24s %9s %9s %6s | %9s %9s %6s | %9s %9s %5s\n", "shape", "dense", "smartdeal", "ratio", "dense",
         "smartdeal", "ratio", "f32 B", "SD B", "x");
  printf("%-24s %32s | %32s |\n", "", "---- warm caches ----", "---- cold caches ----");
  for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ++ci) {
    int64_t n = cases[ci].n, h = cases[ci].h, wd = cases[ci].w, c = cases[ci].c, m = cases[ci].m, k = cases[ci].k;
    int64_t oh = h - k + 1, ow = wd - k + 1, kk = k * k * c, panels = (m + KILN_PANEL - 1) / KILN_PANEL;
    float *in = malloc(sizeof(float) * (size_t)(n * h * wd * c));
    float *rows = malloc(sizeof(float) * (size_t)(m * kk));
    float *packed = aligned_alloc(64, sizeof(float) * (size_t)(panels * KILN_PANEL * kk));
    float *out = aligned_alloc(64, sizeof(float) * (size_t)(n * oh * ow * m + 16));
    for (int64_t i = 0; i < n * h * wd * c; ++i) in[i] = (float)(i % 13) * 0.01f;
    struct format f;
    make_format(&f, m, k, k, c, cases[ci].density, k == 3 ? 2 : 8);
    float *scratch = aligned_alloc(64, (size_t)kiln_conv2d_smartdeal_scratch_bytes(&f.w));
    kiln_smartdeal_decode(&f.w, rows);
    kiln_pack_panels_f32(rows, packed, m, kk);
    kiln_conv_geometry_t g = {n, c, m, k, k, oh, ow, 1, 1, 1, 1, h * wd * c, wd * c, c, 0, 0, 0, 0};
    memset(out, 0, sizeof(float) * (size_t)(n * oh * ow * m));
    int reps = 7;
    double dw = time_dense(in, packed, out, &g, 0, reps), sw = time_smartdeal(in, &f.w, scratch, out, &g, 0, reps);
    double dc = time_dense(in, packed, out, &g, 1, reps), sc = time_smartdeal(in, &f.w, scratch, out, &g, 1, reps);
    int64_t dense_bytes = panels * KILN_PANEL * kk * 4, sd_bytes = kiln_smartdeal_bytes(&f.w);
    printf("%-24s %9.3f %9.3f %6.2f | %9.3f %9.3f %6.2f | %9lld %9lld %5.1f\n", cases[ci].name, dw * 1e3, sw * 1e3,
           sw / dw, dc * 1e3, sc * 1e3, sc / dc, (long long)dense_bytes, (long long)sd_bytes,
           (double)dense_bytes / (double)sd_bytes);
    free(in), free(rows), free(packed), free(out), free(scratch);
    free(f.mask), free(f.row_start), free(f.codes), free(f.bases);
  }
  printf("ratio = smartdeal / dense time (below 1: SmartDeal faster); f32 B / SD B: weight bytes read\n");
  free(evict_mem);
  return 0;
}
