/* Kiln runtime: status names and the error hook through which failures explain themselves. */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

/* One process-wide hook: set it once at startup, before any thread calls the runtime. */
static kiln_error_hook_t g_error_hook = NULL;
static void *g_error_hook_user = NULL;

const char *kiln_status_string(kiln_status_t status) {
  switch (status) {
    case KILN_OK: return "ok";
    case KILN_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ERROR_SHAPE_MISMATCH: return "shape mismatch";
    case KILN_ERROR_DTYPE_MISMATCH: return "dtype mismatch";
    case KILN_ERROR_BUFFER_TOO_SMALL: return "buffer too small";
    case KILN_ERROR_NOT_BOUND: return "not bound";
    case KILN_ERROR_IO: return "I/O error";
    case KILN_ERROR_BAD_WEIGHTS: return "bad weights";
    case KILN_ERROR_ABI_MISMATCH: return "ABI mismatch";
    case KILN_ERROR_OUT_OF_MEMORY: return "out of memory";
    case KILN_ERROR_NOT_FOUND: return "not found";
    case KILN_ERROR_DEVICE: return "device error";
  }
  return "unknown status";
}

void kiln_set_error_hook(kiln_error_hook_t hook, void *user) {
  g_error_hook = hook;
  g_error_hook_user = user;
}

#ifdef KILN_NO_ERROR_TEXT

kiln_status_t kiln_error_report_status(kiln_status_t status) {
  if (g_error_hook) g_error_hook(g_error_hook_user, kiln_status_string(status));
  return status;
}

#else

kiln_status_t kiln_error_report(kiln_status_t status, const char *fmt, ...) {
  if (!g_error_hook) return status;
  /* A stack buffer keeps error reporting allocation-free, so it also works when out of
   * memory and inside kiln_model_run; overlong messages are truncated. */
  char message[512];
  va_list args;
  va_start(args, fmt);
  int n = vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  if (n < 0) message[0] = '\0';
  g_error_hook(g_error_hook_user, message);
  return status;
}

#endif
