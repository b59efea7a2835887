/* Hand-written stand-ins for compiler-emitted models, used by the runtime tests and runner. */
#ifndef KILN_TESTS_FAKE_MODEL_H
#define KILN_TESTS_FAKE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/model_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* "fake": y = 2 * x + w (x, y, w: f32 [1, 10]) and "stats/sum" = sum(y) (f32, rank 0),
 * the sum staged through a 64-byte, 64-aligned arena. Weights: w[i] = 0.5 * i. */
extern const kiln_model_desc_t kiln_fake_model_desc;
#define KILN_FAKE_WEIGHTS_COUNT 10
#define KILN_FAKE_WEIGHTS_HASH 0x6b696c6e66616b65ull /* "kilnfake" */

/* "fake_noarena": ids_plus = ids + 1 (i64 [3]); no arena, zero-byte weights. */
extern const kiln_model_desc_t kiln_fake_noarena_desc;
#define KILN_FAKE_NOARENA_HASH 0x6e6f6172656e6121ull

/* How many times the fake models' entry points ran (to prove run did or did not call). */
extern int kiln_fake_invocations;

/* The weights data the "fake" model expects (KILN_FAKE_WEIGHTS_COUNT floats). */
void kiln_fake_weights_data(float *out);

/* FNV-1a 64, written independently of the runtime's so tests cross-check it. */
uint64_t kiln_fake_fnv1a64(const void *data, size_t size);

/* Builds a .kw image of `data` in `out` (capacity `cap`); returns its size, or 0 when it
 * does not fit. The data section starts at 64. */
size_t kiln_fake_build_weights(const void *data, size_t size, uint64_t model_hash,
                               unsigned char *out, size_t cap);

/* Writes a .kw file; returns 0 on success. */
int kiln_fake_write_weights(const char *path, const void *data, size_t size,
                            uint64_t model_hash);

#ifdef __cplusplus
}
#endif

#endif /* KILN_TESTS_FAKE_MODEL_H */
