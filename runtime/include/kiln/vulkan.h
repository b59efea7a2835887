/* Kiln runtime: the Vulkan HAL, which runs a model compiled by `kiln compile --target vulkan`
 * (one .kvk file: SPIR-V compute kernels, the dispatch table and the weights) on a Vulkan
 * device.
 *
 * Lifecycle: kiln_vk_model_open (validates the file, loads the Vulkan loader, picks a device,
 * uploads the weights once, creates the pipelines through a pipeline cache kept beside the
 * model, records one command buffer for the whole model) -> kiln_vk_model_run (repeat) ->
 * kiln_vk_model_close. Failures return a kiln_status_t and explain themselves through the
 * error hook (kiln/kiln.h); nothing aborts on a bad file or a missing device. */
#ifndef KILN_VULKAN_H
#define KILN_VULKAN_H

#include <stddef.h>
#include <stdint.h>

#include "kiln/kiln.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the .kvk file (little-endian; every table naturally aligned) ----------------------
 *   kiln_vk_header_t
 *   tensors    kiln_vk_tensor_t[num_inputs + num_outputs] (inputs first)
 *   kernels    kiln_vk_kernel_t[num_kernels]
 *   dispatches kiln_vk_dispatch_t[num_dispatches], in execution order
 *   bindings   kiln_vk_binding_t[num_bindings]
 *   spirv      one SPIR-V module (spirv_size bytes, a multiple of 4) in which every kernel
 *              is an entry point of the GLCompute model
 *   weights    weights_size bytes at a KILN_VK_WEIGHTS_ALIGNMENT-aligned offset
 * Tables start at multiples of 8 bytes, the SPIR-V at a multiple of 4 (an empty table's
 * offset is only checked for alignment); none may overlap the header or pass file_size.
 * The checksum covers every byte after the header (from header_size to file_size) and is
 * kiln_fnv1a64's (FNV-1a 64 over little-endian 64-bit words, then the tail bytes).
 *
 * Execution: dispatch d binds, for k in [0, num_bindings), descriptor set 0 binding k (a
 * storage buffer) to bindings[first_binding + k]: the byte range [offset, offset + size)
 * of buffer `buffer` (KILN_VK_BUFFER_*); size > 0, offset a multiple of the device's
 * minStorageBufferOffsetAlignment (at most 256 on any device, so multiples of 256 are
 * portable) and size at most its maxStorageBufferRange (at least 2^27 bytes on any device):
 * open fails with KILN_ERROR_DEVICE otherwise. Then vkCmdDispatch(groups[0..2]) with the
 * kernel's pipeline, and a compute->compute memory barrier before the next dispatch. The arena
 * (arena_size bytes, device-local, uninitialised) holds intermediate tensors; inputs and
 * outputs have one buffer each, of the tensor's size_bytes. */
#define KILN_VK_MAGIC "KILNVK\0\0"
#define KILN_VK_FORMAT_VERSION 1u
#define KILN_VK_WEIGHTS_ALIGNMENT 256u
#define KILN_VK_MAX_DIMS 8
#define KILN_VK_NAME_BYTES 128
#define KILN_VK_ENTRY_BYTES 64

/* Device capabilities the SPIR-V needs (kiln_vk_header_t.features). */
enum {
  KILN_VK_FEATURE_INT64 = 1u << 0,           /* shaderInt64 */
  KILN_VK_FEATURE_INT16 = 1u << 1,           /* shaderInt16 */
  KILN_VK_FEATURE_INT8 = 1u << 2,            /* shaderInt8 (Vulkan 1.2 / VK_KHR_shader_float16_int8) */
  KILN_VK_FEATURE_FLOAT16 = 1u << 3,         /* shaderFloat16 */
  KILN_VK_FEATURE_FLOAT64 = 1u << 4,         /* shaderFloat64 */
  KILN_VK_FEATURE_STORAGE_8BIT = 1u << 5,    /* storageBuffer8BitAccess */
  KILN_VK_FEATURE_STORAGE_16BIT = 1u << 6,   /* storageBuffer16BitAccess */
};

/* Buffer ids in kiln_vk_binding_t.buffer. */
enum {
  KILN_VK_BUFFER_WEIGHTS = 0,
  KILN_VK_BUFFER_ARENA = 1,
  KILN_VK_BUFFER_FIRST_IO = 2, /* input k: 2 + k; output k: 2 + num_inputs + k */
};

typedef struct kiln_vk_header_t {
  char magic[8];              /* KILN_VK_MAGIC */
  uint32_t version;           /* KILN_VK_FORMAT_VERSION */
  uint32_t header_size;       /* sizeof(kiln_vk_header_t) */
  uint64_t file_size;         /* the whole file */
  uint64_t checksum;          /* see above */
  uint64_t model_hash;        /* identifies the compiled model (keys the pipeline cache) */
  uint32_t num_inputs, num_outputs;
  uint32_t num_kernels, num_dispatches;
  uint32_t num_bindings;
  uint32_t features;          /* KILN_VK_FEATURE_* */
  uint64_t tensors_offset, kernels_offset, dispatches_offset, bindings_offset;
  uint64_t spirv_offset, spirv_size;
  uint64_t weights_offset, weights_size;
  uint64_t arena_size;
  char name[64];              /* model name, NUL-terminated */
  char target[32];            /* "vulkan", NUL-terminated */
} kiln_vk_header_t;

typedef struct kiln_vk_tensor_t {
  char name[KILN_VK_NAME_BYTES]; /* NUL-terminated */
  int32_t dtype;                 /* kiln_dtype_t */
  uint32_t rank;                 /* <= KILN_VK_MAX_DIMS */
  int64_t dims[KILN_VK_MAX_DIMS];
  uint64_t size_bytes;           /* product of dims x element size */
} kiln_vk_tensor_t;

typedef struct kiln_vk_kernel_t {
  char entry[KILN_VK_ENTRY_BYTES]; /* entry point name in the SPIR-V module, NUL-terminated */
  uint32_t workgroup_size[3];      /* as declared by the entry point (informative) */
  uint32_t num_bindings;           /* storage buffers at set 0, bindings 0..num_bindings-1 */
  uint32_t push_constant_bytes;    /* 0 in format version 1 */
  uint32_t reserved;
} kiln_vk_kernel_t;

typedef struct kiln_vk_dispatch_t {
  uint32_t kernel;        /* index into the kernels table */
  uint32_t groups[3];     /* workgroup counts */
  uint32_t first_binding; /* into the bindings table */
  uint32_t num_bindings;  /* == the kernel's num_bindings */
} kiln_vk_dispatch_t;

typedef struct kiln_vk_binding_t {
  uint32_t buffer;   /* KILN_VK_BUFFER_* */
  uint32_t reserved;
  uint64_t offset;   /* bytes into the buffer */
  uint64_t size;     /* bytes; offset + size <= the buffer's size */
} kiln_vk_binding_t;

/* ---- API ---------------------------------------------------------------------------- */

typedef struct kiln_vk_model_t kiln_vk_model_t;

typedef struct kiln_vk_options_t {
  /* Which device: -1 picks the first that has a compute queue and the features the model
   * needs (discrete GPU first, then integrated, virtual, CPU); otherwise the index in
   * vkEnumeratePhysicalDevices order. */
  int device_index;
  /* Pipeline cache file: null means "<model path>.cache"; "" disables the cache. The file
   * is read if present and valid for this device and model, and written (atomically)
   * after the pipelines are created when it was missing or stale. */
  const char *pipeline_cache_path;
} kiln_vk_options_t;

/* Timings and choices of kiln_vk_model_open, for `kiln bench` and `kiln run`. */
typedef struct kiln_vk_info_t {
  char device_name[256];
  uint32_t vendor_id, device_id;
  int device_type;           /* VkPhysicalDeviceType */
  int pipeline_cache_hit;    /* 1: the cache file was valid and used */
  double open_ms;            /* whole kiln_vk_model_open */
  double pipelines_ms;       /* shader module + pipeline creation */
  uint64_t device_bytes;     /* device memory allocated */
} kiln_vk_info_t;

/* `options` may be null (defaults). */
kiln_status_t kiln_vk_model_open(const char *path, const kiln_vk_options_t *options, kiln_vk_model_t **out);
void kiln_vk_model_close(kiln_vk_model_t *model);
const kiln_vk_info_t *kiln_vk_model_info(const kiln_vk_model_t *model);

size_t kiln_vk_model_num_inputs(const kiln_vk_model_t *model);
size_t kiln_vk_model_num_outputs(const kiln_vk_model_t *model);
const kiln_vk_tensor_t *kiln_vk_model_input(const kiln_vk_model_t *model, size_t index);
const kiln_vk_tensor_t *kiln_vk_model_output(const kiln_vk_model_t *model, size_t index);

/* One inference (not concurrently with another on the same model). inputs[k] holds input_sizes[k] bytes (must equal the input's
 * size_bytes, else KILN_ERROR_SHAPE_MISMATCH); outputs[k] receives output k
 * (output_sizes[k] must be at least its size_bytes, else KILN_ERROR_BUFFER_TOO_SMALL). */
kiln_status_t kiln_vk_model_run(kiln_vk_model_t *model, const void *const *inputs, const size_t *input_sizes,
                                void *const *outputs, const size_t *output_sizes);

/* Validates a .kvk image in memory (header, tables, every binding inside its buffer, the
 * checksum) without touching Vulkan; what kiln_vk_model_open checks first. */
kiln_status_t kiln_vk_validate(const void *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* KILN_VULKAN_H */
