/* Kiln runtime: strict NumPy .npy reader (format 1.0/2.0) and writer (format 1.0). */
#include "kiln/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6u
/* NumPy itself refuses headers over 10000 bytes by default; a little more slack here still
 * keeps a hostile length field from asking for gigabytes before anything is validated. */
#define NPY_MAX_HEADER_LEN 65536u
#define NPY_DATA_ALIGNMENT 64u /* of the buffer kiln_npy_read hands out */
#define NPY_HEADER_ALIGNMENT 64u /* of magic + length + header in files we write */

typedef struct npy_type_t {
  const char *descr;
  kiln_dtype_t dtype;
  size_t elem_size;
} npy_type_t;

/* The spellings NumPy writes; '<' is required for multi-byte types, '|' for single bytes. */
static const npy_type_t k_npy_types[] = {
    {"<f4", KILN_DTYPE_F32, 4}, {"<f2", KILN_DTYPE_F16, 2},  {"<f8", KILN_DTYPE_INVALID, 8},
    {"<i8", KILN_DTYPE_I64, 8}, {"<i4", KILN_DTYPE_I32, 4},  {"|i1", KILN_DTYPE_I8, 1},
    {"|u1", KILN_DTYPE_U8, 1},  {"|b1", KILN_DTYPE_BOOL, 1},
};

static int host_is_little_endian(void) {
  const uint16_t one = 1;
  return *(const unsigned char *)&one == 1;
}

/* ---- header parsing ----------------------------------------------------------------- */

typedef struct cursor_t {
  const char *p;
  const char *end;
  const char *origin; /* file name for messages */
} cursor_t;

static void skip_space(cursor_t *c) {
  while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
    ++c->p;
}

static int take_char(cursor_t *c, char ch) {
  if (c->p < c->end && *c->p == ch) {
    ++c->p;
    return 1;
  }
  return 0;
}

static int is_ident_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
         ch == '_';
}

/* A quoted Python string literal without escapes (NumPy never writes any). On success the
 * contents are in buf (NUL-terminated); contents longer than cap-1 are an error. */
static kiln_status_t parse_string(cursor_t *c, const char *what, char *buf, size_t cap) {
  if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: expected a string for %s",
                     c->origin, what);
  char quote = *c->p++;
  size_t len = 0;
  while (c->p < c->end && *c->p != quote) {
    char ch = *c->p;
    if (ch == '\\' || (unsigned char)ch < 0x20 || (unsigned char)ch >= 0x7f)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                       "%s: npy header: unsupported character in string for %s", c->origin,
                       what);
    if (len + 1 >= cap)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: string for %s too long",
                       c->origin, what);
    buf[len++] = ch;
    ++c->p;
  }
  if (c->p >= c->end)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: unterminated string",
                     c->origin);
  ++c->p; /* closing quote */
  buf[len] = '\0';
  return KILN_OK;
}

static kiln_status_t parse_bool(cursor_t *c, int *out) {
  size_t left = (size_t)(c->end - c->p);
  if (left >= 4 && memcmp(c->p, "True", 4) == 0 && (left == 4 || !is_ident_char(c->p[4]))) {
    c->p += 4;
    *out = 1;
    return KILN_OK;
  }
  if (left >= 5 && memcmp(c->p, "False", 5) == 0 && (left == 5 || !is_ident_char(c->p[5]))) {
    c->p += 5;
    *out = 0;
    return KILN_OK;
  }
  return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                   "%s: npy header: fortran_order must be True or False", c->origin);
}

/* A non-negative decimal literal as Python spells it (no sign, no leading zeros). */
static kiln_status_t parse_dim(cursor_t *c, int64_t *out) {
  if (c->p >= c->end || *c->p < '0' || *c->p > '9')
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                     "%s: npy header: shape must hold non-negative integers", c->origin);
  if (*c->p == '0' && c->p + 1 < c->end && c->p[1] >= '0' && c->p[1] <= '9')
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: dim with leading zero",
                     c->origin);
  int64_t value = 0;
  while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
    int digit = *c->p - '0';
    if (value > (INT64_MAX - digit) / 10)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: dim overflows int64",
                       c->origin);
    value = value * 10 + digit;
    ++c->p;
  }
  if (c->p < c->end && is_ident_char(*c->p))
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: malformed dim", c->origin);
  *out = value;
  return KILN_OK;
}

/* A Python tuple of dims: "()", "(3,)", "(2, 3)", "(2, 3,)". */
static kiln_status_t parse_shape(cursor_t *c, kiln_npy_t *out) {
  if (!take_char(c, '('))
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: shape must be a tuple",
                     c->origin);
  size_t rank = 0;
  skip_space(c);
  if (take_char(c, ')')) {
    out->rank = 0;
    return KILN_OK;
  }
  for (;;) {
    if (rank == KILN_NPY_MAX_RANK)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: rank exceeds %d",
                       c->origin, KILN_NPY_MAX_RANK);
    kiln_status_t status = parse_dim(c, &out->dims[rank]);
    if (status != KILN_OK) return status;
    ++rank;
    skip_space(c);
    if (take_char(c, ',')) {
      skip_space(c);
      if (take_char(c, ')')) break;
      continue;
    }
    if (take_char(c, ')')) {
      /* "(3)" is the integer 3 in Python, not a tuple. */
      if (rank == 1)
        return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                         "%s: npy header: shape must be a tuple", c->origin);
      break;
    }
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: malformed shape tuple",
                     c->origin);
  }
  out->rank = rank;
  return KILN_OK;
}

/* Fills everything of out but data from the header dict, e.g.
 * {'descr': '<f4', 'fortran_order': False, 'shape': (1, 10), } */
static kiln_status_t parse_header(const char *text, size_t len, const char *origin,
                                  kiln_npy_t *out) {
  cursor_t c = {text, text + len, origin};
  int seen_descr = 0, seen_order = 0, seen_shape = 0, fortran_order = 0;
  char descr[8] = {0};
  kiln_status_t status;

  skip_space(&c);
  if (!take_char(&c, '{'))
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header is not a dict", origin);
  for (;;) {
    skip_space(&c);
    if (take_char(&c, '}')) break;
    char key[16];
    status = parse_string(&c, "a key", key, sizeof key);
    if (status != KILN_OK) return status;
    skip_space(&c);
    if (!take_char(&c, ':'))
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: expected ':' after '%s'",
                       origin, key);
    skip_space(&c);
    if (strcmp(key, "descr") == 0 && !seen_descr) {
      seen_descr = 1;
      status = parse_string(&c, "descr", descr, sizeof descr);
    } else if (strcmp(key, "fortran_order") == 0 && !seen_order) {
      seen_order = 1;
      status = parse_bool(&c, &fortran_order);
    } else if (strcmp(key, "shape") == 0 && !seen_shape) {
      seen_shape = 1;
      status = parse_shape(&c, out);
    } else {
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                       "%s: npy header: unexpected or repeated key '%s'", origin, key);
    }
    if (status != KILN_OK) return status;
    skip_space(&c);
    if (take_char(&c, ',')) continue;
    if (take_char(&c, '}')) break;
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: expected ',' or '}'", origin);
  }
  skip_space(&c);
  if (c.p != c.end)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header: junk after the dict", origin);
  if (!seen_descr || !seen_order || !seen_shape)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                     "%s: npy header lacks %s", origin,
                     !seen_descr ? "'descr'" : !seen_order ? "'fortran_order'" : "'shape'");
  if (fortran_order)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                     "%s: fortran_order arrays are not supported (save in C order)", origin);

  const npy_type_t *type = NULL;
  for (size_t i = 0; i < sizeof k_npy_types / sizeof k_npy_types[0]; ++i)
    if (strcmp(descr, k_npy_types[i].descr) == 0) type = &k_npy_types[i];
  if (!type)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                     "%s: unsupported npy dtype '%s' (supported: <f4 <f2 <f8 <i8 <i4 |i1 |u1 "
                     "|b1)",
                     origin, descr);
  if (type->elem_size > 1 && !host_is_little_endian())
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: little-endian data on a big-endian host",
                     origin);

  size_t count = 1;
  for (size_t d = 0; d < out->rank; ++d) {
    uint64_t dim = (uint64_t)out->dims[d];
    if (dim != 0 && count > SIZE_MAX / dim)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy shape overflows the address space",
                       origin);
    count *= (size_t)dim;
  }
  if (count > SIZE_MAX / type->elem_size)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy shape overflows the address space",
                     origin);
  out->dtype = type->dtype;
  memcpy(out->descr, type->descr, 4);
  out->elem_size = type->elem_size;
  out->num_elements = count;
  out->size_bytes = count * type->elem_size;
  return KILN_OK;
}

/* ---- file layout -------------------------------------------------------------------- */

/* Checks magic and version in the first 8 bytes; *len_bytes is the width of the header
 * length field that follows (2 for 1.0, 4 for 2.0). */
static kiln_status_t parse_magic(const unsigned char *p, const char *origin, size_t *len_bytes) {
  if (memcmp(p, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: not an npy file (bad magic)", origin);
  if (p[6] == 1 && p[7] == 0) {
    *len_bytes = 2;
  } else if (p[6] == 2 && p[7] == 0) {
    *len_bytes = 4;
  } else {
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                     "%s: unsupported npy format version %u.%u (reads 1.0 and 2.0)", origin,
                     (unsigned)p[6], (unsigned)p[7]);
  }
  return KILN_OK;
}

static kiln_status_t parse_header_len(const unsigned char *p, size_t len_bytes,
                                      const char *origin, size_t *out) {
  uint32_t len = (uint32_t)p[0] | (uint32_t)p[1] << 8;
  if (len_bytes == 4) len |= (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
  if (len == 0 || len > NPY_MAX_HEADER_LEN)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy header length %lu out of range",
                     origin, (unsigned long)len);
  *out = len;
  return KILN_OK;
}

static kiln_status_t alloc_data(kiln_npy_t *out, const char *origin) {
  /* Rounded up because aligned_alloc wants a multiple of the alignment; at least one block
   * so an empty array still gets a non-NULL pointer. */
  size_t size = out->size_bytes;
  if (size > SIZE_MAX - NPY_DATA_ALIGNMENT)
    return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: npy data too large", origin);
  size_t rounded = (size / NPY_DATA_ALIGNMENT + 1) * NPY_DATA_ALIGNMENT;
  out->data = aligned_alloc(NPY_DATA_ALIGNMENT, rounded);
  if (!out->data)
    return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes", origin, size);
  return KILN_OK;
}

static void npy_clear(kiln_npy_t *npy) {
  memset(npy, 0, sizeof *npy);
  npy->dtype = KILN_DTYPE_INVALID;
}

void kiln_npy_free(kiln_npy_t *npy) {
  if (!npy) return;
  free(npy->data);
  npy_clear(npy);
}

kiln_status_t kiln_npy_read_memory(const void *bytes, size_t size, kiln_npy_t *out) {
  static const char origin[] = "npy memory";
  if (!out) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "npy: out is NULL");
  npy_clear(out);
  if (!bytes && size > 0) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "npy: bytes is NULL");
  const unsigned char *p = (const unsigned char *)bytes;

  if (size < 8)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: truncated npy preamble", origin);
  size_t len_bytes = 0, header_len = 0;
  kiln_status_t status = parse_magic(p, origin, &len_bytes);
  if (status != KILN_OK) return status;
  if (size - 8 < len_bytes)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: truncated npy preamble", origin);
  status = parse_header_len(p + 8, len_bytes, origin, &header_len);
  if (status != KILN_OK) return status;
  size_t data_offset = 8 + len_bytes;
  if (size - data_offset < header_len)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: truncated npy header", origin);
  status = parse_header((const char *)p + data_offset, header_len, origin, out);
  if (status != KILN_OK) {
    npy_clear(out);
    return status;
  }
  data_offset += header_len;

  size_t available = size - data_offset;
  if (available != out->size_bytes) {
    size_t need = out->size_bytes;
    npy_clear(out);
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                     "%s: npy data has %zu bytes, shape and dtype need %zu", origin, available,
                     need);
  }
  status = alloc_data(out, origin);
  if (status != KILN_OK) {
    npy_clear(out);
    return status;
  }
  if (out->size_bytes) memcpy(out->data, p + data_offset, out->size_bytes);
  return KILN_OK;
}

static kiln_status_t read_exact(FILE *f, void *buf, size_t size, const char *path,
                                const char *what) {
  if (size == 0) return KILN_OK;
  size_t got = fread(buf, 1, size, f);
  if (got == size) return KILN_OK;
  if (ferror(f))
    return KILN_FAIL(KILN_ERROR_IO, "%s: read error: %s", path, strerror(errno));
  return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: truncated npy %s (%zu of %zu bytes)", path,
                   what, got, size);
}

static kiln_status_t read_file(FILE *f, const char *path, kiln_npy_t *out) {
  unsigned char preamble[12];
  size_t len_bytes = 0, header_len = 0;
  kiln_status_t status = read_exact(f, preamble, 8, path, "preamble");
  if (status != KILN_OK) return status;
  status = parse_magic(preamble, path, &len_bytes);
  if (status != KILN_OK) return status;
  status = read_exact(f, preamble + 8, len_bytes, path, "preamble");
  if (status != KILN_OK) return status;
  status = parse_header_len(preamble + 8, len_bytes, path, &header_len);
  if (status != KILN_OK) return status;

  char *header = (char *)malloc(header_len);
  if (!header) return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate header", path);
  status = read_exact(f, header, header_len, path, "header");
  if (status == KILN_OK) status = parse_header(header, header_len, path, out);
  free(header);
  if (status != KILN_OK) return status;

  /* Check the length before allocating, so a shape promising terabytes fails cleanly
   * instead of attempting the allocation. Unseekable streams just read and see. */
  long here = ftell(f);
  if (here >= 0 && fseek(f, 0, SEEK_END) == 0) {
    long end = ftell(f);
    if (end < here || fseek(f, here, SEEK_SET) != 0)
      return KILN_FAIL(KILN_ERROR_IO, "%s: cannot seek", path);
    uint64_t available = (uint64_t)(end - here);
    if (available != (uint64_t)out->size_bytes)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT,
                       "%s: npy data has %llu bytes, shape and dtype need %zu", path,
                       (unsigned long long)available, out->size_bytes);
  }
  status = alloc_data(out, path);
  if (status != KILN_OK) return status;
  status = read_exact(f, out->data, out->size_bytes, path, "data");
  if (status != KILN_OK) return status;
  if (fgetc(f) != EOF)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: trailing bytes after the npy data", path);
  return KILN_OK;
}

kiln_status_t kiln_npy_read(const char *path, kiln_npy_t *out) {
  if (!out) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "npy: out is NULL");
  npy_clear(out);
  if (!path) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "npy: path is NULL");
  FILE *f = fopen(path, "rb");
  if (!f) return KILN_FAIL(KILN_ERROR_IO, "%s: cannot open: %s", path, strerror(errno));
  kiln_status_t status = read_file(f, path, out);
  fclose(f);
  if (status != KILN_OK) kiln_npy_free(out);
  return status;
}

/* ---- writing ------------------------------------------------------------------------ */

kiln_status_t kiln_npy_write(const char *path, kiln_dtype_t dtype, size_t rank,
                             const int64_t *dims, const void *data) {
  if (!path) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "npy write: path is NULL");
  const npy_type_t *type = NULL;
  for (size_t i = 0; i < sizeof k_npy_types / sizeof k_npy_types[0]; ++i)
    if (k_npy_types[i].dtype == dtype && dtype != KILN_DTYPE_INVALID) type = &k_npy_types[i];
  if (!type)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: cannot write dtype %d to npy", path,
                     (int)dtype);
  if (type->elem_size > 1 && !host_is_little_endian())
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: npy writer needs a little-endian host",
                     path);
  if (rank > KILN_NPY_MAX_RANK)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: rank %zu exceeds %d", path, rank,
                     KILN_NPY_MAX_RANK);
  if (rank > 0 && !dims)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: dims is NULL", path);

  /* Worst case: 32 dims of 19 digits plus separators, well under the buffer. */
  char header[1024];
  size_t len = 0;
  int n = snprintf(header, sizeof header, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                   type->descr);
  if (n < 0) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: cannot format header", path);
  len = (size_t)n;
  size_t count = 1;
  for (size_t d = 0; d < rank; ++d) {
    if (dims[d] < 0)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: negative dim %lld", path,
                       (long long)dims[d]);
    uint64_t dim = (uint64_t)dims[d];
    if (dim != 0 && count > SIZE_MAX / dim)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: shape overflows", path);
    count *= (size_t)dim;
    n = snprintf(header + len, sizeof header - len, d == 0 ? "%lld" : ", %lld",
                 (long long)dims[d]);
    if (n < 0 || (size_t)n >= sizeof header - len)
      return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: cannot format header", path);
    len += (size_t)n;
  }
  if (count > SIZE_MAX / type->elem_size)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: shape overflows", path);
  size_t size_bytes = count * type->elem_size;
  if (size_bytes > 0 && !data)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: data is NULL", path);
  n = snprintf(header + len, sizeof header - len, rank == 1 ? ",), }" : "), }");
  if (n < 0 || (size_t)n >= sizeof header - len)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: cannot format header", path);
  len += (size_t)n;
  /* Pad with spaces and end with '\n' so the data starts aligned, as NumPy does. */
  size_t total = 10 + len + 1;
  size_t padded = (total + NPY_HEADER_ALIGNMENT - 1) / NPY_HEADER_ALIGNMENT * NPY_HEADER_ALIGNMENT;
  if (padded - 10 >= sizeof header)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s: header too long", path);
  memset(header + len, ' ', padded - total);
  len += padded - total;
  header[len++] = '\n';

  unsigned char preamble[10];
  memcpy(preamble, NPY_MAGIC, NPY_MAGIC_LEN);
  preamble[6] = 1;
  preamble[7] = 0;
  preamble[8] = (unsigned char)(len & 0xff);
  preamble[9] = (unsigned char)(len >> 8);

  FILE *f = fopen(path, "wb");
  if (!f) return KILN_FAIL(KILN_ERROR_IO, "%s: cannot create: %s", path, strerror(errno));
  int ok = fwrite(preamble, 1, sizeof preamble, f) == sizeof preamble &&
           fwrite(header, 1, len, f) == len &&
           (size_bytes == 0 || fwrite(data, 1, size_bytes, f) == size_bytes);
  int saved_errno = errno;
  if (fclose(f) != 0 && ok) {
    ok = 0;
    saved_errno = errno;
  }
  if (!ok) {
    remove(path); /* do not leave a truncated file that a later read would trip over */
    return KILN_FAIL(KILN_ERROR_IO, "%s: write failed: %s", path, strerror(saved_errno));
  }
  return KILN_OK;
}
