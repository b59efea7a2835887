/* Kiln runtime: SmartDeal weights, decoded slice by slice into the fp32 kernel's panels. */
#include "kiln/smartdeal.h"

#include <math.h>
#include <string.h>

#include "conv_f32_slice.h"

#define HEADER_BYTES 32 /* m, kh, kw, c as u32; layout, bits, offset, group as u32/i32 */

int64_t kiln_smartdeal_positions(const kiln_smartdeal_t *w) {
  return w->layout == KILN_SMARTDEAL_TAPS3 ? w->kh * w->c : (w->kh * w->kw * w->c + 2) / 3;
}

int64_t kiln_smartdeal_groups(const kiln_smartdeal_t *w) {
  int64_t span = w->layout == KILN_SMARTDEAL_TAPS3 ? w->c : kiln_smartdeal_positions(w);
  return (span + w->group - 1) / w->group;
}

int64_t kiln_smartdeal_bytes(const kiln_smartdeal_t *w) {
  int64_t words = (w->m * kiln_smartdeal_positions(w) + 63) / 64;
  int64_t code_bits = (int64_t)w->row_start[w->m] * 3 * (w->exponent_bits + 1);
  return HEADER_BYTES + words * 8 + (w->m + 1) * 4 + (code_bits + 7) / 8 + 8 +
         kiln_smartdeal_groups(w) * 9 * 2;
}

static inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* Coefficient of each (b + 1)-bit code. */
static void code_table(const kiln_smartdeal_t *w, float lut[256]) {
  int b = w->exponent_bits;
  for (int code = 0; code < (2 << b); ++code) {
    int e = code & ((1 << b) - 1);
    float mag = e == 0 ? 0.f : ldexpf(1.f, w->exponent_offset - (e - 1));
    lut[code] = code >> b ? -mag : mag;
  }
}

/* Set bits of the mask in [begin, end). */
static inline uint64_t mask_count(const uint64_t *mask, uint64_t begin, uint64_t end) {
  if (begin >= end) return 0;
  uint64_t wb = begin / 64, we = (end - 1) / 64, r = 0;
  for (uint64_t i = wb; i <= we; ++i) {
    uint64_t word = mask[i];
    if (i == wb) word &= ~UINT64_C(0) << (begin % 64);
    if (i == we && end % 64) word &= (UINT64_C(1) << (end % 64)) - 1;
    r += (uint64_t)__builtin_popcountll(word);
  }
  return r;
}

/* Kept chunks before chunk p of row o: the row's start plus the row's mask bits below p. */
static inline uint64_t chunk_rank(const kiln_smartdeal_t *w, int64_t positions, int64_t o, int64_t p) {
  uint64_t row = (uint64_t)(o * positions);
  return w->row_start[o] + mask_count(w->mask, row, row + (uint64_t)p);
}

static inline int chunk_kept(const kiln_smartdeal_t *w, int64_t positions, int64_t o, int64_t p) {
  uint64_t bit = (uint64_t)(o * positions + p);
  return (int)(w->mask[bit / 64] >> (bit % 64) & 1);
}

/* The three coefficients of the rank-th kept chunk. */
static inline void chunk_coeffs(const kiln_smartdeal_t *w, const float *lut, uint64_t rank, float c[3]) {
  const int nb = w->exponent_bits + 1;
  uint64_t bit = rank * 3 * (uint64_t)nb, word;
  memcpy(&word, w->codes + (bit >> 3), sizeof word); /* little-endian targets only */
  word >>= bit & 7;
  const uint64_t field = (UINT64_C(1) << nb) - 1;
  c[0] = lut[word & field];
  c[1] = lut[word >> nb & field];
  c[2] = lut[word >> 2 * nb & field];
}

/* Weight j of a chunk: exact products, then two adds in a fixed order. */
static inline float chunk_weight(const float c[3], const uint16_t *basis, int j) {
  return (c[0] * bf16_to_f32(basis[j]) + c[1] * bf16_to_f32(basis[3 + j])) + c[2] * bf16_to_f32(basis[6 + j]);
}

static inline const uint16_t *chunk_basis(const kiln_smartdeal_t *w, int64_t p) {
  int64_t g = w->layout == KILN_SMARTDEAL_TAPS3 ? (p % w->c) / w->group : p / w->group;
  return w->bases + g * 9;
}

/* Rows [o_begin, o_end) of the slice [k0, k0 + kc) into rows[o][kc], one weight at a
 * time (the plain decoder; the kernel uses decode_panel). */
static void decode_rows(const kiln_smartdeal_t *w, const float *lut, int64_t k0, int64_t kc, float *out,
                        int64_t o_begin, int64_t o_end) {
  const int64_t c = w->c, positions = kiln_smartdeal_positions(w), k1 = k0 + kc;
  for (int64_t o = o_begin; o < o_end; ++o) {
    float *dst = out + o * kc;
    float coef[3];
    if (w->layout == KILN_SMARTDEAL_FLAT) {
      uint64_t r = chunk_rank(w, positions, o, k0 / 3);
      for (int64_t p = k0 / 3; p * 3 < k1; ++p) {
        int kept = chunk_kept(w, positions, o, p);
        if (kept) chunk_coeffs(w, lut, r++, coef);
        const uint16_t *basis = chunk_basis(w, p);
        for (int j = 0; j < 3; ++j) {
          int64_t k = p * 3 + j;
          if (k >= k0 && k < k1) dst[k - k0] = kept ? chunk_weight(coef, basis, j) : 0.f;
        }
      }
      continue;
    }
    /* TAPS3: the slice crosses one or more kernel rows (3C weights each); per kernel row
     * and tap j, the channels it covers are a contiguous run. */
    for (int64_t fy = k0 / (3 * c); fy * 3 * c < k1; ++fy)
      for (int j = 0; j < 3; ++j) {
        int64_t base = (fy * 3 + j) * c;
        int64_t lo = k0 > base ? k0 - base : 0, hi = k1 - base < c ? k1 - base : c;
        if (lo >= hi) continue;
        uint64_t r = chunk_rank(w, positions, o, fy * c + lo);
        for (int64_t ch = lo; ch < hi; ++ch) {
          int64_t p = fy * c + ch;
          float v = 0.f;
          if (chunk_kept(w, positions, o, p)) {
            chunk_coeffs(w, lut, r++, coef);
            v = chunk_weight(coef, chunk_basis(w, p), j);
          }
          dst[base + ch - k0] = v;
        }
      }
  }
}

typedef float vpanel __attribute__((vector_size(KILN_PANEL * sizeof(float))));

static inline vpanel load_panel(const float *p) {
  vpanel v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Panel `panel` of the slice [k0, k0 + kc) into dst[kc][KILN_PANEL]: chunk position by
 * chunk position, the panel's rows gather their three coefficients (scalar: a mask bit
 * and a code read each), then the weights of all rows come out of three vector
 * multiply-adds with the position's basis, one store per reduction index. */
static void decode_panel(const kiln_smartdeal_t *w, const float *lut, int64_t k0, int64_t kc, int64_t panel,
                         float *dst) {
  const int64_t positions = kiln_smartdeal_positions(w), c = w->c, k1 = k0 + kc, o0 = panel * KILN_PANEL;
  const int nrows = w->m - o0 < KILN_PANEL ? (int)(w->m - o0) : KILN_PANEL;
  const int nb = w->exponent_bits + 1;
  const uint64_t field = (UINT64_C(1) << nb) - 1, chunk_bits = 3 * (uint64_t)nb;
  float c0[KILN_PANEL] = {0}, c1[KILN_PANEL] = {0}, c2[KILN_PANEL] = {0}; /* lanes past m stay 0 */
  uint64_t rank[KILN_PANEL];
  const int taps3 = w->layout == KILN_SMARTDEAL_TAPS3;
  /* Runs of consecutive chunk positions that cover the slice: one for FLAT; per kernel
   * row for TAPS3, the channels that any of the three taps reaches inside the slice. */
  int64_t fy = taps3 ? k0 / (3 * c) : 0, fy_end = taps3 ? (k1 - 1) / (3 * c) : 0;
  for (; fy <= fy_end; ++fy) {
    int64_t pa, pb;
    if (taps3) {
      int64_t lo = c, hi = 0;
      for (int j = 0; j < 3; ++j) {
        int64_t base = (fy * 3 + j) * c;
        int64_t l = k0 > base ? k0 - base : 0, h = k1 - base < c ? k1 - base : c;
        if (l >= h) continue;
        lo = l < lo ? l : lo;
        hi = h > hi ? h : hi;
      }
      if (lo >= hi) continue;
      pa = fy * c + lo, pb = fy * c + hi;
    } else {
      pa = k0 / 3, pb = (k1 - 1) / 3 + 1;
    }
    for (int r = 0; r < nrows; ++r) rank[r] = chunk_rank(w, positions, o0 + r, pa);
    for (int64_t p = pa; p < pb; ++p) {
      for (int r = 0; r < nrows; ++r) {
        /* Branch-free (the mask is random at any density): a dropped chunk reads the next
         * kept chunk's codes (or the stream's padding) and masks them to code 0, i.e. 0.f. */
        uint64_t bit = (uint64_t)((o0 + r) * positions + p);
        uint64_t kept = w->mask[bit / 64] >> (bit % 64) & 1, keep = field & (0 - kept);
        uint64_t at = rank[r] * chunk_bits, word;
        rank[r] += kept;
        memcpy(&word, w->codes + (at >> 3), sizeof word); /* little-endian targets only */
        word >>= at & 7;
        c0[r] = lut[word & keep];
        c1[r] = lut[word >> nb & keep];
        c2[r] = lut[word >> 2 * nb & keep];
      }
      const uint16_t *basis = chunk_basis(w, p);
      vpanel v0 = load_panel(c0), v1 = load_panel(c1), v2 = load_panel(c2);
      for (int j = 0; j < 3; ++j) {
        int64_t k = taps3 ? (fy * 3 + j) * c + p % c : p * 3 + j;
        if (k < k0 || k >= k1) continue;
        /* The scalar decoder's order; the products are exact, so fused or not is the same. */
        vpanel out = (v0 * bf16_to_f32(basis[j]) + v1 * bf16_to_f32(basis[3 + j])) + v2 * bf16_to_f32(basis[6 + j]);
        memcpy(dst + (k - k0) * KILN_PANEL, &out, sizeof out);
      }
    }
  }
}

void kiln_smartdeal_decode_slice(const kiln_smartdeal_t *w, int64_t k0, int64_t kc, float *panels) {
  float lut[256];
  code_table(w, lut);
  for (int64_t p = 0; p < (w->m + KILN_PANEL - 1) / KILN_PANEL; ++p)
    decode_panel(w, lut, k0, kc, p, panels + p * kc * KILN_PANEL);
}

void kiln_smartdeal_decode(const kiln_smartdeal_t *w, float *rows) {
  const int64_t k = w->kh * w->kw * w->c;
  float lut[256];
  code_table(w, lut);
  decode_rows(w, lut, 0, k, rows, 0, w->m);
}

int64_t kiln_conv2d_smartdeal_scratch_bytes(const kiln_smartdeal_t *w) {
  int64_t k = w->kh * w->kw * w->c, kc = k < KILN_F32_KC ? k : KILN_F32_KC;
  return (w->m + KILN_PANEL - 1) / KILN_PANEL * KILN_PANEL * kc * (int64_t)sizeof(float);
}

struct decode_job {
  const kiln_smartdeal_t *w;
  const float *lut;
  int64_t k0, kc;
  float *panels;
};

static void decode_share(void *ctx, int64_t begin, int64_t end) {
  const struct decode_job *job = ctx;
  for (int64_t p = begin; p < end; ++p)
    decode_panel(job->w, job->lut, job->k0, job->kc, p, job->panels + p * job->kc * KILN_PANEL);
}

struct slice_job {
  const struct kiln_f32_conv_job *conv;
  const float *panels;
  int64_t k0, kc;
};

static void slice_share(void *ctx, int64_t begin, int64_t end) {
  const struct slice_job *job = ctx;
  kiln_conv_f32_slice(job->conv, job->panels, job->kc * KILN_PANEL, job->k0, job->kc, begin, end);
}

void kiln_conv2d_nhwc_smartdeal_f32(const float *in, const kiln_smartdeal_t *w, float *scratch, float *out,
                                    const kiln_conv_geometry_t *g, const float *bias, int32_t clamp, float lo,
                                    float hi) {
  const int64_t k = g->kh * g->kw * g->c;
  if (k == 0) return;
  float lut[256];
  code_table(w, lut);
  const struct kiln_f32_conv_job conv = {in, NULL, out, g, bias, clamp != 0, lo, hi};
  const int64_t groups = (g->n * g->oh * g->ow + KILN_F32_MR - 1) / KILN_F32_MR;
  const int64_t panels = (g->m + KILN_PANEL - 1) / KILN_PANEL;
  /* Slice by slice, as the dense kernel runs: rebuild every panel's slice (KC x M floats,
   * the dense kernel's L2 working set), then stream all output rows past it. */
  for (int64_t k0 = 0; k0 < k; k0 += KILN_F32_KC) {
    int64_t kc = k - k0 < KILN_F32_KC ? k - k0 : KILN_F32_KC;
    struct decode_job dj = {w, lut, k0, kc, scratch};
    kiln_parallel_for(panels, decode_share, &dj);
    struct slice_job sj = {&conv, scratch, k0, kc};
    kiln_parallel_for(groups, slice_share, &sj);
  }
}

/* Weight (o, k) straight from the format. */
static float ref_weight(const kiln_smartdeal_t *w, const float *lut, int64_t o, int64_t k) {
  const int64_t positions = kiln_smartdeal_positions(w), c = w->c;
  int64_t p, j;
  if (w->layout == KILN_SMARTDEAL_FLAT) {
    p = k / 3;
    j = k % 3;
  } else {
    int64_t fy = k / (3 * c), rem = k % (3 * c);
    j = rem / c;
    p = fy * c + rem % c;
  }
  if (!chunk_kept(w, positions, o, p)) return 0.f;
  float coef[3];
  chunk_coeffs(w, lut, chunk_rank(w, positions, o, p), coef);
  return chunk_weight(coef, chunk_basis(w, p), (int)j);
}

void kiln_ref_conv2d_nhwc_smartdeal_f32(const float *in, const kiln_smartdeal_t *w, float *out,
                                        const kiln_conv_geometry_t *g, const float *bias, int32_t clamp,
                                        float lo, float hi) {
  float lut[256];
  code_table(w, lut);
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < g->oh; ++y)
      for (int64_t x = 0; x < g->ow; ++x)
        for (int64_t o = 0; o < g->m; ++o) {
          double acc = 0;
          for (int64_t fy = 0; fy < g->kh; ++fy)
            for (int64_t fx = 0; fx < g->kw; ++fx) {
              const float *src = in + b * g->in_sn + (y * g->stride_h + fy * g->dilation_h) * g->in_sh +
                                 (x * g->stride_w + fx * g->dilation_w) * g->in_sw;
              for (int64_t ch = 0; ch < g->c; ++ch)
                acc += (double)src[ch] * ref_weight(w, lut, o, (fy * g->kw + fx) * g->c + ch);
            }
          float *dst = out + ((b * g->oh + y) * g->ow + x) * g->m + o;
          float v = (bias ? bias[o] : *dst) + (float)acc;
          if (clamp) v = v < lo ? lo : v > hi ? hi : v;
          *dst = v;
        }
}
