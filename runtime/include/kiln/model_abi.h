/* The contract between code emitted by `kiln compile` and the Kiln runtime.
 *
 * The compiler emits, into the model's object file, one constant kiln_model_desc_t
 * (symbol named in the generated model header) plus the entry point it points to.
 * The layout below is mirrored by addDescriptor() in codegen/cpu/CpuTarget.cpp: change both and
 * bump KILN_MODEL_ABI_VERSION together. Every field is naturally aligned so the layout
 * is identical on x86-64 and aarch64 (LP64). */
#ifndef KILN_MODEL_ABI_H
#define KILN_MODEL_ABI_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define KILN_MODEL_ABI_VERSION 1u

/* Element types of model inputs and outputs (values are part of the ABI). */
typedef enum kiln_dtype_t {
  KILN_DTYPE_INVALID = 0,
  KILN_DTYPE_F32 = 1,
  KILN_DTYPE_F16 = 2,
  KILN_DTYPE_I64 = 3,
  KILN_DTYPE_I32 = 4,
  KILN_DTYPE_I8 = 5,
  KILN_DTYPE_U8 = 6,
  KILN_DTYPE_BOOL = 7,
} kiln_dtype_t;

/* A model input or output: static shape, fixed at compile time. */
typedef struct kiln_tensor_desc_t {
  const char *name;     /* the ONNX graph input/output name */
  int32_t dtype;        /* kiln_dtype_t */
  int32_t rank;
  const int64_t *dims;  /* rank entries */
  uint64_t size_bytes;  /* product(dims) * element size */
} kiln_tensor_desc_t;

/* Entry point: args = { weights, arena, input_0 .. input_{n-1}, output_0 .. output_{m-1} },
 * each a pointer to the start of a dense row-major buffer. */
typedef void (*kiln_invoke_fn)(void *const *args);

typedef struct kiln_model_desc_t {
  uint32_t abi_version;   /* KILN_MODEL_ABI_VERSION */
  uint32_t num_inputs;
  uint32_t num_outputs;
  uint32_t reserved;
  const char *name;       /* model name given to `kiln compile` */
  const char *target;     /* e.g. "x86-64", "aarch64" */
  const kiln_tensor_desc_t *inputs;
  const kiln_tensor_desc_t *outputs;
  uint64_t weights_size;  /* bytes of weight data the entry expects */
  uint64_t weights_hash;  /* identifies the weights file made with this object */
  uint64_t arena_size;    /* scratch bytes for intermediate activations */
  uint64_t arena_alignment;
  kiln_invoke_fn invoke;
} kiln_model_desc_t;

/* The weights file (.kw): a 64-byte header followed, at data_offset, by the weight
 * data that the entry point addresses by byte offset. All integers little-endian. */
#define KILN_WEIGHTS_MAGIC "KILNWTS"  /* 7 chars + NUL = 8 bytes */
#define KILN_WEIGHTS_FORMAT_VERSION 2u
#define KILN_WEIGHTS_HEADER_SIZE 64u
#define KILN_WEIGHTS_ALIGNMENT 64u

typedef struct kiln_weights_header_t {
  char magic[8];          /* KILN_WEIGHTS_MAGIC */
  uint32_t format_version;
  uint32_t header_size;   /* KILN_WEIGHTS_HEADER_SIZE */
  uint64_t data_offset;   /* multiple of KILN_WEIGHTS_ALIGNMENT */
  uint64_t data_size;
  uint64_t model_hash;    /* equals kiln_model_desc_t.weights_hash */
  uint64_t checksum;      /* FNV-1a 64 over the data as little-endian 64-bit words, then
                             over the tail bytes (format version 2) */
  uint8_t reserved[16];
} kiln_weights_header_t;

#ifdef __cplusplus
}
#endif

#endif /* KILN_MODEL_ABI_H */
