/* Kiln runtime: compute kernels that compiled models call.
 *
 * Every kernel accumulates into its output (the compiled code initialises the output,
 * e.g. with the bias), works on dense row-major buffers, allocates nothing, and is
 * plain C with vector extensions so one source serves x86-64 and aarch64. Shapes are
 * validated by the compiler, not here: these are called from generated code only. */
#ifndef KILN_KERNELS_H
#define KILN_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Width of a packed weight panel (floats). Weights are packed at compile time as
 * panels[ceil(M / KILN_PANEL)][K][KILN_PANEL], K = KH*KW*C in (kh, kw, c) order,
 * zero-filled past M. */
#define KILN_PANEL 32

/* Where a convolution reads: the input's element strides for batch, row and column
 * (channels are contiguous), so a view into a larger (padded or cropped) buffer works. */
typedef struct kiln_conv_geometry_t {
  int64_t n, c, m;            /* batch, input channels, output channels */
  int64_t kh, kw, oh, ow;     /* kernel and output extents */
  int64_t stride_h, stride_w, dilation_h, dilation_w;
  int64_t in_sn, in_sh, in_sw; /* input strides in elements */
  /* Implicit zero padding (in_h > 0): the input points at an unpadded in_h x in_w image
   * and the convolution reads it as if pad_h rows and pad_w columns of zeros preceded it
   * (and as many as needed followed it). in_h == 0: the input view holds every row and
   * column the convolution reads. Only the depthwise and int8 kernels take padding. */
  int64_t pad_h, pad_w, in_h, in_w;
} kiln_conv_geometry_t;

/* out[N,OH,OW,M] += conv(in, packed weights), no padding (the compiled code pads the
 * input). A matmul [B,M,K] x [K,N] is the case OH=M, OW=1, C=K, KH=KW=1. */
void kiln_conv2d_nhwc_f32_packed(const float *in, const float *packed, float *out,
                                 const kiln_conv_geometry_t *g);

/* The same with its neighbours fused: out = bias[M] + conv (instead of accumulating),
 * then, when `clamp` is non-zero, out = min(max(out, lo), hi) (ReLU, ReLU6, clip).
 * `bias` may be NULL (accumulate as above). */
void kiln_conv2d_nhwc_f32_packed_fused(const float *in, const float *packed, float *out,
                                       const kiln_conv_geometry_t *g, const float *bias, int32_t clamp,
                                       float lo, float hi);

/* out[N,OH,OW,C] += depthwise conv(in, filter[KH,KW,C]) (channel multiplier 1; m == c). */
void kiln_dwconv2d_nhwc_f32(const float *in, const float *filter, float *out, const kiln_conv_geometry_t *g);
/* The same with its neighbours fused: out = bias[C] + depthwise conv (instead of
 * accumulating; `bias` may be NULL to accumulate), then clamped to [lo, hi] when
 * `clamp` is non-zero. */
void kiln_dwconv2d_nhwc_f32_fused(const float *in, const float *filter, float *out, const kiln_conv_geometry_t *g,
                                  const float *bias, int32_t clamp, float lo, float hi);

/* c[B,M,N] += a[B,M,K] x b[B,K,N], all dense row-major, b not packed (an activation,
 * e.g. attention scores x values). */
void kiln_batch_matmul_f32(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n,
                           int64_t k);
void kiln_ref_batch_matmul_f32(const float *a, const float *b, float *c, int64_t batch, int64_t m, int64_t n,
                               int64_t k);

/* ---- N:M sparse weights (fp32): row o of the K = KH*KW*C reduction keeps n of every m
 * consecutive weights (m <= 16). values[o][G*n] holds the kept weights and
 * indices[o][G*n] their positions inside their group (increasing), G = ceil(K / m);
 * positions at or past K (a padded last group) carry zeros. ----
 *
 * The kernel reads them packed at compile time by kiln_pack_nm_f32: per panel of
 * KILN_PANEL_NM output channels, per group and slot, the panel's weights (floats) and
 * positions (bytes); `packed` holds ceil(M / KILN_PANEL_NM) * G * n * KILN_PANEL_NM floats
 * and `positions` as many bytes.
 *
 * out[N,OH,OW,M] = bias + conv (bias may be NULL: 0), or out + conv with
 * KILN_S8_ACCUMULATE; clamped to [lo, hi] with KILN_S8_CLAMP. Takes implicit padding.
 * `scratch` holds kiln_conv2d_nm_scratch_bytes(g, m) bytes, 64-byte aligned. */
#define KILN_PANEL_NM 16
void kiln_pack_nm_f32(const float *values, const uint8_t *indices, int64_t rows, int64_t k, int32_t n, int32_t m,
                      float *packed, uint8_t *positions);
void kiln_conv2d_nhwc_f32_nm(const float *in, const float *packed, const uint8_t *positions, float *out,
                             const kiln_conv_geometry_t *g, int32_t n, int32_t m, float *scratch,
                             const float *bias, int32_t flags, float lo, float hi);
int64_t kiln_conv2d_nm_scratch_bytes(const kiln_conv_geometry_t *g, int32_t m);
/* The reference reads the unpacked values and indices. */
void kiln_ref_conv2d_nhwc_f32_nm(const float *in, const float *values, const uint8_t *indices, float *out,
                                 const kiln_conv_geometry_t *g, int32_t n, int32_t m, const float *bias,
                                 int32_t flags, float lo, float hi);
/* The dense weights N:M values and indices stand for: dense[rows][k], or dense[k][rows]
 * with rows_last (a matmul's right operand). */
void kiln_nm_decode_f32(const float *values, const uint8_t *indices, float *dense, int64_t rows, int64_t k, int32_t n,
                        int32_t m, int32_t rows_last);

/* Splits [0, count) over the running model's threads (kiln_model_set_threads) and
 * calls fn(ctx, begin, end) for each share; returns when all are done. */
typedef void (*kiln_range_fn)(void *ctx, int64_t begin, int64_t end);
void kiln_parallel_for(int64_t count, kiln_range_fn fn, void *ctx);

/* Reference versions: plain loops, the oracle for the kernels above in tests. */
void kiln_ref_conv2d_nhwc_f32_packed(const float *in, const float *packed, float *out,
                                     const kiln_conv_geometry_t *g);
void kiln_ref_dwconv2d_nhwc_f32(const float *in, const float *filter, float *out, const kiln_conv_geometry_t *g);

/* Packs filter[M][K] (row m holds K weights) into the panel layout above; `packed` holds
 * ceil(M / KILN_PANEL) * K * KILN_PANEL floats. Used by the compiler and by tests. */
void kiln_pack_panels_f32(const float *filter, float *packed, int64_t m, int64_t k);


/* ---- int8: u8 activations (asymmetric, zero point) x s8 weights (symmetric, per output
 * channel), int32 accumulation, f32 in and out. ----
 *
 * Weights are packed at compile time as panels[ceil(M / KILN_PANEL_S8)][KH*KW*C4 / 4]
 * [KILN_PANEL_S8][4] (C4 = C rounded up to 4; zero-filled past M and C), the layout of
 * one vpdpbusd/SDOT step. The kernel first quantises the input view into `scratch`
 * (kiln_conv2d_u8s8_scratch_bytes bytes): q = clamp(rint(x * inv_scale) + zero_point,
 * 0, 255). Then, per output value, with acc the int32 sum of q * w:
 *   out = fma(requant[m], acc, requant[M + m])   (+ out when flags has KILN_S8_ACCUMULATE)
 * clamped to [lo, hi] when flags has KILN_S8_CLAMP. requant[m] is the product of the
 * input and weight scales and requant[M + m] = bias[m] - requant[m] * zero_point *
 * sum(w[m]), both computed at compile time. A matmul is the case OW = KH = KW = 1. */
#define KILN_PANEL_S8 32
#define KILN_S8_ACCUMULATE 1
#define KILN_S8_CLAMP 2
/* `packed` holds int4 weights (kiln_pack_panels_s4): W4A8, the same arithmetic. */
#define KILN_S8_INT4 4
int64_t kiln_conv2d_u8s8_scratch_bytes(const kiln_conv_geometry_t *g);
void kiln_conv2d_nhwc_u8s8_packed(const float *in, uint8_t *scratch, const int8_t *packed, const float *requant,
                                  float *out, const kiln_conv_geometry_t *g, float inv_scale, int32_t zero_point,
                                  int32_t flags, float lo, float hi);
void kiln_ref_conv2d_nhwc_u8s8_packed(const float *in, uint8_t *scratch, const int8_t *packed,
                                      const float *requant, float *out, const kiln_conv_geometry_t *g,
                                      float inv_scale, int32_t zero_point, int32_t flags, float lo, float hi);
/* The quantisation step on its own (dense [N][IH][IW][C4] from the view g reads). */
void kiln_quantize_view_u8(const float *in, uint8_t *dst, const kiln_conv_geometry_t *g, float inv_scale,
                           int32_t zero_point);
/* Packs filter[M][TAPS][C] (s8) into the panel layout above: ceil(M / KILN_PANEL_S8) *
 * TAPS * C4 * KILN_PANEL_S8 bytes. */
void kiln_pack_panels_s8(const int8_t *filter, int8_t *packed, int64_t m, int64_t taps, int64_t c);
/* The same for weights in [-8, 7], two per byte: each reduction step's KILN_PANEL_S8 x 4
 * weights take 64 bytes, weight b < 64 in the low nibble of byte b, weight b >= 64 in
 * the high nibble of byte b - 64 (half the bytes of the s8 layout). */
void kiln_pack_panels_s4(const int8_t *filter, uint8_t *packed, int64_t m, int64_t taps, int64_t c);

/* ---- bf16: activations and weights rounded to bfloat16, f32 accumulation. ----
 * Weights packed at compile time as panels[ceil(M / KILN_PANEL_BF16)][KH*KW*C2 / 2]
 * [KILN_PANEL_BF16][2] (C2 = C rounded up to 2; zero-filled past M and C), the layout of
 * one vdpbf16ps step. The kernel rounds the input view into `scratch`
 * (kiln_conv2d_bf16_scratch_bytes bytes), then out = acc + bias[m] (bias may be NULL;
 * + out with KILN_S8_ACCUMULATE), clamped with KILN_S8_CLAMP. The reference sums in
 * double, so kernel and reference agree to f32 rounding, not bit for bit. */
#define KILN_PANEL_BF16 32
uint16_t kiln_f32_to_bf16(float x); /* round to nearest even */
int64_t kiln_conv2d_bf16_scratch_bytes(const kiln_conv_geometry_t *g);
void kiln_pack_panels_bf16(const float *filter, uint16_t *packed, int64_t m, int64_t taps, int64_t c);
void kiln_conv2d_nhwc_bf16_packed(const float *in, uint16_t *scratch, const uint16_t *packed, const float *bias,
                                  float *out, const kiln_conv_geometry_t *g, int32_t flags, float lo, float hi);
void kiln_ref_conv2d_nhwc_bf16_packed(const float *in, uint16_t *scratch, const uint16_t *packed, const float *bias,
                                      float *out, const kiln_conv_geometry_t *g, int32_t flags, float lo, float hi);

/* Calibration: records the range of the values the convolution or matmul `id` reads
 * (the view g describes), and a 2048-bin histogram of each sign's magnitudes over a
 * power-of-two range. kiln_observe_write appends per observed id a line "id count min
 * max", then per sign seen a line "h id +|- range bin:count ..." (non-zero bins only). */
void kiln_observe_f32(int32_t id, const float *in, const kiln_conv_geometry_t *g);
/* Diagnostics: accumulates, under `id`, the energy of `ref` and of `got - ref` over
 * `count` values; kiln_observe_write adds a line "e id signal noise" per id. */
void kiln_observe_error(int32_t id, const float *ref, const float *got, int64_t count);
/* A layer's output is observed under its index + KILN_OBSERVE_OUTPUT (its input under its
 * index). kiln_observe_write: -1 if the file cannot be written, or if an observation was
 * dropped for want of memory (the same for kiln_observe_write_grams). */
#define KILN_OBSERVE_OUTPUT (1 << 20)
int kiln_observe_write(const char *path);
/* Accumulates the Gram matrix X^T X of the inputs a convolution or matmul's weights
 * multiply (im2col rows, K = KH*KW*C in (kh, kw, c) order) under `id` (calibration for
 * N:M reconstruction); kiln_observe_write_grams writes them (binary, see observe.c). */
void kiln_observe_gram(int32_t id, const float *in, const kiln_conv_geometry_t *g);
int kiln_observe_write_grams(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KERNELS_H */
