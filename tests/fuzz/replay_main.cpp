// A main for a fuzz target built without libFuzzer: runs LLVMFuzzerTestOneInput once on
// every file named, and on every file under every directory named (sorted, recursively),
// so that a sanitizer build replays corpora and test models without clang's libFuzzer.
// A target may define KilnReplayFile(path) for files it reads by path (it returns -1 to
// leave a file to LLVMFuzzerTestOneInput). Prints how many files ran; a finding aborts.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
extern "C" __attribute__((weak)) int KilnReplayFile(const char *path);

int main(int argc, char **argv) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (int k = 1; k < argc; ++k) {
    std::error_code ec;
    if (fs::is_directory(argv[k], ec)) {
      std::vector<std::string> found;
      for (const auto &e : fs::recursive_directory_iterator(argv[k], ec))
        if (e.is_regular_file()) found.push_back(e.path().string());
      std::sort(found.begin(), found.end());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::is_regular_file(argv[k], ec)) {
      files.push_back(argv[k]);
    } else {
      std::fprintf(stderr, "%s: no file or directory '%s'\n", argv[0], argv[k]);
      return 2;
    }
  }
  for (const std::string &f : files) {
    if (KilnReplayFile && KilnReplayFile(f.c_str()) >= 0) continue;
    std::ifstream in(f, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "%s: cannot read '%s'\n", argv[0], f.c_str());
      return 2;
    }
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size());
  }
  std::printf("%s: %zu files replayed\n", argv[0], files.size());
  return 0;
}
