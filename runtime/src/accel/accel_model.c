/* Compiled accelerator models (.kaccel, format in kiln/accel.h): reading, checking,
 * loading into a device and running an inference through the driver interface. */
#include "kiln/accel.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct layer_rec {
  char name[KILN_ACCEL_NAME_BYTES + 1], kind[KILN_ACCEL_KIND_BYTES + 1];
  uint64_t macs, prog_addr, n_insns;
} layer_rec;

struct kiln_accel_model_t {
  uint32_t config_id, n_layers;
  uint64_t mem_bytes, image_bytes;
  uint64_t in_addr, out_addr;
  uint32_t in_ndims, out_ndims;
  int64_t in_dims[KILN_ACCEL_MAX_DIMS], out_dims[KILN_ACCEL_MAX_DIMS];
  uint8_t in_perm[KILN_ACCEL_MAX_DIMS], out_perm[KILN_ACCEL_MAX_DIMS];
  float in_scale;
  int32_t in_zp;
  uint32_t n_scales;
  float *scales;
  layer_rec *layers;
  uint8_t *image;
  size_t in_size, out_size;
};

static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }

/* Elements of a shape, or 0 when a dimension is not positive or the product overflows. */
static size_t elements(const int64_t *dims, uint32_t n) {
  size_t e = 1;
  for (uint32_t i = 0; i < n; ++i) {
    if (dims[i] <= 0 || (uint64_t)dims[i] > ((uint64_t)1 << 32) || e > ((size_t)1 << 40) / (size_t)dims[i]) return 0;
    e *= (size_t)dims[i];
  }
  return e;
}

/* perm[0..n) is a permutation of 0..n-1. */
static int is_perm(const uint8_t *perm, uint32_t n) {
  uint32_t seen = 0;
  for (uint32_t i = 0; i < n; ++i) {
    if (perm[i] >= n || (seen >> perm[i]) & 1) return 0;
    seen |= 1u << perm[i];
  }
  return 1;
}

/* The stored output's last dimension (the one the scales run along). */
static int64_t stored_last(const kiln_accel_model_t *m) {
  for (uint32_t k = 0; k < m->out_ndims; ++k)
    if (m->out_perm[k] == m->out_ndims - 1) return m->out_dims[k];
  return 0;
}

/* Offset in the stored (row-major) tensor of the element at `idx` of the logical tensor
 * of shape `dims`. Output (`to_logical`): the logical tensor is the stored one
 * transposed by perm, stored index s with s[perm[k]] = idx[k]. Input: the stored tensor
 * is the logical one transposed by perm, s[k] = idx[perm[k]]. */
static size_t stored_offset(const int64_t *dims, const uint8_t *perm, uint32_t n, const int64_t *idx, int to_logical) {
  int64_t s[KILN_ACCEL_MAX_DIMS], sdims[KILN_ACCEL_MAX_DIMS];
  for (uint32_t k = 0; k < n; ++k) {
    if (to_logical) {
      s[perm[k]] = idx[k];
      sdims[perm[k]] = dims[k];
    } else {
      s[k] = idx[perm[k]];
      sdims[k] = dims[perm[k]];
    }
  }
  size_t off = 0;
  for (uint32_t k = 0; k < n; ++k) off = off * (size_t)sdims[k] + (size_t)s[k];
  return off;
}

/* Advances a row-major index over `dims`. */
static void next_index(int64_t *idx, const int64_t *dims, uint32_t n) {
  for (uint32_t k = n; k-- > 0;) {
    if (++idx[k] < dims[k]) return;
    idx[k] = 0;
  }
}

#define FAIL(status, ...)                                                                                              \
  do {                                                                                                                 \
    if (error) snprintf(error, error_size, __VA_ARGS__);                                                               \
    kiln_accel_model_free(m);                                                                                          \
    return status;                                                                                                     \
  } while (0)

kiln_status_t kiln_accel_model_read(const void *data, size_t size, const char *path, kiln_accel_model_t **out,
                                    char *error, size_t error_size) {
  kiln_accel_model_t *m = NULL;
  if (!out || (!data && size)) return KILN_ERROR_INVALID_ARGUMENT;
  if (!path) path = "model";
  *out = NULL;
  static const uint8_t empty[1] = {0};
  const uint8_t *buf = data ? data : empty;
  const uint64_t n = (uint64_t)size;
  const uint64_t fixed = 48 + 96 + 88;
  if (n < fixed + 8 || memcmp(buf, "KACL", 4) != 0) FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: not a Kiln accelerator model", path);
  if (get32(buf + 4) != KILN_ACCEL_FILE_VERSION)
    FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: format version %u, this runtime reads %u", path, get32(buf + 4), KILN_ACCEL_FILE_VERSION);
  uint64_t h = 1469598103934665603ull;
  for (uint64_t i = 0; i < n - 8; ++i) h = (h ^ buf[i]) * 1099511628211ull;
  if (h != get64(buf + n - 8)) FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: checksum mismatch (truncated or corrupted)", path);
  m = calloc(1, sizeof *m);
  if (!m) FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
  m->config_id = get32(buf + 8);
  m->n_layers = get32(buf + 12);
  m->mem_bytes = get64(buf + 16);
  m->image_bytes = get64(buf + 24);
  m->n_scales = get32(buf + 32);
  const uint8_t *p = buf + 48;
  m->in_addr = get64(p);
  m->in_ndims = get32(p + 8);
  m->in_zp = (int32_t)get32(p + 12);
  uint32_t sbits = get32(p + 16);
  memcpy(&m->in_scale, &sbits, 4);
  for (int i = 0; i < KILN_ACCEL_MAX_DIMS; ++i) m->in_dims[i] = (int64_t)get64(p + 24 + 8 * i);
  memcpy(m->in_perm, p + 88, KILN_ACCEL_MAX_DIMS);
  p += 96;
  m->out_addr = get64(p);
  m->out_ndims = get32(p + 8);
  for (int i = 0; i < KILN_ACCEL_MAX_DIMS; ++i) m->out_dims[i] = (int64_t)get64(p + 16 + 8 * i);
  memcpy(m->out_perm, p + 80, KILN_ACCEL_MAX_DIMS);
  p += 88;
  if (m->in_ndims == 0 || m->in_ndims > KILN_ACCEL_MAX_DIMS || m->out_ndims == 0 || m->out_ndims > KILN_ACCEL_MAX_DIMS)
    FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: bad tensor rank", path);
  if (!is_perm(m->in_perm, m->in_ndims) || !is_perm(m->out_perm, m->out_ndims))
    FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: bad tensor permutation", path);
  m->in_size = elements(m->in_dims, m->in_ndims);
  m->out_size = elements(m->out_dims, m->out_ndims);
  if (!m->in_size || !m->out_size || m->n_scales != (uint64_t)stored_last(m) ||
      !(m->in_scale > 0) || !isfinite(m->in_scale) || m->in_zp < 0 || m->in_zp > 255)
    FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: bad input or output description", path);
  if (m->n_layers == 0 || m->n_layers > 1000000) FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: bad layer count", path);
  const uint64_t need = fixed + 4ull * m->n_scales + 120ull * m->n_layers;
  if (need > n - 8 || m->image_bytes != n - 8 - need || m->mem_bytes < m->image_bytes || m->mem_bytes > ((uint64_t)1 << 32))
    FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: sizes do not match the file (truncated or corrupted)", path);
  if (m->in_addr > m->mem_bytes || m->in_size > m->mem_bytes - m->in_addr || m->out_addr > m->mem_bytes ||
      4 * (uint64_t)m->out_size > m->mem_bytes - m->out_addr)
    FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: tensors outside device memory", path);
  m->scales = malloc(4 * (size_t)m->n_scales);
  m->layers = calloc(m->n_layers, sizeof *m->layers);
  m->image = malloc(m->image_bytes ? (size_t)m->image_bytes : 1);
  if (!m->scales || !m->layers || !m->image) FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
  for (uint32_t i = 0; i < m->n_scales; ++i) {
    uint32_t b = get32(p + 4 * i);
    memcpy(&m->scales[i], &b, 4);
    if (!isfinite(m->scales[i])) FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: output scale %u is not finite", path, i);
  }
  p += 4 * (size_t)m->n_scales;
  for (uint32_t i = 0; i < m->n_layers; ++i, p += 120) {
    layer_rec *l = &m->layers[i];
    memcpy(l->name, p, KILN_ACCEL_NAME_BYTES);
    memcpy(l->kind, p + 64, KILN_ACCEL_KIND_BYTES);
    l->macs = get64(p + 96);
    l->prog_addr = get64(p + 104);
    l->n_insns = get64(p + 112);
    if (l->prog_addr % 8 || l->n_insns == 0 || l->prog_addr > m->image_bytes || l->n_insns > (m->image_bytes - l->prog_addr) / 8)
      FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: layer %u's program lies outside the image", path, i);
  }
  memcpy(m->image, p, (size_t)m->image_bytes);
  *out = m;
  return KILN_OK;
}
#undef FAIL

kiln_status_t kiln_accel_model_open(const char *path, kiln_accel_model_t **out, char *error, size_t error_size) {
  if (!path || !out) return KILN_ERROR_INVALID_ARGUMENT;
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) {
    if (error) snprintf(error, error_size, "%s: cannot open", path);
    return KILN_ERROR_IO;
  }
  long size = -1;
  if (fseek(f, 0, SEEK_END) == 0) size = ftell(f);
  uint8_t *buf = NULL;
  size_t got = 0;
  if (size >= 0 && fseek(f, 0, SEEK_SET) == 0) {
    buf = malloc(size ? (size_t)size : 1);
    got = buf ? fread(buf, 1, (size_t)size, f) : 0;
  }
  fclose(f);
  kiln_status_t st;
  if (!buf || got != (size_t)size) {
    if (error) snprintf(error, error_size, "%s: cannot read", path);
    st = buf ? KILN_ERROR_IO : KILN_ERROR_OUT_OF_MEMORY;
  } else {
    st = kiln_accel_model_read(buf, (size_t)size, path, out, error, error_size);
  }
  free(buf);
  return st;
}

void kiln_accel_model_free(kiln_accel_model_t *m) {
  if (!m) return;
  free(m->scales);
  free(m->layers);
  free(m->image);
  free(m);
}

uint32_t kiln_accel_model_config_id(const kiln_accel_model_t *m) { return m->config_id; }
size_t kiln_accel_model_layer_count(const kiln_accel_model_t *m) { return m->n_layers; }
const char *kiln_accel_model_layer_name(const kiln_accel_model_t *m, size_t i) { return i < m->n_layers ? m->layers[i].name : ""; }
const char *kiln_accel_model_layer_kind(const kiln_accel_model_t *m, size_t i) { return i < m->n_layers ? m->layers[i].kind : ""; }
uint64_t kiln_accel_model_layer_macs(const kiln_accel_model_t *m, size_t i) { return i < m->n_layers ? m->layers[i].macs : 0; }
uint64_t kiln_accel_model_mem_bytes(const kiln_accel_model_t *m) { return m->mem_bytes; }

size_t kiln_accel_model_input_size(const kiln_accel_model_t *m, int64_t *dims, size_t *ndims) {
  if (dims) memcpy(dims, m->in_dims, sizeof m->in_dims);
  if (ndims) *ndims = m->in_ndims;
  return m->in_size;
}

size_t kiln_accel_model_output_size(const kiln_accel_model_t *m, int64_t *dims, size_t *ndims) {
  if (dims) memcpy(dims, m->out_dims, sizeof m->out_dims);
  if (ndims) *ndims = m->out_ndims;
  return m->out_size;
}

kiln_status_t kiln_accel_model_load(const kiln_accel_model_t *m, kiln_accel_device_t *dev, char *error, size_t error_size) {
  if (!m || !dev) return KILN_ERROR_INVALID_ARGUMENT;
  if (dev->config->config_id != m->config_id) {
    if (error)
      snprintf(error, error_size, "the model was compiled for accelerator configuration %08x, the device is %08x",
               m->config_id, dev->config->config_id);
    return KILN_ERROR_ABI_MISMATCH;
  }
  if (dev->mem_bytes < m->mem_bytes) {
    if (error)
      snprintf(error, error_size, "the model needs %llu bytes of device memory, the device has %llu",
               (unsigned long long)m->mem_bytes, (unsigned long long)dev->mem_bytes);
    return KILN_ERROR_BUFFER_TOO_SMALL;
  }
  return dev->mem_write(dev->ctx, 0, m->image, (size_t)m->image_bytes);
}

kiln_status_t kiln_accel_model_run(const kiln_accel_model_t *m, kiln_accel_device_t *dev, const float *input,
                                   size_t input_size, float *output, size_t output_size,
                                   kiln_accel_counters_t *per_layer, uint64_t max_cycles, char *error,
                                   size_t error_size) {
  if (!m || !dev || !input || !output) return KILN_ERROR_INVALID_ARGUMENT;
  if (input_size != m->in_size || output_size != m->out_size) {
    if (error) snprintf(error, error_size, "input has %zu elements (model: %zu), output %zu (model: %zu)", input_size,
                        m->in_size, output_size, m->out_size);
    return KILN_ERROR_SHAPE_MISMATCH;
  }
  uint8_t *q = malloc(m->in_size);
  int32_t *acc = malloc(4 * m->out_size);
  kiln_status_t st = (q && acc) ? KILN_OK : KILN_ERROR_OUT_OF_MEMORY;
  if (st == KILN_OK) {
    const float inv = 1.0f / m->in_scale;
    int64_t idx[KILN_ACCEL_MAX_DIMS] = {0};
    for (size_t i = 0; i < m->in_size; ++i, next_index(idx, m->in_dims, m->in_ndims)) {
      float v = nearbyintf(input[i] * inv) + (float)m->in_zp;
      q[stored_offset(m->in_dims, m->in_perm, m->in_ndims, idx, 0)] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); /* NaN -> 0 */
    }
    st = dev->mem_write(dev->ctx, m->in_addr, q, m->in_size);
  }
  for (uint32_t i = 0; st == KILN_OK && i < m->n_layers; ++i) {
    st = kiln_accel_run_program(dev, m->layers[i].prog_addr, max_cycles, per_layer ? &per_layer[i] : NULL, error, error_size);
    if (st != KILN_OK && error) {
      size_t len = strlen(error);
      snprintf(error + len, error_size - len, " (layer %s)", m->layers[i].name);
    }
  }
  if (st == KILN_OK) st = dev->mem_read(dev->ctx, m->out_addr, acc, 4 * m->out_size);
  if (st == KILN_OK) {
    const size_t last = (size_t)stored_last(m);
    int64_t idx[KILN_ACCEL_MAX_DIMS] = {0};
    for (size_t i = 0; i < m->out_size; ++i, next_index(idx, m->out_dims, m->out_ndims)) {
      const size_t at = stored_offset(m->out_dims, m->out_perm, m->out_ndims, idx, 1);
      int32_t v = (int32_t)get32((const uint8_t *)&acc[at]);
      output[i] = (float)v * m->scales[at % last];
    }
  }
  free(q);
  free(acc);
  return st;
}
