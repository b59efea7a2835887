/* Kiln runtime: the fp32 conv kernel's tile loop over one reduction slice, shared with
 * kernels that produce their weight panels on the fly (smartdeal.c); internal. */
#ifndef KILN_CONV_F32_SLICE_H
#define KILN_CONV_F32_SLICE_H

#include "kiln/kernels.h"

/* Output rows per register tile: as many accumulator rows as the target's vector
 * registers hold with room for the weights and the broadcasts. */
#if defined(__AVX512F__)
#define KILN_F32_MR 8 /* 16 zmm accumulators of 32; 10 loads per 16 FMAs */
#else
#define KILN_F32_MR 3 /* AVX2: 12 of 16 ymm; NEON: 24 of 32 q registers */
#endif

#define KILN_F32_KC 256 /* reduction slice: MR x KC inputs (at most 8 KiB) stay in L1 */

struct kiln_f32_conv_job {
  const float *in, *packed; /* packed: unused by kiln_conv_f32_slice */
  float *out;
  const kiln_conv_geometry_t *g;
  const float *bias; /* NULL: accumulate into out; else out = bias + conv */
  int clamp;         /* apply [lo, hi] after the last reduction slice */
  float lo, hi;
};

/* Output rows [KILN_F32_MR * group_begin, KILN_F32_MR * group_end) of the convolution,
 * reduction indices [k0, k0 + kc) only (kc <= KILN_F32_KC): the weights of panel p are
 * slice[p * panel_stride ...] as [kc][KILN_PANEL]. Adds the bias when k0 == 0 and clamps
 * when k0 + kc reaches K, so calling it for consecutive slices is the whole convolution. */
void kiln_conv_f32_slice(const struct kiln_f32_conv_job *job, const float *slice, int64_t panel_stride,
                         int64_t k0, int64_t kc, int64_t group_begin, int64_t group_end);

#endif
