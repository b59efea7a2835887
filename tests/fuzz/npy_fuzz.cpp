// Fuzzes the readers of user data files: the runtime's .npy reader (from memory and
// from a file, which must agree) and kiln eval's dataset readers (.npy or IDX samples
// and labels, optionally gzipped). The first byte picks the dataset reader and the
// file name; the rest is the file.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "fuzz_util.h"
#include "kiln/npy.h"
#include "tools/kiln/Dataset.h"

namespace {

void onError(void *, const char *message) {
  if (!message || !*message) std::abort();
}

/// Checks the invariants kiln_npy_t promises and reads every byte of the data.
void checkNpy(const kiln_npy_t &npy) {
  if (npy.rank > KILN_NPY_MAX_RANK) std::abort();
  size_t n = 1;
  for (size_t d = 0; d < npy.rank; ++d) {
    if (npy.dims[d] < 0) std::abort();
    n *= size_t(npy.dims[d]);
  }
  if (n != npy.num_elements || npy.size_bytes != n * npy.elem_size) std::abort();
  if (npy.size_bytes && (!npy.data || uintptr_t(npy.data) % 64)) std::abort();
  const volatile unsigned char *p = static_cast<const unsigned char *>(npy.data);
  unsigned char x = 0;
  for (size_t k = 0; k < npy.size_bytes; ++k) x ^= p[k];
  (void)x;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static bool init = (kiln_set_error_hook(onError, nullptr), true);
  (void)init;
  if (size < 1) return 0;
  const uint8_t mode = data[0];
  ++data;
  --size;

  kiln_npy_t mem{};
  kiln_status_t ms = kiln_npy_read_memory(data, size, &mem);
  if (ms == KILN_OK) checkNpy(mem);
  else if (mem.data || mem.rank) std::abort(); // a failed read leaves *out empty

  static const std::string npyPath = kiln_fuzz::scratchPath(".npy");
  static const std::string idxPath = kiln_fuzz::scratchPath(".idx");
  kiln_fuzz::writeFile(npyPath, data, size);
  kiln_npy_t file{};
  kiln_status_t fs = kiln_npy_read(npyPath.c_str(), &file);
  if (fs == KILN_OK) checkNpy(file);
  if (fs != ms) std::abort(); // the same bytes from memory or from a file
  if (fs == KILN_OK && (file.size_bytes != mem.size_bytes || file.dtype != mem.dtype ||
                        std::memcmp(file.data, mem.data, mem.size_bytes) != 0))
    std::abort();
  kiln_npy_free(&mem);
  kiln_npy_free(&file);

  // kiln eval's readers choose the format by the file name.
  const std::string &path = mode & 1 ? npyPath : idxPath;
  if (!(mode & 1)) kiln_fuzz::writeFile(idxPath, data, size);
  kiln::tools::Array array;
  std::string err;
  bool ok = mode & 2 ? kiln::tools::readLabels(path, array, err) : kiln::tools::readSamples(path, array, err);
  if (!ok && err.empty()) std::abort(); // every failure explains itself
  if (ok) {
    size_t n = 1;
    for (int64_t d : array.dims) n *= size_t(d);
    if (n != (mode & 2 ? array.i.size() : array.f.size())) std::abort();
  }
  return 0;
}
