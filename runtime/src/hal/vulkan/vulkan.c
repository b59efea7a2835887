/* Kiln runtime: the Vulkan HAL: checks a .kvk model (format in kiln/vulkan.h), builds its
 * buffers, pipelines and one command buffer on a device reached through the system's Vulkan
 * loader (dlopen'ed, so the runtime has no link-time dependency on Vulkan), and runs it. */
#if !defined(_POSIX_C_SOURCE) || _POSIX_C_SOURCE < 200809L
#undef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* open/mkstemp/clock_gettime under a strict -std=c11 */
#endif

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "kiln/vulkan.h"

/* The file's tables are read by copying them onto these structs, which is only right on a
 * little-endian host (every Vulkan host in practice). */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the .kvk reader assumes a little-endian host"
#endif

/* The layout the compiler writes; a change here is a format version bump. */
_Static_assert(sizeof(kiln_vk_header_t) == 232, "kiln_vk_header_t layout");
_Static_assert(offsetof(kiln_vk_header_t, tensors_offset) == 64, "kiln_vk_header_t layout");
_Static_assert(offsetof(kiln_vk_header_t, name) == 136, "kiln_vk_header_t layout");
_Static_assert(sizeof(kiln_vk_tensor_t) == 208, "kiln_vk_tensor_t layout");
_Static_assert(sizeof(kiln_vk_kernel_t) == 88, "kiln_vk_kernel_t layout");
_Static_assert(sizeof(kiln_vk_dispatch_t) == 24, "kiln_vk_dispatch_t layout");
_Static_assert(sizeof(kiln_vk_binding_t) == 24, "kiln_vk_binding_t layout");

#define SPIRV_MAGIC 0x07230203u
#define SPIRV_HEADER_WORDS 5u
#define SPIRV_OP_EXTENSION 10u
#define SPIRV_OP_EXT_INST_IMPORT 11u
#define SPIRV_OP_MEMORY_MODEL 14u
#define SPIRV_OP_ENTRY_POINT 15u
#define SPIRV_OP_CAPABILITY 17u
#define SPIRV_EXECUTION_MODEL_GLCOMPUTE 5u

#define KILN_VK_KNOWN_FEATURES                                                            \
  (KILN_VK_FEATURE_INT64 | KILN_VK_FEATURE_INT16 | KILN_VK_FEATURE_INT8 |                 \
   KILN_VK_FEATURE_FLOAT16 | KILN_VK_FEATURE_FLOAT64 | KILN_VK_FEATURE_STORAGE_8BIT |     \
   KILN_VK_FEATURE_STORAGE_16BIT)

/* The pipeline cache file: this header, then vkGetPipelineCacheData's bytes. The header
 * lets a stale or foreign file be recognised before the driver ever parses it. */
#define KILN_VK_CACHE_MAGIC "KILNVKPC"
#define KILN_VK_CACHE_VERSION 1u
#define KILN_VK_CACHE_MAX_BYTES ((uint64_t)1 << 30)

typedef struct vk_cache_header_t {
  char magic[8];
  uint32_t version;
  uint32_t header_size;
  uint64_t model_hash;
  uint32_t vendor_id, device_id, driver_version, reserved;
  uint8_t pipeline_cache_uuid[VK_UUID_SIZE];
  uint64_t data_size;
  uint64_t checksum; /* kiln_fnv1a64 of the data */
} vk_cache_header_t;

/* ---- validation ------------------------------------------------------------------------ */

typedef unsigned long long ull;

/* A section of `bytes` bytes at `offset`: aligned, past the header and inside the file.
 * An empty section is only required to be aligned. Two comparisons, so nothing wraps. */
static kiln_status_t check_section(const char *origin, const char *what, uint64_t offset,
                                   uint64_t bytes, uint64_t alignment, uint64_t file_size) {
  if (offset % alignment != 0)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: %s offset %llu is not %llu-byte aligned",
                     origin, what, (ull)offset, (ull)alignment);
  if (bytes == 0) return KILN_OK;
  if (offset < sizeof(kiln_vk_header_t))
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: %s at offset %llu overlaps the header",
                     origin, what, (ull)offset);
  if (offset > file_size || bytes > file_size - offset)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: %s (offset %llu + %llu bytes) runs past the end of the file "
                     "(%llu bytes)",
                     origin, what, (ull)offset, (ull)bytes, (ull)file_size);
  return KILN_OK;
}

static uint32_t load_u32(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The names of the module's GLCompute entry points, walking only the preamble
 * (capabilities, extensions, imports, memory model, entry points come first); a malformed
 * instruction there ends it. With `names` null, only counts them; otherwise stores
 * pointers into the module (each name NUL-terminated inside its instruction). */
static size_t spirv_entries(const uint8_t *spirv, uint64_t words, const char **names) {
  size_t n = 0;
  uint64_t at = SPIRV_HEADER_WORDS;
  while (at < words) {
    uint32_t first = load_u32(spirv + 4 * at);
    uint32_t count = first >> 16, opcode = first & 0xffffu;
    if (count == 0 || count > words - at) break;
    if (opcode == SPIRV_OP_ENTRY_POINT && count >= 4 &&
        load_u32(spirv + 4 * (at + 1)) == SPIRV_EXECUTION_MODEL_GLCOMPUTE) {
      const char *name = (const char *)(spirv + 4 * (at + 3));
      size_t max = 4 * (size_t)(count - 3);
      if (memchr(name, '\0', max)) {
        if (names) names[n] = name;
        ++n;
      }
    } else if (opcode != SPIRV_OP_CAPABILITY && opcode != SPIRV_OP_EXTENSION &&
               opcode != SPIRV_OP_EXT_INST_IMPORT && opcode != SPIRV_OP_MEMORY_MODEL &&
               opcode != SPIRV_OP_ENTRY_POINT) {
      break;
    }
    at += count;
  }
  return n;
}

static int compare_names(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static kiln_status_t check_tensor(const char *origin, uint64_t index, uint64_t num_inputs,
                                  const kiln_vk_tensor_t *t) {
  const char *kind = index < num_inputs ? "input" : "output";
  ull k = (ull)(index < num_inputs ? index : index - num_inputs);
  if (!memchr(t->name, '\0', sizeof t->name))
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: %s %llu: name is not NUL-terminated", origin,
                     kind, k);
  uint64_t element = kiln_dtype_size((kiln_dtype_t)t->dtype);
  if (element == 0)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: %s '%s': unknown dtype %d", origin, kind,
                     t->name, (int)t->dtype);
  if (t->rank > KILN_VK_MAX_DIMS)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: %s '%s': rank %u exceeds %d", origin, kind,
                     t->name, t->rank, KILN_VK_MAX_DIMS);
  uint64_t bytes = element;
  for (uint32_t d = 0; d < t->rank; ++d) {
    if (t->dims[d] <= 0)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: %s '%s': dimension %u is %lld", origin,
                       kind, t->name, d, (long long)t->dims[d]);
    if ((uint64_t)t->dims[d] > UINT64_MAX / bytes)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: %s '%s': size overflows 64 bits", origin,
                       kind, t->name);
    bytes *= (uint64_t)t->dims[d];
  }
  if (bytes != t->size_bytes)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: %s '%s': size_bytes %llu, but its shape and dtype make %llu", origin,
                     kind, t->name, (ull)t->size_bytes, (ull)bytes);
  return KILN_OK;
}

/* The byte size of buffer `id`, or 0 when there is no such buffer. */
static uint64_t buffer_size(const kiln_vk_header_t *h, const uint8_t *base, uint32_t id) {
  if (id == KILN_VK_BUFFER_WEIGHTS) return h->weights_size;
  if (id == KILN_VK_BUFFER_ARENA) return h->arena_size;
  uint64_t io = (uint64_t)id - KILN_VK_BUFFER_FIRST_IO;
  if (io >= (uint64_t)h->num_inputs + h->num_outputs) return 0;
  kiln_vk_tensor_t t;
  memcpy(&t, base + h->tensors_offset + io * sizeof t, sizeof t);
  return t.size_bytes;
}

static kiln_status_t validate(const uint8_t *base, size_t size, const char *origin) {
  kiln_vk_header_t h;
  if (size < sizeof h)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: truncated header (%zu bytes, need %zu)",
                     origin, size, sizeof h);
  memcpy(&h, base, sizeof h);
  if (memcmp(h.magic, KILN_VK_MAGIC, sizeof h.magic) != 0)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: not a Kiln Vulkan model (bad magic)", origin);
  if (h.version != KILN_VK_FORMAT_VERSION)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: unsupported format version %u (this runtime reads %u)", origin,
                     h.version, KILN_VK_FORMAT_VERSION);
  if (h.header_size != sizeof h)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: header_size %u, expected %zu", origin,
                     h.header_size, sizeof h);
  if (h.file_size != (uint64_t)size)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: file_size %llu but %zu bytes present (truncated or padded)", origin,
                     (ull)h.file_size, size);
  uint64_t actual = kiln_fnv1a64(base + h.header_size, size - h.header_size);
  if (actual != h.checksum)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: checksum mismatch (header %016llx, data %016llx): file corrupted",
                     origin, (ull)h.checksum, (ull)actual);
  if (!memchr(h.name, '\0', sizeof h.name) || !memchr(h.target, '\0', sizeof h.target))
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: model name or target is not NUL-terminated",
                     origin);
  if (h.features & ~(uint32_t)KILN_VK_KNOWN_FEATURES)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: unknown feature bits 0x%x (written by a newer compiler)", origin,
                     h.features & ~(uint32_t)KILN_VK_KNOWN_FEATURES);

  /* Counts are 32-bit and entries at most a few hundred bytes: no product overflows. */
  uint64_t num_tensors = (uint64_t)h.num_inputs + h.num_outputs;
  const struct {
    const char *what;
    uint64_t offset, bytes, alignment;
  } sections[] = {
      {"tensor table", h.tensors_offset, num_tensors * sizeof(kiln_vk_tensor_t), 8},
      {"kernel table", h.kernels_offset, (uint64_t)h.num_kernels * sizeof(kiln_vk_kernel_t), 8},
      {"dispatch table", h.dispatches_offset,
       (uint64_t)h.num_dispatches * sizeof(kiln_vk_dispatch_t), 8},
      {"binding table", h.bindings_offset,
       (uint64_t)h.num_bindings * sizeof(kiln_vk_binding_t), 8},
      {"SPIR-V", h.spirv_offset, h.spirv_size, 4},
      {"weights", h.weights_offset, h.weights_size, KILN_VK_WEIGHTS_ALIGNMENT},
  };
  kiln_status_t s;
  for (size_t i = 0; i < sizeof sections / sizeof sections[0]; ++i)
    if ((s = check_section(origin, sections[i].what, sections[i].offset, sections[i].bytes,
                           sections[i].alignment, size)) != KILN_OK)
      return s;

  if (h.spirv_size == 0 || h.spirv_size % 4 != 0)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                     "%s: spirv_size %llu is not a positive multiple of 4", origin,
                     (ull)h.spirv_size);
  const uint8_t *spirv = base + h.spirv_offset;
  uint64_t spirv_words = h.spirv_size / 4;
  if (spirv_words < SPIRV_HEADER_WORDS || load_u32(spirv) != SPIRV_MAGIC)
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: the SPIR-V section is not a SPIR-V module",
                     origin);

  for (uint64_t i = 0; i < num_tensors; ++i) {
    kiln_vk_tensor_t t;
    memcpy(&t, base + h.tensors_offset + i * sizeof t, sizeof t);
    if ((s = check_tensor(origin, i, h.num_inputs, &t)) != KILN_OK) return s;
  }

  /* Every kernel must be an entry point: the names are collected and sorted once, so that
   * the check is O((words + kernels) log) rather than words x kernels (a hostile 2.7 MB
   * file, 16,000 kernels behind 160,000 OpCapability, took 5.7 s, growing as the square). */
  const char **entries = NULL;
  size_t num_entries = h.num_kernels ? spirv_entries(spirv, spirv_words, NULL) : 0;
  if (num_entries) {
    entries = (const char **)malloc(num_entries * sizeof *entries);
    if (!entries)
      return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu entry point names",
                       origin, num_entries);
    spirv_entries(spirv, spirv_words, entries);
    qsort(entries, num_entries, sizeof *entries, compare_names);
  }
  s = KILN_OK;
  for (uint32_t k = 0; k < h.num_kernels && s == KILN_OK; ++k) {
    kiln_vk_kernel_t kernel;
    memcpy(&kernel, base + h.kernels_offset + (uint64_t)k * sizeof kernel, sizeof kernel);
    const char *key = kernel.entry;
    if (!memchr(kernel.entry, '\0', sizeof kernel.entry) || kernel.entry[0] == '\0')
      s = KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                    "%s: kernel %u: entry name is empty or not NUL-terminated", origin, k);
    else if (kernel.push_constant_bytes != 0)
      s = KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                    "%s: kernel '%s': push_constant_bytes %u (format version 1 has none)",
                    origin, kernel.entry, kernel.push_constant_bytes);
    else if (!num_entries ||
             !bsearch(&key, entries, num_entries, sizeof *entries, compare_names))
      s = KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                    "%s: kernel '%s' is not a GLCompute entry point of the SPIR-V module",
                    origin, kernel.entry);
  }
  free(entries);
  if (s != KILN_OK) return s;

  for (uint32_t d = 0; d < h.num_dispatches; ++d) {
    kiln_vk_dispatch_t dispatch;
    memcpy(&dispatch, base + h.dispatches_offset + (uint64_t)d * sizeof dispatch,
           sizeof dispatch);
    if (dispatch.kernel >= h.num_kernels)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: dispatch %u: kernel %u of %u", origin, d,
                       dispatch.kernel, h.num_kernels);
    kiln_vk_kernel_t kernel;
    memcpy(&kernel, base + h.kernels_offset + (uint64_t)dispatch.kernel * sizeof kernel,
           sizeof kernel);
    if (dispatch.num_bindings != kernel.num_bindings)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                       "%s: dispatch %u: %u bindings, but kernel '%s' takes %u", origin, d,
                       dispatch.num_bindings, kernel.entry, kernel.num_bindings);
    if ((uint64_t)dispatch.first_binding + dispatch.num_bindings > h.num_bindings)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                       "%s: dispatch %u: bindings [%u, +%u) past the table's %u", origin, d,
                       dispatch.first_binding, dispatch.num_bindings, h.num_bindings);
    if (dispatch.groups[0] == 0 || dispatch.groups[1] == 0 || dispatch.groups[2] == 0)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: dispatch %u: workgroup count %ux%ux%u",
                       origin, d, dispatch.groups[0], dispatch.groups[1], dispatch.groups[2]);
  }

  for (uint32_t b = 0; b < h.num_bindings; ++b) {
    kiln_vk_binding_t binding;
    memcpy(&binding, base + h.bindings_offset + (uint64_t)b * sizeof binding, sizeof binding);
    if ((uint64_t)binding.buffer >= KILN_VK_BUFFER_FIRST_IO + num_tensors)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: binding %u: no buffer %u", origin, b,
                       binding.buffer);
    uint64_t limit = buffer_size(&h, base, binding.buffer);
    if (binding.size == 0 || binding.offset > limit || binding.size > limit - binding.offset)
      return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS,
                       "%s: binding %u: bytes [%llu, +%llu) outside buffer %u (%llu bytes)",
                       origin, b, (ull)binding.offset, (ull)binding.size, binding.buffer,
                       (ull)limit);
  }
  return KILN_OK;
}

kiln_status_t kiln_vk_validate(const void *data, size_t size) {
  if (!data) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "kvk image is NULL");
  return validate((const uint8_t *)data, size, "kvk image");
}

/* ---- the model ----------------------------------------------------------------------- */

/* Entry points, loaded through vkGetInstanceProcAddr / vkGetDeviceProcAddr. The destroy
 * functions are loaded first and alone, so that a partly loaded table can still release. */
#define KILN_VK_INSTANCE_FUNCS(X)                                                  \
  X(vkEnumeratePhysicalDevices)                                                    \
  X(vkGetPhysicalDeviceProperties)                                                 \
  X(vkGetPhysicalDeviceFeatures2)                                                  \
  X(vkGetPhysicalDeviceQueueFamilyProperties)                                      \
  X(vkGetPhysicalDeviceMemoryProperties)                                           \
  X(vkEnumerateDeviceExtensionProperties)                                          \
  X(vkCreateDevice)                                                                \
  X(vkGetDeviceProcAddr)

#define KILN_VK_DEVICE_FUNCS(X)                                                    \
  X(vkDeviceWaitIdle)                                                              \
  X(vkGetDeviceQueue)                                                              \
  X(vkCreateBuffer)                                                                \
  X(vkDestroyBuffer)                                                               \
  X(vkGetBufferMemoryRequirements)                                                 \
  X(vkAllocateMemory)                                                              \
  X(vkFreeMemory)                                                                  \
  X(vkBindBufferMemory)                                                            \
  X(vkMapMemory)                                                                   \
  X(vkUnmapMemory)                                                                 \
  X(vkFlushMappedMemoryRanges)                                                     \
  X(vkInvalidateMappedMemoryRanges)                                                \
  X(vkCreateShaderModule)                                                          \
  X(vkDestroyShaderModule)                                                         \
  X(vkCreatePipelineCache)                                                         \
  X(vkDestroyPipelineCache)                                                        \
  X(vkGetPipelineCacheData)                                                        \
  X(vkCreateDescriptorSetLayout)                                                   \
  X(vkDestroyDescriptorSetLayout)                                                  \
  X(vkCreatePipelineLayout)                                                        \
  X(vkDestroyPipelineLayout)                                                       \
  X(vkCreateComputePipelines)                                                      \
  X(vkDestroyPipeline)                                                             \
  X(vkCreateDescriptorPool)                                                        \
  X(vkDestroyDescriptorPool)                                                       \
  X(vkAllocateDescriptorSets)                                                      \
  X(vkUpdateDescriptorSets)                                                        \
  X(vkCreateCommandPool)                                                           \
  X(vkDestroyCommandPool)                                                          \
  X(vkAllocateCommandBuffers)                                                      \
  X(vkFreeCommandBuffers)                                                          \
  X(vkBeginCommandBuffer)                                                          \
  X(vkEndCommandBuffer)                                                            \
  X(vkCmdBindPipeline)                                                             \
  X(vkCmdBindDescriptorSets)                                                       \
  X(vkCmdDispatch)                                                                 \
  X(vkCmdPipelineBarrier)                                                          \
  X(vkCmdCopyBuffer)                                                               \
  X(vkCreateFence)                                                                 \
  X(vkDestroyFence)                                                                \
  X(vkWaitForFences)                                                               \
  X(vkResetFences)                                                                 \
  X(vkQueueSubmit)

#define KILN_VK_MEMBER(name) PFN_##name name;

typedef struct vk_buffer_t {
  VkBuffer buffer;
  VkDeviceMemory memory;
  VkDeviceSize size;
  VkMemoryPropertyFlags flags;
  void *mapped; /* persistently mapped host-visible memory (inputs and outputs) */
} vk_buffer_t;

struct kiln_vk_model_t {
  kiln_vk_header_t header;
  kiln_vk_tensor_t *tensors; /* inputs, then outputs */
  kiln_vk_kernel_t *kernels;
  kiln_vk_dispatch_t *dispatches;
  kiln_vk_binding_t *bindings;
  kiln_vk_info_t info;
  char *cache_path; /* NULL: no pipeline cache file */

  uint8_t *file; /* the .kvk's bytes; only during open */
  size_t file_size;

  void *loader;
  uint32_t instance_api;
  PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
  VkInstance instance;
  PFN_vkDestroyInstance vkDestroyInstance;
  KILN_VK_INSTANCE_FUNCS(KILN_VK_MEMBER)

  VkPhysicalDevice physical;
  VkPhysicalDeviceProperties props;
  VkPhysicalDeviceMemoryProperties memory_props;
  uint32_t queue_family;
  VkDevice device;
  PFN_vkDestroyDevice vkDestroyDevice;
  int device_funcs_loaded;
  KILN_VK_DEVICE_FUNCS(KILN_VK_MEMBER)

  VkQueue queue;
  VkCommandPool command_pool;
  VkCommandBuffer command_buffer;
  VkFence fence;
  vk_buffer_t *buffers; /* KILN_VK_BUFFER_* order: weights, arena, inputs, outputs */
  size_t num_buffers;
  VkShaderModule shader;
  VkPipelineCache pipeline_cache;
  VkDescriptorSetLayout *set_layouts;     /* per kernel */
  VkPipelineLayout *pipeline_layouts;     /* per kernel */
  VkPipeline *pipelines;                  /* per kernel */
  VkDescriptorPool descriptor_pool;
  VkDescriptorSet *sets;                  /* per dispatch, owned by the pool */
  int lost;                               /* the device failed; runs are refused */
};

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static const char *vk_result_name(VkResult r) {
  switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_INCOMPLETE: return "VK_INCOMPLETE";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_FRAGMENTED_POOL: return "VK_ERROR_FRAGMENTED_POOL";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    case VK_ERROR_INVALID_SHADER_NV: return "VK_ERROR_INVALID_SHADER_NV";
    default: return "VkResult error";
  }
}

/* A failed Vulkan call: out of host or device memory is KILN_ERROR_OUT_OF_MEMORY, anything
 * else (a lost device, a driver refusing the work) is KILN_ERROR_DEVICE. */
static kiln_status_t vk_fail(VkResult r, const char *origin, const char *what) {
  kiln_status_t status = (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
                             ? KILN_ERROR_OUT_OF_MEMORY
                             : KILN_ERROR_DEVICE;
  const char *name = vk_result_name(r);
  return KILN_FAIL(status, "%s: %s failed: %s (%d)", origin, what, name, (int)r);
}

static void buffer_destroy(kiln_vk_model_t *m, vk_buffer_t *b) {
  if (b->mapped) m->vkUnmapMemory(m->device, b->memory);
  if (b->buffer) m->vkDestroyBuffer(m->device, b->buffer, NULL);
  if (b->memory) m->vkFreeMemory(m->device, b->memory, NULL);
  memset(b, 0, sizeof *b);
}

void kiln_vk_model_close(kiln_vk_model_t *m) {
  if (!m) return;
  if (m->device && m->device_funcs_loaded) {
    m->vkDeviceWaitIdle(m->device);
    if (m->fence) m->vkDestroyFence(m->device, m->fence, NULL);
    if (m->command_pool) m->vkDestroyCommandPool(m->device, m->command_pool, NULL);
    if (m->descriptor_pool) m->vkDestroyDescriptorPool(m->device, m->descriptor_pool, NULL);
    for (uint32_t k = 0; k < m->header.num_kernels; ++k) {
      if (m->pipelines && m->pipelines[k])
        m->vkDestroyPipeline(m->device, m->pipelines[k], NULL);
      if (m->pipeline_layouts && m->pipeline_layouts[k])
        m->vkDestroyPipelineLayout(m->device, m->pipeline_layouts[k], NULL);
      if (m->set_layouts && m->set_layouts[k])
        m->vkDestroyDescriptorSetLayout(m->device, m->set_layouts[k], NULL);
    }
    if (m->pipeline_cache) m->vkDestroyPipelineCache(m->device, m->pipeline_cache, NULL);
    if (m->shader) m->vkDestroyShaderModule(m->device, m->shader, NULL);
    for (size_t i = 0; m->buffers && i < m->num_buffers; ++i) buffer_destroy(m, &m->buffers[i]);
  }
  if (m->device && m->vkDestroyDevice) m->vkDestroyDevice(m->device, NULL);
  if (m->instance && m->vkDestroyInstance) m->vkDestroyInstance(m->instance, NULL);
  if (m->loader) dlclose(m->loader);
  free(m->file);
  free(m->sets);
  free(m->pipelines);
  free(m->pipeline_layouts);
  free(m->set_layouts);
  free(m->buffers);
  free(m->cache_path);
  free(m->bindings);
  free(m->dispatches);
  free(m->kernels);
  free(m->tensors);
  free(m);
}

/* Reads the whole file into memory that the model owns until the end of open. A copy
 * rather than a mapping: what was validated cannot change underneath (another process
 * rewriting the file), and the weights are uploaded to the device once anyway. */
static kiln_status_t read_model_file(kiln_vk_model_t *m, const char *path) {
  int fd;
  size_t size;
  kiln_status_t opened = kiln_open_regular_file(path, &fd, &size);
  if (opened != KILN_OK) return opened;
  if (size < sizeof(kiln_vk_header_t)) {
    close(fd);
    return KILN_FAIL(KILN_ERROR_BAD_WEIGHTS, "%s: truncated header (%zu bytes, need %zu)", path,
                     size, sizeof(kiln_vk_header_t));
  }
  uint8_t *data = (uint8_t *)malloc(size);
  if (!data) {
    close(fd);
    return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate %zu bytes to read it", path,
                     size);
  }
  size_t done = 0;
  int err = 0;
  while (done < size) {
    ssize_t n = read(fd, data + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) err = errno;
    if (n <= 0) break;
    done += (size_t)n;
  }
  close(fd);
  m->file = data;
  m->file_size = done;
  if (err) return KILN_FAIL(KILN_ERROR_IO, "%s: cannot read: %s", path, strerror(err));
  /* A file that shrank while being read is caught by validation (file_size). */
  return KILN_OK;
}

/* calloc of `count` elements that also succeeds (with a non-NULL pointer) for count 0. */
static void *calloc_array(uint64_t count, size_t size) {
  if (count > SIZE_MAX / size) return NULL;
  return calloc(count ? (size_t)count : 1, size);
}

static kiln_status_t copy_tables(kiln_vk_model_t *m, const char *path) {
  const kiln_vk_header_t *h = &m->header;
  uint64_t num_tensors = (uint64_t)h->num_inputs + h->num_outputs;
  m->tensors = calloc_array(num_tensors, sizeof *m->tensors);
  m->kernels = calloc_array(h->num_kernels, sizeof *m->kernels);
  m->dispatches = calloc_array(h->num_dispatches, sizeof *m->dispatches);
  m->bindings = calloc_array(h->num_bindings, sizeof *m->bindings);
  if (!m->tensors || !m->kernels || !m->dispatches || !m->bindings)
    return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate the model's tables", path);
  /* An empty table's offset is only checked for alignment, so it may point anywhere: no
   * pointer is formed from it (m->file + offset could overflow, UB). */
  if (num_tensors)
    memcpy(m->tensors, m->file + h->tensors_offset, (size_t)num_tensors * sizeof *m->tensors);
  if (h->num_kernels)
    memcpy(m->kernels, m->file + h->kernels_offset, (size_t)h->num_kernels * sizeof *m->kernels);
  if (h->num_dispatches)
    memcpy(m->dispatches, m->file + h->dispatches_offset,
           (size_t)h->num_dispatches * sizeof *m->dispatches);
  if (h->num_bindings)
    memcpy(m->bindings, m->file + h->bindings_offset,
           (size_t)h->num_bindings * sizeof *m->bindings);
  return KILN_OK;
}

/* ---- loader, instance, device ------------------------------------------------------------ */

static kiln_status_t load_loader(kiln_vk_model_t *m, const char *path) {
  m->loader = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!m->loader) m->loader = dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL);
  if (!m->loader) {
    const char *err = dlerror();
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: no Vulkan loader (libvulkan.so.1: %s)", path,
                     err ? err : "not found");
  }
  void *sym = dlsym(m->loader, "vkGetInstanceProcAddr");
  if (!sym)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: the Vulkan loader lacks vkGetInstanceProcAddr",
                     path);
  /* Object to function pointer through memcpy: ISO C has no such cast. */
  memcpy(&m->vkGetInstanceProcAddr, &sym, sizeof sym);
  return KILN_OK;
}

static kiln_status_t create_instance(kiln_vk_model_t *m, const char *path) {
  PFN_vkEnumerateInstanceVersion enumerate_version =
      (PFN_vkEnumerateInstanceVersion)m->vkGetInstanceProcAddr(NULL,
                                                               "vkEnumerateInstanceVersion");
  PFN_vkCreateInstance create =
      (PFN_vkCreateInstance)m->vkGetInstanceProcAddr(NULL, "vkCreateInstance");
  uint32_t loader_api = VK_API_VERSION_1_0;
  if (enumerate_version && enumerate_version(&loader_api) != VK_SUCCESS)
    loader_api = VK_API_VERSION_1_0;
  if (!create || loader_api < VK_API_VERSION_1_1)
    return KILN_FAIL(KILN_ERROR_DEVICE,
                     "%s: the Vulkan loader supports Vulkan %u.%u; Kiln needs 1.1", path,
                     VK_API_VERSION_MAJOR(loader_api), VK_API_VERSION_MINOR(loader_api));
  m->instance_api = loader_api >= VK_API_VERSION_1_2 ? VK_API_VERSION_1_2 : VK_API_VERSION_1_1;

  VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO};
  app.pApplicationName = "kiln";
  app.pEngineName = "kiln";
  app.apiVersion = m->instance_api;
  VkInstanceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO};
  info.pApplicationInfo = &app;
  VkResult r = create(&info, NULL, &m->instance);
  if (r != VK_SUCCESS) {
    m->instance = VK_NULL_HANDLE;
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER)
      return KILN_FAIL(KILN_ERROR_DEVICE, "%s: no Vulkan driver (vkCreateInstance: %s)", path,
                       vk_result_name(r));
    return vk_fail(r, path, "vkCreateInstance");
  }
  m->vkDestroyInstance =
      (PFN_vkDestroyInstance)m->vkGetInstanceProcAddr(m->instance, "vkDestroyInstance");
  if (!m->vkDestroyInstance)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: the Vulkan loader lacks vkDestroyInstance", path);
#define KILN_VK_LOAD_INSTANCE(name)                                                        \
  m->name = (PFN_##name)m->vkGetInstanceProcAddr(m->instance, #name);                      \
  if (!m->name)                                                                            \
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: the Vulkan loader lacks %s", path, #name);
  KILN_VK_INSTANCE_FUNCS(KILN_VK_LOAD_INSTANCE)
#undef KILN_VK_LOAD_INSTANCE
  return KILN_OK;
}

/* What a physical device offers the model, and what to enable on it. */
typedef struct vk_candidate_t {
  uint32_t queue_family;
  uint32_t api;          /* min(device, instance) */
  int ext_float16_int8;  /* enable VK_KHR_shader_float16_int8 (a Vulkan 1.1 device) */
  int ext_8bit_storage;  /* enable VK_KHR_8bit_storage (a Vulkan 1.1 device) */
} vk_candidate_t;

static void append(char *buf, size_t size, const char *text) {
  size_t used = strlen(buf), n = strlen(text);
  if (used + 1 >= size) return;
  if (n > size - 1 - used) n = size - 1 - used;
  memcpy(buf + used, text, n);
  buf[used + n] = '\0';
}

/* 1 when `pd` can run a model needing `features` (fills `out`), 0 when not (`why` says
 * what it lacks), -1 when out of host memory. */
static int check_device(kiln_vk_model_t *m, VkPhysicalDevice pd, uint32_t features,
                        vk_candidate_t *out, char *why, size_t why_size) {
  why[0] = '\0';
  VkPhysicalDeviceProperties props;
  m->vkGetPhysicalDeviceProperties(pd, &props);
  if (props.apiVersion < VK_API_VERSION_1_1) {
    append(why, why_size, "only Vulkan 1.0");
    return 0;
  }
  out->api = props.apiVersion < m->instance_api ? props.apiVersion : m->instance_api;

  uint32_t num_families = 0;
  m->vkGetPhysicalDeviceQueueFamilyProperties(pd, &num_families, NULL);
  VkQueueFamilyProperties *families = calloc_array(num_families, sizeof *families);
  if (!families) return -1;
  m->vkGetPhysicalDeviceQueueFamilyProperties(pd, &num_families, families);
  uint32_t family = UINT32_MAX;
  for (uint32_t i = 0; i < num_families && family == UINT32_MAX; ++i)
    if ((families[i].queueFlags & VK_QUEUE_COMPUTE_BIT) && families[i].queueCount > 0) family = i;
  free(families);
  if (family == UINT32_MAX) {
    append(why, why_size, "no compute queue");
    return 0;
  }
  out->queue_family = family;

  /* The 1.2 feature structs, or on a 1.1 device the extensions they came from. */
  int promoted = out->api >= VK_API_VERSION_1_2;
  int has_float16_int8 = promoted, has_8bit = promoted;
  out->ext_float16_int8 = out->ext_8bit_storage = 0;
  if (!promoted && (features & (KILN_VK_FEATURE_INT8 | KILN_VK_FEATURE_FLOAT16 |
                                KILN_VK_FEATURE_STORAGE_8BIT))) {
    uint32_t n = 0;
    if (m->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, NULL) == VK_SUCCESS) {
      VkExtensionProperties *exts = calloc_array(n, sizeof *exts);
      if (!exts) return -1;
      if (m->vkEnumerateDeviceExtensionProperties(pd, NULL, &n, exts) >= VK_SUCCESS) {
        for (uint32_t i = 0; i < n; ++i) {
          if (strcmp(exts[i].extensionName, "VK_KHR_shader_float16_int8") == 0)
            has_float16_int8 = out->ext_float16_int8 = 1;
          if (strcmp(exts[i].extensionName, "VK_KHR_8bit_storage") == 0)
            has_8bit = out->ext_8bit_storage = 1;
        }
      }
      free(exts);
    }
  }
  VkPhysicalDevice16BitStorageFeatures s16 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDeviceShaderFloat16Int8Features f16i8 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDevice8BitStorageFeatures s8 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  f2.pNext = &s16;
  void **tail = &s16.pNext;
  if (has_float16_int8) {
    *tail = &f16i8;
    tail = &f16i8.pNext;
  }
  if (has_8bit) *tail = &s8;
  m->vkGetPhysicalDeviceFeatures2(pd, &f2);

  int ok = 1;
#define KILN_VK_REQUIRE(bit, available, name)    \
  if ((features & (bit)) && !(available)) {      \
    append(why, why_size, ok ? "no " : ", no "); \
    append(why, why_size, name);                 \
    ok = 0;                                      \
  }
  KILN_VK_REQUIRE(KILN_VK_FEATURE_INT64, f2.features.shaderInt64, "shaderInt64")
  KILN_VK_REQUIRE(KILN_VK_FEATURE_INT16, f2.features.shaderInt16, "shaderInt16")
  KILN_VK_REQUIRE(KILN_VK_FEATURE_FLOAT64, f2.features.shaderFloat64, "shaderFloat64")
  KILN_VK_REQUIRE(KILN_VK_FEATURE_INT8, has_float16_int8 && f16i8.shaderInt8, "shaderInt8")
  KILN_VK_REQUIRE(KILN_VK_FEATURE_FLOAT16, has_float16_int8 && f16i8.shaderFloat16,
                  "shaderFloat16")
  KILN_VK_REQUIRE(KILN_VK_FEATURE_STORAGE_8BIT, has_8bit && s8.storageBuffer8BitAccess,
                  "storageBuffer8BitAccess")
  KILN_VK_REQUIRE(KILN_VK_FEATURE_STORAGE_16BIT, s16.storageBuffer16BitAccess,
                  "storageBuffer16BitAccess")
#undef KILN_VK_REQUIRE
  return ok;
}

static int device_type_rank(VkPhysicalDeviceType type) {
  switch (type) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 0;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 1;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 2;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 3;
    default: return 4;
  }
}

static kiln_status_t pick_device(kiln_vk_model_t *m, const char *path, int device_index,
                                 vk_candidate_t *chosen) {
  uint32_t count = 0;
  VkResult r = m->vkEnumeratePhysicalDevices(m->instance, &count, NULL);
  if (r != VK_SUCCESS) return vk_fail(r, path, "vkEnumeratePhysicalDevices");
  if (count == 0) return KILN_FAIL(KILN_ERROR_DEVICE, "%s: no Vulkan device", path);
  VkPhysicalDevice *devices = calloc_array(count, sizeof *devices);
  if (!devices) return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
  r = m->vkEnumeratePhysicalDevices(m->instance, &count, devices);
  if (r < VK_SUCCESS) {
    free(devices);
    return vk_fail(r, path, "vkEnumeratePhysicalDevices");
  }

  uint32_t features = m->header.features;
  char why[160], reasons[384] = "";
  int best_rank = 99;
  kiln_status_t status = KILN_OK;
  for (uint32_t i = 0; i < count; ++i) {
    if (device_index >= 0 && (uint32_t)device_index != i) continue;
    vk_candidate_t candidate;
    int usable = check_device(m, devices[i], features, &candidate, why, sizeof why);
    if (usable < 0) {
      status = KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
      break;
    }
    VkPhysicalDeviceProperties props;
    m->vkGetPhysicalDeviceProperties(devices[i], &props);
    if (!usable) {
      char line[sizeof why + VK_MAX_PHYSICAL_DEVICE_NAME_SIZE + 16];
      snprintf(line, sizeof line, "%s%s: %s", reasons[0] ? "; " : "", props.deviceName, why);
      append(reasons, sizeof reasons, line);
      continue;
    }
    int rank = device_type_rank(props.deviceType);
    if (rank < best_rank) {
      best_rank = rank;
      *chosen = candidate;
      m->physical = devices[i];
      m->props = props;
    }
  }
  free(devices);
  if (status != KILN_OK) return status;
  if (device_index >= 0 && (uint32_t)device_index >= count)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: device index %d, but there are %u Vulkan devices",
                     path, device_index, count);
  if (!m->physical && device_index >= 0)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: Vulkan device %d cannot run this model (%s)", path,
                     device_index, reasons);
  if (!m->physical)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: no Vulkan device can run this model (%s)", path,
                     reasons);
  return KILN_OK;
}

static kiln_status_t create_device(kiln_vk_model_t *m, const char *path,
                                   const vk_candidate_t *c) {
  uint32_t features = m->header.features;
  float priority = 1.0f;
  VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO};
  queue.queueFamilyIndex = c->queue_family;
  queue.queueCount = 1;
  queue.pQueuePriorities = &priority;

  /* Only what the model needs is enabled. */
  VkPhysicalDeviceFeatures2 f2 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2};
  f2.features.shaderInt64 = (features & KILN_VK_FEATURE_INT64) ? VK_TRUE : VK_FALSE;
  f2.features.shaderInt16 = (features & KILN_VK_FEATURE_INT16) ? VK_TRUE : VK_FALSE;
  f2.features.shaderFloat64 = (features & KILN_VK_FEATURE_FLOAT64) ? VK_TRUE : VK_FALSE;
  VkPhysicalDevice16BitStorageFeatures s16 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
  VkPhysicalDeviceShaderFloat16Int8Features f16i8 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES};
  VkPhysicalDevice8BitStorageFeatures s8 = {
      .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_8BIT_STORAGE_FEATURES};
  void **tail = &f2.pNext;
  if (features & KILN_VK_FEATURE_STORAGE_16BIT) {
    s16.storageBuffer16BitAccess = VK_TRUE;
    *tail = &s16;
    tail = &s16.pNext;
  }
  if (features & (KILN_VK_FEATURE_INT8 | KILN_VK_FEATURE_FLOAT16)) {
    f16i8.shaderInt8 = (features & KILN_VK_FEATURE_INT8) ? VK_TRUE : VK_FALSE;
    f16i8.shaderFloat16 = (features & KILN_VK_FEATURE_FLOAT16) ? VK_TRUE : VK_FALSE;
    *tail = &f16i8;
    tail = &f16i8.pNext;
  }
  if (features & KILN_VK_FEATURE_STORAGE_8BIT) {
    s8.storageBuffer8BitAccess = VK_TRUE;
    *tail = &s8;
  }
  const char *extensions[2];
  uint32_t num_extensions = 0;
  if (c->ext_float16_int8 && (features & (KILN_VK_FEATURE_INT8 | KILN_VK_FEATURE_FLOAT16)))
    extensions[num_extensions++] = "VK_KHR_shader_float16_int8";
  if (c->ext_8bit_storage && (features & KILN_VK_FEATURE_STORAGE_8BIT))
    extensions[num_extensions++] = "VK_KHR_8bit_storage";

  VkDeviceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO};
  info.pNext = &f2;
  info.queueCreateInfoCount = 1;
  info.pQueueCreateInfos = &queue;
  info.enabledExtensionCount = num_extensions;
  info.ppEnabledExtensionNames = num_extensions ? extensions : NULL;
  VkResult r = m->vkCreateDevice(m->physical, &info, NULL, &m->device);
  if (r != VK_SUCCESS) {
    m->device = VK_NULL_HANDLE;
    return vk_fail(r, path, "vkCreateDevice");
  }
  m->queue_family = c->queue_family;
  m->vkDestroyDevice = (PFN_vkDestroyDevice)m->vkGetDeviceProcAddr(m->device, "vkDestroyDevice");
  if (!m->vkDestroyDevice)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: the Vulkan driver lacks vkDestroyDevice", path);
#define KILN_VK_LOAD_DEVICE(name)                                                          \
  m->name = (PFN_##name)m->vkGetDeviceProcAddr(m->device, #name);                          \
  if (!m->name)                                                                            \
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: the Vulkan driver lacks %s", path, #name);
  KILN_VK_DEVICE_FUNCS(KILN_VK_LOAD_DEVICE)
#undef KILN_VK_LOAD_DEVICE
  m->device_funcs_loaded = 1;
  m->vkGetDeviceQueue(m->device, m->queue_family, 0, &m->queue);
  m->vkGetPhysicalDeviceMemoryProperties(m->physical, &m->memory_props);
  return KILN_OK;
}

/* The file's demands that only the device can judge: binding alignment and range, kernel
 * binding counts, workgroup counts. */
static kiln_status_t check_limits(const kiln_vk_model_t *m, const char *path) {
  const VkPhysicalDeviceLimits *limits = &m->props.limits;
  for (uint32_t b = 0; b < m->header.num_bindings; ++b) {
    const kiln_vk_binding_t *binding = &m->bindings[b];
    if (limits->minStorageBufferOffsetAlignment > 0 &&
        binding->offset % limits->minStorageBufferOffsetAlignment != 0)
      return KILN_FAIL(KILN_ERROR_DEVICE,
                       "%s: binding %u: offset %llu is not a multiple of the device's "
                       "minStorageBufferOffsetAlignment %llu",
                       path, b, (ull)binding->offset,
                       (ull)limits->minStorageBufferOffsetAlignment);
    if (binding->size > limits->maxStorageBufferRange)
      return KILN_FAIL(KILN_ERROR_DEVICE,
                       "%s: binding %u: %llu bytes exceed the device's maxStorageBufferRange "
                       "%u",
                       path, b, (ull)binding->size, limits->maxStorageBufferRange);
  }
  for (uint32_t k = 0; k < m->header.num_kernels; ++k)
    if (m->kernels[k].num_bindings > limits->maxPerStageDescriptorStorageBuffers)
      return KILN_FAIL(KILN_ERROR_DEVICE,
                       "%s: kernel '%s' binds %u storage buffers; the device allows %u", path,
                       m->kernels[k].entry, m->kernels[k].num_bindings,
                       limits->maxPerStageDescriptorStorageBuffers);
  for (uint32_t d = 0; d < m->header.num_dispatches; ++d)
    for (int i = 0; i < 3; ++i)
      if (m->dispatches[d].groups[i] > limits->maxComputeWorkGroupCount[i])
        return KILN_FAIL(KILN_ERROR_DEVICE,
                         "%s: dispatch %u: %u workgroups along axis %d; the device allows %u",
                         path, d, m->dispatches[d].groups[i], i,
                         limits->maxComputeWorkGroupCount[i]);
  return KILN_OK;
}

/* ---- buffers ------------------------------------------------------------------------- */

/* Tests build this file with KILN_VK_TEST_SLOW_PATHS to exercise, on a device whose memory
 * is all host-visible and coherent (lavapipe), the staging upload and the flush/invalidate
 * that other devices need. */
#ifdef KILN_VK_TEST_SLOW_PATHS
#define KILN_VK_FORCE_SLOW 1
#else
#define KILN_VK_FORCE_SLOW 0
#endif

static int is_coherent(const vk_buffer_t *b) {
  return !KILN_VK_FORCE_SLOW && (b->flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT);
}

/* A buffer bound to its own allocation, from the first memory type that has every flag of
 * one of `prefs` (tried in order). */
static kiln_status_t buffer_create(kiln_vk_model_t *m, const char *path, const char *what,
                                   VkDeviceSize size, VkBufferUsageFlags usage,
                                   const VkMemoryPropertyFlags *prefs, size_t num_prefs,
                                   vk_buffer_t *out) {
  VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO};
  info.size = size;
  info.usage = usage;
  info.sharingMode = VK_SHARING_MODE_EXCLUSIVE;
  VkResult r = m->vkCreateBuffer(m->device, &info, NULL, &out->buffer);
  if (r != VK_SUCCESS) {
    out->buffer = VK_NULL_HANDLE;
    char msg[96];
    snprintf(msg, sizeof msg, "vkCreateBuffer (%s, %llu bytes)", what, (ull)size);
    return vk_fail(r, path, msg);
  }
  out->size = size;
  VkMemoryRequirements req;
  m->vkGetBufferMemoryRequirements(m->device, out->buffer, &req);
  uint32_t type = UINT32_MAX;
  for (size_t p = 0; p < num_prefs && type == UINT32_MAX; ++p)
    for (uint32_t i = 0; i < m->memory_props.memoryTypeCount && type == UINT32_MAX; ++i)
      if ((req.memoryTypeBits & (1u << i)) &&
          (m->memory_props.memoryTypes[i].propertyFlags & prefs[p]) == prefs[p])
        type = i;
  if (type == UINT32_MAX)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: no suitable memory type for the %s buffer", path,
                     what);
  VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO};
  alloc.allocationSize = req.size;
  alloc.memoryTypeIndex = type;
  r = m->vkAllocateMemory(m->device, &alloc, NULL, &out->memory);
  if (r != VK_SUCCESS) {
    out->memory = VK_NULL_HANDLE;
    if (r == VK_ERROR_OUT_OF_HOST_MEMORY || r == VK_ERROR_OUT_OF_DEVICE_MEMORY)
      return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY,
                       "%s: cannot allocate %llu bytes of device memory for the %s buffer (%s)",
                       path, (ull)req.size, what, vk_result_name(r));
    return vk_fail(r, path, "vkAllocateMemory");
  }
  out->flags = m->memory_props.memoryTypes[type].propertyFlags;
  m->info.device_bytes += req.size;
  r = m->vkBindBufferMemory(m->device, out->buffer, out->memory, 0);
  if (r != VK_SUCCESS) return vk_fail(r, path, "vkBindBufferMemory");
  return KILN_OK;
}

static kiln_status_t buffer_map(kiln_vk_model_t *m, const char *path, vk_buffer_t *b) {
  VkResult r = m->vkMapMemory(m->device, b->memory, 0, VK_WHOLE_SIZE, 0, &b->mapped);
  if (r != VK_SUCCESS) {
    b->mapped = NULL;
    return vk_fail(r, path, "vkMapMemory");
  }
  return KILN_OK;
}

static VkResult buffer_flush(kiln_vk_model_t *m, const vk_buffer_t *b) {
  if (is_coherent(b)) return VK_SUCCESS;
  VkMappedMemoryRange range = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE};
  range.memory = b->memory;
  range.size = VK_WHOLE_SIZE;
  return m->vkFlushMappedMemoryRanges(m->device, 1, &range);
}

static VkResult buffer_invalidate(kiln_vk_model_t *m, const vk_buffer_t *b) {
  if (is_coherent(b)) return VK_SUCCESS;
  VkMappedMemoryRange range = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE};
  range.memory = b->memory;
  range.size = VK_WHOLE_SIZE;
  return m->vkInvalidateMappedMemoryRanges(m->device, 1, &range);
}

/* Submits `cb` and waits for it; the fence is reset for the next use. */
static VkResult submit_and_wait(kiln_vk_model_t *m, VkCommandBuffer cb) {
  VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO};
  submit.commandBufferCount = 1;
  submit.pCommandBuffers = &cb;
  VkResult r = m->vkQueueSubmit(m->queue, 1, &submit, m->fence);
  if (r != VK_SUCCESS) return r;
  r = m->vkWaitForFences(m->device, 1, &m->fence, VK_TRUE, UINT64_MAX);
  if (r != VK_SUCCESS) return r;
  return m->vkResetFences(m->device, 1, &m->fence);
}

/* Copies the weights into a device-local buffer through a staging buffer and one copy. */
static kiln_status_t upload_staged(kiln_vk_model_t *m, const char *path, const void *data,
                                   VkDeviceSize size, VkBuffer dst) {
  static const VkMemoryPropertyFlags prefs[] = {
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT};
  vk_buffer_t staging;
  memset(&staging, 0, sizeof staging);
  VkCommandBuffer cb = VK_NULL_HANDLE;
  uint64_t device_bytes = m->info.device_bytes;
  kiln_status_t s = buffer_create(m, path, "weights staging", size,
                                  VK_BUFFER_USAGE_TRANSFER_SRC_BIT, prefs, 2, &staging);
  if (s == KILN_OK) s = buffer_map(m, path, &staging);
  VkResult r = VK_SUCCESS;
  if (s == KILN_OK) {
    memcpy(staging.mapped, data, (size_t)size);
    r = buffer_flush(m, &staging);
    if (r != VK_SUCCESS) s = vk_fail(r, path, "vkFlushMappedMemoryRanges");
  }
  if (s == KILN_OK) {
    VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
    alloc.commandPool = m->command_pool;
    alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
    alloc.commandBufferCount = 1;
    r = m->vkAllocateCommandBuffers(m->device, &alloc, &cb);
    if (r != VK_SUCCESS) {
      cb = VK_NULL_HANDLE;
      s = vk_fail(r, path, "vkAllocateCommandBuffers");
    }
  }
  if (s == KILN_OK) {
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    begin.flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT;
    r = m->vkBeginCommandBuffer(cb, &begin);
    if (r == VK_SUCCESS) {
      VkBufferCopy region = {0, 0, size};
      m->vkCmdCopyBuffer(cb, staging.buffer, dst, 1, &region);
      /* The fence wait would order the copy before the first run too; the barrier says so
       * without relying on it. */
      VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER};
      barrier.srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT;
      barrier.dstAccessMask = VK_ACCESS_SHADER_READ_BIT;
      m->vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_TRANSFER_BIT,
                              VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &barrier, 0, NULL, 0,
                              NULL);
      r = m->vkEndCommandBuffer(cb);
    }
    if (r == VK_SUCCESS) r = submit_and_wait(m, cb);
    if (r != VK_SUCCESS) s = vk_fail(r, path, "uploading the weights");
  }
  if (cb) m->vkFreeCommandBuffers(m->device, m->command_pool, 1, &cb);
  buffer_destroy(m, &staging);
  m->info.device_bytes = device_bytes; /* the staging memory is gone again */
  return s;
}

static kiln_status_t create_buffers(kiln_vk_model_t *m, const char *path) {
  const kiln_vk_header_t *h = &m->header;
  m->num_buffers = KILN_VK_BUFFER_FIRST_IO + (size_t)h->num_inputs + h->num_outputs;
  m->buffers = calloc_array(m->num_buffers, sizeof *m->buffers);
  if (!m->buffers) return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);

  static const VkMemoryPropertyFlags device_prefs[] = {VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0};
  static const VkMemoryPropertyFlags input_prefs[] = {
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT};
  /* Outputs are read by the CPU: cached memory, where there is some, reads much faster. */
  static const VkMemoryPropertyFlags output_prefs[] = {
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT |
          VK_MEMORY_PROPERTY_HOST_CACHED_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_CACHED_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT,
      VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT};
  kiln_status_t s;

  /* The weights: no binding can address an empty weights section, so none is created. */
  if (h->weights_size > 0) {
    vk_buffer_t *w = &m->buffers[KILN_VK_BUFFER_WEIGHTS];
    s = buffer_create(m, path, "weights", h->weights_size,
                      VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                      device_prefs, 2, w);
    if (s != KILN_OK) return s;
    const uint8_t *data = m->file + h->weights_offset;
    if ((w->flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && !KILN_VK_FORCE_SLOW) {
      if ((s = buffer_map(m, path, w)) != KILN_OK) return s;
      memcpy(w->mapped, data, (size_t)h->weights_size);
      VkResult r = buffer_flush(m, w);
      m->vkUnmapMemory(m->device, w->memory);
      w->mapped = NULL;
      if (r != VK_SUCCESS) return vk_fail(r, path, "vkFlushMappedMemoryRanges");
    } else if ((s = upload_staged(m, path, data, h->weights_size, w->buffer)) != KILN_OK) {
      return s;
    }
  }

  /* At least 4 bytes: Vulkan has no empty buffers. */
  VkDeviceSize arena = h->arena_size > 4 ? h->arena_size : 4;
  s = buffer_create(m, path, "arena", arena, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, device_prefs, 2,
                    &m->buffers[KILN_VK_BUFFER_ARENA]);
  if (s != KILN_OK) return s;

  for (uint32_t i = 0; i < h->num_inputs + h->num_outputs; ++i) {
    int is_input = i < h->num_inputs;
    vk_buffer_t *b = &m->buffers[KILN_VK_BUFFER_FIRST_IO + i];
    s = buffer_create(m, path, m->tensors[i].name, m->tensors[i].size_bytes,
                      VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, is_input ? input_prefs : output_prefs,
                      is_input ? 2 : 4, b);
    if (s != KILN_OK) return s;
    if ((s = buffer_map(m, path, b)) != KILN_OK) return s;
  }
  return KILN_OK;
}

/* ---- pipeline cache ---------------------------------------------------------------------- */

/* Reads a whole file of at most `max` bytes into malloc'd memory; 0 when it is missing,
 * unreadable or too large (all of which only mean "no cache"). */
static int read_small_file(const char *path, uint64_t max, uint8_t **out, size_t *out_size) {
  int fd;
  do {
    fd = open(path, O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return 0;
  struct stat st;
  uint8_t *data = NULL;
  size_t size = 0, done = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
      (uint64_t)st.st_size <= max && (uintmax_t)st.st_size <= SIZE_MAX) {
    size = (size_t)st.st_size;
    data = (uint8_t *)malloc(size);
    while (data && done < size) {
      ssize_t n = read(fd, data + done, size - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += (size_t)n;
    }
  }
  close(fd);
  if (!data || done != size) {
    free(data);
    return 0;
  }
  *out = data;
  *out_size = size;
  return 1;
}

static void cache_header_fill(const kiln_vk_model_t *m, vk_cache_header_t *h) {
  memset(h, 0, sizeof *h);
  memcpy(h->magic, KILN_VK_CACHE_MAGIC, sizeof h->magic);
  h->version = KILN_VK_CACHE_VERSION;
  h->header_size = sizeof *h;
  h->model_hash = m->header.model_hash;
  h->vendor_id = m->props.vendorID;
  h->device_id = m->props.deviceID;
  h->driver_version = m->props.driverVersion;
  memcpy(h->pipeline_cache_uuid, m->props.pipelineCacheUUID, VK_UUID_SIZE);
}

/* The Vulkan cache data inside a cache file, or NULL when the file was written for another
 * model, device or driver, or is damaged. */
static const uint8_t *cache_payload(const kiln_vk_model_t *m, const uint8_t *file, size_t size,
                                    size_t *out_size) {
  vk_cache_header_t expect, got;
  if (size <= sizeof got) return NULL;
  cache_header_fill(m, &expect);
  memcpy(&got, file, sizeof got);
  if (memcmp(&got, &expect, offsetof(vk_cache_header_t, data_size)) != 0) return NULL;
  if (got.data_size != size - sizeof got) return NULL;
  if (kiln_fnv1a64(file + sizeof got, size - sizeof got) != got.checksum) return NULL;
  *out_size = size - sizeof got;
  return file + sizeof got;
}

/* Writes the cache beside its final name and renames it into place, so a reader never sees
 * half a file. Any failure leaves the old state: the cache is only an optimisation. */
static void cache_write(kiln_vk_model_t *m) {
  size_t size = 0;
  if (m->vkGetPipelineCacheData(m->device, m->pipeline_cache, &size, NULL) != VK_SUCCESS ||
      size == 0 || size > KILN_VK_CACHE_MAX_BYTES)
    return;
  uint8_t *buf = (uint8_t *)malloc(sizeof(vk_cache_header_t) + size);
  size_t len = strlen(m->cache_path);
  char *tmp = (char *)malloc(len + sizeof ".XXXXXX");
  if (!buf || !tmp ||
      m->vkGetPipelineCacheData(m->device, m->pipeline_cache, &size,
                                buf + sizeof(vk_cache_header_t)) != VK_SUCCESS) {
    free(buf);
    free(tmp);
    return;
  }
  vk_cache_header_t h;
  cache_header_fill(m, &h);
  h.data_size = size;
  h.checksum = kiln_fnv1a64(buf + sizeof h, size);
  memcpy(buf, &h, sizeof h);
  size_t total = sizeof h + size, done = 0;

  memcpy(tmp, m->cache_path, len);
  memcpy(tmp + len, ".XXXXXX", sizeof ".XXXXXX");
  int fd = mkstemp(tmp);
  if (fd >= 0) {
    while (done < total) {
      ssize_t n = write(fd, buf + done, total - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += (size_t)n;
    }
    int ok = done == total && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok || rename(tmp, m->cache_path) != 0) unlink(tmp);
  }
  free(tmp);
  free(buf);
}

/* ---- pipelines, descriptors, commands -------------------------------------------------- */

static kiln_status_t create_pipelines(kiln_vk_model_t *m, const char *path) {
  const kiln_vk_header_t *h = &m->header;
  uint8_t *cache_file = NULL;
  size_t cache_file_size = 0, initial_size = 0;
  const void *initial = NULL;
  if (m->cache_path && read_small_file(m->cache_path, KILN_VK_CACHE_MAX_BYTES, &cache_file,
                                       &cache_file_size))
    initial = cache_payload(m, cache_file, cache_file_size, &initial_size);

  double start = now_ms();
  VkShaderModuleCreateInfo module = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO};
  module.codeSize = (size_t)h->spirv_size;
  /* 4-byte aligned: malloc'd memory is, and spirv_offset is a multiple of 4. */
  module.pCode = (const uint32_t *)(const void *)(m->file + h->spirv_offset);
  VkResult r = m->vkCreateShaderModule(m->device, &module, NULL, &m->shader);
  if (r != VK_SUCCESS) {
    m->shader = VK_NULL_HANDLE;
    free(cache_file);
    return vk_fail(r, path, "vkCreateShaderModule");
  }

  VkPipelineCacheCreateInfo cache = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
  cache.initialDataSize = initial_size;
  cache.pInitialData = initial;
  r = m->vkCreatePipelineCache(m->device, &cache, NULL, &m->pipeline_cache);
  if (r != VK_SUCCESS && initial) { /* the driver refused the data after all: start empty */
    initial = NULL;
    cache.initialDataSize = 0;
    cache.pInitialData = NULL;
    r = m->vkCreatePipelineCache(m->device, &cache, NULL, &m->pipeline_cache);
  }
  free(cache_file);
  if (r != VK_SUCCESS) {
    m->pipeline_cache = VK_NULL_HANDLE;
    return vk_fail(r, path, "vkCreatePipelineCache");
  }
  m->info.pipeline_cache_hit = initial != NULL;

  uint32_t max_bindings = 1;
  for (uint32_t k = 0; k < h->num_kernels; ++k)
    if (m->kernels[k].num_bindings > max_bindings) max_bindings = m->kernels[k].num_bindings;
  m->set_layouts = calloc_array(h->num_kernels, sizeof *m->set_layouts);
  m->pipeline_layouts = calloc_array(h->num_kernels, sizeof *m->pipeline_layouts);
  m->pipelines = calloc_array(h->num_kernels, sizeof *m->pipelines);
  VkDescriptorSetLayoutBinding *bindings = calloc_array(max_bindings, sizeof *bindings);
  VkComputePipelineCreateInfo *infos = calloc_array(h->num_kernels, sizeof *infos);
  kiln_status_t s = KILN_OK;
  if (!m->set_layouts || !m->pipeline_layouts || !m->pipelines || !bindings || !infos)
    s = KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);

  for (uint32_t k = 0; k < h->num_kernels && s == KILN_OK; ++k) {
    const kiln_vk_kernel_t *kernel = &m->kernels[k];
    for (uint32_t b = 0; b < kernel->num_bindings; ++b) {
      bindings[b].binding = b;
      bindings[b].descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      bindings[b].descriptorCount = 1;
      bindings[b].stageFlags = VK_SHADER_STAGE_COMPUTE_BIT;
    }
    VkDescriptorSetLayoutCreateInfo set = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO};
    set.bindingCount = kernel->num_bindings;
    set.pBindings = bindings;
    r = m->vkCreateDescriptorSetLayout(m->device, &set, NULL, &m->set_layouts[k]);
    if (r != VK_SUCCESS) {
      m->set_layouts[k] = VK_NULL_HANDLE;
      s = vk_fail(r, path, "vkCreateDescriptorSetLayout");
      break;
    }
    VkPipelineLayoutCreateInfo layout = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO};
    layout.setLayoutCount = 1;
    layout.pSetLayouts = &m->set_layouts[k];
    r = m->vkCreatePipelineLayout(m->device, &layout, NULL, &m->pipeline_layouts[k]);
    if (r != VK_SUCCESS) {
      m->pipeline_layouts[k] = VK_NULL_HANDLE;
      s = vk_fail(r, path, "vkCreatePipelineLayout");
      break;
    }
    infos[k].sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO;
    infos[k].stage.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO;
    infos[k].stage.stage = VK_SHADER_STAGE_COMPUTE_BIT;
    infos[k].stage.module = m->shader;
    infos[k].stage.pName = kernel->entry;
    infos[k].layout = m->pipeline_layouts[k];
    infos[k].basePipelineIndex = -1;
  }
  if (s == KILN_OK && h->num_kernels > 0) {
    r = m->vkCreateComputePipelines(m->device, m->pipeline_cache, h->num_kernels, infos, NULL,
                                    m->pipelines);
    if (r != VK_SUCCESS) s = vk_fail(r, path, "vkCreateComputePipelines");
  }
  free(infos);
  free(bindings);
  m->info.pipelines_ms = now_ms() - start;
  if (s == KILN_OK && m->cache_path && !m->info.pipeline_cache_hit) cache_write(m);
  return s;
}

static kiln_status_t create_descriptors(kiln_vk_model_t *m, const char *path) {
  const kiln_vk_header_t *h = &m->header;
  if (h->num_dispatches == 0) return KILN_OK;
  uint64_t total = 0;
  for (uint32_t d = 0; d < h->num_dispatches; ++d) total += m->dispatches[d].num_bindings;
  if (total > UINT32_MAX)
    return KILN_FAIL(KILN_ERROR_DEVICE, "%s: %llu descriptors are too many", path, (ull)total);

  VkDescriptorPoolSize pool_size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, (uint32_t)total};
  VkDescriptorPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO};
  pool.maxSets = h->num_dispatches;
  pool.poolSizeCount = total > 0 ? 1 : 0;
  pool.pPoolSizes = &pool_size;
  VkResult r = m->vkCreateDescriptorPool(m->device, &pool, NULL, &m->descriptor_pool);
  if (r != VK_SUCCESS) {
    m->descriptor_pool = VK_NULL_HANDLE;
    return vk_fail(r, path, "vkCreateDescriptorPool");
  }

  m->sets = calloc_array(h->num_dispatches, sizeof *m->sets);
  VkDescriptorSetLayout *layouts = calloc_array(h->num_dispatches, sizeof *layouts);
  VkDescriptorBufferInfo *buffers = calloc_array(total, sizeof *buffers);
  VkWriteDescriptorSet *writes = calloc_array(h->num_dispatches, sizeof *writes);
  kiln_status_t s = KILN_OK;
  if (!m->sets || !layouts || !buffers || !writes) {
    s = KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
  } else {
    for (uint32_t d = 0; d < h->num_dispatches; ++d)
      layouts[d] = m->set_layouts[m->dispatches[d].kernel];
    VkDescriptorSetAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO};
    alloc.descriptorPool = m->descriptor_pool;
    alloc.descriptorSetCount = h->num_dispatches;
    alloc.pSetLayouts = layouts;
    r = m->vkAllocateDescriptorSets(m->device, &alloc, m->sets);
    if (r != VK_SUCCESS) s = vk_fail(r, path, "vkAllocateDescriptorSets");
  }
  if (s == KILN_OK) {
    /* One write per dispatch: its bindings 0..n-1 are consecutive and of one type. */
    uint32_t num_writes = 0, next = 0;
    for (uint32_t d = 0; d < h->num_dispatches; ++d) {
      const kiln_vk_dispatch_t *dispatch = &m->dispatches[d];
      if (dispatch->num_bindings == 0) continue;
      for (uint32_t k = 0; k < dispatch->num_bindings; ++k) {
        const kiln_vk_binding_t *b = &m->bindings[dispatch->first_binding + k];
        buffers[next + k].buffer = m->buffers[b->buffer].buffer;
        buffers[next + k].offset = b->offset;
        buffers[next + k].range = b->size;
      }
      VkWriteDescriptorSet *w = &writes[num_writes++];
      w->sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET;
      w->dstSet = m->sets[d];
      w->dstBinding = 0;
      w->descriptorCount = dispatch->num_bindings;
      w->descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER;
      w->pBufferInfo = &buffers[next];
      next += dispatch->num_bindings;
    }
    m->vkUpdateDescriptorSets(m->device, num_writes, writes, 0, NULL);
  }
  free(writes);
  free(buffers);
  free(layouts);
  return s;
}

static kiln_status_t create_commands(kiln_vk_model_t *m, const char *path) {
  VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO};
  pool.queueFamilyIndex = m->queue_family;
  VkResult r = m->vkCreateCommandPool(m->device, &pool, NULL, &m->command_pool);
  if (r != VK_SUCCESS) {
    m->command_pool = VK_NULL_HANDLE;
    return vk_fail(r, path, "vkCreateCommandPool");
  }
  VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
  r = m->vkCreateFence(m->device, &fence, NULL, &m->fence);
  if (r != VK_SUCCESS) {
    m->fence = VK_NULL_HANDLE;
    return vk_fail(r, path, "vkCreateFence");
  }
  VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO};
  alloc.commandPool = m->command_pool;
  alloc.level = VK_COMMAND_BUFFER_LEVEL_PRIMARY;
  alloc.commandBufferCount = 1;
  r = m->vkAllocateCommandBuffers(m->device, &alloc, &m->command_buffer);
  if (r != VK_SUCCESS) {
    m->command_buffer = VK_NULL_HANDLE;
    return vk_fail(r, path, "vkAllocateCommandBuffers");
  }
  return KILN_OK;
}

/* The whole model as one command buffer, submitted again by every run. */
static kiln_status_t record_model(kiln_vk_model_t *m, const char *path) {
  VkCommandBuffer cb = m->command_buffer;
  VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
  VkResult r = m->vkBeginCommandBuffer(cb, &begin);
  if (r != VK_SUCCESS) return vk_fail(r, path, "vkBeginCommandBuffer");
  for (uint32_t d = 0; d < m->header.num_dispatches; ++d) {
    const kiln_vk_dispatch_t *dispatch = &m->dispatches[d];
    int last = d + 1 == m->header.num_dispatches;
    m->vkCmdBindPipeline(cb, VK_PIPELINE_BIND_POINT_COMPUTE, m->pipelines[dispatch->kernel]);
    m->vkCmdBindDescriptorSets(cb, VK_PIPELINE_BIND_POINT_COMPUTE,
                               m->pipeline_layouts[dispatch->kernel], 0, 1, &m->sets[d], 0,
                               NULL);
    m->vkCmdDispatch(cb, dispatch->groups[0], dispatch->groups[1], dispatch->groups[2]);
    /* The next dispatch reads (or overwrites) what this one wrote; after the last, the
     * host reads the outputs. */
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER};
    barrier.srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT;
    barrier.dstAccessMask = last ? VK_ACCESS_HOST_READ_BIT
                                 : VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT;
    m->vkCmdPipelineBarrier(cb, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                            last ? VK_PIPELINE_STAGE_HOST_BIT
                                 : VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                            0, 1, &barrier, 0, NULL, 0, NULL);
  }
  r = m->vkEndCommandBuffer(cb);
  if (r != VK_SUCCESS) return vk_fail(r, path, "vkEndCommandBuffer");
  return KILN_OK;
}

static kiln_status_t model_build(kiln_vk_model_t *m, const char *path,
                                 const kiln_vk_options_t *options) {
  kiln_status_t s;
  if ((s = read_model_file(m, path)) != KILN_OK) return s;
  if ((s = validate(m->file, m->file_size, path)) != KILN_OK) return s;
  memcpy(&m->header, m->file, sizeof m->header);
  if ((s = copy_tables(m, path)) != KILN_OK) return s;

  const char *cache = options ? options->pipeline_cache_path : NULL;
  if (!cache) {
    size_t len = strlen(path);
    m->cache_path = (char *)malloc(len + sizeof ".cache");
    if (!m->cache_path) return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    memcpy(m->cache_path, path, len);
    memcpy(m->cache_path + len, ".cache", sizeof ".cache");
  } else if (cache[0] != '\0') {
    size_t len = strlen(cache) + 1;
    m->cache_path = (char *)malloc(len);
    if (!m->cache_path) return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: out of memory", path);
    memcpy(m->cache_path, cache, len);
  }

  vk_candidate_t candidate;
  if ((s = load_loader(m, path)) != KILN_OK) return s;
  if ((s = create_instance(m, path)) != KILN_OK) return s;
  if ((s = pick_device(m, path, options ? options->device_index : -1, &candidate)) != KILN_OK)
    return s;
  snprintf(m->info.device_name, sizeof m->info.device_name, "%s", m->props.deviceName);
  m->info.vendor_id = m->props.vendorID;
  m->info.device_id = m->props.deviceID;
  m->info.device_type = (int)m->props.deviceType;
  if ((s = check_limits(m, path)) != KILN_OK) return s;
  if ((s = create_device(m, path, &candidate)) != KILN_OK) return s;
  if ((s = create_commands(m, path)) != KILN_OK) return s;
  if ((s = create_buffers(m, path)) != KILN_OK) return s;
  if ((s = create_pipelines(m, path)) != KILN_OK) return s;
  if ((s = create_descriptors(m, path)) != KILN_OK) return s;
  if ((s = record_model(m, path)) != KILN_OK) return s;
  /* Everything the file held now lives in the tables and on the device. */
  free(m->file);
  m->file = NULL;
  return KILN_OK;
}

kiln_status_t kiln_vk_model_open(const char *path, const kiln_vk_options_t *options,
                                 kiln_vk_model_t **out) {
  if (!out) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "out is NULL");
  *out = NULL;
  if (!path) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "model path is NULL");
  if (options && options->device_index < -1)
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "device_index %d (use -1 or an index)",
                     options->device_index);
  double start = now_ms();
  kiln_vk_model_t *m = (kiln_vk_model_t *)calloc(1, sizeof *m);
  if (!m) return KILN_FAIL(KILN_ERROR_OUT_OF_MEMORY, "%s: cannot allocate the model", path);
  kiln_status_t s = model_build(m, path, options);
  if (s != KILN_OK) {
    kiln_vk_model_close(m);
    return s;
  }
  m->info.open_ms = now_ms() - start;
  *out = m;
  return KILN_OK;
}

/* ---- running -------------------------------------------------------------------------- */

kiln_status_t kiln_vk_model_run(kiln_vk_model_t *m, const void *const *inputs,
                                const size_t *input_sizes, void *const *outputs,
                                const size_t *output_sizes) {
  if (!m) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "model is NULL");
  uint32_t ni = m->header.num_inputs, no = m->header.num_outputs;
  if (ni > 0 && (!inputs || !input_sizes))
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "inputs or input_sizes is NULL");
  if (no > 0 && (!outputs || !output_sizes))
    return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "outputs or output_sizes is NULL");
  for (uint32_t i = 0; i < ni; ++i) {
    const kiln_vk_tensor_t *t = &m->tensors[i];
    if (!inputs[i]) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "input %u is NULL", i);
    if ((uint64_t)input_sizes[i] != t->size_bytes)
      return KILN_FAIL(KILN_ERROR_SHAPE_MISMATCH, "input %u ('%s'): %zu bytes, expected %llu", i,
                       t->name, input_sizes[i], (ull)t->size_bytes);
  }
  for (uint32_t o = 0; o < no; ++o) {
    const kiln_vk_tensor_t *t = &m->tensors[ni + o];
    if (!outputs[o]) return KILN_FAIL(KILN_ERROR_INVALID_ARGUMENT, "output %u is NULL", o);
    if ((uint64_t)output_sizes[o] < t->size_bytes)
      return KILN_FAIL(KILN_ERROR_BUFFER_TOO_SMALL,
                       "output %u ('%s'): buffer of %zu bytes, needs %llu", o, t->name,
                       output_sizes[o], (ull)t->size_bytes);
  }
  if (m->lost) return KILN_FAIL(KILN_ERROR_DEVICE, "the Vulkan device was lost");

  VkResult r = VK_SUCCESS;
  for (uint32_t i = 0; i < ni && r == VK_SUCCESS; ++i) {
    vk_buffer_t *b = &m->buffers[KILN_VK_BUFFER_FIRST_IO + i];
    memcpy(b->mapped, inputs[i], (size_t)m->tensors[i].size_bytes);
    r = buffer_flush(m, b);
  }
  if (r == VK_SUCCESS) r = submit_and_wait(m, m->command_buffer);
  for (uint32_t o = 0; o < no && r == VK_SUCCESS; ++o) {
    vk_buffer_t *b = &m->buffers[KILN_VK_BUFFER_FIRST_IO + ni + o];
    r = buffer_invalidate(m, b);
    if (r == VK_SUCCESS) memcpy(outputs[o], b->mapped, (size_t)m->tensors[ni + o].size_bytes);
  }
  if (r != VK_SUCCESS) {
    if (r == VK_ERROR_DEVICE_LOST) m->lost = 1;
    return vk_fail(r, "kiln_vk_model_run", "running the model");
  }
  return KILN_OK;
}

/* ---- introspection ------------------------------------------------------------------------ */

const kiln_vk_info_t *kiln_vk_model_info(const kiln_vk_model_t *m) { return m ? &m->info : NULL; }

size_t kiln_vk_model_num_inputs(const kiln_vk_model_t *m) { return m ? m->header.num_inputs : 0; }

size_t kiln_vk_model_num_outputs(const kiln_vk_model_t *m) {
  return m ? m->header.num_outputs : 0;
}

const kiln_vk_tensor_t *kiln_vk_model_input(const kiln_vk_model_t *m, size_t index) {
  return m && index < m->header.num_inputs ? &m->tensors[index] : NULL;
}

const kiln_vk_tensor_t *kiln_vk_model_output(const kiln_vk_model_t *m, size_t index) {
  return m && index < m->header.num_outputs ? &m->tensors[m->header.num_inputs + index] : NULL;
}
