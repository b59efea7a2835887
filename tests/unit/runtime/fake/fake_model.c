/* Hand-written stand-ins for compiler-emitted models: descriptors, entry points, .kw images. */
#include "fake_model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

int kiln_fake_invocations = 0;

static const int64_t k_vec_dims[] = {1, 10};

static const kiln_tensor_desc_t k_fake_inputs[] = {
    {"x", KILN_DTYPE_F32, 2, k_vec_dims, 40},
};
static const kiln_tensor_desc_t k_fake_outputs[] = {
    {"y", KILN_DTYPE_F32, 2, k_vec_dims, 40},
    {"stats/sum", KILN_DTYPE_F32, 0, NULL, 4},
};

/* args = {weights, arena, x, y, sum}, as the ABI orders them. */
static void fake_invoke(void *const *args) {
  const float *w = (const float *)args[0];
  float *arena = (float *)args[1];
  const float *x = (const float *)args[2];
  float *y = (float *)args[3];
  float *sum = (float *)args[4];
  ++kiln_fake_invocations;
  /* A real model would fault on a misaligned arena; make it visible instead. */
  if ((uintptr_t)arena % 64 != 0) {
    *sum = NAN;
    return;
  }
  for (int i = 0; i < 10; ++i) y[i] = 2.0f * x[i] + w[i];
  arena[0] = 0.0f;
  for (int i = 0; i < 10; ++i) arena[0] += y[i];
  *sum = arena[0];
}

const kiln_model_desc_t kiln_fake_model_desc = {
    KILN_MODEL_ABI_VERSION,
    1,
    2,
    0,
    "fake",
    "host",
    k_fake_inputs,
    k_fake_outputs,
    KILN_FAKE_WEIGHTS_COUNT * sizeof(float),
    KILN_FAKE_WEIGHTS_HASH,
    64,
    64,
    fake_invoke,
};

static const int64_t k_ids_dims[] = {3};
static const kiln_tensor_desc_t k_noarena_inputs[] = {
    {"ids", KILN_DTYPE_I64, 1, k_ids_dims, 24},
};
static const kiln_tensor_desc_t k_noarena_outputs[] = {
    {"ids_plus", KILN_DTYPE_I64, 1, k_ids_dims, 24},
};

static void noarena_invoke(void *const *args) {
  const int64_t *ids = (const int64_t *)args[2];
  int64_t *out = (int64_t *)args[3];
  ++kiln_fake_invocations;
  for (int i = 0; i < 3; ++i) out[i] = ids[i] + 1;
}

const kiln_model_desc_t kiln_fake_noarena_desc = {
    KILN_MODEL_ABI_VERSION,
    1,
    1,
    0,
    "fake_noarena",
    "host",
    k_noarena_inputs,
    k_noarena_outputs,
    0,
    KILN_FAKE_NOARENA_HASH,
    0,
    0,
    noarena_invoke,
};

void kiln_fake_weights_data(float *out) {
  for (int i = 0; i < KILN_FAKE_WEIGHTS_COUNT; ++i) out[i] = 0.5f * (float)i;
}

uint64_t kiln_fake_fnv1a64(const void *data, size_t size) {
  /* Written independently of the runtime's: whole little-endian words, then bytes. */
  const unsigned char *p = (const unsigned char *)data;
  uint64_t h = 14695981039346656037ull; /* 0xcbf29ce484222325 */
  size_t words = size / 8;
  for (size_t w = 0; w < words; ++w) {
    uint64_t v = 0;
    for (int b = 0; b < 8; ++b) v |= (uint64_t)p[8 * w + (size_t)b] << (8 * b);
    h ^= v;
    h *= 1099511628211ull; /* 0x100000001b3 */
  }
  for (size_t i = words * 8; i < size; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

static void store_le(unsigned char *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = (unsigned char)(v >> (8 * i));
}

size_t kiln_fake_build_weights(const void *data, size_t size, uint64_t model_hash,
                               unsigned char *out, size_t cap) {
  size_t total = KILN_WEIGHTS_HEADER_SIZE + size;
  if (total > cap) return 0;
  memset(out, 0, KILN_WEIGHTS_HEADER_SIZE);
  memcpy(out, KILN_WEIGHTS_MAGIC, 8);
  store_le(out + 8, KILN_WEIGHTS_FORMAT_VERSION, 4);
  store_le(out + 12, KILN_WEIGHTS_HEADER_SIZE, 4);
  store_le(out + 16, KILN_WEIGHTS_HEADER_SIZE, 8); /* data_offset: right after the header */
  store_le(out + 24, size, 8);
  store_le(out + 32, model_hash, 8);
  store_le(out + 40, kiln_fake_fnv1a64(data, size), 8);
  if (size) memcpy(out + KILN_WEIGHTS_HEADER_SIZE, data, size);
  return total;
}

int kiln_fake_write_weights(const char *path, const void *data, size_t size,
                            uint64_t model_hash) {
  unsigned char image[4096];
  size_t total = kiln_fake_build_weights(data, size, model_hash, image, sizeof image);
  if (total == 0) return 1;
  FILE *f = fopen(path, "wb");
  if (!f) return 1;
  int ok = fwrite(image, 1, total, f) == total;
  return (fclose(f) == 0 && ok) ? 0 : 1;
}
