/* Kiln runtime: how the kernels that copy their input (int8, bf16, observers) walk the
 * view a kiln_conv_geometry_t describes. Internal to runtime/src/kernels. */
#ifndef KILN_KERNELS_VIEW_H
#define KILN_KERNELS_VIEW_H

#include "kiln/kernels.h"

#include <stddef.h>

/* Input rows (or columns) a convolution with `out` output rows reads, padding included. */
static inline int64_t kiln_view_extent(int64_t out, int64_t stride, int64_t k, int64_t dil) {
  return out > 0 ? (out - 1) * stride + (k - 1) * dil + 1 : 0;
}

/* Channel 0 of pixel (y, x) of image b, in the coordinates of the (possibly implicitly
 * padded) view; NULL where that pixel is implicit padding. */
static inline const float *kiln_view_pixel(const float *in, const kiln_conv_geometry_t *g, int64_t b, int64_t y,
                                           int64_t x) {
  if (g->in_h > 0) {
    y -= g->pad_h;
    x -= g->pad_w;
    if (y < 0 || y >= g->in_h || x < 0 || x >= g->in_w) return NULL;
  }
  return in + b * g->in_sn + y * g->in_sh + x * g->in_sw;
}

#endif /* KILN_KERNELS_VIEW_H */
