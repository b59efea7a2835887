/* Kiln runtime: calibration observers. A model compiled for calibration calls
 * kiln_observe_f32 before each convolution or matmul it may quantise (and after, on
 * its output); the driver writes what was seen over the calibration set with
 * kiln_observe_write: the range, and a histogram of each sign's magnitudes (for
 * percentile clipping). */
#include "kiln/kernels.h"
#include "view.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BINS 2048

static int lost; /* an observation dropped for want of memory: the writers then fail */

/* `table` (*size elements of `elem` bytes) grown so that index `id` exists, the new
 * elements zeroed (*size updated; *old, if given, gets the previous size); NULL (and
 * `lost` set) when out of memory, `table` then left as it was. */
static void *reserve(void *table, int32_t *size, int32_t id, size_t elem, int32_t *old) {
  if (old) *old = *size;
  if (id < *size) return table;
  int32_t grown_size = id + 16;
  char *grown = realloc(table, (size_t)grown_size * elem);
  if (!grown) {
    lost = 1;
    return NULL;
  }
  memset(grown + (size_t)*size * elem, 0, (size_t)(grown_size - *size) * elem);
  *size = grown_size;
  return grown;
}

/* Magnitudes of one sign in BINS equal bins over [0, range); range is a power of two
 * that doubles (merging bin pairs) when a larger value arrives. */
struct histogram {
  float range; /* 0: nothing seen yet */
  int64_t bins[BINS];
};

struct observed {
  int64_t count;
  float lo, hi;
  struct histogram pos, neg;
};

/* Inputs and outputs (ids from KILN_OBSERVE_OUTPUT on) have one table each, so that an
 * output does not grow the inputs' table to 2^20 entries (34 GB, which failed silently and
 * lost every output range). */
static struct observed *tables[2];
static int32_t table_sizes[2];

struct error_sum {
  double signal, noise;
  int seen;
};
static struct error_sum *errors;
static int32_t errors_size;

void kiln_observe_error(int32_t id, const float *ref, const float *got, int64_t count) {
  if (id < 0) return;
  struct error_sum *grown = reserve(errors, &errors_size, id, sizeof *errors, NULL);
  if (!grown) return;
  errors = grown;
  double signal = 0, noise = 0;
  for (int64_t i = 0; i < count; ++i) {
    double r = ref[i], d = (double)got[i] - r;
    signal += r * r;
    noise += d * d;
  }
  errors[id].signal += signal;
  errors[id].noise += noise;
  errors[id].seen = 1;
}

static void grow_to(struct histogram *h, float magnitude) {
  if (h->range == 0) {
    h->range = 0x1p-30f;
    while (h->range <= magnitude && h->range < 0x1p100f) h->range *= 2;
    return;
  }
  while (h->range <= magnitude && h->range < 0x1p100f) {
    for (int i = 0; i < BINS / 2; ++i) h->bins[i] = h->bins[2 * i] + h->bins[2 * i + 1];
    memset(h->bins + BINS / 2, 0, sizeof(int64_t) * (BINS / 2));
    h->range *= 2;
  }
}

static inline void add(struct histogram *h, float magnitude) {
  int bin = (int)(magnitude * ((float)BINS / h->range));
  h->bins[bin < BINS ? (bin < 0 ? 0 : bin) : BINS - 1]++;
}

void kiln_observe_f32(int32_t id, const float *in, const kiln_conv_geometry_t *g) {
  if (id < 0) return;
  const int which = id >= KILN_OBSERVE_OUTPUT;
  if (which) id -= KILN_OBSERVE_OUTPUT;
  int32_t old;
  struct observed *table = reserve(tables[which], &table_sizes[which], id, sizeof *table, &old);
  if (!table) return;
  tables[which] = table;
  for (int32_t k = old; k < table_sizes[which]; ++k) {
    table[k].lo = INFINITY;
    table[k].hi = -INFINITY;
  }
  int64_t ih = kiln_view_extent(g->oh, g->stride_h, g->kh, g->dilation_h);
  int64_t iw = kiln_view_extent(g->ow, g->stride_w, g->kw, g->dilation_w);
  if (g->in_h > 0) { /* implicit padding: the image itself (its padding is zeros) */
    ih = g->in_h;
    iw = g->in_w;
  }
  struct observed *o = &table[id];
  float lo = o->lo, hi = o->hi;
  for (int pass = 0; pass < 2; ++pass) {
    /* Pass 0: the range (and the histograms grown to hold it); pass 1: the counts. */
    if (pass == 1) {
      if (!(lo <= hi)) return; /* NaN only, or nothing */
      grow_to(&o->pos, hi > 0 ? hi : 0);
      grow_to(&o->neg, lo < 0 ? -lo : 0);
    }
    for (int64_t b = 0; b < g->n; ++b)
      for (int64_t y = 0; y < ih; ++y)
        for (int64_t x = 0; x < iw; ++x) {
          const float *p = in + b * g->in_sn + y * g->in_sh + x * g->in_sw;
          for (int64_t c = 0; c < g->c; ++c) {
            float v = p[c];
            if (pass == 0) {
              if (v < lo) lo = v;
              if (v > hi) hi = v;
            } else if (v >= 0) {
              add(&o->pos, v);
            } else if (v < 0) {
              add(&o->neg, -v);
            }
          }
        }
  }
  o->lo = lo;
  o->hi = hi;
  o->count += g->n * ih * iw * g->c;
}

static void write_histogram(FILE *f, int32_t id, const char *sign, const struct histogram *h) {
  if (h->range == 0) return;
  fprintf(f, "h %d %s %.9g", id, sign, h->range);
  for (int i = 0; i < BINS; ++i)
    if (h->bins[i]) fprintf(f, " %d:%lld", i, (long long)h->bins[i]);
  fputc('\n', f);
}

int kiln_observe_write(const char *path) {
  if (lost) return -1;
  FILE *f = fopen(path, "a");
  if (!f) return -1;
  for (int which = 0; which < 2; ++which)
    for (int32_t k = 0; k < table_sizes[which]; ++k) {
      const struct observed *o = &tables[which][k];
      const int32_t id = k + (which ? KILN_OBSERVE_OUTPUT : 0);
      if (o->count <= 0) continue;
      fprintf(f, "%d %lld %.9g %.9g\n", id, (long long)o->count, o->lo, o->hi);
      write_histogram(f, id, "+", &o->pos);
      write_histogram(f, id, "-", &o->neg);
    }
  for (int32_t id = 0; id < errors_size; ++id)
    if (errors[id].seen) fprintf(f, "e %d %.17g %.17g\n", id, errors[id].signal, errors[id].noise);
  return fclose(f) == 0 ? 0 : -1;
}

/* ---- Input Gram matrices (kiln_observe_gram): sum over every output pixel of x x^T,
 * x the K = KH*KW*C inputs that pixel's weights multiply, in (kh, kw, c) order. ---- */
struct gram {
  int64_t k, rows;
  double *sum; /* k x k, upper triangle filled */
};
static struct gram *grams;
static int32_t grams_size;

void kiln_observe_gram(int32_t id, const float *in, const kiln_conv_geometry_t *g) {
  if (id < 0) return;
  const int64_t c = g->c, k = g->kh * g->kw * c;
  struct gram *grown = reserve(grams, &grams_size, id, sizeof *grams, NULL);
  if (!grown) return;
  grams = grown;
  struct gram *gr = &grams[id];
  if (!gr->sum) {
    gr->sum = calloc((size_t)(k * k), sizeof(double));
    if (!gr->sum) {
      lost = 1;
      return;
    }
    gr->k = k;
  }
  if (gr->k != k) return;
  double *x = malloc(sizeof(double) * (size_t)k);
  if (!x) {
    lost = 1;
    return;
  }
  for (int64_t b = 0; b < g->n; ++b)
    for (int64_t y = 0; y < g->oh; ++y)
      for (int64_t xo = 0; xo < g->ow; ++xo) {
        for (int64_t ty = 0; ty < g->kh; ++ty)
          for (int64_t tx = 0; tx < g->kw; ++tx) {
            const float *src = kiln_view_pixel(in, g, b, y * g->stride_h + ty * g->dilation_h,
                                               xo * g->stride_w + tx * g->dilation_w);
            double *dst = x + (ty * g->kw + tx) * c;
            for (int64_t ch = 0; ch < c; ++ch) dst[ch] = src ? (double)src[ch] : 0.0;
          }
        for (int64_t i = 0; i < k; ++i) {
          double xi = x[i];
          if (xi == 0.0) continue;
          double *row = gr->sum + i * k;
          for (int64_t j = i; j < k; ++j) row[j] += xi * x[j];
        }
        gr->rows++;
      }
  free(x);
}

/* Appends, per layer, "KGRM", int32 id, int64 k, int64 rows, k*k doubles (full, symmetric);
 * a reader sums the records of one id (one per calibration run). */
int kiln_observe_write_grams(const char *path) {
  if (lost) return -1;
  FILE *f = fopen(path, "ab");
  if (!f) return -1;
  int ok = 1;
  for (int32_t id = 0; id < grams_size && ok; ++id) {
    struct gram *gr = &grams[id];
    if (!gr->sum) continue;
    for (int64_t i = 0; i < gr->k; ++i)
      for (int64_t j = 0; j < i; ++j) gr->sum[i * gr->k + j] = gr->sum[j * gr->k + i];
    ok = fwrite("KGRM", 1, 4, f) == 4 && fwrite(&id, sizeof id, 1, f) == 1 && fwrite(&gr->k, 8, 1, f) == 1 &&
         fwrite(&gr->rows, 8, 1, f) == 1 &&
         fwrite(gr->sum, sizeof(double), (size_t)(gr->k * gr->k), f) == (size_t)(gr->k * gr->k);
  }
  return fclose(f) == 0 && ok ? 0 : -1;
}
