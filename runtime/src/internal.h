/* Kiln runtime: declarations shared between the runtime's own sources, not part of the API. */
#ifndef KILN_INTERNAL_H
#define KILN_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

#if defined(__GNUC__) || defined(__clang__)
#define KILN_PRINTF_LIKE(fmt_index, first_arg) \
  __attribute__((format(printf, fmt_index, first_arg)))
#else
#define KILN_PRINTF_LIKE(fmt_index, first_arg)
#endif

/* Sends the detail of a failure to the error hook and returns `status`, so a failing path
 * reads `return KILN_FAIL(KILN_ERROR_..., "fmt", ...)`. With KILN_NO_ERROR_TEXT the format
 * strings never reach the binary; the hook then only gets the status name. */
#ifdef KILN_NO_ERROR_TEXT
kiln_status_t kiln_error_report_status(kiln_status_t status);
/* Never defined: only named inside sizeof, which keeps the message arguments type-checked
 * and "used" (no unused-variable warnings) without evaluating or emitting them. */
int kiln_error_format_check(const char *fmt, ...) KILN_PRINTF_LIKE(1, 2);
#define KILN_FAIL(status, ...) \
  ((void)sizeof(kiln_error_format_check(__VA_ARGS__)), kiln_error_report_status(status))
#else
kiln_status_t kiln_error_report(kiln_status_t status, const char *fmt, ...)
    KILN_PRINTF_LIKE(2, 3);
#define KILN_FAIL(status, ...) kiln_error_report((status), __VA_ARGS__)
#endif

/* What kiln_model_create needs from a validated weights view. */
const void *kiln_weights_data(const kiln_weights_t *weights);
uint64_t kiln_weights_data_size(const kiln_weights_t *weights);
uint64_t kiln_weights_model_hash(const kiln_weights_t *weights);

/* The checksum of the .kw data section: FNV-1a 64 over little-endian 64-bit words,
 * then over the remaining bytes. */
uint64_t kiln_fnv1a64(const void *data, size_t size);

/* Opens `path` read-only (close-on-exec) and checks that it is a regular file whose size
 * fits in size_t; on success the caller owns *out_fd. */
kiln_status_t kiln_open_regular_file(const char *path, int *out_fd, size_t *out_size);

#endif /* KILN_INTERNAL_H */
