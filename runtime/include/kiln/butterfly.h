/* Kiln runtime: butterfly-factorised linear layers (a dense [K,N] weight replaced by
 * log2(n) sparse factors, 2 n log2(n) parameters instead of K N).
 *
 * Format. n = the power of two >= max(K, N), L = log2(n). The layer computes
 *   y[p][0, N) = (x[p] zero-padded to n) . F_0 . F_1 ... F_{L-1}
 * where factor s mixes the pairs (i, i XOR 2^s) of a row vector v:
 *   v'[i] = a_s[i] * v[i] + b_s[i] * v[i XOR 2^s].
 * `factors` holds L stages of 2 n floats, a_s then b_s:
 *   a_s[i] = factors[2 n s + i],  b_s[i] = factors[2 n s + n + i].
 * n == 1 has no stages (y = x). passes/codesign/ButterflyFit.h fits the factors to a
 * trained weight.
 *
 * Like the other kernels (kernels.h) this allocates nothing, is plain C with vector
 * extensions, and trusts its caller (the compiler) for shapes. */
#ifndef KILN_BUTTERFLY_H
#define KILN_BUTTERFLY_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* flags: add into y instead of overwriting it; clamp the result to [lo, hi]. */
#define KILN_BUTTERFLY_ACCUMULATE 1
#define KILN_BUTTERFLY_CLAMP 2

/* Floats of scratch kiln_butterfly_f32 needs for `rows` rows of a size-n butterfly (the
 * kernel stages a block of rows at a time, one block per thread it uses). */
int64_t kiln_butterfly_scratch_floats(int64_t rows, int64_t n);

/* For p < rows, j < n_out (n_out <= n, k <= n):
 *   y[p * y_stride + j] = (flags & ACCUMULATE ? y[p * y_stride + j] : 0)
 *                         + (bias ? bias[j] : 0) + (x[p * x_stride + 0, k) . B)[j]
 * then clamped to [lo, hi] when flags has KILN_BUTTERFLY_CLAMP. x and y must not overlap;
 * `scratch` holds kiln_butterfly_scratch_floats(rows, n) floats (any alignment). Rows are
 * split over the model's threads (kiln_parallel_for) when there are enough of them. */
void kiln_butterfly_f32(const float *x, int64_t rows, int64_t x_stride, int64_t k, const float *factors, int64_t n,
                        const float *bias, float *y, int64_t y_stride, int64_t n_out, float *scratch, int32_t flags,
                        float lo, float hi);

/* The same with plain loops in double: the oracle in tests. Needs no scratch. */
void kiln_ref_butterfly_f32(const float *x, int64_t rows, int64_t x_stride, int64_t k, const float *factors,
                            int64_t n, const float *bias, float *y, int64_t y_stride, int64_t n_out, int32_t flags,
                            float lo, float hi);

/* The dense weight the factors stand for: W[i][j] for i < k, j < n_out (the top-left
 * block of F_0 ... F_{L-1}), written to out[i * n_out + j] with rows_last, else to
 * out[j * k + i] (N x K). For weights the compiler could not hand to a kernel. */
void kiln_butterfly_decode_f32(const float *factors, int64_t n, int64_t k, int64_t n_out, int32_t rows_last,
                               float *out);

#ifdef __cplusplus
}
#endif

#endif /* KILN_BUTTERFLY_H */
