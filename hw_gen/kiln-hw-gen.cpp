//===- kiln-hw-gen.cpp - The build's accelerator generator ------------------===//
//
//   kiln-hw-gen [--config FILE] [--rtl DIR] -o DIR
//
// The same generator as `kiln hw-gen`, without the compiler: the build runs it to
// produce the package and header the RTL and its tests compile against.
//
//===----------------------------------------------------------------------===//
#include "hw_gen/HwGen.h"

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char **argv) {
  std::string config, rtl, out;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if ((a == "--config" || a == "--rtl" || a == "-o") && i + 1 < argc) {
      (a == "--config" ? config : a == "--rtl" ? rtl : out) = argv[++i];
    } else {
      std::fprintf(stderr, "usage: kiln-hw-gen [--config FILE] [--rtl DIR] -o DIR\n");
      return 2;
    }
  }
  if (out.empty()) {
    std::fprintf(stderr, "kiln-hw-gen: -o DIR is required\n");
    return 2;
  }
  kiln_accel_config_t cfg = kiln::hw::defaultConfig();
  std::string error;
  if (!config.empty() && !kiln::hw::loadConfig(config, cfg, error)) {
    std::fprintf(stderr, "kiln-hw-gen: %s\n", error.c_str());
    return 1;
  }
  if (!kiln::hw::generate(cfg, rtl, out, error)) {
    std::fprintf(stderr, "kiln-hw-gen: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
