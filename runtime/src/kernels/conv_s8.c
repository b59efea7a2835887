/* Kiln runtime: int8 convolution and matmul kernels (u8 activations x s8 weights,
 * int32 accumulation, requantisation to f32 fused into the epilogue).
 *
 * The activation view is first quantised into a dense scratch buffer [N][IH][IW][C4]
 * (C4 = C rounded up to 4, so every reduction step reads 4 consecutive bytes); the
 * weights were quantised and packed at compile time. With AVX-512 VNNI the inner
 * step is vpdpbusd (4 u8 x s8 products summed into each int32 lane); on aarch64 with
 * the dot-product extension it is SDOT; elsewhere plain C that the compiler vectorises. Both paths and the reference give identical bits:
 * the integer sums are exact and the epilogue is one fused multiply-add per value. */
#include "kiln/kernels.h"
#include "view.h"

#include <math.h>
#include <string.h>

#if defined(__AVX512VNNI__) && defined(__AVX512BW__)
#include <immintrin.h>
#define KILN_VNNI 1
#elif defined(__aarch64__) && defined(__ARM_FEATURE_DOTPROD)
#include <arm_neon.h>
#define KILN_SDOT 1
#endif

#define QP KILN_PANEL_S8 /* output channels per packed panel */


int64_t kiln_conv2d_u8s8_scratch_bytes(const kiln_conv_geometry_t *g) {
  int64_t c4 = (g->c + 3) / 4 * 4;
  return g->n * kiln_view_extent(g->oh, g->stride_h, g->kh, g->dilation_h) * kiln_view_extent(g->ow, g->stride_w, g->kw, g->dilation_w) *
             c4 + 64;
}

static inline uint8_t quantize_one(float x, float inv_scale, int32_t zp) {
  float q = rintf(x * inv_scale) + (float)zp;
  q = q < 0.f ? 0.f : q > 255.f ? 255.f : q;
  return (uint8_t)q;
}

struct quant_job {
  const float *in;
  uint8_t *dst;
  const kiln_conv_geometry_t *g;
  int64_t ih, iw, c4;
  float inv_scale;
  int32_t zp;
};

/* Input rows (batch x row) [begin, end) of the view into the dense scratch buffer. */
static void quant_rows(void *ctx, int64_t begin, int64_t end) {
  const struct quant_job *j = ctx;
  const kiln_conv_geometry_t *g = j->g;
  for (int64_t row = begin; row < end; ++row) {
    int64_t b = row / j->ih, y = row % j->ih;
    uint8_t *dst = j->dst + row * j->iw * j->c4;
    for (int64_t x = 0; x < j->iw; ++x, dst += j->c4) {
      const float *src = kiln_view_pixel(j->in, g, b, y, x);
      if (!src) { /* implicit padding: zero is the zero point */
        memset(dst, j->zp, (size_t)j->c4);
        continue;
      }
      int64_t ch = 0;
#ifdef KILN_VNNI
      /* 16 at a time, the same arithmetic: rint (to nearest even), + zero point, clamp. */
      const __m512 inv = _mm512_set1_ps(j->inv_scale), zp = _mm512_set1_ps((float)j->zp);
      const __m512 lo = _mm512_setzero_ps(), hi = _mm512_set1_ps(255.f);
      for (; ch + 16 <= g->c; ch += 16) {
        __m512 v = _mm512_roundscale_ps(_mm512_mul_ps(_mm512_loadu_ps(src + ch), inv),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        v = _mm512_min_ps(_mm512_max_ps(_mm512_add_ps(v, zp), lo), hi);
        _mm_storeu_si128((__m128i *)(dst + ch), _mm512_cvtepi32_epi8(_mm512_cvtps_epi32(v)));
      }
#endif
      for (; ch < g->c; ++ch) dst[ch] = quantize_one(src[ch], j->inv_scale, j->zp);
      for (int64_t ch = g->c; ch < j->c4; ++ch) dst[ch] = (uint8_t)j->zp;
    }
  }
}

void kiln_quantize_view_u8(const float *in, uint8_t *dst, const kiln_conv_geometry_t *g, float inv_scale,
                           int32_t zp) {
  struct quant_job j = {in, dst, g, kiln_view_extent(g->oh, g->stride_h, g->kh, g->dilation_h),
                        kiln_view_extent(g->ow, g->stride_w, g->kw, g->dilation_w), (g->c + 3) / 4 * 4, inv_scale, zp};
  kiln_parallel_for(g->n * j.ih, quant_rows, &j);
}

void kiln_pack_panels_s8(const int8_t *filter, int8_t *packed, int64_t m, int64_t taps, int64_t c) {
  int64_t c4 = (c + 3) / 4 * 4, groups = taps * c4 / 4, panels = (m + QP - 1) / QP;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t gi = 0; gi < groups; ++gi)
      for (int64_t j = 0; j < QP; ++j)
        for (int64_t e = 0; e < 4; ++e) {
          int64_t row = p * QP + j, kk = gi * 4 + e, tap = kk / c4, ch = kk % c4;
          packed[((p * groups + gi) * QP + j) * 4 + e] =
              row < m && ch < c ? filter[(row * taps + tap) * c + ch] : (int8_t)0;
        }
}

/* Weight b (0..127) of one int4 reduction step: low nibbles hold 0..63, high 64..127. */
static inline int8_t s4_at(const int8_t *group, int b) {
  uint8_t byte = (uint8_t)group[b & 63];
  int v = b < 64 ? (byte & 0x0F) : (byte >> 4);
  return (int8_t)((v ^ 8) - 8);
}

struct s8_job {
  const uint8_t *q; /* dense [N][IH][IW][C4] */
  const int8_t *packed; /* s8 panels, or s4 panels (two weights per byte) when int4 */
  float *out;
  const kiln_conv_geometry_t *g;
  const float *mult, *offset;
  int64_t sn, sh, sw, c4;
  int accumulate, clamp;
  float lo, hi;
};

/* out = offset + mult * acc (one rounding), plus the old value when accumulating, then clamped. */
static inline float finish(const struct s8_job *j, float *o, int64_t col, int32_t acc) {
  float v = fmaf(j->mult[col], (float)acc, j->offset[col]);
  if (j->accumulate) v += *o;
  if (j->clamp) v = v < j->lo ? j->lo : v > j->hi ? j->hi : v;
  return v;
}

#define MR8 8

/* Output rows [MR8 * begin, MR8 * end): every output channel of those rows. With int4,
 * each reduction step's 128 weights come as 64 bytes: low nibbles lanes 0-15, high
 * nibbles lanes 16-31, sign-extended in registers. */
static inline __attribute__((always_inline)) void rows_impl(const struct s8_job *j, int64_t begin, int64_t end,
                                                            const int int4) {
  const kiln_conv_geometry_t *g = j->g;
  const int64_t oh = g->oh, ow = g->ow, m = g->m, kw = g->kw, taps = g->kh * g->kw;
  const int64_t all_rows = g->n * oh * ow, groups_per_tap = j->c4 / 4, panels = (m + QP - 1) / QP;
  const int64_t rows_end = end * MR8 < all_rows ? end * MR8 : all_rows;
  for (int64_t r0 = begin * MR8; r0 < rows_end; r0 += MR8) {
    int nr = rows_end - r0 < MR8 ? (int)(rows_end - r0) : MR8;
    const uint8_t *start[MR8];
    for (int i = 0; i < MR8; ++i) {
      int64_t r = r0 + (i < nr ? i : 0), b = r / (oh * ow), rem = r % (oh * ow), y = rem / ow, x = rem % ow;
      start[i] = j->q + b * j->sn + y * g->stride_h * j->sh + x * g->stride_w * j->sw;
    }
    for (int64_t p = 0; p < panels; ++p) {
      const int64_t group_bytes = int4 ? QP * 2 : QP * 4;
      const int8_t *w = j->packed + p * taps * groups_per_tap * group_bytes;
      int32_t acc[MR8][QP] __attribute__((aligned(64)));
#ifdef KILN_VNNI
      __m512i s[MR8][2];
      for (int i = 0; i < MR8; ++i) s[i][0] = s[i][1] = _mm512_setzero_si512();
      for (int64_t t = 0; t < taps; ++t) {
        int64_t off = (t / kw) * g->dilation_h * j->sh + (t % kw) * g->dilation_w * j->sw;
        for (int64_t gi = 0; gi < groups_per_tap; ++gi, w += group_bytes) {
          __m512i w0, w1;
          if (int4) {
            const __m512i nib = _mm512_set1_epi8(0x0F), eight = _mm512_set1_epi8(8);
            __m512i raw = _mm512_loadu_si512(w);
            w0 = _mm512_sub_epi8(_mm512_xor_si512(_mm512_and_si512(raw, nib), eight), eight);
            w1 = _mm512_sub_epi8(_mm512_xor_si512(_mm512_and_si512(_mm512_srli_epi16(raw, 4), nib), eight), eight);
          } else {
            w0 = _mm512_loadu_si512(w);
            w1 = _mm512_loadu_si512(w + 64);
          }
#pragma GCC unroll 8
          for (int i = 0; i < MR8; ++i) {
            int32_t a;
            memcpy(&a, start[i] + off + gi * 4, 4);
            __m512i av = _mm512_set1_epi32(a);
            s[i][0] = _mm512_dpbusd_epi32(s[i][0], av, w0);
            s[i][1] = _mm512_dpbusd_epi32(s[i][1], av, w1);
          }
        }
      }
      /* All rows, not just the nr valid ones: a store indexed by a run-time count would
       * keep the accumulators in memory instead of registers. */
#pragma GCC unroll 8
      for (int i = 0; i < MR8; ++i) {
        _mm512_store_si512(acc[i], s[i][0]);
        _mm512_store_si512(acc[i] + 16, s[i][1]);
      }
#elif defined(KILN_SDOT)
      /* SDOT multiplies signed bytes: the activations go in as a - 128 (a XOR 0x80) and
       * 128 x the sum of the weights (an SDOT against ones) is added back. Two rows at a
       * time: 16 accumulators of 4 channels, the weights' sums in 8 more. */
      const int8_t *w_panel = w;
      int32x4_t sum[8];
      for (int q = 0; q < 8; ++q) sum[q] = vdupq_n_s32(0);
      const int8x16_t ones = vdupq_n_s8(1);
      for (int pair = 0; pair < MR8; pair += 2) {
        int32x4_t s0[8], s1[8];
        for (int q = 0; q < 8; ++q) s0[q] = s1[q] = vdupq_n_s32(0);
        w = w_panel;
        for (int64_t t = 0; t < taps; ++t) {
          int64_t off = (t / kw) * g->dilation_h * j->sh + (t % kw) * g->dilation_w * j->sw;
          for (int64_t gi = 0; gi < groups_per_tap; ++gi, w += group_bytes) {
            int8x16_t wq[8];
            if (int4) {
              const uint8x16_t nib = vdupq_n_u8(0x0F), eight = vdupq_n_u8(8);
              for (int q = 0; q < 4; ++q) {
                uint8x16_t raw = vld1q_u8((const uint8_t *)w + 16 * q);
                wq[q] = vsubq_s8(vreinterpretq_s8_u8(veorq_u8(vandq_u8(raw, nib), eight)), vreinterpretq_s8_u8(eight));
                wq[q + 4] = vsubq_s8(vreinterpretq_s8_u8(veorq_u8(vshrq_n_u8(raw, 4), eight)), vreinterpretq_s8_u8(eight));
              }
            } else {
              for (int q = 0; q < 8; ++q) wq[q] = vld1q_s8(w + 16 * q);
            }
            uint32_t a0, a1;
            memcpy(&a0, start[pair] + off + gi * 4, 4);
            memcpy(&a1, start[pair + 1] + off + gi * 4, 4);
            const int8x16_t flip = vdupq_n_s8((int8_t)0x80);
            int8x16_t v0 = veorq_s8(vreinterpretq_s8_u32(vdupq_n_u32(a0)), flip);
            int8x16_t v1 = veorq_s8(vreinterpretq_s8_u32(vdupq_n_u32(a1)), flip);
            for (int q = 0; q < 8; ++q) {
              s0[q] = vdotq_s32(s0[q], wq[q], v0);
              s1[q] = vdotq_s32(s1[q], wq[q], v1);
              if (pair == 0) sum[q] = vdotq_s32(sum[q], wq[q], ones);
            }
          }
        }
        for (int q = 0; q < 8; ++q) {
          int32x4_t back = vshlq_n_s32(sum[q], 7); /* 128 x sum(w) */
          vst1q_s32(acc[pair] + 4 * q, vaddq_s32(s0[q], back));
          vst1q_s32(acc[pair + 1] + 4 * q, vaddq_s32(s1[q], back));
        }
      }
#else
      for (int i = 0; i < MR8; ++i)
        for (int e = 0; e < QP; ++e) acc[i][e] = 0;
      for (int64_t t = 0; t < taps; ++t) {
        int64_t off = (t / kw) * g->dilation_h * j->sh + (t % kw) * g->dilation_w * j->sw;
        for (int64_t gi = 0; gi < groups_per_tap; ++gi, w += group_bytes) {
          int8_t wg[QP * 4];
          for (int b = 0; b < QP * 4; ++b) wg[b] = int4 ? s4_at(w, b) : w[b];
          for (int i = 0; i < MR8; ++i) {
            const uint8_t *a = start[i] + off + gi * 4;
            for (int e = 0; e < QP; ++e)
              acc[i][e] += (int32_t)a[0] * wg[e * 4] + (int32_t)a[1] * wg[e * 4 + 1] +
                           (int32_t)a[2] * wg[e * 4 + 2] + (int32_t)a[3] * wg[e * 4 + 3];
          }
        }
      }
#endif
      int64_t col = p * QP, valid = m - col < QP ? m - col : QP;
#ifdef KILN_VNNI
      /* The epilogue 16 lanes at a time: the same fma, add and clamp as finish(). */
      for (int half = 0; half < 2 && half * 16 < valid; ++half) {
        int64_t c0 = col + half * 16, n = valid - half * 16 < 16 ? valid - half * 16 : 16;
        __mmask16 mask = (__mmask16)(n == 16 ? 0xFFFF : (1u << n) - 1);
        __m512 mult = _mm512_maskz_loadu_ps(mask, j->mult + c0), offset = _mm512_maskz_loadu_ps(mask, j->offset + c0);
        __m512 lo = _mm512_set1_ps(j->lo), hi = _mm512_set1_ps(j->hi);
        for (int i = 0; i < nr; ++i) {
          float *o = j->out + (r0 + i) * m + c0;
          __m512 v = _mm512_fmadd_ps(mult, _mm512_cvtepi32_ps(_mm512_load_si512(acc[i] + half * 16)), offset);
          if (j->accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, o));
          if (j->clamp) v = _mm512_min_ps(hi, _mm512_max_ps(lo, v)); /* operand order as in finish() for -0 and NaN */
          _mm512_mask_storeu_ps(o, mask, v);
        }
      }
#else
      for (int i = 0; i < nr; ++i) {
        float *o = j->out + (r0 + i) * m + col;
        for (int64_t e = 0; e < valid; ++e) o[e] = finish(j, o + e, col + e, acc[i][e]);
      }
#endif
    }
  }
}

static void s8_rows(void *ctx, int64_t begin, int64_t end) { rows_impl(ctx, begin, end, 0); }
static void s4_rows(void *ctx, int64_t begin, int64_t end) { rows_impl(ctx, begin, end, 1); }

static void s8_setup(struct s8_job *j, const kiln_conv_geometry_t *g) {
  j->c4 = (g->c + 3) / 4 * 4;
  int64_t iw = kiln_view_extent(g->ow, g->stride_w, g->kw, g->dilation_w), ih = kiln_view_extent(g->oh, g->stride_h, g->kh, g->dilation_h);
  j->sw = j->c4;
  j->sh = iw * j->c4;
  j->sn = ih * iw * j->c4;
}

void kiln_conv2d_nhwc_u8s8_packed(const float *in, uint8_t *scratch, const int8_t *packed, const float *requant,
                                  float *out, const kiln_conv_geometry_t *g, float inv_scale, int32_t zero_point,
                                  int32_t flags, float lo, float hi) {
  if (g->n * g->oh * g->ow == 0 || g->m == 0) return;
  kiln_quantize_view_u8(in, scratch, g, inv_scale, zero_point);
  struct s8_job j = {scratch, packed, out, g, requant, requant + g->m, 0, 0, 0, 0,
                     (flags & KILN_S8_ACCUMULATE) != 0, (flags & KILN_S8_CLAMP) != 0, lo, hi};
  s8_setup(&j, g);
  int64_t rows = g->n * g->oh * g->ow;
  kiln_parallel_for((rows + MR8 - 1) / MR8, (flags & KILN_S8_INT4) ? s4_rows : s8_rows, &j);
}

void kiln_ref_conv2d_nhwc_u8s8_packed(const float *in, uint8_t *scratch, const int8_t *packed,
                                      const float *requant, float *out, const kiln_conv_geometry_t *g,
                                      float inv_scale, int32_t zero_point, int32_t flags, float lo, float hi) {
  if (g->n * g->oh * g->ow == 0 || g->m == 0) return;
  kiln_quantize_view_u8(in, scratch, g, inv_scale, zero_point);
  struct s8_job j = {scratch, packed, out, g, requant, requant + g->m, 0, 0, 0, 0,
                     (flags & KILN_S8_ACCUMULATE) != 0, (flags & KILN_S8_CLAMP) != 0, lo, hi};
  s8_setup(&j, g);
  const int64_t taps = g->kh * g->kw, groups = taps * j.c4 / 4;
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < g->oh; ++y)
      for (int64_t x = 0; x < g->ow; ++x)
        for (int64_t o = 0; o < g->m; ++o) {
          const int int4 = (flags & KILN_S8_INT4) != 0;
          const int8_t *w = packed + (o / QP) * groups * QP * (int4 ? 2 : 4);
          int32_t acc = 0;
          for (int64_t fy = 0; fy < g->kh; ++fy)
            for (int64_t fx = 0; fx < g->kw; ++fx)
              for (int64_t ch = 0; ch < g->c; ++ch) {
                const uint8_t *a = scratch + b * j.sn + (y * g->stride_h + fy * g->dilation_h) * j.sh +
                                   (x * g->stride_w + fx * g->dilation_w) * j.sw + ch;
                int64_t kk = (fy * g->kw + fx) * j.c4 + ch;
                const int8_t *group = w + (kk / 4) * QP * (int4 ? 2 : 4);
                int b = (int)((o % QP) * 4 + kk % 4);
                acc += (int32_t)*a * (int4 ? s4_at(group, b) : group[b]);
              }
          float *dst = out + ((b * g->oh + y) * g->ow + x) * g->m + o;
          *dst = finish(&j, dst, o, acc);
        }
}

void kiln_pack_panels_s4(const int8_t *filter, uint8_t *packed, int64_t m, int64_t taps, int64_t c) {
  int64_t c4 = (c + 3) / 4 * 4, groups = taps * c4 / 4, panels = (m + QP - 1) / QP;
  for (int64_t p = 0; p < panels; ++p)
    for (int64_t gi = 0; gi < groups; ++gi)
      for (int64_t b = 0; b < QP * 4; ++b) {
        int64_t j = b / 4, e = b % 4, row = p * QP + j, kk = gi * 4 + e, tap = kk / c4, ch = kk % c4;
        int v = row < m && ch < c ? filter[(row * taps + tap) * c + ch] : 0;
        uint8_t *byte = packed + (p * groups + gi) * QP * 2 + (b & 63);
        if (b < 64)
          *byte = (uint8_t)(v & 0x0F);
        else
          *byte = (uint8_t)(*byte | ((v & 0x0F) << 4));
      }
}
