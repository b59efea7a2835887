/* Kiln runtime: model instances: create, plan, bind caller buffers, run, destroy. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "threadpool.h"

/* args[] is exactly what desc->invoke receives, so kiln_model_run needs no setup work
 * (and no allocation): binding a buffer writes its slot directly. */
#define ARG_WEIGHTS 0u
#define ARG_ARENA 1u
#define ARG_FIRST_INPUT 2u

struct kiln_model_t {
  const kiln_model_desc_t *desc;
  size_t num_args;       /* 2 + inputs + outputs */
  void **args;           /* num_args slots */
  unsigned char *bound;  /* num_args flags; the weights slot is always bound */
  uint64_t arena_alignment;
  kiln_threadpool_t *pool; /* NULL: single-threaded */
};

/* The descriptor comes from the compiler, but a stale or mismatched object file should be
 * reported, not trusted: checked once here so binding and running can rely on it. */
static kiln_status_t check_tensor_desc(const kiln_tensor_desc_t *t, const char *kind,
                                       size_t index) {
  if (!t->name)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor: %s %zu has no name", kind,
                     index);
  size_t elem = kiln_dtype_size((kiln_dtype_t)t->dtype);
  if (elem == 0)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor: %s '%s' has unknown dtype %d",
                     kind, t->name, (int)t->dtype);
  if (t->rank < 0 || (t->rank > 0 && !t->dims))
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor: %s '%s' has bad rank %d",
                     kind, t->name, (int)t->rank);
  uint64_t bytes = elem;
  for (int32_t d = 0; d < t->rank; ++d) {
    int64_t dim = t->dims[d];
    if (dim < 0)
      return KILN_FAIL(KILN_ERROR_ABI_MISMATCH,
                       "model descriptor: %s '%s' has negative dim %lld", kind, t->name,
                       (long long)dim);
    if (dim != 0 && bytes > UINT64_MAX / (uint64_t)dim)
      return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor: %s '%s' size overflows",
                       kind, t->name);
    bytes *= (uint64_t)dim;
  }
  if (bytes != t->size_bytes || bytes > SIZE_MAX)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH,
                     "model descriptor: %s '%s' size_bytes %llu, dims say %llu", kind, t->name,
                     (unsigned long long)t->size_bytes, (unsigned long long)bytes);
  return KILN_OK;
}

static kiln_status_t check_tensor_list(const kiln_tensor_desc_t *list, uint32_t count,
                                       const char *kind) {
  if (count > 0 && !list)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor: %u %ss but no table", count,
                     kind);
  for (uint32_t i = 0; i < count; ++i) {
    kiln_status_t status = check_tensor_desc(&list[i], kind, i);
    if (status != KILN_OK) return status;
    /* Duplicate names would make lookup by name ambiguous. */
    for (uint32_t j = 0; j < i; ++j)
      if (strcmp(list[i].name, list[j].name) == 0)
        return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor: two %ss named '%s'",
                         kind, list[i].name);
  }
  return KILN_OK;
}

kiln_status_t kiln_model_create(const kiln_model_desc_t *desc, const kiln_weights_t *weights,
                                kiln_model_t **out_model) {
  if (!out_model) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "out_model is NULL");
  *out_model = NULL;
  if (!desc) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "model descriptor is NULL");
  if (!weights) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "weights is NULL");
  if (desc->abi_version != KILN_MODEL_ABI_VERSION)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH,
                     "model object has ABI version %u, this runtime implements %u "
                     "(recompile the model with a matching kiln)",
                     desc->abi_version, KILN_MODEL_ABI_VERSION);
  if (!desc->invoke)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor has no entry point");
  kiln_status_t status = check_tensor_list(desc->inputs, desc->num_inputs, "input");
  if (status != KILN_OK) return status;
  status = check_tensor_list(desc->outputs, desc->num_outputs, "output");
  if (status != KILN_OK) return status;

  uint64_t alignment = desc->arena_alignment ? desc->arena_alignment : 1;
  if ((alignment & (alignment - 1)) != 0)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH,
                     "model descriptor: arena_alignment %llu is not a power of two",
                     (unsigned long long)alignment);
  if (desc->arena_size > SIZE_MAX || alignment > SIZE_MAX)
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model arena (%llu bytes) exceeds the address space",
                     (unsigned long long)desc->arena_size);

  if (kiln_weights_data_size(weights) != desc->weights_size)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "weights have %llu data bytes, model '%s' expects %llu",
                     (unsigned long long)kiln_weights_data_size(weights),
                     desc->name ? desc->name : "", (unsigned long long)desc->weights_size);
  if (kiln_weights_model_hash(weights) != desc->weights_hash)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "weights were made for another model (hash %016llx, model '%s' "
                     "expects %016llx)",
                     (unsigned long long)kiln_weights_model_hash(weights),
                     desc->name ? desc->name : "", (unsigned long long)desc->weights_hash);

  size_t num_args = (size_t)ARG_FIRST_INPUT + desc->num_inputs + desc->num_outputs;
  if (num_args > SIZE_MAX / (sizeof(void *) + 1))
    return KILN_FAIL(KILN_ERROR_ABI_MISMATCH, "model descriptor: too many inputs/outputs");
  /* One block for the handle, its argument slots and their bound flags. */
  size_t args_offset = sizeof(kiln_model_t);
  args_offset = (args_offset + sizeof(void *) - 1) / sizeof(void *) * sizeof(void *);
  size_t total = args_offset + num_args * sizeof(void *) + num_args;
  unsigned char *block = (unsigned char *)calloc(1, total);
  if (!block) return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "cannot allocate model instance");

  kiln_model_t *model = (kiln_model_t *)block;
  model->desc = desc;
  model->num_args = num_args;
  model->args = (void **)(block + args_offset);
  model->bound = block + args_offset + num_args * sizeof(void *);
  model->arena_alignment = alignment;
  /* The compiled code only reads weights; the ABI's args array is just untyped. */
  model->args[ARG_WEIGHTS] = (void *)kiln_weights_data(weights);
  model->bound[ARG_WEIGHTS] = 1;
  if (desc->arena_size == 0) model->bound[ARG_ARENA] = 1;
  *out_model = model;
  return KILN_OK;
}

void kiln_model_destroy(kiln_model_t *model) {
  if (model) kiln_threadpool_destroy(model->pool);
  free(model);
}

size_t kiln_model_num_inputs(const kiln_model_t *model) {
  return model ? model->desc->num_inputs : 0;
}

size_t kiln_model_num_outputs(const kiln_model_t *model) {
  return model ? model->desc->num_outputs : 0;
}

const kiln_tensor_desc_t *kiln_model_input(const kiln_model_t *model, size_t index) {
  if (!model || index >= model->desc->num_inputs) return NULL;
  return &model->desc->inputs[index];
}

const kiln_tensor_desc_t *kiln_model_output(const kiln_model_t *model, size_t index) {
  if (!model || index >= model->desc->num_outputs) return NULL;
  return &model->desc->outputs[index];
}

static kiln_status_t find_tensor(const kiln_tensor_desc_t *list, uint32_t count,
                                 const char *name, const char *kind, size_t *out_index) {
  for (uint32_t i = 0; i < count; ++i) {
    if (strcmp(list[i].name, name) == 0) {
      *out_index = i;
      return KILN_OK;
    }
  }
  return KILN_FAIL(KILN_ERROR_NOT_FOUND, "model has no %s named '%s'", kind, name);
}

kiln_status_t kiln_model_find_input(const kiln_model_t *model, const char *name,
                                    size_t *out_index) {
  if (!model || !name || !out_index)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "find_input: NULL argument");
  return find_tensor(model->desc->inputs, model->desc->num_inputs, name, "input", out_index);
}

kiln_status_t kiln_model_find_output(const kiln_model_t *model, const char *name,
                                     size_t *out_index) {
  if (!model || !name || !out_index)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "find_output: NULL argument");
  return find_tensor(model->desc->outputs, model->desc->num_outputs, name, "output",
                     out_index);
}

kiln_status_t kiln_model_plan(const kiln_model_t *model, size_t *out_arena_size,
                              size_t *out_arena_alignment) {
  if (!model || !out_arena_size || !out_arena_alignment)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "plan: NULL argument");
  *out_arena_size = (size_t)model->desc->arena_size;
  *out_arena_alignment = (size_t)model->arena_alignment;
  return KILN_OK;
}

kiln_status_t kiln_model_bind_arena(kiln_model_t *model, void *arena, size_t size) {
  if (!model) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "bind_arena: model is NULL");
  uint64_t need = model->desc->arena_size;
  if (need == 0) {
    /* Nothing to bind; accept whatever the caller passes so generic code needs no branch. */
    model->args[ARG_ARENA] = arena;
    return KILN_OK;
  }
  /* A failed rebind leaves the slot unbound rather than silently keeping the old buffer. */
  model->bound[ARG_ARENA] = 0;
  model->args[ARG_ARENA] = NULL;
  if (!arena) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "bind_arena: arena is NULL");
  if (size < need)
    return KILN_FAIL(KILN_ERROR_BUFFER_TOO_SMALL, "arena has %zu bytes, model needs %llu", size,
                     (unsigned long long)need);
  if ((uintptr_t)arena % model->arena_alignment != 0)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "arena %p is not aligned to %llu bytes", arena,
                     (unsigned long long)model->arena_alignment);
  model->args[ARG_ARENA] = arena;
  model->bound[ARG_ARENA] = 1;
  return KILN_OK;
}

static kiln_status_t bind_tensor(kiln_model_t *model, const kiln_tensor_desc_t *t,
                                 const char *kind, size_t slot, kiln_dtype_t dtype, size_t rank,
                                 const int64_t *dims, void *data, size_t size_bytes) {
  model->bound[slot] = 0;
  model->args[slot] = NULL;
  if (dtype != (kiln_dtype_t)t->dtype)
    return KILN_FAIL(KILN_ERROR_DTYPE_MISMATCH, "%s '%s': bound %s, model expects %s", kind,
                     t->name, kiln_dtype_name(dtype), kiln_dtype_name((kiln_dtype_t)t->dtype));
  if (rank != (size_t)t->rank)
    return KILN_FAIL(KILN_ERROR_SHAPE_MISMATCH, "%s '%s': bound rank %zu, model expects %d",
                     kind, t->name, rank, (int)t->rank);
  if (rank > 0 && !dims)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s '%s': dims is NULL", kind, t->name);
  for (size_t d = 0; d < rank; ++d)
    if (dims[d] != t->dims[d])
      return KILN_FAIL(KILN_ERROR_SHAPE_MISMATCH,
                       "%s '%s': dim %zu is %lld, model expects %lld", kind, t->name, d,
                       (long long)dims[d], (long long)t->dims[d]);
  if (!data && t->size_bytes > 0)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "%s '%s': data is NULL", kind, t->name);
  if (size_bytes < t->size_bytes)
    return KILN_FAIL(KILN_ERROR_BUFFER_TOO_SMALL, "%s '%s': buffer has %zu bytes, needs %llu",
                     kind, t->name, size_bytes, (unsigned long long)t->size_bytes);
  model->args[slot] = data;
  model->bound[slot] = 1;
  return KILN_OK;
}

kiln_status_t kiln_model_bind_input(kiln_model_t *model, size_t index, kiln_dtype_t dtype,
                                    size_t rank, const int64_t *dims, const void *data,
                                    size_t size_bytes) {
  if (!model) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "bind_input: model is NULL");
  if (index >= model->desc->num_inputs)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "bind_input: index %zu, model has %u inputs",
                     index, model->desc->num_inputs);
  /* Inputs are only read by the compiled code; the ABI's args array is just untyped. */
  return bind_tensor(model, &model->desc->inputs[index], "input", ARG_FIRST_INPUT + index,
                     dtype, rank, dims, (void *)data, size_bytes);
}

kiln_status_t kiln_model_bind_output(kiln_model_t *model, size_t index, kiln_dtype_t dtype,
                                     size_t rank, const int64_t *dims, void *data,
                                     size_t size_bytes) {
  if (!model) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "bind_output: model is NULL");
  if (index >= model->desc->num_outputs)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "bind_output: index %zu, model has %u outputs",
                     index, model->desc->num_outputs);
  return bind_tensor(model, &model->desc->outputs[index], "output",
                     ARG_FIRST_INPUT + model->desc->num_inputs + index, dtype, rank, dims, data,
                     size_bytes);
}

kiln_status_t kiln_model_run(kiln_model_t *model) {
  if (!model) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "run: model is NULL");
  for (size_t slot = 0; slot < model->num_args; ++slot) {
    if (model->bound[slot]) continue;
    if (slot == ARG_ARENA)
      return KILN_FAIL(KILN_ERROR_NOT_BOUND, "run: arena not bound (%llu bytes needed)",
                       (unsigned long long)model->desc->arena_size);
    size_t inputs = model->desc->num_inputs;
    if (slot < ARG_FIRST_INPUT + inputs)
      return KILN_FAIL(KILN_ERROR_NOT_BOUND, "run: input '%s' not bound",
                       model->desc->inputs[slot - ARG_FIRST_INPUT].name);
    return KILN_FAIL(KILN_ERROR_NOT_BOUND, "run: output '%s' not bound",
                     model->desc->outputs[slot - ARG_FIRST_INPUT - inputs].name);
  }
  kiln_threadpool_t *previous = kiln_threadpool_swap_current(model->pool);
  model->desc->invoke((void *const *)model->args);
  kiln_threadpool_swap_current(previous);
  return KILN_OK;
}

kiln_status_t kiln_model_set_threads(kiln_model_t *model, size_t threads) {
  if (!model) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "set_threads: model is NULL");
  if (threads == 0 || threads > 256)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "set_threads: %zu threads (1 to 256 allowed)", threads);
  kiln_threadpool_destroy(model->pool);
  model->pool = NULL;
  if (threads == 1) return KILN_OK;
  kiln_status_t st = kiln_threadpool_create(threads, &model->pool);
  if (st != KILN_OK) return KILN_FAIL(st, "set_threads: cannot start %zu threads", threads);
  return KILN_OK;
}
