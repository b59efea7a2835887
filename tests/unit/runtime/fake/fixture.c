/* Writes the files the kiln-runner test feeds the fake model, and checks what it wrote back. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "fake_model.h"
#include "kiln/kiln.h"
#include "kiln/npy.h"

static int write_files(const char *dir) {
  char path[4096];
  float w[KILN_FAKE_WEIGHTS_COUNT];
  kiln_fake_weights_data(w);
  snprintf(path, sizeof path, "%s/model.kw", dir);
  if (kiln_fake_write_weights(path, w, sizeof w, KILN_FAKE_WEIGHTS_HASH)) return 1;
  snprintf(path, sizeof path, "%s/other_model.kw", dir);
  if (kiln_fake_write_weights(path, w, sizeof w, KILN_FAKE_WEIGHTS_HASH + 1)) return 1;

  float x[10];
  for (int i = 0; i < 10; ++i) x[i] = (float)i;
  const int64_t dims[] = {1, 10};
  snprintf(path, sizeof path, "%s/x.npy", dir);
  if (kiln_npy_write(path, KILN_DTYPE_F32, 2, dims, x) != KILN_OK) return 1;
  const int64_t short_dims[] = {1, 3};
  snprintf(path, sizeof path, "%s/x_short.npy", dir);
  if (kiln_npy_write(path, KILN_DTYPE_F32, 2, short_dims, x) != KILN_OK) return 1;
  int32_t xi[10] = {0};
  snprintf(path, sizeof path, "%s/x_i32.npy", dir);
  if (kiln_npy_write(path, KILN_DTYPE_I32, 2, dims, xi) != KILN_OK) return 1;
  return 0;
}

/* The runner's outputs must be y = 2.5 * i and the scalar sum 112.5. */
static int check_outputs(const char *dir) {
  char path[4096];
  kiln_npy_t y, sum;
  snprintf(path, sizeof path, "%s/y.npy", dir);
  if (kiln_npy_read(path, &y) != KILN_OK) return fprintf(stderr, "cannot read %s\n", path), 1;
  snprintf(path, sizeof path, "%s/stats_sum.npy", dir);
  if (kiln_npy_read(path, &sum) != KILN_OK) return fprintf(stderr, "cannot read %s\n", path), 1;
  int bad = y.dtype != KILN_DTYPE_F32 || y.rank != 2 || y.dims[0] != 1 || y.dims[1] != 10 ||
            sum.dtype != KILN_DTYPE_F32 || sum.rank != 0 || sum.num_elements != 1;
  for (int i = 0; !bad && i < 10; ++i)
    if (fabsf(((const float *)y.data)[i] - 2.5f * (float)i) > 1e-6f) bad = 1;
  if (!bad && fabsf(*(const float *)sum.data - 112.5f) > 1e-4f) bad = 1;
  kiln_npy_free(&y);
  kiln_npy_free(&sum);
  if (bad) fprintf(stderr, "outputs in %s hold wrong values or shapes\n", dir);
  return bad;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "write") == 0) return write_files(argv[2]);
  if (argc == 3 && strcmp(argv[1], "check") == 0) return check_outputs(argv[2]);
  fprintf(stderr, "usage: %s write|check DIR\n", argv[0]);
  return 2;
}
