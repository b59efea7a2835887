/* Kiln runtime: opening, validating and releasing .kw weights files (see model_abi.h). */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* open/fstat/mmap also under a strict -std=c11 */
#endif

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

struct kiln_weights_t {
  const uint8_t *data;  /* start of the data section, KILN_WEIGHTS_ALIGNMENT-aligned */
  uint64_t data_size;
  uint64_t model_hash;
  void *mapping;        /* non-NULL when the file is mmap'ed and must be unmapped */
  size_t mapping_size;
};

uint64_t kiln_fnv1a64(const void *data, size_t size) {
  /* FNV-1a over little-endian 64-bit words, then over the tail bytes: one multiply per
   * 8 bytes keeps verifying a 100 MB file at load in the tens of milliseconds. */
  const uint8_t *bytes = (const uint8_t *)data;
  uint64_t hash = 0xcbf29ce484222325ull;
  size_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t word = 0;
    for (int b = 7; b >= 0; --b) word = word << 8 | bytes[i + (size_t)b];
    hash ^= word;
    hash *= 0x100000001b3ull;
  }
  for (; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ull;
  }
  return hash;
}

/* The file format is little-endian whatever the host is, so fields are decoded bytewise
 * rather than by overlaying kiln_weights_header_t on the (possibly unaligned) bytes. */
static uint32_t load_u32_le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t load_u64_le(const uint8_t *p) {
  return (uint64_t)load_u32_le(p) | (uint64_t)load_u32_le(p + 4) << 32;
}

/* Validates a whole .kw image and fills everything of `out` except the mapping. */
static kiln_status_t weights_parse(const uint8_t *base, size_t size, const char *origin,
                                   kiln_weights_t *out) {
  if (size < KILN_WEIGHTS_HEADER_SIZE)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: truncated header (%zu bytes, need %u)", origin, size,
                     KILN_WEIGHTS_HEADER_SIZE);
  if (memcmp(base, KILN_WEIGHTS_MAGIC, sizeof KILN_WEIGHTS_MAGIC) != 0)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: not a Kiln weights file (bad magic)",
                     origin);

  uint32_t format_version = load_u32_le(base + 8);
  uint32_t header_size = load_u32_le(base + 12);
  uint64_t data_offset = load_u64_le(base + 16);
  uint64_t data_size = load_u64_le(base + 24);
  uint64_t model_hash = load_u64_le(base + 32);
  uint64_t checksum = load_u64_le(base + 40);

  if (format_version != KILN_WEIGHTS_FORMAT_VERSION)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: unsupported format version %u (this runtime reads %u)", origin,
                     format_version, KILN_WEIGHTS_FORMAT_VERSION);
  if (header_size != KILN_WEIGHTS_HEADER_SIZE)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: header_size %u, expected %u", origin,
                     header_size, KILN_WEIGHTS_HEADER_SIZE);
  if (data_offset % KILN_WEIGHTS_ALIGNMENT != 0 || data_offset < header_size)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: data_offset %llu is not a multiple of %u past the header", origin,
                     (unsigned long long)data_offset, KILN_WEIGHTS_ALIGNMENT);
  /* Written as two comparisons so that offset + size cannot wrap around. */
  if (data_offset > size || data_size > size - data_offset)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: truncated data (offset %llu + size %llu > file size %zu)", origin,
                     (unsigned long long)data_offset, (unsigned long long)data_size, size);

  const uint8_t *data = base + data_offset;
  uint64_t actual = kiln_fnv1a64(data, (size_t)data_size);
  if (actual != checksum)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: checksum mismatch (header %016llx, data %016llx): file corrupted",
                     origin, (unsigned long long)checksum, (unsigned long long)actual);

  out->data = data;
  out->data_size = data_size;
  out->model_hash = model_hash;
  return KILN_OK;
}

kiln_status_t kiln_open_regular_file(const char *path, int *out_fd, size_t *out_size) {
  int fd;
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0)
    return KILN_FAIL(KILN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));

  struct stat st;
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return KILN_FAIL(KILN_ERROR_IO, "%s: cannot stat: %s", path, strerror(err));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return KILN_FAIL(KILN_ERROR_IO, "%s: not a regular file", path);
  }
  if ((uintmax_t)st.st_size > SIZE_MAX) {
    close(fd);
    return KILN_FAIL(KILN_ERROR_IO, "%s: too large to read", path);
  }
  *out_fd = fd;
  *out_size = (size_t)st.st_size;
  return KILN_OK;
}

kiln_status_t kiln_weights_open(const char *path, kiln_weights_t **out_weights) {
  if (!out_weights) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "out_weights is NULL");
  *out_weights = NULL;
  if (!path) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "weights path is NULL");

  int fd;
  size_t size;
  kiln_status_t opened = kiln_open_regular_file(path, &fd, &size);
  if (opened != KILN_OK) return opened;
  if (size < KILN_WEIGHTS_HEADER_SIZE) {
    /* Checked before mmap, which rejects a zero-length mapping. */
    close(fd);
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: truncated header (%zu bytes, need %u)",
                     path, size, KILN_WEIGHTS_HEADER_SIZE);
  }

  void *mapping = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
  int map_err = errno;
  close(fd); /* the mapping keeps the file alive */
  if (mapping == MAP_FAILED)
    return KILN_FAIL(KILN_ERROR_IO, "%s: cannot map: %s", path, strerror(map_err));

  kiln_weights_t *weights = (kiln_weights_t *)calloc(1, sizeof *weights);
  if (!weights) {
    munmap(mapping, size);
    return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate weights handle", path);
  }
  kiln_status_t status = weights_parse((const uint8_t *)mapping, size, path, weights);
  if (status != KILN_OK) {
    munmap(mapping, size);
    free(weights);
    return status;
  }
  weights->mapping = mapping;
  weights->mapping_size = size;
  *out_weights = weights;
  return KILN_OK;
}

kiln_status_t kiln_weights_wrap(const void *data, size_t size, kiln_weights_t **out_weights) {
  if (!out_weights) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "out_weights is NULL");
  *out_weights = NULL;
  if (!data) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "weights memory is NULL");

  kiln_weights_t parsed;
  memset(&parsed, 0, sizeof parsed);
  kiln_status_t status = weights_parse((const uint8_t *)data, size, "weights memory", &parsed);
  if (status != KILN_OK) return status;
  /* A mapped file is page-aligned, so its data section is aligned by construction; caller
   * memory must give the same guarantee, since compiled code may use aligned vector loads. */
  if ((uintptr_t)parsed.data % KILN_WEIGHTS_ALIGNMENT != 0)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                     "weights memory: data section at %p is not %u-byte aligned "
                     "(align the buffer to %u bytes)",
                     (const void *)parsed.data, KILN_WEIGHTS_ALIGNMENT, KILN_WEIGHTS_ALIGNMENT);

  kiln_weights_t *weights = (kiln_weights_t *)malloc(sizeof *weights);
  if (!weights)
    return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "cannot allocate weights handle");
  *weights = parsed;
  *out_weights = weights;
  return KILN_OK;
}

void kiln_weights_close(kiln_weights_t *weights) {
  if (!weights) return;
  if (weights->mapping) munmap(weights->mapping, weights->mapping_size);
  free(weights);
}

const void *kiln_weights_data(const kiln_weights_t *weights) { return weights->data; }

uint64_t kiln_weights_data_size(const kiln_weights_t *weights) { return weights->data_size; }

uint64_t kiln_weights_model_hash(const kiln_weights_t *weights) { return weights->model_hash; }
