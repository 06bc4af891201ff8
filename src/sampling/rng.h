// Rng: a small seeded generator (xoshiro256**, seeded through splitmix64) whose output is the
// same on every platform and standard library, so a seed reproduces a sampled text exactly.
#pragma once

#include <cstdint>

namespace nibble {

class Rng {
 public:
  explicit Rng(uint64_t seed) { reseed(seed); }
  void reseed(uint64_t seed);
  uint64_t next();
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

 private:
  uint64_t s_[4];
};

}  // namespace nibble
