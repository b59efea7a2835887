/* Kiln runtime: fp32 convolution and matmul kernels (register-tiled, vector extensions). */
#include "kiln/kernels.h"
#include "conv_f32_slice.h"

#include <string.h>

/* One accumulator row: KILN_PANEL floats, split by the compiler into the target's
 * vector registers (4 x AVX2, 2 x AVX-512, 8 x NEON). */
typedef float vpanel __attribute__((vector_size(KILN_PANEL * sizeof(float))));

#define MR KILN_F32_MR

static inline vpanel load_panel(const float *p) {
  vpanel v;
  memcpy(&v, p, sizeof v);
  return v;
}

#define KC KILN_F32_KC

/* acc[r] = sum over i < kc of a[i][r] * panel[i] (a packed [kc][MR], panel [kc][KILN_PANEL]). */
static inline void tile(const float *a, const float *panel, int64_t kc, vpanel *acc) {
  vpanel s[MR];
  for (int r = 0; r < MR; ++r) s[r] = (vpanel){0};
  for (int64_t i = 0; i < kc; ++i, a += MR, panel += KILN_PANEL) {
    vpanel bv = load_panel(panel);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) s[r] += bv * a[r];
  }
  for (int r = 0; r < MR; ++r) acc[r] = s[r];
}

/* Like tile(), reading the rows in place (no im2col copy): for few output panels the
 * copy would cost more than the arithmetic it feeds. The slice [k0, k0 + kc) is walked
 * segment by segment, a segment being one (kh, kw) tap's run of channels. */
static inline void tile_direct(const float *const *rows, const float *panel, int64_t k0, int64_t kc, int64_t c,
                               int64_t kw, int64_t step_h, int64_t step_w, vpanel *acc) {
  vpanel s[MR];
  for (int r = 0; r < MR; ++r) s[r] = (vpanel){0};
  int64_t seg = k0 / c, ch = k0 % c, left = kc;
  while (left > 0) {
    int64_t fy = seg / kw, fx = seg % kw, run = c - ch < left ? c - ch : left;
    int64_t off = fy * step_h + fx * step_w + ch;
    const float *p[MR];
    for (int r = 0; r < MR; ++r) p[r] = rows[r] + off;
    for (int64_t i = 0; i < run; ++i, panel += KILN_PANEL) {
      vpanel bv = load_panel(panel);
#pragma GCC unroll 8
      for (int r = 0; r < MR; ++r) s[r] += bv * p[r][i];
    }
    left -= run;
    ch = 0;
    ++seg;
  }
  for (int r = 0; r < MR; ++r) acc[r] = s[r];
}

#define conv_job kiln_f32_conv_job

/* Output rows [MR * group_begin, MR * group_end) of the convolution. */
static void conv_rows(void *ctx, int64_t group_begin, int64_t group_end) {
  const struct conv_job *job = ctx;
  const int64_t k = job->g->kh * job->g->kw * job->g->c;
  /* Reduction slices outermost: one slice of every weight panel (KC x M floats) stays
   * in L2 while all output rows stream past it. */
  for (int64_t k0 = 0; k0 < k; k0 += KC)
    kiln_conv_f32_slice(job, job->packed + k0 * KILN_PANEL, k * KILN_PANEL, k0, k - k0 < KC ? k - k0 : KC,
                        group_begin, group_end);
}

void kiln_conv_f32_slice(const struct kiln_f32_conv_job *job, const float *slice, int64_t panel_stride,
                         int64_t k0, int64_t kc, int64_t group_begin, int64_t group_end) {
  const float *in = job->in;
  float *out = job->out;
  const kiln_conv_geometry_t *g = job->g;
  const int64_t c = g->c, m = g->m, kw = g->kw, oh = g->oh, ow = g->ow;
  const int64_t all_rows = g->n * oh * ow;
  const int64_t k = g->kh * kw * c, panels = (m + KILN_PANEL - 1) / KILN_PANEL;
  const int64_t row_begin = group_begin * MR;
  const int64_t rows = group_end * MR < all_rows ? group_end * MR : all_rows;
  const int64_t step_h = g->dilation_h * g->in_sh, step_w = g->dilation_w * g->in_sw;
  float apack[KC * MR] __attribute__((aligned(64)));
  int64_t seg0 = k0 / c, ch0 = k0 % c;
  for (int64_t r0 = row_begin; r0 < rows; r0 += MR) {
    int nr = rows - r0 < MR ? (int)(rows - r0) : MR;
    const float *starts[MR];
    for (int i = 0; i < MR; ++i) {
      int64_t r = r0 + (i < nr ? i : 0), b = r / (oh * ow), rem = r % (oh * ow), y = rem / ow, x = rem % ow;
      starts[i] = in + b * g->in_sn + y * g->stride_h * g->in_sh + x * g->stride_w * g->in_sw;
    }
    int direct = panels <= 4 && c >= 16;
    /* im2col of this slice: apack[i][r] = input of row r at reduction index k0 + i. */
    int64_t fy = seg0 / kw, fx = seg0 % kw, ch = ch0;
    for (int64_t i = 0; i < (direct ? 0 : kc); ++i) {
      int64_t off = fy * step_h + fx * step_w + ch;
      for (int r = 0; r < MR; ++r) apack[i * MR + r] = starts[r][off];
      if (++ch == c) {
        ch = 0;
        if (++fx == kw) { fx = 0; ++fy; }
      }
    }
    for (int64_t p = 0; p < panels; ++p) {
      vpanel acc[MR];
      if (direct)
        tile_direct(starts, slice + p * panel_stride, k0, kc, c, kw, step_h, step_w, acc);
      else
        tile(apack, slice + p * panel_stride, kc, acc);
      int64_t col = p * KILN_PANEL, valid = m - col < KILN_PANEL ? m - col : KILN_PANEL;
      /* The first slice starts from the bias (when fused), the last one clamps. */
      const float *base = k0 == 0 && job->bias ? job->bias + col : NULL;
      int clamp = job->clamp && k0 + kc >= k;
      for (int i = 0; i < nr; ++i) {
        float *o = out + (r0 + i) * m + col;
        if (valid == KILN_PANEL) {
          vpanel cur = load_panel(base ? base : o);
          cur += acc[i];
          if (clamp) {
            float t[KILN_PANEL];
            memcpy(t, &cur, sizeof t);
            for (int j = 0; j < KILN_PANEL; ++j) t[j] = t[j] < job->lo ? job->lo : t[j] > job->hi ? job->hi : t[j];
            memcpy(o, t, sizeof t);
          } else {
            memcpy(o, &cur, sizeof cur);
          }
        } else {
          float tmp[KILN_PANEL];
          memcpy(tmp, &acc[i], sizeof tmp);
          for (int64_t j = 0; j < valid; ++j) {
            float v = (base ? base[j] : o[j]) + tmp[j];
            if (clamp) v = v < job->lo ? job->lo : v > job->hi ? job->hi : v;
            o[j] = v;
          }
        }
      }
    }
  }
}

void kiln_conv2d_nhwc_f32_packed(const float *in, const float *packed, float *out,
                                 const kiln_conv_geometry_t *g) {
  struct conv_job job = {in, packed, out, g, NULL, 0, 0.f, 0.f};
  int64_t rows = g->n * g->oh * g->ow;
  kiln_parallel_for((rows + MR - 1) / MR, conv_rows, &job);
}

void kiln_conv2d_nhwc_f32_packed_fused(const float *in, const float *packed, float *out,
                                       const kiln_conv_geometry_t *g, const float *bias, int32_t clamp,
                                       float lo, float hi) {
  struct conv_job job = {in, packed, out, g, bias, clamp != 0, lo, hi};
  int64_t rows = g->n * g->oh * g->ow;
  if (g->kh * g->kw * g->c == 0) return;
  kiln_parallel_for((rows + MR - 1) / MR, conv_rows, &job);
}

struct dwconv_job {
  const float *in, *filter;
  float *out;
  const kiln_conv_geometry_t *g;
  const float *bias; /* NULL: accumulate into out; else out = bias + conv */
  int clamp;
  float lo, hi;
};

typedef float v16 __attribute__((vector_size(16 * sizeof(float))));

static inline v16 load16(const float *p) {
  v16 v;
  memcpy(&v, p, sizeof v);
  return v;
}

/* Output rows (batch x output row) [begin, end) of the depthwise convolution: per output
 * pixel, 16 channels at a time with the sum over the taps kept in a register. */
static void dwconv_rows(void *ctx, int64_t begin, int64_t end) {
  const struct dwconv_job *job = ctx;
  const kiln_conv_geometry_t *g = job->g;
  const int64_t c = g->c, kh = g->kh, kw = g->kw, oh = g->oh, ow = g->ow;
  /* With implicit padding, taps that fall outside the image are skipped (they read 0). */
  const int padded = g->in_h > 0;
  const int64_t ph = padded ? g->pad_h : 0, pw = padded ? g->pad_w : 0;
  const float lo = job->lo, hi = job->hi;
  const float *taps[64];
  const float *filters[64];
  for (int64_t row = begin; row < end; ++row) {
    int64_t b = row / oh, y = row % oh;
    const float *image = job->in + b * g->in_sn;
    for (int64_t x = 0; x < ow; ++x) {
      float *restrict o = job->out + ((b * oh + y) * ow + x) * c;
      int64_t y0 = y * g->stride_h - ph, x0 = x * g->stride_w - pw;
      /* The taps inside the image (at most 64 are kept; larger kernels take the
       * one-tap-at-a-time path below). */
      int nt = 0;
      for (int64_t fy = 0; fy < kh && nt >= 0; ++fy)
        for (int64_t fx = 0; fx < kw; ++fx) {
          int64_t sy = y0 + fy * g->dilation_h, sx = x0 + fx * g->dilation_w;
          if (padded && (sy < 0 || sy >= g->in_h || sx < 0 || sx >= g->in_w)) continue;
          if (nt == 64) {
            nt = -1;
            break;
          }
          taps[nt] = image + sy * g->in_sh + sx * g->in_sw;
          filters[nt++] = job->filter + (fy * kw + fx) * c;
        }
      if (nt < 0) { /* more than 64 taps: accumulate in memory, tap by tap */
        if (job->bias) memcpy(o, job->bias, sizeof(float) * (size_t)c);
        for (int64_t fy = 0; fy < kh; ++fy)
          for (int64_t fx = 0; fx < kw; ++fx) {
            int64_t sy = y0 + fy * g->dilation_h, sx = x0 + fx * g->dilation_w;
            if (padded && (sy < 0 || sy >= g->in_h || sx < 0 || sx >= g->in_w)) continue;
            const float *restrict i = image + sy * g->in_sh + sx * g->in_sw;
            const float *restrict f = job->filter + (fy * kw + fx) * c;
            for (int64_t ch = 0; ch < c; ++ch) o[ch] += i[ch] * f[ch];
          }
        if (job->clamp)
          for (int64_t ch = 0; ch < c; ++ch) o[ch] = o[ch] < lo ? lo : o[ch] > hi ? hi : o[ch];
        continue;
      }
      int64_t ch = 0;
      for (; ch + 16 <= c; ch += 16) {
        v16 acc = load16(job->bias ? job->bias + ch : o + ch);
        for (int t = 0; t < nt; ++t) acc += load16(taps[t] + ch) * load16(filters[t] + ch);
        if (job->clamp) {
          float t[16];
          memcpy(t, &acc, sizeof t);
          for (int k = 0; k < 16; ++k) t[k] = t[k] < lo ? lo : t[k] > hi ? hi : t[k];
          memcpy(o + ch, t, sizeof t);
        } else {
          memcpy(o + ch, &acc, sizeof acc);
        }
      }
      for (; ch < c; ++ch) {
        float acc = job->bias ? job->bias[ch] : o[ch];
        for (int t = 0; t < nt; ++t) acc += taps[t][ch] * filters[t][ch];
        if (job->clamp) acc = acc < lo ? lo : acc > hi ? hi : acc;
        o[ch] = acc;
      }
    }
  }
}

void kiln_dwconv2d_nhwc_f32(const float *in, const float *filter, float *out, const kiln_conv_geometry_t *g) {
  struct dwconv_job job = {in, filter, out, g, NULL, 0, 0.f, 0.f};
  kiln_parallel_for(g->n * g->oh, dwconv_rows, &job);
}

void kiln_dwconv2d_nhwc_f32_fused(const float *in, const float *filter, float *out, const kiln_conv_geometry_t *g,
                                  const float *bias, int32_t clamp, float lo, float hi) {
  struct dwconv_job job = {in, filter, out, g, bias, clamp != 0, lo, hi};
  kiln_parallel_for(g->n * g->oh, dwconv_rows, &job);
}

struct matmul_job {
  const float *a, *b;
  float *c;
  int64_t m, n, k;
};

/* Row groups [begin, end) over all batches (a group never spans two batches). */
static void matmul_rows(void *ctx, int64_t begin, int64_t end) {
  const struct matmul_job *job = ctx;
  const int64_t m = job->m, n = job->n, k = job->k, groups = (m + MR - 1) / MR;
  const int64_t full = n / KILN_PANEL * KILN_PANEL;
  for (int64_t gi = begin; gi < end; ++gi) {
    int64_t batch = gi / groups, r0 = gi % groups * MR;
    int nr = m - r0 < MR ? (int)(m - r0) : MR;
    const float *a = job->a + (batch * m + r0) * k, *b = job->b + batch * k * n;
    float *c = job->c + (batch * m + r0) * n;
    for (int64_t col = 0; col < full; col += KILN_PANEL) {
      vpanel s[MR];
      for (int r = 0; r < MR; ++r) s[r] = (vpanel){0};
      const float *bp = b + col;
      for (int64_t i = 0; i < k; ++i, bp += n) {
        vpanel bv = load_panel(bp);
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) s[r] += bv * a[(r < nr ? r : 0) * k + i];
      }
      for (int r = 0; r < nr; ++r) {
        vpanel cur = load_panel(c + r * n + col);
        cur += s[r];
        memcpy(c + r * n + col, &cur, sizeof cur);
      }
    }
    for (int r = 0; r < nr; ++r) /* the columns past the last full panel */
      for (int64_t col = full; col < n; ++col) {
        float acc = 0;
        for (int64_t i = 0; i < k; ++i) acc += a[r * k + i] * b[i * n + col];
        c[r * n + col] += acc;
      }
  }
}

void kiln_batch_matmul_f32(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n,
                           int64_t k) {
  struct matmul_job job = {a, b, c, m, n, k};
  kiln_parallel_for(batch * ((m + MR - 1) / MR), matmul_rows, &job);
}

void kiln_ref_batch_matmul_f32(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n,
                               int64_t k) {
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t l = 0; l < k; ++l) acc += (double)a[(bi * m + i) * k + l] * b[(bi * k + l) * n + j];
        c[(bi * m + i) * n + j] += (float)acc;
      }
}

void kiln_pack_panels_f32(const float *filter, float *packed, int64_t m, int64_t k) {
  int64_t panels = (m + KILN_PANEL - 1) / KILN_PANEL;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < KILN_PANEL; ++j) {
        int64_t row = p * KILN_PANEL + j;
        packed[(p * k + i) * KILN_PANEL + j] = row < m ? filter[row * k + i] : 0.0f;
      }
}

static const float *ref_input(const float *in, const kiln_conv_geometry_t *g, int64_t b, int64_t y, int64_t x,
                              int64_t fy, int64_t fx) {
  return in + b * g->in_sn + (y * g->stride_h + fy * g->dilation_h) * g->in_sh +
         (x * g->stride_w + fx * g->dilation_w) * g->in_sw;
}

void kiln_ref_conv2d_nhwc_f32_packed(const float *in, const float *packed, float *out,
                                     const kiln_conv_geometry_t *g) {
  int64_t k = g->kh * g->kw * g->c;
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < g->oh; ++y)
      for (int64_t x = 0; x < g->ow; ++x)
        for (int64_t o = 0; o < g->m; ++o) {
          const float *panel = packed + (o / KILN_PANEL) * k * KILN_PANEL + o % KILN_PANEL;
          double acc = 0;
          for (int64_t fy = 0; fy < g->kh; ++fy)
            for (int64_t fx = 0; fx < g->kw; ++fx)
              for (int64_t ch = 0; ch < g->c; ++ch)
                acc += (double)ref_input(in, g, b, y, x, fy, fx)[ch] *
                       panel[((fy * g->kw + fx) * g->c + ch) * KILN_PANEL];
          out[((b * g->oh + y) * g->ow + x) * g->m + o] += (float)acc;
        }
}

void kiln_ref_dwconv2d_nhwc_f32(const float *in, const float *filter, float *out, const kiln_conv_geometry_t *g) {
  const int padded = g->in_h > 0;
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < g->oh; ++y)
      for (int64_t x = 0; x < g->ow; ++x)
        for (int64_t ch = 0; ch < g->c; ++ch) {
          double acc = 0;
          for (int64_t fy = 0; fy < g->kh; ++fy)
            for (int64_t fx = 0; fx < g->kw; ++fx) {
              if (padded) { /* the padded image's (y', x') is the source's (y' - pad_h, x' - pad_w) */
                int64_t sy = y * g->stride_h + fy * g->dilation_h - g->pad_h;
                int64_t sx = x * g->stride_w + fx * g->dilation_w - g->pad_w;
                if (sy >= 0 && sy < g->in_h && sx >= 0 && sx < g->in_w)
                  acc += (double)in[b * g->in_sn + sy * g->in_sh + sx * g->in_sw + ch] *
                         filter[(fy * g->kw + fx) * g->c + ch];
                continue;
              }
              acc += (double)ref_input(in, g, b, y, x, fy, fx)[ch] * filter[(fy * g->kw + fx) * g->c + ch];
            }
          out[((b * g->oh + y) * g->ow + x) * g->c + ch] += (float)acc;
        }
}
