// Small float helpers shared by the reference quantizers, with ggml's exact semantics
// (spec §0.2, §3 preamble). Everything here is f32; the project builds with -ffp-contract=off
// so `a*b + c` is two roundings, as in ggml's x86 build.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

namespace nibble::qref {

// Smallest group maximum treated as non-zero (ggml GROUP_MAX_EPS).
inline constexpr float kGroupMaxEps = 1e-15f;

// Round to nearest, ties to even, by ggml's trick: add 1.5*2^23 and read the low mantissa bits.
// Exact for |v| <= 4194303; beyond that it wraps the way ggml's nearest_int does (callers clamp).
inline int nearest_int(float v) {
  const float t = v + 12582912.0f;
  int32_t i;
  std::memcpy(&i, &t, sizeof(i));
  return (i & 0x007FFFFF) - 0x00400000;
}

// Max |x| over n values and the signed value reaching it; the first index wins ties
// (scan in order, update only on a strictly larger |x|, start from 0).
struct AbsMax {
  float amax = 0.0f;
  float max = 0.0f;  // signed element with |max| == amax (0 when all zero)
};
inline AbsMax abs_max(const float* x, int n) {
  AbsMax r;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > r.amax) {
      r.amax = ax;
      r.max = x[i];
    }
  }
  return r;
}

// Sequential sum of squares in index order.
inline float sum_sq(const float* x, int64_t n) {
  float s = 0.0f;
  for (int64_t i = 0; i < n; ++i) s += x[i] * x[i];
  return s;
}

inline int clamp_int(int v, int lo, int hi) { return v < lo ? lo : (v > hi ? hi : v); }

}  // namespace nibble::qref
