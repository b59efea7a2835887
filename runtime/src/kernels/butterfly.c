/* Kiln runtime: butterfly linear-layer kernel (format in kiln/butterfly.h).
 *
 * Rows are staged in blocks of R rows (row-major, n floats each) in scratch so that a
 * factor vector loaded once serves R rows. Per block: copy in (zero padding), stages
 * 0-3 in one pass (they mix lanes of one 16-float vector: a shuffle each), then stages
 * 4.. two at a time (they mix whole vectors: radix-4 steps with four vectors in
 * registers), then the epilogue straight into y. Below n = 16 a scalar path does it. */
#include "kiln/butterfly.h"

#include <string.h>

#include "kiln/kernels.h"

#define VL 16 /* floats per vector: 1 zmm, 2 ymm or 4 NEON q registers */
typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(int32_t))));

/* Most blocks (threads) one call uses: the scratch is sized for this many. */
#define SLOTS 16
/* Floats of one block of rows: small enough to stay in L1/L2 while all stages pass. */
#ifndef BLOCK_FLOATS
#define BLOCK_FLOATS 8192
#endif

static inline vf load(const float *p) {
  vf v;
  memcpy(&v, p, sizeof v);
  return v;
}
static inline void store(float *p, vf v) { memcpy(p, &v, sizeof v); }

/* Rows per block for a size-n butterfly. */
static int64_t block_rows(int64_t n) {
  int64_t r = BLOCK_FLOATS / n;
  return r < 1 ? 1 : r > 32 ? 32 : r;
}

int64_t kiln_butterfly_scratch_floats(int64_t rows, int64_t n) {
  int64_t r = block_rows(n), blocks = (rows + r - 1) / r;
  if (blocks > SLOTS) blocks = SLOTS;
  if (blocks < 1) blocks = 1;
  return blocks * (r < rows ? r : rows < 1 ? 1 : rows) * n;
}

/* Lane i of the result = lane i XOR 2^s of v, for the in-vector stages. */
static inline vf swap_lanes(vf v, int s) {
  switch (s) {
    case 0: return __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14);
    case 1: return __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    case 2: return __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11);
    default: return __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7);
  }
}

/* Stages 0..3 on rows t[0, nr) of the block (n >= 16). */
static void stages_in_vector(float *t, int64_t nr, int64_t n, const float *f) {
  for (int64_t c = 0; c < n; c += VL) {
    vf a0 = load(f + c), b0 = load(f + n + c);
    vf a1 = load(f + 2 * n + c), b1 = load(f + 3 * n + c);
    vf a2 = load(f + 4 * n + c), b2 = load(f + 5 * n + c);
    vf a3 = load(f + 6 * n + c), b3 = load(f + 7 * n + c);
    for (int64_t r = 0; r < nr; ++r) {
      float *p = t + r * n + c;
      vf v = load(p);
      v = a0 * v + b0 * swap_lanes(v, 0);
      v = a1 * v + b1 * swap_lanes(v, 1);
      v = a2 * v + b2 * swap_lanes(v, 2);
      v = a3 * v + b3 * swap_lanes(v, 3);
      store(p, v);
    }
  }
}

/* One stage s >= 4 (pair distance d = 2^s floats, a multiple of VL). */
static void stage_one(float *t, int64_t nr, int64_t n, const float *f, int64_t d) {
  const float *a = f, *b = f + n;
  for (int64_t j0 = 0; j0 < n; j0 += 2 * d)
    for (int64_t c = j0; c < j0 + d; c += VL) {
      vf a0 = load(a + c), b0 = load(b + c), a1 = load(a + c + d), b1 = load(b + c + d);
      for (int64_t r = 0; r < nr; ++r) {
        float *p = t + r * n + c;
        vf v0 = load(p), v1 = load(p + d);
        store(p, a0 * v0 + b0 * v1);
        store(p + d, a1 * v1 + b1 * v0);
      }
    }
}

/* Stages s and s + 1 (s >= 4, d = 2^s floats) in one pass: four vectors per step. */
static void stage_two(float *t, int64_t nr, int64_t n, const float *f, int64_t d) {
  const float *a = f, *b = f + n, *a2 = f + 2 * n, *b2 = f + 3 * n;
  for (int64_t j0 = 0; j0 < n; j0 += 4 * d)
    for (int64_t c = j0; c < j0 + d; c += VL) {
      vf fa0 = load(a + c), fa1 = load(a + c + d), fa2 = load(a + c + 2 * d), fa3 = load(a + c + 3 * d);
      vf fb0 = load(b + c), fb1 = load(b + c + d), fb2 = load(b + c + 2 * d), fb3 = load(b + c + 3 * d);
      vf ga0 = load(a2 + c), ga1 = load(a2 + c + d), ga2 = load(a2 + c + 2 * d), ga3 = load(a2 + c + 3 * d);
      vf gb0 = load(b2 + c), gb1 = load(b2 + c + d), gb2 = load(b2 + c + 2 * d), gb3 = load(b2 + c + 3 * d);
      for (int64_t r = 0; r < nr; ++r) {
        float *p = t + r * n + c;
        vf v0 = load(p), v1 = load(p + d), v2 = load(p + 2 * d), v3 = load(p + 3 * d);
        vf w0 = fa0 * v0 + fb0 * v1, w1 = fa1 * v1 + fb1 * v0;
        vf w2 = fa2 * v2 + fb2 * v3, w3 = fa3 * v3 + fb3 * v2;
        store(p, ga0 * w0 + gb0 * w2);
        store(p + d, ga1 * w1 + gb1 * w3);
        store(p + 2 * d, ga2 * w2 + gb2 * w0);
        store(p + 3 * d, ga3 * w3 + gb3 * w1);
      }
    }
}

/* All stages on rows t[0, nr) for n < 16 (scalar). */
static void stages_small(float *t, int64_t nr, int64_t n, const float *factors) {
  float tmp[VL];
  int64_t s = 0;
  for (int64_t d = 1; d < n; d *= 2, ++s) {
    const float *a = factors + 2 * n * s, *b = a + n;
    for (int64_t r = 0; r < nr; ++r) {
      float *p = t + r * n;
      for (int64_t i = 0; i < n; ++i) tmp[i] = a[i] * p[i] + b[i] * p[i ^ d];
      memcpy(p, tmp, (size_t)n * sizeof(float));
    }
  }
}

struct bfly_job {
  const float *x, *factors, *bias;
  float *y, *scratch;
  int64_t rows, x_stride, k, n, y_stride, n_out, block, slots;
  int32_t flags;
  float lo, hi;
};

/* Rows [r0, r0 + nr) through the block at t. */
static void run_block(const struct bfly_job *job, float *t, int64_t r0, int64_t nr) {
  const int64_t n = job->n, k = job->k, n_out = job->n_out;
  for (int64_t r = 0; r < nr; ++r) {
    memcpy(t + r * n, job->x + (r0 + r) * job->x_stride, (size_t)k * sizeof(float));
    memset(t + r * n + k, 0, (size_t)(n - k) * sizeof(float));
  }
  if (n < VL) {
    stages_small(t, nr, n, job->factors);
  } else {
    stages_in_vector(t, nr, n, job->factors);
    int64_t s = 4;
    for (int64_t d = VL; d < n; s += 2, d *= 4) {
      const float *f = job->factors + 2 * n * s;
      if (2 * d < n)
        stage_two(t, nr, n, f, d);
      else
        stage_one(t, nr, n, f, d);
    }
  }
  const int acc = (job->flags & KILN_BUTTERFLY_ACCUMULATE) != 0, clamp = (job->flags & KILN_BUTTERFLY_CLAMP) != 0;
  const float *bias = job->bias, lo = job->lo, hi = job->hi;
  for (int64_t r = 0; r < nr; ++r) {
    float *restrict o = job->y + (r0 + r) * job->y_stride;
    const float *restrict v = t + r * n;
    for (int64_t j = 0; j < n_out; ++j) {
      float s = v[j] + (acc ? o[j] : 0.f) + (bias ? bias[j] : 0.f);
      if (clamp) s = s < lo ? lo : s > hi ? hi : s;
      o[j] = s;
    }
  }
}

/* Slots [begin, end): slot i owns blocks [i * per, (i + 1) * per) and scratch slot
 * `begin` serves every slot of this share, so shares never share scratch. */
static void run_slots(void *ctx, int64_t begin, int64_t end) {
  const struct bfly_job *job = ctx;
  float *t = job->scratch + begin * job->block * job->n;
  int64_t blocks = (job->rows + job->block - 1) / job->block, per = (blocks + job->slots - 1) / job->slots;
  for (int64_t b = begin * per; b < end * per && b < blocks; ++b) {
    int64_t r0 = b * job->block, nr = job->rows - r0 < job->block ? job->rows - r0 : job->block;
    run_block(job, t, r0, nr);
  }
}

void kiln_butterfly_f32(const float *x, int64_t rows, int64_t x_stride, int64_t k, const float *factors, int64_t n,
                        const float *bias, float *y, int64_t y_stride, int64_t n_out, float *scratch, int32_t flags,
                        float lo, float hi) {
  if (rows <= 0 || n_out <= 0) return;
  int64_t block = block_rows(n);
  if (block > rows) block = rows;
  int64_t blocks = (rows + block - 1) / block, slots = blocks < SLOTS ? blocks : SLOTS;
  struct bfly_job job = {x, factors, bias, y, scratch, rows, x_stride, k, n, y_stride, n_out, block, slots,
                         flags, lo, hi};
  kiln_parallel_for(slots, run_slots, &job);
}

/* B[i][j] as the product along the one path from i to j: stage s moves bit s of the
 * index from i's value to j's, taking a_s (bit unchanged) or b_s (bit flipped) at the
 * index it arrives at. Independent of the kernel's stage-by-stage order. */
static double path_weight(const float *factors, int64_t n, int64_t i, int64_t j) {
  double w = 1;
  int64_t cur = i, s = 0;
  for (int64_t d = 1; d < n; d *= 2, ++s) {
    int64_t next = (cur & ~d) | (j & d);
    w *= factors[2 * n * s + (next == cur ? 0 : n) + next];
    cur = next;
  }
  return w;
}

void kiln_ref_butterfly_f32(const float *x, int64_t rows, int64_t x_stride, int64_t k, const float *factors,
                            int64_t n, const float *bias, float *y, int64_t y_stride, int64_t n_out, int32_t flags,
                            float lo, float hi) {
  for (int64_t p = 0; p < rows; ++p)
    for (int64_t j = 0; j < n_out; ++j) {
      double acc = 0;
      for (int64_t i = 0; i < k; ++i) acc += (double)x[p * x_stride + i] * path_weight(factors, n, i, j);
      float *o = y + p * y_stride + j;
      double v = acc + ((flags & KILN_BUTTERFLY_ACCUMULATE) ? *o : 0.0) + (bias ? bias[j] : 0.0);
      if (flags & KILN_BUTTERFLY_CLAMP) v = v < lo ? lo : v > hi ? hi : v;
      *o = (float)v;
    }
}

void kiln_butterfly_decode_f32(const float *factors, int64_t n, int64_t k, int64_t n_out, int32_t rows_last,
                               float *out) {
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < n_out; ++j)
      out[rows_last ? i * n_out + j : j * k + i] = (float)path_weight(factors, n, i, j);
}
