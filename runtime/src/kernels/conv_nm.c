/* Kiln runtime: N:M sparse convolution / matmul (fp32).
 *
 * Weights: row o (output channel) of the K = KH*KW*C reduction keeps `n` of every `m`
 * consecutive weights: values[o][G*n] and indices[o][G*n] (position inside the group,
 * increasing), G = ceil(K / m); positions at or past K (a padded last group) hold zeros.
 *
 * The kernel runs 16 output channels per vector. At compile time each panel of 16
 * channels is packed as, per group g and slot j < n, the 16 channels' j-th kept weight
 * and its position in the group (one byte each): kiln_pack_nm_f32. For a pixel row, the
 * group's m inputs are loaded once and permuted so that each channel's lane holds the
 * input its j-th weight multiplies (vpermps on AVX-512); one FMA per slot then does the
 * 16 channels' work. Only kept weights are multiplied: n of every m multiply-adds.
 * Pixel rows are gathered (im2col, zero padded past K) into scratch a block at a time;
 * each panel's weights then pass over the whole block, NM_ROWS rows per step. */
#include "kiln/kernels.h"
#include "view.h"

#include <string.h>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define NM_ROWS 12
#define NM_SLOTS 8
#define NM_LANES KILN_PANEL_NM

/* Floats per gathered row: K rounded up to whole groups, plus a vector of slack so the
 * last group's 16-float load stays inside the row. */
static int64_t row_floats(const kiln_conv_geometry_t *g, int32_t m) {
  int64_t kpad = (g->kh * g->kw * g->c + m - 1) / m * m;
  return (kpad + 16 + 15) / 16 * 16;
}

/* Pixel rows gathered at once: as many as fit in about 256 KB (so that they stay in L2
 * while every panel's weights pass over them once), in whole NM_ROWS, at most 16 x, and
 * no more than the convolution has. */
static int64_t block_rows(const kiln_conv_geometry_t *g, int32_t m) {
  int64_t fit = (256 * 1024 / ((int64_t)sizeof(float) * row_floats(g, m))) / NM_ROWS * NM_ROWS;
  int64_t all = (g->n * g->oh * g->ow + NM_ROWS - 1) / NM_ROWS * NM_ROWS;
  fit = fit < NM_ROWS ? NM_ROWS : fit > 16 * NM_ROWS ? 16 * NM_ROWS : fit;
  return fit < all ? fit : all;
}

/* Blocks share out over at most NM_SLOTS scratch slots. */
static int64_t slot_count(const kiln_conv_geometry_t *g, int32_t m) {
  int64_t rows = block_rows(g, m), blocks = (g->n * g->oh * g->ow + rows - 1) / rows;
  return blocks < NM_SLOTS ? blocks : NM_SLOTS;
}

int64_t kiln_conv2d_nm_scratch_bytes(const kiln_conv_geometry_t *g, int32_t m) {
  return slot_count(g, m) * block_rows(g, m) * row_floats(g, m) * (int64_t)sizeof(float);
}

void kiln_pack_nm_f32(const float *values, const uint8_t *indices, int64_t rows, int64_t k, int32_t n, int32_t m,
                      float *packed, uint8_t *positions) {
  const int64_t groups = (k + m - 1) / m, per_row = groups * n, panels = (rows + NM_LANES - 1) / NM_LANES;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t e = 0; e < per_row; ++e)
      for (int64_t l = 0; l < NM_LANES; ++l) {
        int64_t o = p * NM_LANES + l, at = (p * per_row + e) * NM_LANES + l;
        packed[at] = o < rows ? values[o * per_row + e] : 0.f;
        positions[at] = o < rows ? indices[o * per_row + e] : 0;
      }
}

struct nm_job {
  const float *in, *packed;
  const uint8_t *positions;
  float *out, *scratch;
  const kiln_conv_geometry_t *g;
  int64_t n, m, groups, stride, rows, slots; /* stride: floats per gathered row; rows: per block */
  const float *bias;
  int32_t flags;
  float lo, hi;
};

/* Gathers pixel rows [p0, p0 + np) into a[r][stride]; padding and the tail read 0, and
 * rows past np up to a whole NM_ROWS are zeros (computed, never stored). */
static void gather(const struct nm_job *job, int64_t p0, int64_t np, float *a) {
  const kiln_conv_geometry_t *g = job->g;
  const int64_t c = g->c, k = g->kh * g->kw * c, hw = g->oh * g->ow;
  for (int64_t j = 0; j < np; ++j) {
    int64_t p = p0 + j, b = p / hw, rem = p % hw, y = rem / g->ow, x = rem % g->ow;
    float *row = a + j * job->stride;
    for (int64_t ty = 0; ty < g->kh; ++ty)
      for (int64_t tx = 0; tx < g->kw; ++tx) {
        const float *src = kiln_view_pixel(job->in, g, b, y * g->stride_h + ty * g->dilation_h,
                                           x * g->stride_w + tx * g->dilation_w);
        float *dst = row + (ty * g->kw + tx) * c;
        if (src)
          memcpy(dst, src, sizeof(float) * (size_t)c);
        else
          memset(dst, 0, sizeof(float) * (size_t)c);
      }
    memset(row + k, 0, sizeof(float) * (size_t)(job->stride - k));
  }
  int64_t whole = (np + NM_ROWS - 1) / NM_ROWS * NM_ROWS;
  memset(a + np * job->stride, 0, sizeof(float) * (size_t)((whole - np) * job->stride));
}

typedef float v16 __attribute__((vector_size(64)));

/* out[p0 + r][o0 .. o0 + lanes) from acc (row r's 16 channels), with the epilogue. */
static void store(const struct nm_job *job, int64_t p0, int64_t np, int64_t o0, const float acc[][NM_LANES]) {
  const int64_t mm = job->g->m, lanes = mm - o0 < NM_LANES ? mm - o0 : NM_LANES;
  const size_t bytes = sizeof(float) * (size_t)lanes;
  const int accumulate = (job->flags & KILN_S8_ACCUMULATE) != 0, clamp = (job->flags & KILN_S8_CLAMP) != 0;
  v16 base = {0};
  if (!accumulate && job->bias) memcpy(&base, job->bias + o0, bytes);
  for (int64_t r = 0; r < np; ++r) {
    float *dst = job->out + (p0 + r) * mm + o0;
    v16 v;
    memcpy(&v, acc[r], sizeof v);
    if (accumulate) {
      v16 cur = {0};
      memcpy(&cur, dst, bytes);
      v += cur;
    } else {
      v += base;
    }
    if (clamp) {
      float t[NM_LANES];
      memcpy(t, &v, sizeof t);
      for (int l = 0; l < NM_LANES; ++l) t[l] = t[l] < job->lo ? job->lo : t[l] > job->hi ? job->hi : t[l];
      memcpy(&v, t, sizeof t);
    }
    memcpy(dst, &v, bytes);
  }
}

#if defined(__AVX512F__)
/* NM_ROWS rows of one panel, `n` slots per group (a constant after inlining). */
static inline __attribute__((always_inline)) void panel_rows_avx512(const float *a, int64_t stride, const float *w,
                                                                    const uint8_t *pos, int64_t groups, int64_t m,
                                                                    const int n, float acc[][NM_LANES]) {
  __m512 sum[NM_ROWS];
  for (int r = 0; r < NM_ROWS; ++r) sum[r] = _mm512_setzero_ps();
  for (int64_t gi = 0; gi < groups; ++gi, w += n * NM_LANES, pos += n * NM_LANES) {
    __m512 wv[4];
    __m512i pv[4];
    for (int j = 0; j < n; ++j) {
      wv[j] = _mm512_loadu_ps(w + j * NM_LANES);
      pv[j] = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(pos + j * NM_LANES)));
    }
    const float *x = a + gi * m;
#pragma GCC unroll 12
    for (int r = 0; r < NM_ROWS; ++r) {
      __m512 xv = _mm512_loadu_ps(x + r * stride);
      for (int j = 0; j < n; ++j) sum[r] = _mm512_fmadd_ps(wv[j], _mm512_permutexvar_ps(pv[j], xv), sum[r]);
    }
  }
  for (int r = 0; r < NM_ROWS; ++r) _mm512_storeu_ps(acc[r], sum[r]);
}
#endif

/* One panel of 16 channels over the block's rows. */
static void panel_rows(const struct nm_job *job, const float *a, int64_t np, int64_t p, float acc[][NM_LANES]) {
  const int64_t n = job->n, m = job->m, groups = job->groups, stride = job->stride;
  const float *w = job->packed + p * groups * n * NM_LANES;
  const uint8_t *pos = job->positions + p * groups * n * NM_LANES;
#if defined(__AVX512F__)
  if (np <= NM_ROWS) { /* a short last step computes the zero rows after it too */
    switch (n) { /* the slot count as a constant: x is loaded once per row and group */
    case 1: panel_rows_avx512(a, stride, w, pos, groups, m, 1, acc); return;
    case 2: panel_rows_avx512(a, stride, w, pos, groups, m, 2, acc); return;
    case 3: panel_rows_avx512(a, stride, w, pos, groups, m, 3, acc); return;
    case 4: panel_rows_avx512(a, stride, w, pos, groups, m, 4, acc); return;
    default: break;
    }
  }
#endif
  for (int64_t r = 0; r < np; ++r)
    for (int l = 0; l < NM_LANES; ++l) acc[r][l] = 0.f;
  for (int64_t gi = 0; gi < groups; ++gi)
    for (int64_t j = 0; j < n; ++j) {
      const float *wv = w + (gi * n + j) * NM_LANES;
      const uint8_t *pv = pos + (gi * n + j) * NM_LANES;
      for (int64_t r = 0; r < np; ++r) {
        const float *x = a + r * stride + gi * m;
        for (int l = 0; l < NM_LANES; ++l) acc[r][l] += wv[l] * x[pv[l]];
      }
    }
}

static void nm_slots(void *ctx, int64_t slot_begin, int64_t slot_end) {
  const struct nm_job *job = ctx;
  const kiln_conv_geometry_t *g = job->g;
  const int64_t pixels = g->n * g->oh * g->ow, per_block = job->rows;
  const int64_t blocks = (pixels + per_block - 1) / per_block, panels = (g->m + NM_LANES - 1) / NM_LANES;
  float *a = job->scratch + slot_begin * per_block * job->stride;
  /* Slots share blocks round-robin; one call owns slots [slot_begin, slot_end). */
  for (int64_t blk = 0; blk < blocks; ++blk) {
    int64_t slot = blk % job->slots;
    if (slot < slot_begin || slot >= slot_end) continue;
    int64_t b0 = blk * per_block, nb = pixels - b0 < per_block ? pixels - b0 : per_block;
    gather(job, b0, nb, a);
    for (int64_t p = 0; p < panels; ++p)
      for (int64_t r0 = 0; r0 < nb; r0 += NM_ROWS) {
        int64_t np = nb - r0 < NM_ROWS ? nb - r0 : NM_ROWS;
        float acc[NM_ROWS][NM_LANES] __attribute__((aligned(64)));
        panel_rows(job, a + r0 * job->stride, np, p, acc);
        store(job, b0 + r0, np, p * NM_LANES, acc);
      }
  }
}

void kiln_conv2d_nhwc_f32_nm(const float *in, const float *packed, const uint8_t *positions, float *out,
                             const kiln_conv_geometry_t *g, int32_t n, int32_t m, float *scratch,
                             const float *bias, int32_t flags, float lo, float hi) {
  int64_t k = g->kh * g->kw * g->c;
  if (g->n * g->oh * g->ow == 0 || g->m == 0) return;
  struct nm_job job = {in,     packed, positions, out, scratch, g, n, m, (k + m - 1) / m, row_floats(g, m),
                       block_rows(g, m), slot_count(g, m), bias, flags, lo, hi};
  kiln_parallel_for(job.slots, nm_slots, &job);
}

void kiln_ref_conv2d_nhwc_f32_nm(const float *in, const float *values, const uint8_t *indices, float *out,
                                 const kiln_conv_geometry_t *g, int32_t n, int32_t m, const float *bias,
                                 int32_t flags, float lo, float hi) {
  const int64_t c = g->c, k = g->kh * g->kw * c, per_row = (k + m - 1) / m * n;
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < g->oh; ++y)
      for (int64_t x = 0; x < g->ow; ++x) {
        float *dst = out + ((b * g->oh + y) * g->ow + x) * g->m;
        for (int64_t o = 0; o < g->m; ++o) {
          float s = 0.f;
          for (int64_t e = 0; e < per_row; ++e) {
            int64_t kk = e / n * m + indices[o * per_row + e], tap = kk / c, ch = kk % c;
            if (kk >= k) continue; /* the padded last group */
            const float *src = kiln_view_pixel(in, g, b, y * g->stride_h + tap / g->kw * g->dilation_h,
                                               x * g->stride_w + tap % g->kw * g->dilation_w);
            if (src) s += values[o * per_row + e] * src[ch];
          }
          float v = s + ((flags & KILN_S8_ACCUMULATE) ? dst[o] : bias ? bias[o] : 0.f);
          if (flags & KILN_S8_CLAMP) v = v < lo ? lo : v > hi ? hi : v;
          dst[o] = v;
        }
      }
}

void kiln_nm_decode_f32(const float *values, const uint8_t *indices, float *dense, int64_t rows, int64_t k, int32_t n,
                        int32_t m, int32_t rows_last) {
  const int64_t per_row = (k + m - 1) / m * n;
  memset(dense, 0, sizeof(float) * (size_t)(rows * k));
  for (int64_t o = 0; o < rows; ++o)
    for (int64_t e = 0; e < per_row; ++e) {
      int64_t kk = e / n * m + indices[o * per_row + e];
      if (kk >= k) continue; /* the padded last group */
      dense[rows_last ? kk * rows + o : o * k + kk] += values[o * per_row + e];
    }
}
