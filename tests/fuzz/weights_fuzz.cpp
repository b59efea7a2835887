// Fuzzes the runtime's .kw weights loader: kiln_weights_wrap on aligned memory and
// kiln_weights_open on a file must agree and never crash; a loaded file then feeds
// kiln_model_create, plan, bind and run of the runtime tests' fake model.
//
// Most mutations break the checksum, so half the inputs get theirs repaired (when the
// header's data section lies inside the input), to reach the checks behind it.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "fake_model.h"
#include "fuzz_util.h"
#include "kiln/kiln.h"

extern "C" {
#include "internal.h" // the accessors of a loaded weights handle
}

namespace {

void onError(void *, const char *message) {
  // Every failure explains itself.
  if (!message || !*message) std::abort();
}

uint64_t loadU64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

void storeU64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = uint8_t(v >> (8 * i));
}

/// Plans, binds and runs `desc` on `weights`; only calls the model when every step passed.
void exercise(const kiln_model_desc_t *desc, const kiln_weights_t *weights) {
  kiln_model_t *model = nullptr;
  if (kiln_model_create(desc, weights, &model) != KILN_OK) {
    if (model) std::abort(); // a failed create must not hand out a model
    return;
  }
  size_t arena_size = 0, align = 0;
  void *arena = nullptr;
  if (kiln_model_plan(model, &arena_size, &align) == KILN_OK && arena_size) {
    arena = std::aligned_alloc(align ? align : 64, (arena_size + 63) / 64 * 64);
    kiln_model_bind_arena(model, arena, arena_size);
  }
  std::vector<std::vector<unsigned char>> buffers;
  bool bound = true;
  for (size_t io = 0; io < 2; ++io) {
    size_t n = io ? kiln_model_num_outputs(model) : kiln_model_num_inputs(model);
    for (size_t k = 0; k < n; ++k) {
      const kiln_tensor_desc_t *t = io ? kiln_model_output(model, k) : kiln_model_input(model, k);
      buffers.emplace_back(t->size_bytes);
      auto &b = buffers.back();
      auto dtype = kiln_dtype_t(t->dtype);
      auto rank = size_t(t->rank);
      kiln_status_t s = io ? kiln_model_bind_output(model, k, dtype, rank, t->dims, b.data(), b.size())
                           : kiln_model_bind_input(model, k, dtype, rank, t->dims, b.data(), b.size());
      bound = bound && s == KILN_OK;
    }
  }
  if (bound) kiln_model_run(model);
  kiln_model_destroy(model);
  std::free(arena);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool init = (kiln_set_error_hook(onError, nullptr), true);
  (void)init;
  // kiln_weights_wrap wants the data section 64-byte aligned, as a mapped file is.
  size_t cap = (size + 63) / 64 * 64;
  uint8_t *image = static_cast<uint8_t *>(std::aligned_alloc(64, cap ? cap : 64));
  if (size) std::memcpy(image, data, size);
  if (size >= 48 && (size & 1)) {
    uint64_t offset = loadU64(image + 16), length = loadU64(image + 24);
    if (offset <= size && length <= size - offset)
      storeU64(image + 40, kiln_fake_fnv1a64(image + offset, size_t(length)));
  }

  kiln_weights_t *wrapped = nullptr;
  kiln_status_t ws = kiln_weights_wrap(image, size, &wrapped);
  if ((ws == KILN_OK) != (wrapped != nullptr)) std::abort();

  static const std::string path = kiln_fuzz::scratchPath(".kw");
  kiln_fuzz::writeFile(path, image, size);
  kiln_weights_t *opened = nullptr;
  kiln_status_t os = kiln_weights_open(path.c_str(), &opened);
  if ((os == KILN_OK) != (opened != nullptr)) std::abort();
  // Both loaders read the same bytes, so they must agree.
  if ((ws == KILN_OK) != (os == KILN_OK)) std::abort();
  if (opened) {
    if (kiln_weights_data_size(opened) != kiln_weights_data_size(wrapped) ||
        kiln_weights_model_hash(opened) != kiln_weights_model_hash(wrapped))
      std::abort();
    // Touch every byte the handle claims, so that ASan sees any overclaim.
    const volatile uint8_t *p = static_cast<const uint8_t *>(kiln_weights_data(opened));
    uint8_t sum = 0;
    for (uint64_t k = 0; k < kiln_weights_data_size(opened); ++k) sum ^= p[k];
    (void)sum;
    exercise(&kiln_fake_model_desc, opened);
    exercise(&kiln_fake_noarena_desc, wrapped);
  }
  kiln_weights_close(opened);
  kiln_weights_close(wrapped);
  std::free(image);
  return 0;
}
