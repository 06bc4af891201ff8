// Pieces the x86 int8 kernels share (internal to ops/): the fixed float reduction of
// ops/int8_dot.h, and the 6-bit scales and minimums of a Q4_K / Q5_K super-block. Callable from
// any function compiled for AVX2 or more (an inline function's target may be a subset of its
// caller's).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

namespace nibble::int8_kernels {

// s = e + o, then ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)): the order every kernel sums its lanes in.
__attribute__((target("avx2,fma"))) inline float reduce_lanes(__m256 e, __m256 o) {
  const __m256 s = _mm256_add_ps(e, o);
  const __m128 v = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  const __m128 u = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps(u, u, 1)));
}

// The 12 scale bytes of a Q4_K / Q5_K super-block -> 8 scales (bytes 0..7) and 8 minimums (bytes
// 8..15), 6 bits each, as the reference dequantizer's get_scale_min_k4 reads them.
inline void k4_scales_mins(const uint8_t* scales12, uint8_t out[16]) {
  uint32_t u[4];
  std::memcpy(u, scales12, 12);
  u[3] = ((u[2] >> 4) & 0x0F0F0F0Fu) | (((u[1] >> 6) & 0x03030303u) << 4);
  const uint32_t mins_lo = u[1] & 0x3F3F3F3Fu;
  u[1] = (u[2] & 0x0F0F0F0Fu) | (((u[0] >> 6) & 0x03030303u) << 4);
  u[0] &= 0x3F3F3F3Fu;
  u[2] = mins_lo;
  std::memcpy(out, u, 16);
}

}  // namespace nibble::int8_kernels
