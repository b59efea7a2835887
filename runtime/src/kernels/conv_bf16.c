/* Kiln runtime: bf16 convolution and matmul kernels (bf16 activations x bf16 weights,
 * f32 accumulation, f32 in and out).
 *
 * The activation view is first rounded to bf16 into a dense scratch buffer
 * [N][IH][IW][C2] (C2 = C rounded up to 2, so every reduction step reads one pair);
 * the weights were rounded and packed at compile time. With AVX-512 BF16 the inner
 * step is vdpbf16ps (two bf16 products added into each f32 lane); elsewhere the same
 * arithmetic in plain C: a bf16 product is exact in f32, so each step is one fused
 * multiply-add, the pair's low element first. */
#include "kiln/kernels.h"
#include "view.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512BF16__) && defined(__AVX512BW__)
#include <immintrin.h>
#define KILN_BF16 1
#endif

#define BP KILN_PANEL_BF16 /* output channels per packed panel */


uint16_t kiln_f32_to_bf16(float x) {
  uint32_t u;
  memcpy(&u, &x, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40); /* NaN stays NaN */
  u += 0x7FFFu + ((u >> 16) & 1u); /* round to nearest, ties to even */
  return (uint16_t)(u >> 16);
}

static inline float bf16_to_f32(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float x;
  memcpy(&x, &u, 4);
  return x;
}

int64_t kiln_conv2d_bf16_scratch_bytes(const kiln_conv_geometry_t *g) {
  int64_t c2 = (g->c + 1) / 2 * 2;
  return g->n * kiln_view_extent(g->oh, g->stride_h, g->kh, g->dilation_h) *
             kiln_view_extent(g->ow, g->stride_w, g->kw, g->dilation_w) * c2 * 2 + 64;
}

void kiln_pack_panels_bf16(const float *filter, uint16_t *packed, int64_t m, int64_t taps, int64_t c) {
  int64_t c2 = (c + 1) / 2 * 2, groups = taps * c2 / 2, panels = (m + BP - 1) / BP;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t gi = 0; gi < groups; ++gi)
      for (int64_t j = 0; j < BP; ++j)
        for (int64_t e = 0; e < 2; ++e) {
          int64_t row = p * BP + j, kk = gi * 2 + e, tap = kk / c2, ch = kk % c2;
          packed[((p * groups + gi) * BP + j) * 2 + e] =
              row < m && ch < c ? kiln_f32_to_bf16(filter[(row * taps + tap) * c + ch]) : 0;
        }
}

struct cvt_job {
  const float *in;
  uint16_t *dst;
  const kiln_conv_geometry_t *g;
  int64_t ih, iw, c2;
};

/* Input rows [begin, end) of the view, rounded to bf16 (zeros for padding). */
static void cvt_rows(void *ctx, int64_t begin, int64_t end) {
  const struct cvt_job *j = ctx;
  const kiln_conv_geometry_t *g = j->g;
  for (int64_t row = begin; row < end; ++row) {
    int64_t b = row / j->ih, y = row % j->ih;
    uint16_t *dst = j->dst + row * j->iw * j->c2;
    for (int64_t x = 0; x < j->iw; ++x, dst += j->c2) {
      const float *src = kiln_view_pixel(j->in, g, b, y, x);
      if (!src) { /* implicit padding */
        memset(dst, 0, sizeof(uint16_t) * (size_t)j->c2);
        continue;
      }
      for (int64_t ch = 0; ch < g->c; ++ch) dst[ch] = kiln_f32_to_bf16(src[ch]);
      for (int64_t ch = g->c; ch < j->c2; ++ch) dst[ch] = 0;
    }
  }
}

struct bf16_job {
  const uint16_t *q, *packed;
  float *out;
  const kiln_conv_geometry_t *g;
  const float *bias;
  int64_t sn, sh, sw, c2;
  int accumulate, clamp;
  float lo, hi;
};

static inline float finish(const struct bf16_job *j, const float *o, int64_t col, float acc) {
  float v = acc + (j->bias ? j->bias[col] : 0.f);
  if (j->accumulate) v += *o;
  if (j->clamp) v = v < j->lo ? j->lo : v > j->hi ? j->hi : v;
  return v;
}

#define MRB 8

static void bf16_rows(void *ctx, int64_t begin, int64_t end) {
  const struct bf16_job *j = ctx;
  const kiln_conv_geometry_t *g = j->g;
  const int64_t oh = g->oh, ow = g->ow, m = g->m, kw = g->kw, taps = g->kh * g->kw;
  const int64_t all_rows = g->n * oh * ow, pairs_per_tap = j->c2 / 2, panels = (m + BP - 1) / BP;
  const int64_t rows_end = end * MRB < all_rows ? end * MRB : all_rows;
  for (int64_t r0 = begin * MRB; r0 < rows_end; r0 += MRB) {
    int nr = rows_end - r0 < MRB ? (int)(rows_end - r0) : MRB;
    const uint16_t *start[MRB];
    for (int i = 0; i < MRB; ++i) {
      int64_t r = r0 + (i < nr ? i : 0), b = r / (oh * ow), rem = r % (oh * ow), y = rem / ow, x = rem % ow;
      start[i] = j->q + b * j->sn + y * g->stride_h * j->sh + x * g->stride_w * j->sw;
    }
    for (int64_t p = 0; p < panels; ++p) {
      const uint16_t *w = j->packed + p * taps * pairs_per_tap * BP * 2;
      float acc[MRB][BP] __attribute__((aligned(64)));
#ifdef KILN_BF16
      __m512 s[MRB][2];
      for (int i = 0; i < MRB; ++i) s[i][0] = s[i][1] = _mm512_setzero_ps();
      for (int64_t t = 0; t < taps; ++t) {
        int64_t off = (t / kw) * g->dilation_h * j->sh + (t % kw) * g->dilation_w * j->sw;
        for (int64_t gi = 0; gi < pairs_per_tap; ++gi, w += BP * 2) {
          __m512bh w0 = (__m512bh)_mm512_loadu_si512(w), w1 = (__m512bh)_mm512_loadu_si512(w + 32);
#pragma GCC unroll 8
          for (int i = 0; i < MRB; ++i) {
            int32_t a;
            memcpy(&a, start[i] + off + gi * 2, 4);
            __m512bh av = (__m512bh)_mm512_set1_epi32(a);
            s[i][0] = _mm512_dpbf16_ps(s[i][0], av, w0);
            s[i][1] = _mm512_dpbf16_ps(s[i][1], av, w1);
          }
        }
      }
#pragma GCC unroll 8
      for (int i = 0; i < MRB; ++i) {
        _mm512_store_ps(acc[i], s[i][0]);
        _mm512_store_ps(acc[i] + 16, s[i][1]);
      }
#else
      for (int i = 0; i < MRB; ++i)
        for (int e = 0; e < BP; ++e) acc[i][e] = 0.f;
      for (int64_t t = 0; t < taps; ++t) {
        int64_t off = (t / kw) * g->dilation_h * j->sh + (t % kw) * g->dilation_w * j->sw;
        for (int64_t gi = 0; gi < pairs_per_tap; ++gi, w += BP * 2)
          for (int i = 0; i < MRB; ++i) {
            const uint16_t *a = start[i] + off + gi * 2;
            float a0 = bf16_to_f32(a[0]), a1 = bf16_to_f32(a[1]);
            for (int e = 0; e < BP; ++e) {
              acc[i][e] = fmaf(a0, bf16_to_f32(w[e * 2]), acc[i][e]);
              acc[i][e] = fmaf(a1, bf16_to_f32(w[e * 2 + 1]), acc[i][e]);
            }
          }
      }
#endif
      int64_t col = p * BP, valid = m - col < BP ? m - col : BP;
      for (int i = 0; i < nr; ++i) {
        float *o = j->out + (r0 + i) * m + col;
        for (int64_t e = 0; e < valid; ++e) o[e] = finish(j, o + e, col + e, acc[i][e]);
      }
    }
  }
}

static void setup(struct bf16_job *j, const kiln_conv_geometry_t *g) {
  j->c2 = (g->c + 1) / 2 * 2;
  int64_t iw = kiln_view_extent(g->ow, g->stride_w, g->kw, g->dilation_w), ih = kiln_view_extent(g->oh, g->stride_h, g->kh, g->dilation_h);
  j->sw = j->c2;
  j->sh = iw * j->c2;
  j->sn = ih * iw * j->c2;
}

static void convert(const float *in, uint16_t *scratch, const kiln_conv_geometry_t *g) {
  struct cvt_job c = {in, scratch, g, kiln_view_extent(g->oh, g->stride_h, g->kh, g->dilation_h),
                      kiln_view_extent(g->ow, g->stride_w, g->kw, g->dilation_w), (g->c + 1) / 2 * 2};
  kiln_parallel_for(g->n * c.ih, cvt_rows, &c);
}

/* The input rounded into `scratch`, and the job that reads it. */
static struct bf16_job prepare(const float *in, uint16_t *scratch, const uint16_t *packed, const float *bias,
                               float *out, const kiln_conv_geometry_t *g, int32_t flags, float lo, float hi) {
  convert(in, scratch, g);
  struct bf16_job j = {scratch, packed, out, g, bias, 0, 0, 0, 0,
                       (flags & KILN_S8_ACCUMULATE) != 0, (flags & KILN_S8_CLAMP) != 0, lo, hi};
  setup(&j, g);
  return j;
}

void kiln_conv2d_nhwc_bf16_packed(const float *in, uint16_t *scratch, const uint16_t *packed, const float *bias,
                                  float *out, const kiln_conv_geometry_t *g, int32_t flags, float lo, float hi) {
  if (g->n * g->oh * g->ow == 0 || g->m == 0) return;
  struct bf16_job j = prepare(in, scratch, packed, bias, out, g, flags, lo, hi);
  int64_t rows = g->n * g->oh * g->ow;
  kiln_parallel_for((rows + MRB - 1) / MRB, bf16_rows, &j);
}

void kiln_ref_conv2d_nhwc_bf16_packed(const float *in, uint16_t *scratch, const uint16_t *packed, const float *bias,
                                      float *out, const kiln_conv_geometry_t *g, int32_t flags, float lo, float hi) {
  if (g->n * g->oh * g->ow == 0 || g->m == 0) return;
  struct bf16_job j = prepare(in, scratch, packed, bias, out, g, flags, lo, hi);
  const int64_t groups = g->kh * g->kw * j.c2 / 2;
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < g->oh; ++y)
      for (int64_t x = 0; x < g->ow; ++x)
        for (int64_t o = 0; o < g->m; ++o) {
          double acc = 0;
          for (int64_t fy = 0; fy < g->kh; ++fy)
            for (int64_t fx = 0; fx < g->kw; ++fx)
              for (int64_t ch = 0; ch < g->c; ++ch) {
                const uint16_t *a = scratch + b * j.sn + (y * g->stride_h + fy * g->dilation_h) * j.sh +
                                    (x * g->stride_w + fx * g->dilation_w) * j.sw + ch;
                int64_t kk = (fy * g->kw + fx) * j.c2 + ch;
                const uint16_t *wv = packed + (((o / BP) * groups + kk / 2) * BP + o % BP) * 2 + kk % 2;
                acc += (double)bf16_to_f32(*a) * bf16_to_f32(*wv);
              }
          float *dst = out + ((b * g->oh + y) * g->ow + x) * g->m + o;
          *dst = finish(&j, dst, o, (float)acc);
        }
}
