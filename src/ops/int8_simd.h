// Pieces the x86 int8 kernels share (internal to ops/): the fixed float reductions of
// ops/int8_dot.h, the offset terms, and the 6-bit scales and minimums of a Q4_K / Q5_K super-block. Callable from
// any function compiled for AVX2 or more (an inline function's target may be a subset of its
// caller's).
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "ops/int8_dot.h"

namespace nibble::int8_kernels {

// s = e + o, then ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)): the order every kernel sums its lanes in.
__attribute__((target("avx2,fma"))) inline float reduce_lanes(__m256 e, __m256 o) {
  const __m256 s = _mm256_add_ps(e, o);
  const __m128 v = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  const __m128 u = _mm_add_ps(v, _mm_movehl_ps(v, v));
  return _mm_cvtss_f32(_mm_add_ss(u, _mm_shuffle_ps(u, u, 1)));
}

// ((m0+m4)+(m2+m6)) + ((m1+m5)+(m3+m7)): the order the 8 offset lanes are summed in.
__attribute__((target("avx2,fma"))) inline float reduce_offset_lanes(__m256 m) {
  float v[8];
  _mm256_storeu_ps(v, m);
  return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

// The offset terms of R rows x T tokens (ops/int8_dot.h's order: 8 lanes over groups g = 8k + l,
// the fixed reduction, then the remaining groups in order).
template <int R, int T>
__attribute__((target("avx2,fma"))) void offsets(const Int8Row* rows, const Int8Acts& a, int64_t tok0, float res[R][T]) {
  const int64_t ng = a.n / 16, g8 = ng & ~int64_t{7};
  const float* sm[T];
  for (int t = 0; t < T; ++t) sm[t] = a.sum16_of(tok0 + t);
  __m256 m[R][T];
  for (int r = 0; r < R; ++r)
    for (int t = 0; t < T; ++t) m[r][t] = _mm256_setzero_ps();
  for (int64_t g = 0; g < g8; g += 8) {
    __m256 s[T];
    for (int t = 0; t < T; ++t) s[t] = _mm256_loadu_ps(sm[t] + g);
    for (int r = 0; r < R; ++r) {
      const __m256 o = _mm256_loadu_ps(rows[r].offset + g);
      for (int t = 0; t < T; ++t) m[r][t] = _mm256_fmadd_ps(o, s[t], m[r][t]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int t = 0; t < T; ++t) {
      float x = reduce_offset_lanes(m[r][t]);
      for (int64_t g = g8; g < ng; ++g) x = __builtin_fmaf(rows[r].offset[g], sm[t][g], x);
      res[r][t] = x;
    }
  }
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

// The 16 sub-block scales of a Q3_K super-block (6 bits: the low 4 in bytes 0..7, the high 2 in
// bytes 8..11), as the reference dequantizer unpacks them: scale j in byte j.
inline __m128i q3_k_scales(const uint8_t* scales12) {
  uint32_t a[3];
  std::memcpy(a, scales12, 12);
  const uint32_t lo = 0x0F0F0F0Fu, hi = 0x03030303u;
  return _mm_setr_epi32(static_cast<int>((a[0] & lo) | ((a[2] & hi) << 4)),
                        static_cast<int>((a[1] & lo) | (((a[2] >> 2) & hi) << 4)),
                        static_cast<int>(((a[0] >> 4) & lo) | (((a[2] >> 4) & hi) << 4)),
                        static_cast<int>(((a[1] >> 4) & lo) | (((a[2] >> 6) & hi) << 4)));
}

// A Q2_K (kQ3 false) or Q3_K super-block's 16 scales per 16 values as int16 (Q3_K: s - 32) and,
// for Q2_K, its 16 minimums (Q3_K: the scales again, whose products with the activation sums
// give its -4 term).
template <bool kQ3>
__attribute__((target("avx2,fma,f16c"))) inline void q2_3_k_scales_mins(const uint8_t* blk,
                                                                        __m256i* sc16,
                                                                        __m256i* mn16) {
  if constexpr (kQ3) {
    *sc16 = _mm256_sub_epi16(_mm256_cvtepu8_epi16(q3_k_scales(blk + 96)), _mm256_set1_epi16(32));
    *mn16 = *sc16;
  } else {
    const __m128i sc = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    *sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(sc, m4));
    *mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sc, 4), m4));
  }
}

// A Q2_K / Q3_K super-block's float work: sums are its 8 blocks' scaled integer sums, m the
// vpmaddwd of mn16 against the activations' isum16 (per block), da the activation scales.
// Q3_K: acc = fma(float(sums - 4m), d * da, acc); Q2_K: acc = fma(float(sums), d * da, acc),
// then fma(float(m), -dmin * da, acc).
template <bool kQ3>
__attribute__((target("avx2,fma,f16c"))) inline __m256 q2_3_k_accumulate(const uint8_t* blk,
                                                                         __m256i sums, __m256i m,
                                                                         __m256 da, __m256 acc) {
  uint16_t dh[2];
  std::memcpy(dh, blk + (kQ3 ? 108 : 80), kQ3 ? 2 : 4);
  const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh[0]));
  if constexpr (kQ3) {
    const __m256i isum = _mm256_sub_epi32(sums, _mm256_slli_epi32(m, 2));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(d, da), acc);
  } else {
    const __m256 ndmin = _mm256_set1_ps(-_cvtsh_ss(dh[1]));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_mul_ps(d, da), acc);
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), _mm256_mul_ps(ndmin, da), acc);
  }
}

// d * (ls - 32) of an IQ4_XS super-block's 8 sub-blocks (ls: bits 4ib..4ib+3 of scales_l at byte
// 4, bits 2ib, 2ib + 1 of scales_h at byte 2; d the fp16 at byte 0), as floats in lane ib.
__attribute__((target("avx2,fma,f16c"))) inline __m256 iq4_xs_scales(const uint8_t* blk) {
  uint16_t dh, sh;
  uint32_t sl;
  std::memcpy(&dh, blk, 2);
  std::memcpy(&sh, blk + 2, 2);
  std::memcpy(&sl, blk + 4, 4);
  const __m256i ls = _mm256_or_si256(
      _mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(static_cast<int>(sl)),
                                         _mm256_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28)),
                       _mm256_set1_epi32(0x0F)),
      _mm256_slli_epi32(_mm256_and_si256(_mm256_srlv_epi32(_mm256_set1_epi32(sh),
                                                           _mm256_setr_epi32(0, 2, 4, 6, 8, 10,
                                                                             12, 14)),
                                         _mm256_set1_epi32(3)),
                        4));
  return _mm256_mul_ps(_mm256_set1_ps(_cvtsh_ss(dh)),
                       _mm256_cvtepi32_ps(_mm256_sub_epi32(ls, _mm256_set1_epi32(32))));
}

}  // namespace nibble::int8_kernels
