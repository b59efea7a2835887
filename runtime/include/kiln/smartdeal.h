/* Kiln runtime: SmartDeal weights (W ~ C x B, C sparse signed powers of two) and the
 * fp32 convolution that rebuilds them on the fly (docs/SMARTDEAL.md).
 *
 * Layer: rows[m][K], K = KH*KW*C in (kh, kw, c) order, as kiln_pack_panels_f32 takes.
 * The rows are cut into 3-weight chunks:
 *   KILN_SMARTDEAL_TAPS3 (KW == 3): chunk (o, p = kh*C + c) = the 3 taps along kw,
 *     weights rows[o][(kh*3 + j)*C + c], j = 0..2; basis group = c / group.
 *   KILN_SMARTDEAL_FLAT (any shape, e.g. 1x1 convs and matmuls): chunk (o, p) =
 *     rows[o][3p + j] (zero past K); basis group = p / group.
 * Each chunk is coeff[o][p][0..2] x B[group] (3x3, row i = basis vector i):
 *   w[o][k(p, j)] = (c0 * B[0][j] + c1 * B[1][j]) + c2 * B[2][j]    (f32, this order)
 * where every coefficient is 0 or +-2^e: the products are exact (an exponent add), so
 * rebuilding a weight is two float adds, bit-identical on every target.
 *
 * Storage (all little-endian; kiln_smartdeal_bytes counts it):
 *   mask      [ceil(m * P / 64)] u64   bit o * P + p: chunk (o, p) is kept
 *   row_start [m + 1] u32              kept chunks in rows before o (derivable from the
 *                                      mask; stored so a slice is found without a scan)
 *   codes     bit stream, LSB first    per kept chunk, in (o, p) order, 3 codes of
 *                                      b + 1 bits: (sign << b) | e. e = 0: coefficient 0;
 *                                      else +-2^(exponent_offset - (e - 1)). b = 3 is a
 *                                      nibble per coefficient (7 magnitudes + zero).
 *                                      Followed by 8 zero bytes (the decoder reads u64s).
 *   bases     [groups][3][3] bf16      the high half of the f32 (decoding is a shift)
 *   header    the scalar fields below (32 bytes counted).
 */
#ifndef KILN_SMARTDEAL_H
#define KILN_SMARTDEAL_H

#include <stdint.h>

#include "kiln/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_SMARTDEAL_TAPS3 0
#define KILN_SMARTDEAL_FLAT 1

typedef struct kiln_smartdeal_t {
  int64_t m, kh, kw, c;    /* rows[m][kh * kw * c] */
  int32_t layout;          /* KILN_SMARTDEAL_TAPS3 or KILN_SMARTDEAL_FLAT */
  int32_t exponent_bits;   /* b, 1..7 */
  int32_t exponent_offset; /* exponent of the largest magnitude (e = 1) */
  int32_t reserved;
  int64_t group;           /* TAPS3: input channels per basis; FLAT: chunk positions per basis */
  const uint64_t *mask;
  const uint32_t *row_start;
  const uint8_t *codes;
  const uint16_t *bases;
} kiln_smartdeal_t;

/* Chunk positions per row (P), bases, and the format's size in bytes. */
int64_t kiln_smartdeal_positions(const kiln_smartdeal_t *w);
int64_t kiln_smartdeal_groups(const kiln_smartdeal_t *w);
int64_t kiln_smartdeal_bytes(const kiln_smartdeal_t *w);

/* Dense rows[m][K] (for tests and for a compiler that falls back to dense weights). */
void kiln_smartdeal_decode(const kiln_smartdeal_t *w, float *rows);
/* Reduction indices [k0, k0 + kc) of every row, in the layout of kiln_pack_panels_f32
 * restricted to the slice: panels[ceil(m / KILN_PANEL)][kc][KILN_PANEL], zero past m. */
void kiln_smartdeal_decode_slice(const kiln_smartdeal_t *w, int64_t k0, int64_t kc, float *panels);

/* Scratch for the kernel (one rebuilt reduction slice of every panel). */
int64_t kiln_conv2d_smartdeal_scratch_bytes(const kiln_smartdeal_t *w);

/* out[N,OH,OW,M] = bias + conv(in, decode(w)) (bias NULL: out += conv), clamped to
 * [lo, hi] when `clamp` is non-zero; geometry as kiln_conv2d_nhwc_f32_packed (no implicit
 * padding). Per reduction slice the weights are rebuilt into `scratch`, then the fp32
 * kernel's tiles run on it: the result is bit-identical to
 * kiln_conv2d_nhwc_f32_packed_fused on kiln_pack_panels_f32(decode(w)). */
void kiln_conv2d_nhwc_smartdeal_f32(const float *in, const kiln_smartdeal_t *w, float *scratch, float *out,
                                    const kiln_conv_geometry_t *g, const float *bias, int32_t clamp, float lo,
                                    float hi);
/* Plain loops, each weight rebuilt from the format where it is used, sums in double. */
void kiln_ref_conv2d_nhwc_smartdeal_f32(const float *in, const kiln_smartdeal_t *w, float *out,
                                        const kiln_conv_geometry_t *g, const float *bias, int32_t clamp,
                                        float lo, float hi);

#ifdef __cplusplus
}
#endif

#endif /* KILN_SMARTDEAL_H */
