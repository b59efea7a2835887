// Shared helpers of the runtime unit tests: temp dirs, captured error text, aligned memory.
#ifndef KILN_TESTS_RUNTIME_TEST_UTIL_H
#define KILN_TESTS_RUNTIME_TEST_UTIL_H

#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace kiln_test {

// Keeps the last message the runtime sent to the error hook, so tests can check that every
// failure explains itself.
class ErrorCapture {
 public:
  ErrorCapture() { kiln_set_error_hook(&ErrorCapture::Hook, this); }
  ~ErrorCapture() { kiln_set_error_hook(nullptr, nullptr); }
  ErrorCapture(const ErrorCapture &) = delete;
  ErrorCapture &operator=(const ErrorCapture &) = delete;
  const std::string &last() const { return last_; }
  void clear() { last_.clear(); }

 private:
  static void Hook(void *user, const char *message) {
    static_cast<ErrorCapture *>(user)->last_ = message;
  }
  std::string last_;
};

// A scratch directory removed with its (flat) contents at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char *base = getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/kiln_rt_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data())) path_ = buf.data();
  }
  ~TempDir() {
    for (const std::string &f : files_) unlink(f.c_str());
    if (!path_.empty()) rmdir(path_.c_str());
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  bool ok() const { return !path_.empty(); }
  std::string File(const std::string &name) {
    std::string p = path_ + "/" + name;
    files_.push_back(p);
    return p;
  }
  std::string Write(const std::string &name, const std::vector<unsigned char> &bytes) {
    std::string p = File(name);
    FILE *f = fopen(p.c_str(), "wb");
    if (f) {
      if (!bytes.empty()) fwrite(bytes.data(), 1, bytes.size(), f);
      fclose(f);
    }
    return p;
  }

 private:
  std::string path_;
  std::vector<std::string> files_;
};

// Heap memory with a chosen alignment (std::vector only guarantees alignof(max_align_t)).
class AlignedBuffer {
 public:
  explicit AlignedBuffer(size_t size, size_t alignment = 64) : size_(size) {
    size_t rounded = (size / alignment + 1) * alignment;
    data_ = static_cast<unsigned char *>(aligned_alloc(alignment, rounded));
    if (data_) memset(data_, 0, rounded);
  }
  ~AlignedBuffer() { free(data_); }
  AlignedBuffer(const AlignedBuffer &) = delete;
  AlignedBuffer &operator=(const AlignedBuffer &) = delete;
  unsigned char *data() { return data_; }
  size_t size() const { return size_; }

 private:
  unsigned char *data_;
  size_t size_;
};

}  // namespace kiln_test

#endif  // KILN_TESTS_RUNTIME_TEST_UTIL_H
