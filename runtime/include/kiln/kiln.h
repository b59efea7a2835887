/* Kiln runtime: the public C API that applications use to run a compiled model.
 *
 * Lifecycle: kiln_weights_open -> kiln_model_create -> kiln_model_plan (arena size)
 * -> kiln_model_bind_arena / bind_input / bind_output -> kiln_model_run (repeat)
 * -> kiln_model_destroy -> kiln_weights_close.
 * The caller owns every buffer; nothing is allocated in kiln_model_run. Every
 * fallible call returns a kiln_status_t and never aborts on bad input. */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/model_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_status_t {
  KILN_OK = 0,
  KILN_ERROR_INVALID_ARGUMENT = 1, /* null pointer, index out of range */
  KILN_ERROR_SHAPE_MISMATCH = 2,   /* bound tensor's shape differs from the model's */
  KILN_ERROR_DTYPE_MISMATCH = 3,   /* bound tensor's element type differs */
  KILN_ERROR_BUFFER_TOO_SMALL = 4, /* bound buffer smaller than the tensor/arena */
  KILN_ERROR_NOT_BOUND = 5,        /* run before every input/output/arena was bound */
  KILN_ERROR_IO = 6,               /* file could not be opened, read or mapped */
  KILN_ERROR_BAD_WEIGHTS = 7,      /* weights file truncated, corrupted or of another model */
  KILN_ERROR_ABI_MISMATCH = 8,     /* model object built for another runtime ABI */
  KILN_ERROR_OUT_OF_MEMORY = 9,
  KILN_ERROR_NOT_FOUND = 10,       /* no input/output of that name */
  KILN_ERROR_DEVICE = 11,          /* no usable device (e.g. no Vulkan driver), a missing
                                      device feature, or the device failed */
} kiln_status_t;

/* Human-readable name of a status ("ok", "shape mismatch", ...). */
const char *kiln_status_string(kiln_status_t status);

/* Error detail: the runtime reports the reason for a failing call through this hook
 * (default: none). Builds with KILN_NO_ERROR_TEXT compile the messages out. */
typedef void (*kiln_error_hook_t)(void *user, const char *message);
void kiln_set_error_hook(kiln_error_hook_t hook, void *user);

/* Weights: a validated, read-only view of a .kw file (memory-mapped) or of caller memory. */
typedef struct kiln_weights_t kiln_weights_t;
kiln_status_t kiln_weights_open(const char *path, kiln_weights_t **out_weights);
/* `data` must stay valid until kiln_weights_close; it is not copied. Like a mapped file's,
 * its data section (data + data_offset) must be KILN_WEIGHTS_ALIGNMENT-aligned. */
kiln_status_t kiln_weights_wrap(const void *data, size_t size, kiln_weights_t **out_weights);
void kiln_weights_close(kiln_weights_t *weights);

/* A model instance. */
typedef struct kiln_model_t kiln_model_t;
kiln_status_t kiln_model_create(const kiln_model_desc_t *desc, const kiln_weights_t *weights,
                                kiln_model_t **out_model);
void kiln_model_destroy(kiln_model_t *model);

/* Introspection. */
size_t kiln_model_num_inputs(const kiln_model_t *model);
size_t kiln_model_num_outputs(const kiln_model_t *model);
const kiln_tensor_desc_t *kiln_model_input(const kiln_model_t *model, size_t index);
const kiln_tensor_desc_t *kiln_model_output(const kiln_model_t *model, size_t index);
kiln_status_t kiln_model_find_input(const kiln_model_t *model, const char *name, size_t *out_index);
kiln_status_t kiln_model_find_output(const kiln_model_t *model, const char *name, size_t *out_index);

/* Scratch memory the model needs between layers (size may be 0). */
kiln_status_t kiln_model_plan(const kiln_model_t *model, size_t *out_arena_size,
                              size_t *out_arena_alignment);
kiln_status_t kiln_model_bind_arena(kiln_model_t *model, void *arena, size_t size);

/* Bind caller buffers. dtype, rank and dims are checked against the model's. */
kiln_status_t kiln_model_bind_input(kiln_model_t *model, size_t index, kiln_dtype_t dtype,
                                    size_t rank, const int64_t *dims, const void *data,
                                    size_t size_bytes);
kiln_status_t kiln_model_bind_output(kiln_model_t *model, size_t index, kiln_dtype_t dtype,
                                     size_t rank, const int64_t *dims, void *data,
                                     size_t size_bytes);

/* Runs kernels on `threads` threads (the caller plus threads - 1 workers, created here;
 * default 1). Call before kiln_model_run, not concurrently with it. */
kiln_status_t kiln_model_set_threads(kiln_model_t *model, size_t threads);

kiln_status_t kiln_model_run(kiln_model_t *model);

/* Size in bytes of one element of dtype (0 for an unknown dtype). */
size_t kiln_dtype_size(kiln_dtype_t dtype);
const char *kiln_dtype_name(kiln_dtype_t dtype);

#ifdef __cplusplus
}
#endif

#endif /* KILN_KILN_H */
