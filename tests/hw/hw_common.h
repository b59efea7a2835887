// Shared helpers of the RTL testbenches (tests/hw): the seed (KILN_HW_SEED, printed so a
// failure can be replayed) and the sweep size (KILN_HW_SWEEP multiplies the random
// iterations; CI runs 1).
#ifndef KILN_TESTS_HW_COMMON_H
#define KILN_TESTS_HW_COMMON_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace kiln_hw_test {

inline uint64_t seedFor(const char *test) {
  const char *env = std::getenv("KILN_HW_SEED");
  uint64_t seed = env ? std::strtoull(env, nullptr, 0) : 20261207ull;
  // Each test draws from its own stream; the printed seed replays all of them.
  uint64_t h = 1469598103934665603ull;
  for (const char *p = test; *p; ++p) h = (h ^ uint8_t(*p)) * 1099511628211ull;
  std::printf("[ seed ] %s: KILN_HW_SEED=%llu\n", test, (unsigned long long)seed);
  return seed ^ h;
}

inline unsigned sweep() {
  const char *env = std::getenv("KILN_HW_SWEEP");
  unsigned n = env ? unsigned(std::strtoul(env, nullptr, 0)) : 1u;
  return n ? n : 1u;
}

} // namespace kiln_hw_test

#endif
