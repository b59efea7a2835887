/* Kiln runtime: calibration observers. A model compiled for calibration calls
 * kiln_observe_f32 before each convolution or matmul it may quantise; the driver
 * writes the ranges seen over the calibration set with kiln_observe_write. */
#include "kiln/kernels.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

struct observed {
  int64_t count;
  float lo, hi;
};

static struct observed *table;
static int32_t table_size;

void kiln_observe_f32(int32_t id, const float *in, const kiln_conv_geometry_t *g) {
  if (id < 0) return;
  if (id >= table_size) {
    int32_t size = id + 16;
    struct observed *grown = realloc(table, (size_t)size * sizeof *grown);
    if (!grown) return;
    for (int32_t k = table_size; k < size; ++k) grown[k] = (struct observed){0, INFINITY, -INFINITY};
    table = grown;
    table_size = size;
  }
  int64_t ih = g->oh > 0 ? (g->oh - 1) * g->stride_h + (g->kh - 1) * g->dilation_h + 1 : 0;
  int64_t iw = g->ow > 0 ? (g->ow - 1) * g->stride_w + (g->kw - 1) * g->dilation_w + 1 : 0;
  if (g->in_h > 0) { /* implicit padding: the image itself (its padding is zeros) */
    ih = g->in_h;
    iw = g->in_w;
  }
  struct observed *o = &table[id];
  float lo = o->lo, hi = o->hi;
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < ih; ++y)
      for (int64_t x = 0; x < iw; ++x) {
        const float *p = in + b * g->in_sn + y * g->in_sh + x * g->in_sw;
        for (int64_t c = 0; c < g->c; ++c) {
          float v = p[c];
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
      }
  o->lo = lo;
  o->hi = hi;
  o->count += g->n * ih * iw * g->c;
}

int kiln_observe_write(const char *path) {
  FILE *f = fopen(path, "a");
  if (!f) return -1;
  for (int32_t id = 0; id < table_size; ++id)
    if (table[id].count > 0)
      fprintf(f, "%d %lld %.9g %.9g\n", id, (long long)table[id].count, table[id].lo, table[id].hi);
  return fclose(f) == 0 ? 0 : -1;
}
