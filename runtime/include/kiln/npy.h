/* Kiln runtime: a strict reader/writer for NumPy .npy files, used to feed and dump tensors.
 *
 * Reads format 1.0 and 2.0, writes 1.0. C order only. Element types: <f4 <f2 <i8 <i4 |i1
 * |u1 |b1 map to kiln_dtype_t; <f8 is read and reported (descr "<f8", dtype
 * KILN_DTYPE_INVALID) since the model ABI has no f64. Every header field is validated and
 * the data length must match the shape exactly; malformed files give
 * KILN_ERROR_INVALID_ARGUMENT with the reason sent to the error hook, never a crash. */
#ifndef KILN_NPY_H
#define KILN_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_NPY_MAX_RANK 32 /* NumPy 1.x's NPY_MAXDIMS */

typedef struct kiln_npy_t {
  kiln_dtype_t dtype;  /* KILN_DTYPE_INVALID when the type has no kiln_dtype_t (<f8) */
  char descr[4];       /* the type as the file spells it, e.g. "<f4", NUL-terminated */
  size_t elem_size;    /* bytes per element */
  size_t rank;
  int64_t dims[KILN_NPY_MAX_RANK];
  size_t num_elements;
  size_t size_bytes;   /* num_elements * elem_size */
  void *data;          /* size_bytes of row-major data, 64-byte aligned; owned, see kiln_npy_free */
} kiln_npy_t;

/* Reads the file at `path`. On failure *out is left empty (kiln_npy_free is still safe). */
kiln_status_t kiln_npy_read(const char *path, kiln_npy_t *out);

/* Same, from a complete .npy image in memory (the data is copied). */
kiln_status_t kiln_npy_read_memory(const void *bytes, size_t size, kiln_npy_t *out);

/* Releases out->data and empties *npy; safe on an empty or zeroed kiln_npy_t. */
void kiln_npy_free(kiln_npy_t *npy);

/* Writes a format 1.0 file holding product(dims) elements of dtype, read from `data`. */
kiln_status_t kiln_npy_write(const char *path, kiln_dtype_t dtype, size_t rank,
                             const int64_t *dims, const void *data);

#ifdef __cplusplus
}
#endif

#endif /* KILN_NPY_H */
