// Fuzzes the Vulkan HAL's .kvk reader (kiln_vk_validate, what kiln_vk_model_open checks
// before it touches Vulkan) and, for a file it accepts, walks the tables the way the device
// code does after validation (copy_tables, create_buffers, create_descriptors,
// record_model): every index and byte range the validator vouched for must be inside the
// file and the tables, or the harness aborts. No Vulkan loader, instance or device is ever
// opened, so runs are fast and deterministic on any machine.
//
// The validator reads the image bytewise (memcpy onto the structs, load_u32), so it assumes
// no alignment; the image is still copied into its own malloc'd buffer of exactly `size`
// bytes, as kiln_vk_model_open reads a file, so that ASan catches a read one byte past it.
//
// Most mutations break the checksum or file_size, so inputs of odd length get both repaired
// (when they hold a whole header), to reach the checks behind them.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "kiln/kiln.h"
#include "kiln/vulkan.h"

extern "C" {
#include "internal.h" // kiln_fnv1a64
}

namespace {

int failures_explained = 0;

void onError(void *, const char *message) {
  // Every failure explains itself.
  if (!message || !*message) std::abort();
  ++failures_explained;
}

void check(bool ok) {
  if (!ok) std::abort(); // the validator accepted what the device code would misuse
}

template <typename T> std::vector<T> table(const uint8_t *image, uint64_t offset, uint64_t count) {
  std::vector<T> out(count);
  if (count) std::memcpy(out.data(), image + offset, count * sizeof(T));
  return out;
}

bool terminated(const char *s, size_t n) { return std::memchr(s, '\0', n) != nullptr; }

/// What the device code relies on once kiln_vk_validate returned KILN_OK.
void walk(const uint8_t *image, size_t size) {
  kiln_vk_header_t h;
  std::memcpy(&h, image, sizeof h);
  check(h.file_size == size && h.header_size == sizeof h);
  check(terminated(h.name, sizeof h.name) && terminated(h.target, sizeof h.target));
  const uint64_t num_tensors = uint64_t(h.num_inputs) + h.num_outputs;
  // Every non-empty section lies after the header and inside the file.
  auto inside = [&](uint64_t offset, uint64_t bytes) {
    return bytes == 0 || (offset >= sizeof h && offset <= size && bytes <= size - offset);
  };
  check(inside(h.tensors_offset, num_tensors * sizeof(kiln_vk_tensor_t)));
  check(inside(h.kernels_offset, uint64_t(h.num_kernels) * sizeof(kiln_vk_kernel_t)));
  check(inside(h.dispatches_offset, uint64_t(h.num_dispatches) * sizeof(kiln_vk_dispatch_t)));
  check(inside(h.bindings_offset, uint64_t(h.num_bindings) * sizeof(kiln_vk_binding_t)));
  check(h.spirv_size >= 20 && h.spirv_size % 4 == 0 && h.spirv_offset % 4 == 0 &&
        inside(h.spirv_offset, h.spirv_size));
  check(h.weights_offset % KILN_VK_WEIGHTS_ALIGNMENT == 0 &&
        inside(h.weights_offset, h.weights_size));

  // copy_tables.
  auto tensors = table<kiln_vk_tensor_t>(image, h.tensors_offset, num_tensors);
  auto kernels = table<kiln_vk_kernel_t>(image, h.kernels_offset, h.num_kernels);
  auto dispatches = table<kiln_vk_dispatch_t>(image, h.dispatches_offset, h.num_dispatches);
  auto bindings = table<kiln_vk_binding_t>(image, h.bindings_offset, h.num_bindings);

  // create_buffers: names (error messages), sizes; the weights and SPIR-V bytes are read
  // (touched here, so that ASan sees any overclaim).
  std::vector<uint64_t> buffer_bytes = {h.weights_size, h.arena_size};
  for (const kiln_vk_tensor_t &t : tensors) {
    check(terminated(t.name, sizeof t.name) && t.rank <= KILN_VK_MAX_DIMS && t.size_bytes > 0);
    buffer_bytes.push_back(t.size_bytes);
  }
  volatile uint8_t sum = 0;
  for (uint64_t i = 0; i < h.weights_size; ++i) sum ^= image[h.weights_offset + i];
  for (uint64_t i = 0; i < h.spirv_size; ++i) sum ^= image[h.spirv_offset + i];

  // create_pipelines: entry names go to the driver.
  for (const kiln_vk_kernel_t &k : kernels)
    check(terminated(k.entry, sizeof k.entry) && k.entry[0] != '\0' && k.push_constant_bytes == 0);

  // create_descriptors and record_model: every dispatch's kernel and bindings.
  for (const kiln_vk_dispatch_t &d : dispatches) {
    check(d.kernel < kernels.size());
    check(d.num_bindings == kernels[d.kernel].num_bindings);
    check(uint64_t(d.first_binding) + d.num_bindings <= bindings.size());
    check(d.groups[0] && d.groups[1] && d.groups[2]);
  }
  for (const kiln_vk_binding_t &b : bindings) {
    check(b.buffer < buffer_bytes.size());
    const uint64_t limit = buffer_bytes[b.buffer];
    check(b.size > 0 && b.offset <= limit && b.size <= limit - b.offset);
  }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool init = (kiln_set_error_hook(onError, nullptr), true);
  (void)init;
  // The image in a buffer of its own, exactly `size` bytes (malloc'd: 16-byte aligned).
  uint8_t *image = static_cast<uint8_t *>(std::malloc(size ? size : 1));
  if (size) std::memcpy(image, data, size);
  if (size >= sizeof(kiln_vk_header_t) && (size & 1)) {
    uint64_t file_size = size;
    std::memcpy(image + offsetof(kiln_vk_header_t, file_size), &file_size, 8);
    const size_t header = sizeof(kiln_vk_header_t);
    uint64_t checksum = kiln_fnv1a64(image + header, size - header);
    std::memcpy(image + offsetof(kiln_vk_header_t, checksum), &checksum, 8);
  }

  const int before = failures_explained;
  kiln_status_t s = kiln_vk_validate(image, size);
  if (s != KILN_OK) {
    if (failures_explained == before) std::abort(); // a failure without a message
    // A bad file is a bad file (out of memory only for the entry-point names of a huge one).
    if (s != KILN_ERROR_BAD_WEIGHTS && s != KILN_ERROR_OUT_OF_MEMORY) std::abort();
  } else {
    walk(image, size);
  }
  std::free(image);
  return 0;
}
