// Helpers shared by Kiln's libFuzzer targets.
#ifndef KILN_TESTS_FUZZ_UTIL_H
#define KILN_TESTS_FUZZ_UTIL_H

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

namespace kiln_fuzz {

/// A per-process scratch file (on tmpfs when there is one) for readers that take a path,
/// removed when the process exits. The file name ends in `suffix`, which some readers
/// look at.
inline std::string scratchPath(const char *suffix) {
  static std::vector<std::string> *made = [] {
    std::atexit([] {
      for (const std::string &p : *made) std::remove(p.c_str());
    });
    return new std::vector<std::string>;
  }();
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  made->push_back(std::string(dir) + "/kiln-fuzz-" + std::to_string(getpid()) + suffix);
  return made->back();
}

/// Writes `size` bytes to `path`; aborts if it cannot (the harness, not the input, failed).
inline void writeFile(const std::string &path, const void *data, size_t size) {
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
    std::perror(path.c_str());
    std::abort();
  }
}

} // namespace kiln_fuzz

#endif
